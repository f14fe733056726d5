"""Cleaning up after ForgeAI processes that were killed before they could clean up themselves.

Per-run directories and cgroups carry the owning process id in their names
(``exec-<pid>-...``, ``run-<pid>-...``). When ForgeAI dies, its supervisor ends its sandboxes
and removes them; when the supervisor was killed too (both SIGKILLed at once), they stay, and
the next ForgeAI process removes them: it kills whatever still runs in a stale cgroup, then
removes the group and the work directory. Under systemd (cgroup v2) each ForgeAI process has
a scope of its own (``forgeai-<pid>-….scope``): the scopes of dead ones are emptied the same
way, and systemd then removes them.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import shutil
import signal
import time
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


def sweep_stale(
    work_dirs: Path, cgroup_bases: Iterable[Path], dead_scopes: Iterable[Path] = ()
) -> int:
    """Remove leftovers of dead ForgeAI processes; returns how many were removed."""
    removed = 0
    for entry in list(work_dirs.iterdir()) if work_dirs.is_dir() else []:
        if _owner_gone(entry.name):
            shutil.rmtree(entry, ignore_errors=True)
            removed += 1
    for base in cgroup_bases:
        for entry in list(base.iterdir()) if base.is_dir() else []:
            if entry.is_dir() and _owner_gone(entry.name) and _empty_group(entry):
                removed += 1
    for scope in dead_scopes:
        for entry in list(scope.iterdir()) if scope.is_dir() else []:
            if not entry.is_dir():
                continue
            if entry.name.startswith("run-"):  # a run's group: whatever is left is its own
                removed += _empty_group(entry)
            else:  # the dead process's own group: what it started itself may still be alive
                with contextlib.suppress(OSError):
                    entry.rmdir()
    return removed


def _empty_group(group: Path, seconds: float = 2.0) -> bool:
    """Kill every process left in ``group`` (again, while new ones appear), then remove it."""
    deadline = time.monotonic() + seconds
    with contextlib.suppress(OSError):  # cgroup v2: the whole subtree at once
        (group / "cgroup.kill").write_text("1")
    while True:
        try:
            pids = [int(pid) for pid in (group / "cgroup.procs").read_text().split()]
        except (OSError, ValueError):
            pids = []
        for pid in pids:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
        try:
            group.rmdir()  # only succeeds once no process is left in it
            return True
        except OSError as exc:
            if time.monotonic() > deadline:
                log.warning("stale cgroup %s not removed: %s", group, exc)
                return False
        time.sleep(0.02)
