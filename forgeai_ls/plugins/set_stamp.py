"""A cheap fingerprint of an installed plugin set: what decides which plugins load.

Used by the language server's start-up lens cache and by the CLI's daemon (which reloads its
plugins when the fingerprint changes). Imports nothing heavy.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from pathlib import Path

from forgeai_ls.home import bundled_plugins_dir, official_lock_path

_WATCHED_FILES = ("plugin.yaml", "SIGNATURE.json")


def stat_parts(path: Path) -> list[object]:
    try:
        info = path.stat()
    except OSError:
        return [str(path), None]
    return [str(path), info.st_size, info.st_mtime_ns, info.st_ino]


def plugin_set_stamp(home: Path, extra_dirs: Sequence[Path], extra: Sequence[object]) -> str:
    """A fingerprint of everything that decides which plugins load, cheap enough for every
    start: the bundled, installed (``home/plugins``) and extra plugin folders (a directory
    listing and a few stat calls per plugin), the official lock and the trust store."""
    trust = home / "trust"
    parts: list[object] = [
        *extra,
        stat_parts(official_lock_path()),
        stat_parts(trust),
        *(stat_parts(p) for p in sorted(trust.glob("*"))),
    ]
    for directory in (bundled_plugins_dir(), home / "plugins", *extra_dirs):
        parts.append(stat_parts(directory))
        try:
            entries = sorted(os.listdir(directory))
        except OSError:
            continue
        for name in entries:
            for watched in _WATCHED_FILES:
                parts.append(stat_parts(directory / name / watched))
    text = json.dumps(parts, default=str).encode()
    return hashlib.sha256(text).hexdigest()
