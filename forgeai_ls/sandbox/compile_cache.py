"""Compile cache: re-running unchanged code skips the compiler.

An entry is keyed by the sha256 of everything that decides what the compiler produces: every
source file (name and content), the compile command and its environment, the compiler
itself (resolved path, size and modification time) and the system's installed packages (the
dpkg database's modification time: headers and libraries come from there), and the cache
format. Limits are not part of the key: only compiles that succeeded within their limits are
stored, and their output does not depend on the limits.

An entry holds the compile step's build directory, its stdout and stderr (warnings are shown
again, and become diagnostics again) and its result. Entries are written to a temporary
directory and renamed into place, so a reader never sees half an entry; the cache is capped
in size, least recently used entries first out. Build outputs are copied without following
symbolic links (a link in a build directory only means something inside the sandbox), and a
build directory holding anything but files, directories and links is not stored.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import shutil
import stat
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from forgeai_ls.sandbox.request import StepSpec
from forgeai_ls.sandbox.result import StepResult

log = logging.getLogger(__name__)

FORMAT = "forgeai-compile-cache/1"
MIB = 1024 * 1024
DEFAULT_MAX_BYTES = 1024 * MIB
MAX_ENTRY_BYTES = 256 * MIB
_DPKG_STATUS = Path("/var/lib/dpkg/status")


@dataclass(frozen=True, slots=True)
class CachedCompile:
    """A stored compile: its build directory and the step's result."""

    build: Path
    result: StepResult


def _file_identity(path: str) -> dict[str, object]:
    try:
        info = os.stat(path)
    except OSError:
        return {"path": path, "missing": True}
    return {"path": os.path.realpath(path), "size": info.st_size, "mtime_ns": info.st_mtime_ns}


def _tree_bytes(root: Path) -> int | None:
    """Total size of a build directory, or None when it holds something not storable."""
    total = 0
    for directory, dirs, files in os.walk(root):
        for name in [*dirs, *files]:
            mode = os.lstat(os.path.join(directory, name)).st_mode
            if stat.S_ISREG(mode):
                total += os.lstat(os.path.join(directory, name)).st_size
            elif not (stat.S_ISDIR(mode) or stat.S_ISLNK(mode)):
                return None
    return total


class CompileCache:
    def __init__(self, directory: Path, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        self.directory = directory
        self.max_bytes = max_bytes

    def key(self, files: Mapping[str, bytes], spec: StepSpec, compiler: str) -> str:
        """The entry a compile of ``files`` with ``spec`` by ``compiler`` (its resolved
        executable) would have."""
        identity = {
            "format": FORMAT,
            "files": {name: hashlib.sha256(data).hexdigest() for name, data in files.items()},
            "argv": list(spec.argv),
            "env": dict(spec.env),
            "compiler": _file_identity(compiler),
            "system": _file_identity(str(_DPKG_STATUS)),
        }
        text = json.dumps(identity, sort_keys=True).encode()
        return hashlib.sha256(text).hexdigest()

    def _entry(self, key: str) -> Path:
        return self.directory / key[:2] / key

    def lookup(self, key: str) -> CachedCompile | None:
        entry = self._entry(key)
        try:
            meta = json.loads((entry / "result.json").read_text())
            result = StepResult.model_validate(
                {
                    **meta,
                    "stdout": (entry / "stdout").read_bytes(),
                    "stderr": (entry / "stderr").read_bytes(),
                    "cached": True,
                }
            )
        except (OSError, ValueError):
            return None
        with contextlib.suppress(OSError):
            os.utime(entry)  # recently used
        return CachedCompile(build=entry / "build", result=result)

    def store(self, key: str, build: Path, result: StepResult) -> None:
        """Remember a successful compile; a cache that cannot be written only costs time."""
        if not result.ok:
            return
        size = _tree_bytes(build)
        if size is None or size > MAX_ENTRY_BYTES:
            return
        entry = self._entry(key)
        staging = self.directory / f".staging-{uuid.uuid4().hex}"
        try:
            staging.mkdir(parents=True, mode=0o700)
            shutil.copytree(build, staging / "build", symlinks=True)
            (staging / "stdout").write_bytes(result.stdout)
            (staging / "stderr").write_bytes(result.stderr)
            meta = result.model_dump(mode="json", exclude={"stdout", "stderr", "cached"})
            (staging / "result.json").write_text(json.dumps(meta))
            (staging / "size").write_text(str(size))  # read when trimming, never re-walked
            entry.parent.mkdir(parents=True, exist_ok=True)
            os.rename(staging, entry)
        except OSError as exc:
            log.debug("compile cache: entry not stored: %s", exc)
        finally:
            if staging.exists():
                shutil.rmtree(staging, ignore_errors=True)
        self._trim()

    def restore(self, cached: CachedCompile, build: Path) -> None:
        """Fill an (empty) build directory from an entry: hard links where possible (the
        run step mounts the build directory read-only), copies otherwise."""

        def link_or_copy(source: str, target: str) -> None:
            try:
                os.link(source, target, follow_symlinks=False)
            except OSError:
                shutil.copy2(source, target, follow_symlinks=False)

        shutil.copytree(
            cached.build, build, symlinks=True, dirs_exist_ok=True, copy_function=link_or_copy
        )

    def _trim(self) -> None:
        entries = []
        total = 0
        for shard in self.directory.iterdir() if self.directory.is_dir() else ():
            if not shard.is_dir() or shard.name.startswith("."):
                continue
            for entry in shard.iterdir():
                try:
                    size = int((entry / "size").read_text())
                except (OSError, ValueError):
                    size = _tree_bytes(entry) or 0
                entries.append((entry.stat().st_mtime, size, entry))
                total += size
        for _, size, entry in sorted(entries, key=lambda item: item[0]):
            if total <= self.max_bytes:
                break
            shutil.rmtree(entry, ignore_errors=True)
            total -= size

    def clear(self) -> None:
        shutil.rmtree(self.directory, ignore_errors=True)
