"""What the child does before it becomes bubblewrap (done by the supervisor), and its rlimits."""

from __future__ import annotations

import math
import os
import resource
from dataclasses import dataclass

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
    """What the supervisor's forked child does before exec(bwrap) (see ``supervisor``).

    In order: join the run's cgroups, stage toolchains the sandbox uid cannot reach (root
    only: bind them into a private mount namespace under ``stage_dir``), set the rlimits, and
    drop to the dedicated unprivileged uid.
    """

    attach_files: tuple[str, ...]
    rlimits: list[Rlimit]
    stage_dir: str | None
    stage_sources: list[str]
    uid: int | None

    def wire(self) -> dict[str, object]:
        """The form the supervisor reads."""
        return {
            "attach": list(self.attach_files),
            "rlimits": [[kind, soft, hard] for kind, (soft, hard) in self.rlimits],
            "stage_dir": self.stage_dir,
            "stage_sources": list(self.stage_sources),
            "uid": self.uid,
        }
