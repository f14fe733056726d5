"""What this machine offers the native backend, detected once per process."""

from __future__ import annotations

import logging
import os
import shutil
import stat
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from forgeai_ls.errors import SandboxUnavailableError
from forgeai_ls.runtime_dir import NotPrivateError, private_dir, runtime_base
from forgeai_ls.sandbox.cgroups import CgroupManager, detect_cgroups
from forgeai_ls.sandbox.etc_tree import build_etc_tree
from forgeai_ls.sandbox.seccomp import seccomp_program
from forgeai_ls.sandbox.stale import sweep_stale
from forgeai_ls.sandbox.uidpool import UidPool

log = logging.getLogger(__name__)

BWRAP_HINT = (
    "install bubblewrap: 'sudo apt-get install bubblewrap' (Debian/Ubuntu), "
    "'sudo dnf install bubblewrap' (Fedora), 'sudo pacman -S bubblewrap' (Arch), "
    "or point FORGEAI_BWRAP at a bwrap binary"
)


@dataclass(frozen=True, slots=True)
class NativeHost:
    bwrap: str
    is_root: bool
    cgroups: CgroupManager | None
    uid_pool: UidPool | None
    """Present when running as root: each execution switches to a leased unprivileged uid."""
    runtime_dir: Path
    """Holds per-execution build directories (traversable by the sandbox uid)."""
    stage_dir: Path | None
    """Root only: where toolchains unreadable by the sandbox uid are bind-mounted for bwrap."""
    seccomp: bytes | None
    etc_dir: Path
    """The sandbox's read-only /etc (see etc_tree)."""


def _find_bwrap() -> str:
    configured = os.environ.get("FORGEAI_BWRAP")
    candidate = configured or shutil.which("bwrap")
    if candidate is None or not os.access(candidate, os.X_OK):
        where = f"FORGEAI_BWRAP={configured}" if configured else "PATH"
        raise SandboxUnavailableError(
            f"the native sandbox needs bubblewrap (bwrap), which was not found on {where}",
            hint=BWRAP_HINT,
        )
    mode = os.stat(candidate).st_mode
    if mode & stat.S_ISUID:
        log.warning(
            "bwrap at %s is setuid root; ForgeAI uses it unprivileged regardless", candidate
        )
    return candidate


def _not_ours(path: Path) -> SandboxUnavailableError:
    return SandboxUnavailableError(
        f"{path} is not a directory owned by this user; refusing to use it for sandboxes",
        hint=f"remove {path}, or set XDG_RUNTIME_DIR to a private directory",
    )


def _private_dir(path: Path, mode: int) -> Path:
    try:
        return Path(private_dir(str(path), mode))
    except NotPrivateError as exc:
        raise _not_ours(Path(exc.path)) from None


def _runtime_base() -> Path:
    try:
        return Path(runtime_base())
    except NotPrivateError as exc:
        raise _not_ours(Path(exc.path)) from None


@cache
def detect_native_host() -> NativeHost:
    """Inspect the machine once; raises SandboxUnavailableError when no sandbox can run."""
    bwrap = _find_bwrap()
    is_root = os.geteuid() == 0
    base = _runtime_base()
    runtime_dir = _private_dir(base / "work", 0o711 if is_root else 0o700)
    cgroups = detect_cgroups()
    bases = [cgroups.memory_base, cgroups.pids_base] if cgroups is not None else []
    sweep_stale(runtime_dir, dict.fromkeys(bases))
    return NativeHost(
        bwrap=bwrap,
        is_root=is_root,
        cgroups=cgroups,
        uid_pool=UidPool(base / "uids") if is_root else None,
        runtime_dir=runtime_dir,
        stage_dir=_private_dir(base / "stage", 0o755) if is_root else None,
        seccomp=seccomp_program(),
        etc_dir=build_etc_tree(_private_dir(base / "etc", 0o711 if is_root else 0o700)),
    )
