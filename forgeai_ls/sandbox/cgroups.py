"""Per-run control groups: a hard memory limit (OOM kill) and a process limit.

ForgeAI uses cgroups where it may create them (as root on cgroup v1 or v2, or in a delegated
v2 subtree named by ``FORGEAI_CGROUP_BASE``); elsewhere the native backend falls back to
rlimits. Each run gets its own group, created before the sandbox starts and removed after.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import time
from dataclasses import dataclass
from pathlib import Path

CGROUP_ROOT = Path("/sys/fs/cgroup")
_RMDIR_ATTEMPTS = 50


@dataclass(frozen=True, slots=True)
class CgroupStats:
    oom_killed: bool
    pids_limit_hit: bool
    peak_memory_bytes: int | None


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
        else:
            oom_killed = _read_keyed(self.memory_dir / "memory.events").get("oom_kill", 0) > 0
            peak = _read_int(self.memory_dir / "memory.peak")
        return CgroupStats(
            oom_killed=oom_killed,
            pids_limit_hit=pids_events.get("max", 0) > 0,
            peak_memory_bytes=peak,
        )

    def kill_all(self) -> None:
        """SIGKILL every process still in the group (a sandbox whose PID 1 is unknown, e.g.
        one stopped while bubblewrap was still setting it up), until the group is empty."""
        procs = self.pids_dir / ("tasks" if self.version == 1 else "cgroup.procs")
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


def _enable_controllers(group: Path) -> bool:
    wanted = {"memory", "pids"}
    available = set((group / "cgroup.controllers").read_text().split())
    if not wanted <= available:
        return False
    enabled = set((group / "cgroup.subtree_control").read_text().split())
    if not wanted <= enabled:
        (group / "cgroup.subtree_control").write_text(" ".join(f"+{c}" for c in sorted(wanted)))
    return True


def _detect_v2(base: Path) -> CgroupManager | None:
    try:
        if not _prepare_base(base) or not _enable_controllers(base.parent):
            return None
        if not _enable_controllers(base):
            return None
    except OSError:
        return None
    return CgroupManager(2, base, base)


def detect_cgroups() -> CgroupManager | None:
    """The cgroup manager usable by this process, or ``None`` (use rlimits)."""
    delegated = os.environ.get("FORGEAI_CGROUP_BASE")
    if delegated:
        return _detect_v2(Path(delegated))
    if os.geteuid() != 0:
        return None
    if (CGROUP_ROOT / "cgroup.controllers").exists():  # the unified (v2-only) hierarchy
        return _detect_v2(CGROUP_ROOT / "forgeai")
    return _detect_v1()
