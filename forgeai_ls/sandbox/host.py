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
from forgeai_ls.sandbox.cgroups import CgroupManager, CgroupSetup, detect_cgroups
from forgeai_ls.sandbox.etc_tree import build_etc_tree
from forgeai_ls.sandbox.seccomp import seccomp_program
from forgeai_ls.sandbox.stale import sweep_stale
from forgeai_ls.sandbox.supervisor_link import running_supervisor
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
    cgroup_setup: CgroupSetup
    uid_pool: UidPool | None
    """Present when running as root: each execution switches to a leased unprivileged uid."""
    runtime_dir: Path
    """Holds per-execution build directories (traversable by the sandbox uid)."""
    stage_dir: Path | None
    """Root only: where toolchains unreadable by the sandbox uid are bind-mounted for bwrap."""
    seccomp: bytes | None
    etc_dir: Path
    """The sandbox's read-only /etc (see etc_tree)."""

    @property
    def cgroups(self) -> CgroupManager | None:
        return self.cgroup_setup.manager

    @property
    def limits_notice(self) -> str | None:
        """One line for people when memory and process limits are rlimits, else ``None``."""
        reason = self.cgroup_setup.reason
        if reason is None:
            return None
        return (
            f"memory and process limits are rlimits here, not cgroups ({reason}): an "
            "allocation fails inside the program instead of an OOM kill, and the process "
            "limit counts all of this user's processes; see 'forgeai doctor'"
        )


def find_bwrap() -> str:
    """The bwrap to use (FORGEAI_BWRAP, else PATH); SandboxUnavailableError without one."""
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


def executable_here(path: Path) -> bool:
    """Programs can be started from files in ``path`` (its filesystem is not noexec)."""
    return not os.statvfs(path).f_flag & os.ST_NOEXEC


def _work_dir(base: Path, mode: int) -> Path:
    """Where runs' work and build directories go: in the runtime directory, unless that is
    on a noexec filesystem (Debian's initramfs mounts /run noexec, which root's runtime
    directory is in): compiled programs must run from there. Then /var/tmp."""
    preferred = _private_dir(base / "work", mode)
    if executable_here(preferred):
        return preferred
    try:
        fallback = _private_dir(Path("/var/tmp") / f"forgeai-{os.geteuid()}", mode)
    except SandboxUnavailableError:  # someone else's: not used
        return preferred
    if executable_here(fallback):
        log.info("%s is on a noexec filesystem: work directories go to %s", preferred, fallback)
        return _private_dir(fallback / "work", mode)
    return preferred  # reported by 'forgeai doctor'


@cache
def detect_native_host() -> NativeHost:
    """Inspect the machine once; raises SandboxUnavailableError when no sandbox can run."""
    bwrap = find_bwrap()
    is_root = os.geteuid() == 0
    base = _runtime_base()
    runtime_dir = _work_dir(base, 0o711 if is_root else 0o700)
    setup = detect_cgroups(running_supervisor())
    cgroups = setup.manager
    bases = [cgroups.memory_base, cgroups.pids_base] if cgroups is not None else []
    sweep_stale(runtime_dir, dict.fromkeys(bases), setup.stale_scopes)
    return NativeHost(
        bwrap=bwrap,
        is_root=is_root,
        cgroup_setup=setup,
        uid_pool=UidPool(base / "uids") if is_root else None,
        runtime_dir=runtime_dir,
        stage_dir=_private_dir(base / "stage", 0o755) if is_root else None,
        seccomp=seccomp_program(),
        etc_dir=build_etc_tree(_private_dir(base / "etc", 0o711 if is_root else 0o700)),
    )
