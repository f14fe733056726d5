"""A project file's siblings, so that a run sees the modules it imports next to it.

Only files with the same extension as the run file, directly in its directory, are taken;
never the file itself (the editor's text is used for it), never links, and within count and
size bounds. They are copied into the sandbox's work directory; the project is not mounted.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from urllib.parse import unquote, urlparse

MAX_FILES = 100
MAX_FILE_BYTES = 1024 * 1024
MAX_TOTAL_BYTES = 4 * 1024 * 1024


def sibling_sources(uri: str) -> dict[str, bytes]:
    parsed = urlparse(uri)
    if parsed.scheme != "file":
        return {}
    path = Path(unquote(parsed.path))
    if not path.suffix or not path.parent.is_dir():
        return {}
    found: dict[str, bytes] = {}
    total = 0
    try:
        entries = sorted(os.scandir(path.parent), key=lambda e: e.name)
    except OSError:
        return {}
    for entry in entries:
        if entry.name == path.name or not entry.name.endswith(path.suffix):
            continue
        try:
            info = entry.stat(follow_symlinks=False)
        except OSError:
            continue
        if not stat.S_ISREG(info.st_mode) or info.st_size > MAX_FILE_BYTES:
            continue
        if len(found) >= MAX_FILES or total + info.st_size > MAX_TOTAL_BYTES:
            break
        try:
            found[entry.name] = Path(entry.path).read_bytes()
        except OSError:
            continue
        total += info.st_size
    return found
