"""Dedicated unprivileged user ids for sandboxed runs started by root.

bubblewrap must never run as root (RLIMIT_NPROC is not enforced for uid 0 and ``/proc/sys``
stays writable), so a root caller switches to an otherwise unused uid. Each concurrent run holds
its own uid, so RLIMIT_NPROC, which counts every process of a uid, counts exactly that run.
A slot is held with an advisory lock, which also works between separate ForgeAI processes.
"""

from __future__ import annotations

import fcntl
import os
from dataclasses import dataclass
from pathlib import Path

from forgeai_ls.errors import SandboxCapacityError

DEFAULT_UID_BASE = 2_000_000_000
"""Far above the ranges distributions hand to users and to subordinate uid maps."""
DEFAULT_UID_COUNT = 1024


@dataclass(slots=True)
class UidLease:
    uid: int
    _fd: int

    def release(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)  # closing drops the lock
            self._fd = -1


class UidPool:
    def __init__(self, lock_dir: Path, base: int | None = None, count: int | None = None) -> None:
        self.base = (
            base
            if base is not None
            else int(os.environ.get("FORGEAI_SANDBOX_UID_BASE", DEFAULT_UID_BASE))
        )
        self.count = count if count is not None else DEFAULT_UID_COUNT
        self.lock_dir = lock_dir
        self.lock_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._next = os.getpid() % self.count  # spread concurrent processes over the range

    def acquire(self) -> UidLease:
        for attempt in range(self.count):
            slot = (self._next + attempt) % self.count
            fd = os.open(
                self.lock_dir / f"{slot}.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600
            )
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                continue
            self._next = (slot + 1) % self.count
            return UidLease(uid=self.base + slot, _fd=fd)
        raise SandboxCapacityError(
            f"all {self.count} sandbox user ids ({self.base}-{self.base + self.count - 1}) are "
            f"taken by runs in progress (locks in {self.lock_dir})",
            hint="wait for other runs to finish, or stop the ForgeAI processes holding them",
        )
