"""Cleaning up after ForgeAI processes that were killed before they could clean up themselves.

Per-run directories and cgroups carry the owning process id in their names
(``exec-<pid>-...``, ``run-<pid>-...``). A SIGKILLed ForgeAI leaves them behind (its sandboxes
die with it: bwrap runs with --die-with-parent); the next ForgeAI process removes them.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
from collections.abc import Iterable
from pathlib import Path

log = logging.getLogger(__name__)

_OWNED = re.compile(r"^(?:exec|run)-(\d+)-")


def _owner_gone(name: str) -> bool:
    match = _OWNED.match(name)
    if match is None:
        return False
    pid = int(match.group(1))
    return pid != os.getpid() and not Path(f"/proc/{pid}").exists()


def sweep_stale(work_dirs: Path, cgroup_bases: Iterable[Path]) -> int:
    """Remove leftovers of dead ForgeAI processes; returns how many were removed."""
    removed = 0
    for entry in list(work_dirs.iterdir()) if work_dirs.is_dir() else []:
        if _owner_gone(entry.name):
            shutil.rmtree(entry, ignore_errors=True)
            removed += 1
    for base in cgroup_bases:
        for entry in list(base.iterdir()) if base.is_dir() else []:
            if entry.is_dir() and _owner_gone(entry.name):
                try:
                    entry.rmdir()  # only succeeds when no process is left in it
                    removed += 1
                except OSError as exc:
                    log.debug("stale cgroup %s not removed: %s", entry, exc)
    return removed
