"""Host-side state of one execution: a private directory, its build dir, the leased uid."""

from __future__ import annotations

import contextlib
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from forgeai_ls.sandbox.uidpool import UidLease, UidPool


@dataclass(slots=True)
class Workspace:
    path: Path
    lease: UidLease | None
    build_dir: Path | None = None

    @classmethod
    def create(cls, runtime_dir: Path, uid_pool: UidPool | None) -> Workspace:
        lease = uid_pool.acquire() if uid_pool is not None else None
        path = runtime_dir / f"exec-{os.getpid()}-{time.monotonic_ns()}"
        path.mkdir(mode=0o711 if lease else 0o700)  # the sandbox uid must reach build/
        return cls(path=path, lease=lease)

    @property
    def uid(self) -> int | None:
        """The unprivileged uid the sandbox runs as, when ForgeAI runs as root."""
        return self.lease.uid if self.lease else None

    def make_build_dir(self) -> Path:
        build = self.path / "build"
        build.mkdir(mode=0o700)
        if self.lease is not None:
            os.chown(build, self.lease.uid, self.lease.uid)
        self.build_dir = build
        return build

    def remove(self) -> None:
        """Delete everything and release the uid; safe to call more than once."""

        def _retry_writable(func: Callable[[str], object], path: str, _exc: object) -> None:
            # The program may have left a directory without write permission.
            with contextlib.suppress(OSError):
                os.chmod(os.path.dirname(path), 0o700)
                func(path)

        if self.path.exists():
            shutil.rmtree(self.path, onerror=_retry_writable)
        if self.lease is not None:
            self.lease.release()
