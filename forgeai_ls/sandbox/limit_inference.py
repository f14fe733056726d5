"""Deciding which limits a step hit, from the evidence the kernel leaves behind.

Signals and cgroup counters are exact. Where limits are rlimits (no cgroup available), an
allocation or a fork simply fails inside the program, so the program's own error message is
the only evidence; those patterns are matched on its stderr. A program can fake such a message,
but only to mislabel its own result.
"""

from __future__ import annotations

import re
import signal as signals
from dataclasses import dataclass

from forgeai_ls.sandbox.cgroups import CgroupStats
from forgeai_ls.sandbox.limits import ResourceLimits
from forgeai_ls.sandbox.result import LIMIT_PRIORITY, LimitKind

_OUT_OF_MEMORY = re.compile(
    rb"MemoryError|std::bad_alloc|Cannot allocate memory|[Oo]ut of memory|OutOfMemoryError"
    rb"|memory allocation of \d+ bytes failed|heap out of memory|failed to allocate"
)
_OUT_OF_PROCESSES = re.compile(
    rb"Resource temporarily unavailable|fork: retry|[Cc]an(?:no|')t fork"
    rb"|unable to create native thread|pthread_create failed"
)
_DISK_FULL = re.compile(rb"No space left on device|Disk quota exceeded|File too large")
_CPU_EVIDENCE_RATIO = 0.95


@dataclass(frozen=True, slots=True)
class StepEvidence:
    signal: int | None
    failed: bool
    """The step ended badly: non-zero exit, killed, or stopped by ForgeAI."""
    timed_out: bool
    output_capped: bool
    cpu_time_ms: float | None
    stderr: bytes
    cgroup: CgroupStats | None


def infer_limits(evidence: StepEvidence, limits: ResourceLimits) -> tuple[LimitKind, ...]:
    """Every limit hit, most causal first (see ``LIMIT_PRIORITY``)."""
    hit: set[LimitKind] = set()
    if evidence.timed_out:
        hit.add(LimitKind.TIMEOUT)
    if evidence.output_capped:
        hit.add(LimitKind.OUTPUT)
    if evidence.signal == signals.SIGXCPU or (
        evidence.signal == signals.SIGKILL
        and evidence.cpu_time_ms is not None
        and evidence.cpu_time_ms >= limits.cpu_time * 1000 * _CPU_EVIDENCE_RATIO
    ):
        hit.add(LimitKind.CPU)
    if evidence.signal == signals.SIGXFSZ or (
        evidence.failed and _DISK_FULL.search(evidence.stderr)
    ):
        hit.add(LimitKind.FILE_SIZE)
    if evidence.cgroup is not None:
        if evidence.cgroup.oom_killed:
            hit.add(LimitKind.MEMORY)
        if evidence.cgroup.pids_limit_hit:
            hit.add(LimitKind.PROCESSES)
    else:
        if evidence.failed and _OUT_OF_MEMORY.search(evidence.stderr):
            hit.add(LimitKind.MEMORY)
        # Shells retry a failed fork and may still exit 0: the message alone is the evidence.
        if _OUT_OF_PROCESSES.search(evidence.stderr):
            hit.add(LimitKind.PROCESSES)
    return tuple(kind for kind in LIMIT_PRIORITY if kind in hit)
