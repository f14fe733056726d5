"""Reading a program from disk, refusing what cannot be a program's source, and the files
beside it that a run of it sees."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from forgeai_ls.errors import SourceError

MAX_SOURCE_BYTES = 4 * 1024 * 1024
MAX_SIBLING_FILES = 100
MAX_SIBLING_FILE_BYTES = 1024 * 1024
MAX_SIBLING_TOTAL_BYTES = 4 * 1024 * 1024


def check_source_text(data: bytes, what: str) -> str:
    """Decode program text; binary data (NUL bytes, invalid UTF-8) is refused."""
    if len(data) > MAX_SOURCE_BYTES:
        raise SourceError(
            f"{what} is {len(data)} bytes, over the {MAX_SOURCE_BYTES}-byte limit",
            hint="run a smaller file",
        )
    if b"\x00" in data:
        raise SourceError(
            f"{what} is binary data, not program text (it contains NUL bytes)",
            hint="pass a source file, not a compiled program or archive",
        )
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SourceError(
            f"{what} is not valid UTF-8 text (byte {exc.start} is not decodable)",
            hint="save the file as UTF-8",
        ) from exc


def read_source_file(path: Path) -> str:
    """The text of the program at ``path``."""
    try:
        info = path.stat()
    except FileNotFoundError:
        raise SourceError(f"{path}: no such file", hint="check the path") from None
    except OSError as exc:
        raise SourceError(f"{path}: cannot be read ({exc.strerror})") from exc
    if stat.S_ISDIR(info.st_mode):
        raise SourceError(
            f"{path} is a directory, not a source file", hint="pass the file to run, e.g. main.py"
        )
    if not stat.S_ISREG(info.st_mode):
        raise SourceError(f"{path} is not a regular file")
    if info.st_size > MAX_SOURCE_BYTES:
        raise SourceError(f"{path} is {info.st_size} bytes, over the {MAX_SOURCE_BYTES}-byte limit")
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise SourceError(f"{path}: cannot be read ({exc.strerror})") from exc
    return check_source_text(data, str(path))


def sibling_sources(path: Path) -> dict[str, bytes]:
    """The files beside a program file that a run of it sees, so that it can import them.

    The one rule for the CLI and the language server: files with the same extension as the
    program, directly in its directory; never the program itself (its text comes from the
    caller: the file, or the editor's unsaved text), never links or other non-regular files;
    at most ``MAX_SIBLING_FILES`` files, each at most ``MAX_SIBLING_FILE_BYTES`` and together
    at most ``MAX_SIBLING_TOTAL_BYTES`` (the first files by name win). They are copied into
    the sandbox's work directory; the project folder itself is never mounted.
    """
    if not path.suffix:
        return {}
    try:
        entries = sorted(os.scandir(path.parent), key=lambda e: e.name)
    except OSError:
        return {}
    found: dict[str, bytes] = {}
    total = 0
    for entry in entries:
        if entry.name == path.name or not entry.name.endswith(path.suffix):
            continue
        try:
            info = entry.stat(follow_symlinks=False)
        except OSError:
            continue
        if not stat.S_ISREG(info.st_mode) or info.st_size > MAX_SIBLING_FILE_BYTES:
            continue
        if len(found) >= MAX_SIBLING_FILES or total + info.st_size > MAX_SIBLING_TOTAL_BYTES:
            break
        try:
            found[entry.name] = Path(entry.path).read_bytes()
        except OSError:
            continue
        total += info.st_size
    return found
