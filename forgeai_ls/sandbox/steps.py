"""What every backend shares about steps: the base environment, exit statuses, and the
compile-then-run sequence of events.

A backend supplies one function, ``run_step(spec, step, stdin)``, yielding a step's output
chunks and then its ``StepFinished``; ``compile_then_run`` turns that into an execution's
events (the compile step when there is one, the run step unless compiling failed, and the
``ExecutionFinished`` at the end).
"""

from __future__ import annotations

import contextlib
import signal as signals
from collections.abc import AsyncGenerator, AsyncIterator, Callable

from forgeai_ls.sandbox.events import (
    ExecutionEvent,
    ExecutionFinished,
    OutputChunk,
    StepFinished,
    StepStarted,
)
from forgeai_ls.sandbox.request import SandboxRequest, StepSpec
from forgeai_ls.sandbox.result import ExecutionResult, StepName, StepResult

BASE_PATH = "/usr/local/bin:/usr/bin:/bin"
"""PATH inside every sandbox (a native run puts the toolchain's own bin directory first)."""
BASE_ENV = {
    "HOME": "/tmp",
    "TMPDIR": "/tmp",
    "LANG": "C.UTF-8",
    "USER": "sandbox",
    "LOGNAME": "sandbox",
}
"""The allow-listed environment of every sandboxed program, beside PATH and the plugin's own."""

StdinSource = bytes | AsyncIterator[bytes] | None
"""A step's stdin: all at once, chunks as they arrive, or nothing (/dev/null)."""

StepEvents = AsyncGenerator[OutputChunk | StepFinished, None]
StepRunner = Callable[[StepSpec, StepName, StdinSource], StepEvents]
"""``run_step(spec, step, stdin)``: one step's output chunks, then its ``StepFinished``."""


def signal_from_status(code: int) -> tuple[int | None, int | None]:
    """(exit code, signal) from an exit status where death by signal N reads 128 + N, as a
    shell, bubblewrap and the container launcher report it."""
    if code > 128 and code - 128 < signals.NSIG:
        return None, code - 128
    return code, None


async def compile_then_run(
    request: SandboxRequest,
    stdin: StdinSource,
    run_step: StepRunner,
    *,
    before_last_event: Callable[[], None] | None = None,
) -> AsyncGenerator[ExecutionEvent, None]:
    """An execution's events. ``before_last_event`` runs just before ``ExecutionFinished``
    (for clean-up that must be done when a consumer stops reading at that event)."""
    compile_result: StepResult | None = None
    if request.compile is not None:
        yield StepStarted(StepName.COMPILE)
        # Closing this iteration closes the step's at once, which kills its program.
        async with contextlib.aclosing(run_step(request.compile, StepName.COMPILE, None)) as steps:
            async for event in steps:
                compile_result = _result_of(event, compile_result)
                yield event
        assert compile_result is not None
        if not compile_result.ok:
            if before_last_event is not None:
                before_last_event()
            yield ExecutionFinished(ExecutionResult.from_steps(compile_result, None))
            return
    yield StepStarted(StepName.RUN)
    run_result: StepResult | None = None
    async with contextlib.aclosing(run_step(request.run, StepName.RUN, stdin)) as steps:
        async for event in steps:
            run_result = _result_of(event, run_result)
            yield event
    if before_last_event is not None:
        before_last_event()
    yield ExecutionFinished(ExecutionResult.from_steps(compile_result, run_result))


def _result_of(event: object, current: StepResult | None) -> StepResult | None:
    return event.result if isinstance(event, StepFinished) else current


async def final_result(events: AsyncIterator[ExecutionEvent]) -> ExecutionResult:
    """Consume an execution's events and return its result (the iteration is closed after)."""
    try:
        async for event in events:
            if isinstance(event, ExecutionFinished):
                return event.result
    finally:
        aclose = getattr(events, "aclose", None)
        if aclose is not None:
            await aclose()
    raise RuntimeError("the sandbox ended without a result")
