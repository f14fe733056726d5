"""What a sandboxed step or execution produced."""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, ConfigDict

from forgeai_ls.sandbox.artifacts import Artifacts
from forgeai_ls.sandbox.egress_policy import NetworkReport


class LimitKind(StrEnum):
    """A resource limit that stopped or constrained a program."""

    TIMEOUT = "timeout"
    MEMORY = "memory"
    OUTPUT = "output"
    CPU = "cpu"
    PROCESSES = "processes"
    FILE_SIZE = "file_size"


LIMIT_PRIORITY: tuple[LimitKind, ...] = (
    LimitKind.MEMORY,
    LimitKind.PROCESSES,
    LimitKind.OUTPUT,
    LimitKind.FILE_SIZE,
    LimitKind.CPU,
    LimitKind.TIMEOUT,
)
"""When several limits were hit, the first of these is reported as *the* limit: the cause.

A fork bomb hits the process limit and then spins until the wall clock stops it; the process
limit is the cause, the timeout the consequence.
"""


class StepName(StrEnum):
    COMPILE = "compile"
    RUN = "run"


class StepResult(BaseModel):
    """The outcome of one sandboxed step."""

    model_config = ConfigDict(frozen=True)

    step: StepName
    exit_code: int | None
    """The program's exit status; ``None`` when it was killed by a signal."""
    signal: int | None
    stdout: bytes
    stderr: bytes
    timed_out: bool
    limit: LimitKind | None
    limits_hit: tuple[LimitKind, ...]
    truncated: bool
    duration_ms: float
    cpu_time_ms: float | None
    peak_memory_bytes: int | None
    cached: bool = False
    """A compile step served by the compile cache: its output and result are the stored ones
    of an identical compile (``duration_ms`` is the time the restore took)."""
    artifacts: Artifacts | None = None
    """A run step's files out (``artifacts``); None where nothing is collected."""

    @property
    def ok(self) -> bool:
        return self.exit_code == 0 and self.limit is None


class ExecutionResult(BaseModel):
    """The outcome of a whole execution: the optional compile step, then the run step.

    The top-level fields describe the step that decided the outcome: the run, or the compile
    step when compiling failed and the program never ran (``compile_failed``).
    """

    model_config = ConfigDict(frozen=True)

    exit_code: int | None
    signal: int | None
    stdout: bytes
    stderr: bytes
    timed_out: bool
    limit: LimitKind | None
    limits_hit: tuple[LimitKind, ...]
    truncated: bool
    duration_ms: float
    cpu_time_ms: float | None
    peak_memory_bytes: int | None
    compile: StepResult | None = None
    run: StepResult | None = None
    network: NetworkReport | None = None
    """With an allow-list: the connections the run attempted, allowed and denied."""
    artifacts: Artifacts | None = None
    """The files the run wrote to its output directory (``artifacts.OUTPUT_DIR``)."""

    @property
    def compile_failed(self) -> bool:
        return self.compile is not None and self.run is None

    @classmethod
    def from_steps(
        cls, compile_step: StepResult | None, run_step: StepResult | None
    ) -> ExecutionResult:
        deciding = run_step or compile_step
        if deciding is None:
            raise ValueError("an execution has at least one step")
        total_ms = sum(step.duration_ms for step in (compile_step, run_step) if step is not None)
        return cls(
            exit_code=deciding.exit_code,
            signal=deciding.signal,
            stdout=deciding.stdout,
            stderr=deciding.stderr,
            timed_out=deciding.timed_out,
            limit=deciding.limit,
            limits_hit=deciding.limits_hit,
            truncated=deciding.truncated,
            duration_ms=total_ms,
            cpu_time_ms=deciding.cpu_time_ms,
            peak_memory_bytes=deciding.peak_memory_bytes,
            compile=compile_step,
            run=run_step,
            artifacts=run_step.artifacts if run_step is not None else None,
        )
