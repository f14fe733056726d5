"""The sandbox layer: limits, results, streaming events and the native (bubblewrap) backend.

Knows nothing of plugins or the language server.
"""

from forgeai_ls.sandbox.events import (
    ExecutionEvent,
    ExecutionFinished,
    OutputChunk,
    StepFinished,
    StepStarted,
)
from forgeai_ls.sandbox.limits import DEFAULT_COMPILE_LIMITS, DEFAULT_RUN_LIMITS, ResourceLimits
from forgeai_ls.sandbox.native import NativeBackend
from forgeai_ls.sandbox.request import BUILD_DIR, WORK_DIR, SandboxRequest, StepSpec
from forgeai_ls.sandbox.result import ExecutionResult, LimitKind, StepName, StepResult
from forgeai_ls.sandbox.steps import final_result

__all__ = [
    "BUILD_DIR",
    "DEFAULT_COMPILE_LIMITS",
    "DEFAULT_RUN_LIMITS",
    "WORK_DIR",
    "ExecutionEvent",
    "ExecutionFinished",
    "ExecutionResult",
    "LimitKind",
    "NativeBackend",
    "OutputChunk",
    "ResourceLimits",
    "SandboxRequest",
    "StepFinished",
    "StepName",
    "StepResult",
    "StepSpec",
    "StepStarted",
    "final_result",
]
