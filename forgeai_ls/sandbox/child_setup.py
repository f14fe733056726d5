"""What the forked child does before it becomes bubblewrap, and the rlimits it sets."""

from __future__ import annotations

import math
import os
import resource
from dataclasses import dataclass

from forgeai_ls.sandbox import linux
from forgeai_ls.sandbox.limits import ResourceLimits

BWRAP_OVERHEAD_PROCESSES = 2
"""bwrap's monitor and its PID 1 count against the process limit too."""
_RLIMIT_NPROC_SLACK = 16

Rlimit = tuple[int, tuple[int, int]]


def count_own_tasks(uid: int) -> int:
    """Threads of all processes of ``uid``: what RLIMIT_NPROC counts for it."""
    total = 0
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            if entry.stat().st_uid == uid:
                total += len(os.listdir(f"/proc/{entry.name}/task"))
        except OSError:
            continue
    return total


def rlimits_for(limits: ResourceLimits, *, own_uid: bool, cgroup: bool) -> list[Rlimit]:
    """The rlimits of a step.

    ``own_uid``: the sandbox runs as the caller's uid (not root's dedicated one), so
    RLIMIT_NPROC, which counts every process of the uid, must leave room for the caller's
    other processes. ``cgroup``: memory and processes are enforced (and reported) by a
    cgroup; RLIMIT_NPROC stays as a looser backstop and no RLIMIT_DATA is needed.
    """
    cpu = math.ceil(limits.cpu_time)
    processes = limits.processes + BWRAP_OVERHEAD_PROCESSES
    if cgroup:
        processes += _RLIMIT_NPROC_SLACK
    if own_uid:
        processes += count_own_tasks(os.getuid())
    rlimits: list[Rlimit] = [
        (resource.RLIMIT_CPU, (cpu, cpu + 1)),  # SIGXCPU first, SIGKILL a second later
        (resource.RLIMIT_FSIZE, (limits.file_size_bytes, limits.file_size_bytes)),
        (resource.RLIMIT_NOFILE, (limits.open_files, limits.open_files)),
        (resource.RLIMIT_NPROC, (processes, processes)),
        (resource.RLIMIT_CORE, (0, 0)),
    ]
    if not cgroup:
        rlimits.append((resource.RLIMIT_DATA, (limits.memory_bytes, limits.memory_bytes)))
    return rlimits


@dataclass(slots=True)
class ChildSetup:
    """Runs in the forked child before exec(bwrap): single-threaded, system calls only.

    In order: join the run's cgroups, stage toolchains the sandbox uid cannot reach (root
    only: bind them into a private mount namespace under ``stage_dir``), set the rlimits, and
    drop to the dedicated unprivileged uid.
    """

    attach_files: tuple[str, ...]
    rlimits: list[Rlimit]
    stage_dir: str | None
    stage_sources: list[str]
    uid: int | None

    def __call__(self) -> None:
        for attach in self.attach_files:
            fd = os.open(attach, os.O_WRONLY)
            try:
                os.write(fd, b"0")
            finally:
                os.close(fd)
        if self.stage_dir is not None and self.stage_sources:
            linux.unshare_mount_namespace()
            linux.mount_tmpfs(self.stage_dir, "size=64k,mode=0755")
            for index, source in enumerate(self.stage_sources):
                target = f"{self.stage_dir}/{index}"
                if os.path.isdir(source):
                    os.mkdir(target)
                else:
                    os.close(os.open(target, os.O_CREAT | os.O_WRONLY, 0o755))
                linux.bind_mount(source, target)
        for kind, values in self.rlimits:
            resource.setrlimit(kind, values)
        if self.uid is not None:
            os.setgroups([])
            os.setresgid(self.uid, self.uid, self.uid)
            os.setresuid(self.uid, self.uid, self.uid)
