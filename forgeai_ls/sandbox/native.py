"""The native backend: each step runs in a fresh bubblewrap sandbox.

Process layout of one step::

    ForgeAI (child subreaper)
      └─ bwrap monitor            (unprivileged uid; rlimits; per-run cgroup)
           └─ bwrap init, PID 1   (new user/pid/ipc/uts/net/mount namespaces)
                └─ the program and everything it starts

Killing PID 1 kills the whole PID namespace, so a timeout, an output cap or a cancellation
leaves nothing behind, ``setsid`` and ``nohup`` children included. The bwrap monitor exits
without reaping PID 1, which therefore re-parents to ForgeAI (the subreaper) and is reaped
there; its resource usage includes every process of the run.
"""

from __future__ import annotations

import contextlib
import os
import signal as signals
from collections.abc import AsyncGenerator, AsyncIterator

from forgeai_ls.sandbox.bwrap import Mount, build_command
from forgeai_ls.sandbox.cgroups import CgroupStats
from forgeai_ls.sandbox.child_setup import BWRAP_OVERHEAD_PROCESSES, ChildSetup, rlimits_for
from forgeai_ls.sandbox.events import (
    ExecutionEvent,
    ExecutionFinished,
    OutputChunk,
    StepFinished,
    StepStarted,
)
from forgeai_ls.sandbox.host import NativeHost, detect_native_host
from forgeai_ls.sandbox.limit_inference import StepEvidence, infer_limits
from forgeai_ls.sandbox.limits import ResourceLimits
from forgeai_ls.sandbox.request import BUILD_DIR, WORK_DIR, SandboxRequest, StepSpec
from forgeai_ls.sandbox.result import ExecutionResult, StepName, StepResult
from forgeai_ls.sandbox.seccomp import seccomp_fd, seccomp_program
from forgeai_ls.sandbox.step_process import StdinSource, StepOutcome, StepProcess
from forgeai_ls.sandbox.toolchain import ToolchainResolver
from forgeai_ls.sandbox.workspace import Workspace

_BASE_PATH = "/usr/local/bin:/usr/bin:/bin"
_BASE_ENV = {
    "HOME": "/tmp",
    "TMPDIR": "/tmp",
    "LANG": "C.UTF-8",
    "USER": "sandbox",
    "LOGNAME": "sandbox",
}


def _signal_from_status(code: int) -> tuple[int | None, int | None]:
    """bwrap reports death by signal N as exit status 128 + N, like a shell."""
    if code > 128 and code - 128 < signals.NSIG:
        return None, code - 128
    return code, None


class NativeBackend:
    """Runs sandbox requests in bubblewrap on this machine."""

    name = "native"

    def __init__(self, resolver: ToolchainResolver | None = None) -> None:
        self._resolver = resolver or ToolchainResolver()

    def host(self) -> NativeHost:
        """What this machine offers; raises SandboxUnavailableError without bubblewrap."""
        return detect_native_host()

    async def run(self, request: SandboxRequest) -> ExecutionResult:
        """Run to completion and return the result (no streaming)."""
        async with contextlib.aclosing(self.stream(request)) as events:
            async for event in events:
                if isinstance(event, ExecutionFinished):
                    return event.result
        raise RuntimeError("execution ended without a result")  # pragma: no cover

    async def stream(
        self, request: SandboxRequest, *, stdin_stream: AsyncIterator[bytes] | None = None
    ) -> AsyncGenerator[ExecutionEvent, None]:
        """Run the request, yielding output as it is produced and the result at the end.

        ``stdin_stream`` feeds the run step's stdin interactively (instead of
        ``request.stdin``): each chunk is written as it arrives, the end of the iteration closes
        the program's stdin. Closing or cancelling the iteration stops the program and
        everything it started.
        """
        host = self.host()
        workspace = Workspace.create(host.runtime_dir, host.uid_pool)
        try:
            compile_result: StepResult | None = None
            if request.compile is not None:
                build = str(workspace.make_build_dir())
                yield StepStarted(StepName.COMPILE)
                steps = self._step_events(
                    host, workspace, request, request.compile, StepName.COMPILE, build, None
                )
                async with contextlib.aclosing(steps):  # closing us kills the step at once
                    async for event in steps:
                        compile_result = _result_of(event, compile_result)
                        yield event
                assert compile_result is not None
                if not compile_result.ok:
                    workspace.remove()  # before the last event: a consumer may stop there
                    yield ExecutionFinished(ExecutionResult.from_steps(compile_result, None))
                    return
            yield StepStarted(StepName.RUN)
            run_result: StepResult | None = None
            build_dir = str(workspace.build_dir) if workspace.build_dir else None
            stdin = stdin_stream if stdin_stream is not None else request.stdin
            steps = self._step_events(
                host, workspace, request, request.run, StepName.RUN, build_dir, stdin
            )
            async with contextlib.aclosing(steps):
                async for event in steps:
                    run_result = _result_of(event, run_result)
                    yield event
            workspace.remove()
            yield ExecutionFinished(ExecutionResult.from_steps(compile_result, run_result))
        finally:
            workspace.remove()

    # -- one step -------------------------------------------------------------------------

    def _resolve_argv(self, argv: tuple[str, ...]) -> tuple[list[str], list[str]]:
        """argv with argv[0] resolved on the host, and the toolchain roots to mount."""
        name = argv[0]
        if name.startswith((f"{WORK_DIR}/", f"{BUILD_DIR}/")):  # built or placed in the sandbox
            return list(argv), []
        resolved = self._resolver.resolve(name)
        roots = [resolved.toolchain_root] if resolved.toolchain_root else []
        return [resolved.executable, *argv[1:]], roots

    async def _step_events(
        self,
        host: NativeHost,
        workspace: Workspace,
        request: SandboxRequest,
        spec: StepSpec,
        step: StepName,
        build_dir: str | None,
        stdin: StdinSource,
    ) -> AsyncGenerator[OutputChunk | StepFinished, None]:
        limits = spec.limits
        argv, roots = self._resolve_argv(spec.argv)
        staged = host.is_root and host.stage_dir is not None
        mounts = [
            Mount(f"{host.stage_dir}/{i}" if staged else root, root) for i, root in enumerate(roots)
        ]
        toolchain_bins = [os.path.dirname(argv[0])] if roots else []
        path = ":".join(dict.fromkeys([*toolchain_bins, *_BASE_PATH.split(":")]))
        env = {"PATH": path, **_BASE_ENV, **spec.env}
        process = StepProcess(step, limits, stdin)
        program = (
            seccomp_program(request.seccomp_profile) if request.seccomp_profile else host.seccomp
        )
        seccomp = seccomp_fd(program) if program is not None else None
        command = build_command(
            bwrap=host.bwrap,
            etc_dir=str(host.etc_dir),
            argv=argv,
            env=env,
            files=request.files,
            toolchain_mounts=mounts,
            build_dir=build_dir,
            build_writable=step is StepName.COMPILE,
            network=limits.network,
            disk_bytes=limits.disk_bytes,
            status_fd=process.status_fd,
            seccomp_fd=seccomp,
        )
        pass_fds = [*command.pass_fds, *([seccomp] if seccomp is not None else [])]
        cgroup = None
        try:
            if host.cgroups is not None:
                cgroup = host.cgroups.create(
                    limits.memory_bytes, limits.processes + BWRAP_OVERHEAD_PROCESSES
                )
            setup = ChildSetup(
                attach_files=cgroup.attach_files if cgroup else (),
                rlimits=rlimits_for(
                    limits, own_uid=workspace.uid is None, cgroup=cgroup is not None
                ),
                stage_dir=str(host.stage_dir) if staged else None,
                stage_sources=roots,
                uid=workspace.uid,
            )
            handed_over, pass_fds = pass_fds, []
            process.start(command.argv, handed_over, setup)  # closes them, even on failure
            async with contextlib.aclosing(process.chunks()) as chunks:
                async for chunk in chunks:
                    yield chunk
            stats = cgroup.stats() if cgroup is not None else None
        finally:
            for fd in pass_fds:
                os.close(fd)
            process.close_if_unstarted()
            if cgroup is not None:
                cgroup.remove()
        assert process.outcome is not None
        yield StepFinished(_step_result(step, limits, process.outcome, stats))


def _result_of(event: object, current: StepResult | None) -> StepResult | None:
    return event.result if isinstance(event, StepFinished) else current


def _step_result(
    step: StepName, limits: ResourceLimits, outcome: StepOutcome, stats: CgroupStats | None
) -> StepResult:
    exit_code: int | None
    signal: int | None
    if outcome.killed_by_us:
        exit_code, signal = None, int(signals.SIGKILL)
    elif outcome.program_status is not None:
        exit_code, signal = _signal_from_status(outcome.program_status)
    else:
        exit_code, signal = _signal_from_status(outcome.monitor_status)
    usage = outcome.usage
    cpu_ms = (usage.ru_utime + usage.ru_stime) * 1000 if usage is not None else None
    peak = (
        stats.peak_memory_bytes
        if stats and stats.peak_memory_bytes
        else (usage.ru_maxrss * 1024 if usage is not None else None)
    )
    evidence = StepEvidence(
        signal=signal,
        failed=exit_code != 0,
        timed_out=outcome.timed_out,
        output_capped=outcome.output_capped,
        cpu_time_ms=cpu_ms,
        stderr=outcome.stderr,
        cgroup=stats,
    )
    limits_hit = infer_limits(evidence, limits)
    return StepResult(
        step=step,
        exit_code=exit_code,
        signal=signal,
        stdout=outcome.stdout,
        stderr=outcome.stderr,
        timed_out=outcome.timed_out,
        limit=limits_hit[0] if limits_hit else None,
        limits_hit=limits_hit,
        truncated=outcome.output_capped,
        duration_ms=outcome.duration_ms,
        cpu_time_ms=cpu_ms,
        peak_memory_bytes=peak,
    )
