"""The native backend: each step runs in a fresh bubblewrap sandbox.

Process layout of one step::

    ForgeAI ── asks ──▶ supervisor (own session, child subreaper; see ``supervisor``)
                          └─ bwrap monitor            (unprivileged uid; rlimits; run cgroup)
                               └─ bwrap init, PID 1   (new user/pid/ipc/uts/net/mount namespaces)
                                    └─ the program and everything it starts

Killing PID 1 kills the whole PID namespace, so a timeout, an output cap or a cancellation
leaves nothing behind, ``setsid`` and ``nohup`` children included. The supervisor does the
killing, from outside every sandbox: when ForgeAI asks, when ForgeAI dies (at any moment, even
SIGKILLed), and at a wall-clock backstop; a PID 1 whose monitor died re-parents to it and is
killed. The resource usage it reports covers every process of the run.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal as signals
import sys
import time
from collections.abc import AsyncGenerator, AsyncIterator
from dataclasses import dataclass
from pathlib import Path

from forgeai_ls.sandbox.artifacts import MAX_BYTES, MAX_FILES, OUTPUT_DIR, parse_collected
from forgeai_ls.sandbox.bwrap import Mount, build_command
from forgeai_ls.sandbox.cgroups import CgroupStats, RunCgroup
from forgeai_ls.sandbox.child_setup import BWRAP_OVERHEAD_PROCESSES, ChildSetup, rlimits_for
from forgeai_ls.sandbox.compile_cache import CompileCache
from forgeai_ls.sandbox.egress_forwarder import forwarded_argv
from forgeai_ls.sandbox.egress_proxy import (
    PROXY_PORT,
    SANDBOX_SOCKET,
    EgressProxy,
    proxy_environment,
)
from forgeai_ls.sandbox.events import ExecutionEvent, ExecutionFinished, OutputChunk, StepFinished
from forgeai_ls.sandbox.host import NativeHost, detect_native_host
from forgeai_ls.sandbox.launcher import files_preamble
from forgeai_ls.sandbox.limit_inference import StepEvidence, infer_limits
from forgeai_ls.sandbox.limits import ResourceLimits
from forgeai_ls.sandbox.request import (
    BUILD_DIR,
    WORK_DIR,
    HostMount,
    SandboxRequest,
    StepSpec,
    WarmStart,
)
from forgeai_ls.sandbox.result import ExecutionResult, StepName, StepResult
from forgeai_ls.sandbox.seccomp import seccomp_fd, seccomp_program
from forgeai_ls.sandbox.step_process import StepOutcome, StepProcess
from forgeai_ls.sandbox.steps import (
    BASE_ENV,
    BASE_PATH,
    StdinSource,
    StepEvents,
    compile_then_run,
    final_result,
    signal_from_status,
)
from forgeai_ls.sandbox.toolchain import ToolchainResolver
from forgeai_ls.sandbox.warm_pool import PoolSettings, WarmPools, WarmRecipe, WarmSlot
from forgeai_ls.sandbox.warm_starters import REPORTS_END, SIGNALS_READY, slot_argv
from forgeai_ls.sandbox.workspace import Workspace


class NativeBackend:
    """Runs sandbox requests in bubblewrap on this machine."""

    name = "native"

    def __init__(
        self,
        resolver: ToolchainResolver | None = None,
        *,
        pools: PoolSettings | None = None,
        compile_cache: CompileCache | None = None,
    ) -> None:
        self.resolver = resolver or ToolchainResolver()
        """How command names become the host's executables (and what to mount for them)."""
        self.pools = WarmPools(pools) if pools is not None and pools.size > 0 else None
        """Warm slots for requests that allow them (``SandboxRequest.warm``); None: off."""
        self.compile_cache = compile_cache
        """Successful compiles, reused by identical ones; None: off."""

    def close(self) -> None:
        """Discard the warm slots (runs in progress finish normally)."""
        if self.pools is not None:
            self.pools.close()

    def prewarm(self, request: SandboxRequest) -> None:
        """Start warm slots for requests like this one before the first of them runs."""
        recipe = self._recipe(request)
        if recipe is not None and self.pools is not None:
            self.pools.prewarm(recipe)

    def can_warm(self, request: SandboxRequest) -> bool:
        """Requests like this one can be served by warm slots (pools on, a warm start, no
        allow-list, no read-only files...)."""
        return self._recipe(request) is not None

    async def wait_warm(self, request: SandboxRequest, count: int = 1) -> int:
        """Wait until ``count`` warm slots for requests like this one are ready."""
        recipe = self._recipe(request)
        if recipe is None or self.pools is None:
            return 0
        return await self.pools.wait_ready(recipe, count)

    def host(self) -> NativeHost:
        """What this machine offers; raises SandboxUnavailableError without bubblewrap."""
        return detect_native_host()

    async def run(self, request: SandboxRequest) -> ExecutionResult:
        """Run to completion and return the result (no streaming)."""
        return await final_result(self.stream(request))

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
        recipe = self._recipe(request, host)
        if recipe is None or self.pools is None:
            async with contextlib.aclosing(self._cold_events(host, request, stdin_stream)) as ev:
                async for event in ev:
                    yield event
            return
        slot = self.pools.take(recipe)
        try:
            events = (
                self._warm_events(request, slot, stdin_stream)
                if slot is not None
                else self._cold_events(host, request, stdin_stream)
            )
            async with contextlib.aclosing(events):
                async for event in events:
                    yield event
        finally:
            self.pools.finished(recipe)

    async def _cold_events(
        self,
        host: NativeHost,
        request: SandboxRequest,
        stdin_stream: AsyncIterator[bytes] | None,
    ) -> AsyncGenerator[ExecutionEvent, None]:
        workspace = Workspace.create(host.runtime_dir, host.uid_pool)
        egress = (
            EgressProxy(request.egress, workspace.path / "egress.sock")
            if request.egress is not None
            else None
        )

        def run_step(spec: StepSpec, step: StepName, stdin: StdinSource) -> StepEvents:
            if step is StepName.COMPILE:
                build = workspace.make_build_dir()
                # A project environment's files can change under the same key: not cached.
                if self.compile_cache is not None and not request.mounts:
                    return self._cached_compile(host, workspace, request, spec, build)
                build_dir: str | None = str(build)
            else:
                build_dir = str(workspace.build_dir) if workspace.build_dir else None
            launched = self._launch(
                host, workspace, request, spec, step, build_dir, stdin, egress=egress
            )
            return _step_events(launched, step, spec.limits)

        stdin = stdin_stream if stdin_stream is not None else request.stdin
        # The work dir goes before the last event: a consumer may stop reading there.
        events = compile_then_run(request, stdin, run_step, before_last_event=workspace.remove)
        try:
            async with contextlib.aclosing(events):
                async for event in events:
                    if isinstance(event, ExecutionFinished) and egress is not None:
                        report = egress.report()
                        event = ExecutionFinished(
                            event.result.model_copy(update={"network": report})
                        )
                    yield event
        finally:
            if egress is not None:
                egress.close()
            workspace.remove()

    async def _cached_compile(
        self,
        host: NativeHost,
        workspace: Workspace,
        request: SandboxRequest,
        spec: StepSpec,
        build: Path,
    ) -> StepEvents:
        """The compile step through the compile cache: restored when an identical compile
        was stored, else compiled and stored when it succeeds."""
        cache = self.compile_cache
        assert cache is not None
        compiler = self.resolver.resolve(spec.argv[0]).executable
        key = cache.key({**request.files, **request.readonly_files}, spec, compiler)
        cached = cache.lookup(key)
        if cached is not None:
            started = time.monotonic()
            try:
                await asyncio.to_thread(cache.restore, cached, build)
            except OSError:
                shutil.rmtree(build, ignore_errors=True)
                build.mkdir(mode=0o700)
                if workspace.uid is not None:
                    os.chown(build, workspace.uid, workspace.uid)
            else:
                result = cached.result.model_copy(
                    update={"duration_ms": (time.monotonic() - started) * 1000}
                )
                if result.stdout:
                    yield OutputChunk(StepName.COMPILE, "stdout", result.stdout)
                if result.stderr:
                    yield OutputChunk(StepName.COMPILE, "stderr", result.stderr)
                yield StepFinished(result)
                return
        launched = self._launch(host, workspace, request, spec, StepName.COMPILE, str(build), None)
        async with contextlib.aclosing(
            _step_events(launched, StepName.COMPILE, spec.limits)
        ) as events:
            async for event in events:
                if isinstance(event, StepFinished) and event.result.ok:
                    await asyncio.to_thread(cache.store, key, build, event.result)
                yield event

    # -- warm slots -----------------------------------------------------------------------

    def _recipe(self, request: SandboxRequest, host: NativeHost | None = None) -> WarmRecipe | None:
        warm = request.warm
        if self.pools is None or warm is None or request.compile is not None:
            return None
        if request.readonly_files:  # a slot's files arrive through its stdin: writable
            return None
        if request.egress is not None:  # its proxy lives with the run, on the run's loop
            return None
        if warm.script_index >= len(request.run.argv):
            return None
        if self.pools.settings.size_for(warm.language) <= 0:
            return None
        if any("\n" in name or "\r" in name for name in request.files):
            return None
        key = json.dumps(
            {
                "warm": warm.model_dump(),
                "run": request.run.model_dump(mode="json"),
                "seccomp": request.seccomp_profile,
                "mounts": [mount.model_dump() for mount in request.mounts],
            },
            sort_keys=True,
        )

        def launch() -> WarmSlot:
            return self._launch_slot(host or self.host(), request, warm)

        return WarmRecipe(key=key, language=warm.language, kind=warm.kind, launch=launch)

    def _launch_slot(self, host: NativeHost, request: SandboxRequest, warm: WarmStart) -> WarmSlot:
        workspace = Workspace.create(host.runtime_dir, host.uid_pool)
        ready_read, ready_write = (
            os.pipe2(os.O_CLOEXEC | os.O_NONBLOCK) if warm.kind in SIGNALS_READY else (None, None)
        )
        try:
            launched = self._launch(
                host,
                workspace,
                request.model_copy(update={"files": {}}),
                request.run,
                StepName.RUN,
                None,
                b"",
                warm=(warm, ready_write),
            )
        except BaseException:
            for fd in (ready_read, ready_write):
                if fd is not None:
                    os.close(fd)
            workspace.remove()
            raise
        return WarmSlot(warm.kind, launched.process, workspace, launched.cgroup, ready_read)

    async def _warm_events(
        self,
        request: SandboxRequest,
        slot: WarmSlot,
        stdin_stream: AsyncIterator[bytes] | None,
    ) -> AsyncGenerator[ExecutionEvent, None]:
        """The run step in a warm slot: its files, then its stdin, through the slot's stdin."""
        preamble = files_preamble(request.files)
        stdin: StdinSource = (
            _after(preamble, stdin_stream)
            if stdin_stream is not None
            else preamble + (request.stdin or b"")
        )

        def run_step(spec: StepSpec, step: StepName, stdin: StdinSource) -> StepEvents:
            control = slot.hand_over()
            if slot.kind not in REPORTS_END and control >= 0:
                os.close(control)
                control = -1
            slot.process.assign(stdin, control)
            return _step_events(_Launched(slot.process, slot.cgroup), step, spec.limits)

        events = compile_then_run(request, stdin, run_step, before_last_event=slot.workspace.remove)
        try:
            async with contextlib.aclosing(events):
                async for event in events:
                    yield event
        finally:
            if slot.process.outcome is None:  # closed before the step began
                slot.discard()
            slot.workspace.remove()

    # -- one step -------------------------------------------------------------------------

    def _resolve_argv(
        self, argv: tuple[str, ...], mounts: tuple[HostMount, ...]
    ) -> tuple[list[str], list[str]]:
        """argv with argv[0] resolved on the host, and the toolchain roots to mount."""
        name = argv[0]
        if name.startswith((f"{WORK_DIR}/", f"{BUILD_DIR}/")):  # built or placed in the sandbox
            return list(argv), []
        if any(name.startswith(f"{mount.target}/") for mount in mounts):
            return list(argv), []  # a project environment's interpreter, run as it is named
        resolved = self.resolver.resolve(name)
        roots = [resolved.toolchain_root] if resolved.toolchain_root else []
        return [resolved.executable, *argv[1:]], roots

    def _launch(
        self,
        host: NativeHost,
        workspace: Workspace,
        request: SandboxRequest,
        spec: StepSpec,
        step: StepName,
        build_dir: str | None,
        stdin: StdinSource,
        *,
        warm: tuple[WarmStart, int | None] | None = None,
        egress: EgressProxy | None = None,
    ) -> _Launched:
        """Start the step's sandbox. With ``warm`` (how, and the write end of the ready pipe,
        handed over to the sandbox), the slot's starter runs instead of the program; with
        ``egress`` (the run step of a request with an allow-list), behind the forwarder to
        the egress proxy."""
        limits = spec.limits
        argv, roots = self._resolve_argv(spec.argv, request.mounts)
        toolchain_bins = [os.path.dirname(argv[0])] if roots or request.mounts else []
        egress_env: dict[str, str] = {}
        plain_mounts: list[Mount] = []
        if egress is not None and step is StepName.RUN:
            python = self.resolver.resolve(sys.executable)
            if python.toolchain_root:
                roots.append(python.toolchain_root)
            argv = forwarded_argv(python.executable, PROXY_PORT, SANDBOX_SOCKET, argv)
            egress.listen(workspace.uid)
            plain_mounts.append(Mount(str(egress.socket_path), SANDBOX_SOCKET))
            egress_env = proxy_environment(egress.policy)
        staged = host.is_root and host.stage_dir is not None
        wanted = [Mount(root, root) for root in dict.fromkeys(roots)]
        wanted += [Mount(m.source, m.target, m.writable) for m in request.mounts]
        mounts = [
            Mount(f"{host.stage_dir}/{i}", mount.target, mount.writable) if staged else mount
            for i, mount in enumerate(wanted)
        ]
        path = ":".join(dict.fromkeys([*toolchain_bins, *BASE_PATH.split(":")]))
        env = {"PATH": path, **BASE_ENV, **spec.env, **egress_env}
        collect = None
        if step is StepName.RUN:
            env["FORGEAI_OUTPUT_DIR"] = OUTPUT_DIR
            collect = {"dir": OUTPUT_DIR, "max_files": MAX_FILES, "max_bytes": MAX_BYTES}
        extra_fds: list[int] = []
        if warm is not None:
            how, ready_fd = warm
            argv = slot_argv(how.kind, argv, how.script_index, ready_fd if ready_fd else -1)
            if ready_fd is not None:
                extra_fds.append(ready_fd)
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
            readonly_files=request.readonly_files,
            toolchain_mounts=[*mounts, *plain_mounts],
            build_dir=build_dir,
            build_writable=step is StepName.COMPILE,
            network=limits.network,
            disk_bytes=limits.disk_bytes,
            status_fd=process.status_fd,
            seccomp_fd=seccomp,
            output_dir=OUTPUT_DIR if step is StepName.RUN else None,
        )
        pass_fds = [*command.pass_fds, *([seccomp] if seccomp is not None else []), *extra_fds]
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
                stage_sources=[mount.source for mount in wanted],
                uid=workspace.uid,
            )
            cleanup = [("rmtree", str(workspace.path))]
            if cgroup is not None:
                cleanup += [("rmdir", os.path.dirname(attach)) for attach in cgroup.attach_files]
            handed_over, pass_fds = pass_fds, []
            # closes them, even on failure
            process.start(command.argv, handed_over, setup, cleanup, collect)
        except BaseException:
            for fd in pass_fds:
                os.close(fd)
            process.close_if_unstarted()
            if cgroup is not None:
                cgroup.remove()
            raise
        return _Launched(process, cgroup)


@dataclass(frozen=True, slots=True)
class _Launched:
    process: StepProcess
    cgroup: RunCgroup | None


async def _step_events(launched: _Launched, step: StepName, limits: ResourceLimits) -> StepEvents:
    """A started step's output, then its result; leaving early kills it."""
    process, cgroup = launched.process, launched.cgroup
    try:
        async with contextlib.aclosing(process.chunks()) as chunks:
            async for chunk in chunks:
                yield chunk
        stats = cgroup.stats() if cgroup is not None else None
    finally:
        process.close_if_unstarted()
        if cgroup is not None and not cgroup.try_remove():
            # Killed processes can keep a group busy for a few milliseconds: the result
            # does not wait for that (the removal finishes in a worker thread).
            asyncio.get_running_loop().run_in_executor(None, cgroup.remove)
    assert process.outcome is not None
    yield StepFinished(_step_result(step, limits, process.outcome, stats))


async def _after(preamble: bytes, stdin: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    yield preamble
    async for chunk in stdin:
        yield chunk


def _step_result(
    step: StepName, limits: ResourceLimits, outcome: StepOutcome, stats: CgroupStats | None
) -> StepResult:
    exit_code: int | None
    signal: int | None
    if outcome.killed_by_us:
        exit_code, signal = None, int(signals.SIGKILL)
    elif outcome.program_status is not None:
        exit_code, signal = signal_from_status(outcome.program_status)
    else:
        exit_code, signal = signal_from_status(outcome.monitor_status)
    usage = outcome.usage
    cpu_ms = (
        stats.cpu_usec / 1000
        if stats is not None and stats.cpu_usec is not None
        else usage.cpu_seconds * 1000
    )
    peak = (
        stats.peak_memory_bytes
        if stats and stats.peak_memory_bytes
        else (usage.max_rss_kib * 1024 or None)
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
        artifacts=parse_collected(outcome.collected) if step is StepName.RUN else None,
    )
