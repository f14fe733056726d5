"""Installed dependency sets, cached by content under FORGEAI_HOME/cache/envs.

One folder per key (the requirements, the interpreter and its version, the index, the
platform, the installer's version). A folder exists under its key only once its install
succeeded: it is built under a temporary name and renamed into place with its metadata, so a
failed or interrupted install leaves nothing a run could use. Installs of one key are
serialised by a lock file. Each use touches ``used``; when the cache grows past its cap, the
least recently used environments go first (never one used in the last minute: a run may
have it mounted).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import platform
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel, ConfigDict

DEFAULT_CAP_BYTES = 2 * 1024 * 1024 * 1024
METADATA = "forgeai-env.json"
_RECENT_SECONDS = 60.0


class EnvironmentRecord(BaseModel):
    """What ``METADATA`` holds for one cached environment."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    requirements: tuple[str, ...]
    installed: tuple[str, ...]
    """``name==version`` of everything installed (the resolved set)."""
    interpreter: str
    python_version: str
    index: str
    size_bytes: int
    created: float


@dataclass(frozen=True, slots=True)
class EnvironmentKey:
    requirements: tuple[str, ...]
    interpreter: str
    python_version: str
    index: str
    installer: str

    @property
    def digest(self) -> str:
        document = {
            "requirements": sorted(self.requirements),
            "interpreter": self.interpreter,
            "python": self.python_version,
            "index": self.index,
            "installer": self.installer,
            "platform": f"{platform.system()}-{platform.machine()}",
        }
        return hashlib.sha256(json.dumps(document, sort_keys=True).encode()).hexdigest()[:32]


class EnvironmentCache:
    def __init__(self, root: Path, cap_bytes: int = DEFAULT_CAP_BYTES) -> None:
        self.root = root
        self.cap_bytes = cap_bytes

    def path_for(self, key: EnvironmentKey) -> Path:
        return self.root / key.digest

    def lookup(self, key: EnvironmentKey) -> Path | None:
        """The environment's folder when it was installed completely (and marks it used)."""
        folder = self.path_for(key)
        if not (folder / METADATA).is_file():
            return None
        with contextlib.suppress(OSError):
            (folder / "used").touch()
        return folder

    def record(self, folder: Path) -> EnvironmentRecord | None:
        try:
            return EnvironmentRecord.model_validate_json((folder / METADATA).read_text())
        except (OSError, ValueError):
            return None

    @contextlib.contextmanager
    def locked(self, key: EnvironmentKey) -> Iterator[None]:
        """Only one install of ``key`` at a time (other ForgeAI processes included)."""
        self.root.mkdir(parents=True, exist_ok=True, mode=0o700)
        locks = self.root / ".locks"
        locks.mkdir(exist_ok=True, mode=0o700)
        with open(locks / f"{key.digest}.lock", "w") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def building_dir(self, key: EnvironmentKey) -> Path:
        """A fresh folder to install into (renamed into place by ``commit``)."""
        self.root.mkdir(parents=True, exist_ok=True, mode=0o700)
        folder = self.root / f".building-{key.digest}-{os.getpid()}-{time.monotonic_ns()}"
        folder.mkdir(mode=0o700)
        return folder

    def commit(self, building: Path, key: EnvironmentKey, record: EnvironmentRecord) -> Path:
        (building / METADATA).write_text(record.model_dump_json(indent=2))
        (building / "used").touch()
        final = self.path_for(key)
        if final.exists():  # an incomplete leftover (no metadata): replaced
            shutil.rmtree(final, ignore_errors=True)
        building.rename(final)
        self.evict(keep=final)
        return final

    def discard(self, building: Path) -> None:
        shutil.rmtree(building, ignore_errors=True)

    def evict(self, keep: Path | None = None) -> list[Path]:
        """Remove least recently used environments until the cache is under its cap."""
        entries = []
        total = 0
        for folder in self.root.iterdir() if self.root.is_dir() else []:
            if folder.name.startswith(".") or not folder.is_dir():
                continue
            record = self.record(folder)
            size = record.size_bytes if record is not None else folder_size(folder)
            try:
                used = (folder / "used").stat().st_mtime
            except OSError:
                used = 0.0
            entries.append((used, folder, size))
            total += size
        removed = []
        now = time.time()
        for used, folder, size in sorted(entries):
            if total <= self.cap_bytes:
                break
            if folder == keep or now - used < _RECENT_SECONDS:
                continue
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(folder)
            total -= size
        return removed


def folder_size(folder: Path) -> int:
    total = 0
    for directory, _dirs, files in os.walk(folder):
        for name in files:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(directory, name)).st_size
    return total
