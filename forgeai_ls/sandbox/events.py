"""Events a streamed execution yields while it runs."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from forgeai_ls.sandbox.result import ExecutionResult, StepName, StepResult

StreamName = Literal["stdout", "stderr"]


@dataclass(frozen=True, slots=True)
class StepStarted:
    step: StepName


@dataclass(frozen=True, slots=True)
class OutputChunk:
    """Bytes a program wrote to stdout or stderr, as soon as they were read."""

    step: StepName
    stream: StreamName
    data: bytes


@dataclass(frozen=True, slots=True)
class StepFinished:
    result: StepResult


@dataclass(frozen=True, slots=True)
class ExecutionFinished:
    """The last event of every execution."""

    result: ExecutionResult


ExecutionEvent = StepStarted | OutputChunk | StepFinished | ExecutionFinished
