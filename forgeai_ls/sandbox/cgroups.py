"""Per-run control groups: a hard memory limit (OOM kill), a process limit, CPU accounting.

Where ForgeAI's groups live (``detect_cgroups``), first that applies:
- a delegated cgroup v2 subtree named by ``FORGEAI_CGROUP_BASE``;
- cgroup v1: as root, a ``forgeai`` group under this process's groups of the memory and pids
  hierarchies (a normal user cannot create v1 groups: rlimits);
- cgroup v2 under systemd: a transient scope delegated to ForgeAI by the user's systemd
  manager, or by PID 1 for root (see ``systemd_scope``);
- cgroup v2 as root without systemd: ``/sys/fs/cgroup/forgeai``.
Elsewhere the native backend falls back to rlimits, and ``CgroupSetup.reason`` says why.
Each run gets its own group, created before the sandbox starts and removed after; every
figure of a run (peak memory, OOM kills, refused forks, CPU time) is read from its files.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import time
from dataclasses import dataclass
from pathlib import Path

from forgeai_ls.sandbox import systemd_scope

CGROUP_ROOT = Path("/sys/fs/cgroup")
_RMDIR_ATTEMPTS = 50


@dataclass(frozen=True, slots=True)
class CgroupStats:
    oom_killed: bool
    pids_limit_hit: bool
    peak_memory_bytes: int | None
    cpu_usec: int | None
    """CPU time of every process of the run (v2 ``cpu.stat``; v1 leaves it to rusage)."""


def _read_int(path: Path) -> int | None:
    try:
        return int(path.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def _read_keyed(path: Path) -> dict[str, int]:
    values: dict[str, int] = {}
    try:
        text = path.read_text()
    except OSError:
        return values
    for line in text.splitlines():
        key, _, value = line.partition(" ")
        with contextlib.suppress(ValueError):
            values[key] = int(value)
    return values


def _remove_dir(path: Path) -> None:
    # A group can stay busy for a moment after its last process was reaped.
    for _ in range(_RMDIR_ATTEMPTS):
        try:
            path.rmdir()
            return
        except FileNotFoundError:
            return
        except OSError:
            time.sleep(0.002)


def kill_group(group: Path, version: int) -> None:
    """SIGKILL every process in ``group`` until it is empty (v2: ``cgroup.kill`` kills the
    whole subtree at once, forks in flight included)."""
    if version == 2:
        with contextlib.suppress(OSError):
            (group / "cgroup.kill").write_text("1")
    procs = group / ("tasks" if version == 1 else "cgroup.procs")
    for _ in range(_RMDIR_ATTEMPTS):
        try:
            pids = [int(line) for line in procs.read_text().split()]
        except (OSError, ValueError):
            return
        if not pids:
            return
        for pid in pids:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.002)


class RunCgroup:
    """The groups one run lives in."""

    def __init__(self, memory_dir: Path, pids_dir: Path, version: int) -> None:
        self.memory_dir = memory_dir
        self.pids_dir = pids_dir
        self.version = version

    @property
    def attach_files(self) -> tuple[str, ...]:
        """Files the child writes "0" to, joining the groups before it execs bubblewrap.

        On v1 the child moves itself as a single thread through ``tasks``: the kernel then
        skips the global threadgroup lock, whose RCU grace period otherwise costs 7-17 ms per
        run. The child is single-threaded, so moving the thread moves the process.
        """
        name = "tasks" if self.version == 1 else "cgroup.procs"
        dirs = dict.fromkeys((self.memory_dir, self.pids_dir))
        return tuple(str(directory / name) for directory in dirs)

    def stats(self) -> CgroupStats:
        pids_events = _read_keyed(self.pids_dir / "pids.events")
        if self.version == 1:
            control = _read_keyed(self.memory_dir / "memory.oom_control")
            if "oom_kill" in control:
                oom_killed = control["oom_kill"] > 0
            else:  # kernels before 4.13 do not count OOM kills; a failed charge is the evidence
                failures = (_read_int(self.memory_dir / "memory.failcnt") or 0) + (
                    _read_int(self.memory_dir / "memory.memsw.failcnt") or 0
                )
                oom_killed = failures > 0
            peak = _read_int(self.memory_dir / "memory.max_usage_in_bytes")
            cpu_usec = None
        else:
            oom_killed = _read_keyed(self.memory_dir / "memory.events").get("oom_kill", 0) > 0
            peak = _read_int(self.memory_dir / "memory.peak")
            cpu_usec = _read_keyed(self.memory_dir / "cpu.stat").get("usage_usec")
        return CgroupStats(
            oom_killed=oom_killed,
            pids_limit_hit=pids_events.get("max", 0) > 0,
            peak_memory_bytes=peak,
            cpu_usec=cpu_usec,
        )

    def kill_all(self) -> None:
        """SIGKILL every process still in the group (a sandbox whose PID 1 is unknown, e.g.
        one stopped while bubblewrap was still setting it up), until the group is empty."""
        kill_group(self.pids_dir, self.version)

    def memory_usage(self) -> int | None:
        """Memory charged to the group now (bytes)."""
        name = "memory.usage_in_bytes" if self.version == 1 else "memory.current"
        return _read_int(self.memory_dir / name)

    def try_remove(self) -> bool:
        """One attempt, no waiting; True when the groups are gone."""
        gone = True
        for directory in dict.fromkeys((self.memory_dir, self.pids_dir)):
            try:
                directory.rmdir()
            except FileNotFoundError:
                pass
            except OSError:
                gone = False
        return gone

    def remove(self) -> None:
        for directory in dict.fromkeys((self.memory_dir, self.pids_dir)):
            _remove_dir(directory)


class CgroupManager:
    """Creates per-run groups under a base group ForgeAI owns."""

    def __init__(self, version: int, memory_base: Path, pids_base: Path) -> None:
        self.version = version
        self.memory_base = memory_base
        self.pids_base = pids_base

    def create(self, memory_bytes: int, processes: int) -> RunCgroup:
        name = f"run-{os.getpid()}-{secrets.token_hex(4)}"
        memory_dir = self.memory_base / name
        pids_dir = self.pids_base / name
        memory_dir.mkdir()
        try:
            if pids_dir != memory_dir:
                pids_dir.mkdir()
            if self.version == 1:
                (memory_dir / "memory.limit_in_bytes").write_text(str(memory_bytes))
                memsw = memory_dir / "memory.memsw.limit_in_bytes"
                if memsw.exists():  # swap accounting on: forbid swapping past the limit
                    memsw.write_text(str(memory_bytes))
            else:
                (memory_dir / "memory.max").write_text(str(memory_bytes))
                swap = memory_dir / "memory.swap.max"
                if swap.exists():
                    swap.write_text("0")
            (pids_dir / "pids.max").write_text(str(processes))
        except OSError:
            RunCgroup(memory_dir, pids_dir, self.version).remove()
            raise
        return RunCgroup(memory_dir, pids_dir, self.version)


@dataclass(frozen=True, slots=True)
class CgroupSetup:
    """What ``detect_cgroups`` found: the manager, or why there is none."""

    manager: CgroupManager | None
    how: str
    """Where the groups live, for people (``forgeai doctor``), e.g. "cgroup v2, a scope
    delegated by the systemd user manager (forgeai-….scope)"."""
    reason: str | None = None
    """Why there is no manager: memory and process limits fall back to rlimits."""
    fix: str | None = None
    """What the user can do about it."""
    stale_scopes: tuple[Path, ...] = ()
    """Scopes of ForgeAI processes that are gone, with whatever they left (see ``stale``)."""


def _own_path(controller: str) -> str | None:
    """This process's group in the hierarchy of ``controller`` ("" names the v2 hierarchy)."""
    try:
        lines = Path("/proc/self/cgroup").read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        _, controllers, path = line.split(":", 2)
        if controller in controllers.split(","):
            return path
    return None


def _writable_dir(path: Path) -> bool:
    return path.is_dir() and os.access(path, os.W_OK | os.X_OK)


def _prepare_base(path: Path) -> bool:
    try:
        path.mkdir(exist_ok=True)
    except OSError:
        return False
    return _writable_dir(path)


def _detect_v1() -> CgroupManager | None:
    memory_mount, pids_mount = CGROUP_ROOT / "memory", CGROUP_ROOT / "pids"
    memory_own, pids_own = _own_path("memory"), _own_path("pids")
    if memory_own is None or pids_own is None:
        return None
    if not (memory_mount / "memory.limit_in_bytes").exists() or not pids_mount.is_dir():
        return None
    memory_base = memory_mount / memory_own.lstrip("/") / "forgeai"
    pids_base = pids_mount / pids_own.lstrip("/") / "forgeai"
    if _prepare_base(memory_base) and _prepare_base(pids_base):
        return CgroupManager(1, memory_base, pids_base)
    return None


WANTED_CONTROLLERS = ("memory", "pids")


class _ControllersMissing(Exception):
    pass


def _enable_controllers(group: Path) -> None:
    """Let the children of ``group`` have the memory and pids controllers."""
    available = set((group / "cgroup.controllers").read_text().split())
    missing = [name for name in WANTED_CONTROLLERS if name not in available]
    if missing:
        raise _ControllersMissing(
            f"{group} offers the controllers {' '.join(sorted(available)) or '(none)'}, "
            f"not {' '.join(missing)}"
        )
    enabled = set((group / "cgroup.subtree_control").read_text().split())
    if not set(WANTED_CONTROLLERS) <= enabled:
        (group / "cgroup.subtree_control").write_text(
            " ".join(f"+{name}" for name in WANTED_CONTROLLERS)
        )


def _detect_v2(base: Path) -> CgroupManager:
    """Groups under ``base``, whose parent must let it have the controllers."""
    if not _prepare_base(base):
        raise _ControllersMissing(f"{base} cannot be created or written by this user")
    _enable_controllers(base.parent)
    _enable_controllers(base)
    return CgroupManager(2, base, base)


def _move_all(source: Path, target: Path) -> None:
    """Move every process of ``source`` into ``target`` (repeated: one may have forked)."""
    for _ in range(_RMDIR_ATTEMPTS):
        pids = (source / "cgroup.procs").read_text().split()
        if not pids:
            return
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                (target / "cgroup.procs").write_text(pid)
    raise _ControllersMissing(f"processes keep appearing in {source}")


def _scope_manager(extra_pids: list[int]) -> tuple[CgroupManager, str]:
    """Groups inside a scope systemd delegates to ForgeAI (this process moves into it)."""
    scope = systemd_scope.start_delegated_scope([os.getpid(), *extra_pids])
    base = CGROUP_ROOT / scope.path.lstrip("/")
    leaf = base / systemd_scope.LEAF
    leaf.mkdir(exist_ok=True)
    _move_all(base, leaf)
    _enable_controllers(base)
    who = "the systemd user manager" if scope.manager == "user" else "systemd (PID 1)"
    return CgroupManager(2, base, base), f"cgroup v2, a scope delegated by {who} ({scope.unit})"


def _dead_scopes(parent: Path) -> tuple[Path, ...]:
    """Scopes beside ours whose ForgeAI process is gone (their names carry its pid)."""
    found = []
    for entry in parent.iterdir() if parent.is_dir() else []:
        name = entry.name
        if not (name.startswith(systemd_scope.SCOPE_PREFIX) and name.endswith(".scope")):
            continue
        owner = name[len(systemd_scope.SCOPE_PREFIX) :].split("-", 1)[0]
        if owner.isdigit() and not Path(f"/proc/{owner}").exists() and _writable_dir(entry):
            found.append(entry)
    return tuple(found)


def unified_hierarchy() -> bool:
    """The machine mounts the unified cgroup v2 hierarchy (not v1 or hybrid)."""
    return (CGROUP_ROOT / "cgroup.controllers").exists()


def detect_cgroups(extra_pids: list[int] | None = None) -> CgroupSetup:
    """Where this process can create per-run groups (see the module's docstring).

    ``extra_pids``: processes of ForgeAI's that must move into a systemd scope with it (its
    sandbox supervisor, when already running).
    """
    delegated = os.environ.get("FORGEAI_CGROUP_BASE")
    if delegated:
        how = f"cgroup v2, delegated by FORGEAI_CGROUP_BASE={delegated}"
        try:
            return CgroupSetup(_detect_v2(Path(delegated)), how)
        except (OSError, _ControllersMissing) as exc:
            return CgroupSetup(
                None,
                how,
                reason=f"FORGEAI_CGROUP_BASE is not usable: {exc}",
                fix="point FORGEAI_CGROUP_BASE at a cgroup v2 group delegated to you with the "
                "memory and pids controllers, or unset it",
            )
    if not unified_hierarchy():
        if os.geteuid() != 0:
            return CgroupSetup(
                None,
                "cgroup v1",
                reason="on cgroup v1 only root can create cgroups",
                fix="boot with the unified cgroup v2 hierarchy (kernel command line "
                "'systemd.unified_cgroup_hierarchy=1'), the default of current distributions",
            )
        manager = _detect_v1()
        if manager is None:
            return CgroupSetup(
                None, "cgroup v1", reason="the v1 memory and pids hierarchies are not usable"
            )
        return CgroupSetup(manager, "cgroup v1, as root")
    try:
        manager, how = _scope_manager(extra_pids or [])
        return CgroupSetup(manager, how, stale_scopes=_dead_scopes(manager.memory_base.parent))
    except systemd_scope.ScopeUnavailable as exc:
        reason = str(exc)
        fix = (
            "run ForgeAI where your systemd user manager runs (a desktop or ssh login session), "
            "or keep one running with 'sudo loginctl enable-linger $USER'; the user bus comes "
            "with the package dbus-user-session"
        )
    except (OSError, _ControllersMissing) as exc:
        reason = f"the delegated scope is not usable: {exc}"
        fix = (
            "let systemd delegate the memory and pids controllers to users: "
            "'sudo systemctl edit user@.service' with '[Service]' and 'Delegate=memory pids'"
        )
    if os.geteuid() == 0:  # no systemd (a container, another init): ForgeAI's own subtree
        base = CGROUP_ROOT / "forgeai"
        try:
            return CgroupSetup(_detect_v2(base), f"cgroup v2, as root ({base})")
        except (OSError, _ControllersMissing) as exc:
            reason = f"{reason}; {base}: {exc}"
    return CgroupSetup(None, "cgroup v2", reason=reason, fix=fix)
