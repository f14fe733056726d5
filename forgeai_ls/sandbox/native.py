"""The native backend: each step runs in a fresh bubblewrap sandbox.

Process layout of one step::

    ForgeAI (child subreaper)
      └─ bwrap monitor            (unprivileged uid; rlimits; per-run cgroup)
           └─ bwrap init, PID 1   (new user/pid/ipc/uts/net/mount namespaces)
                └─ the program and everything it starts

Killing PID 1 kills the whole PID namespace, so a timeout, an output cap or a cancellation
leaves nothing behind, ``setsid`` and ``nohup`` children included. The bwrap monitor exits
without reaping PID 1, which therefore re-parents to ForgeAI (the subreaper) and is reaped
here; its resource usage includes every process of the run.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import math
import os
import resource
import shutil
import signal as signals
import subprocess
import time
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path

from forgeai_ls.errors import SandboxSetupError
from forgeai_ls.sandbox import linux
from forgeai_ls.sandbox.bwrap import Mount, build_command
from forgeai_ls.sandbox.cgroups import CgroupStats, RunCgroup
from forgeai_ls.sandbox.events import (
    ExecutionEvent,
    ExecutionFinished,
    OutputChunk,
    StepFinished,
    StepStarted,
    StreamName,
)
from forgeai_ls.sandbox.host import NativeHost, detect_native_host
from forgeai_ls.sandbox.limit_inference import StepEvidence, infer_limits
from forgeai_ls.sandbox.limits import ResourceLimits
from forgeai_ls.sandbox.request import BUILD_DIR, WORK_DIR, SandboxRequest, StepSpec
from forgeai_ls.sandbox.result import ExecutionResult, StepName, StepResult
from forgeai_ls.sandbox.seccomp import seccomp_fd
from forgeai_ls.sandbox.toolchain import ToolchainResolver
from forgeai_ls.sandbox.uidpool import UidLease

_READ_SIZE = 64 * 1024
_QUEUE_HIGH_BYTES = 1024 * 1024
"""Output read but not yet taken by the consumer; above this, reading pauses (the program's
writes then block), so a slow consumer never makes ForgeAI hold a flood in memory."""
_QUEUE_LOW_BYTES = 256 * 1024
_BWRAP_OVERHEAD_PROCESSES = 2  # the monitor and PID 1 count against the process limit
_RLIMIT_NPROC_SLACK = 16
_BASE_PATH = "/usr/local/bin:/usr/bin:/bin"
_BWRAP_ERROR_PREFIX = b"bwrap: "


def _signal_from_status(code: int) -> tuple[int | None, int | None]:
    """bwrap reports death by signal N as exit status 128 + N, like a shell."""
    if code > 128 and code - 128 < signals.NSIG:
        return None, code - 128
    return code, None


def _count_own_tasks(uid: int) -> int:
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


@dataclass(slots=True)
class _Workspace:
    """Host-side state of one execution: the build dir and the leased uid."""

    path: Path
    lease: UidLease | None
    build_dir: Path | None = None

    @property
    def uid(self) -> int | None:
        return self.lease.uid if self.lease else None

    def make_build_dir(self) -> Path:
        build = self.path / "build"
        build.mkdir(mode=0o700)
        if self.lease is not None:
            os.chown(build, self.lease.uid, self.lease.uid)
        self.build_dir = build
        return build

    def remove(self) -> None:
        def _retry_writable(func: Callable[[str], object], path: str, _exc: object) -> None:
            # The program may have left a directory without write permission.
            with contextlib.suppress(OSError):
                os.chmod(os.path.dirname(path), 0o700)
                func(path)

        if self.path.exists():
            shutil.rmtree(self.path, onerror=_retry_writable)
        if self.lease is not None:
            self.lease.release()


@dataclass(slots=True)
class _Preexec:
    """Runs in the forked child before exec(bwrap): single-threaded, syscalls only."""

    attach_files: tuple[str, ...]
    rlimits: list[tuple[int, tuple[int, int]]]
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


StdinSource = bytes | AsyncIterator[bytes] | None


@dataclass(slots=True)
class _StepState:
    """Everything one running step accumulates; owned by the event loop thread."""

    limits: ResourceLimits
    queue: asyncio.Queue[OutputChunk | None]
    step: StepName
    captured: dict[str, bytearray] = field(
        default_factory=lambda: {"stdout": bytearray(), "stderr": bytearray()}
    )
    output_total: int = 0
    output_capped: bool = False
    timed_out: bool = False
    killed_by_us: bool = False
    open_streams: int = 2
    exited: bool = False
    held_stderr: bytes | None = None
    stderr_seen: bool = False
    status_text: bytearray = field(default_factory=bytearray)
    inner_pid: int | None = None
    queued_bytes: int = 0
    paused: bool = False


class NativeBackend:
    """Runs sandbox requests in bubblewrap on this machine."""

    name = "native"

    def __init__(self, resolver: ToolchainResolver | None = None) -> None:
        self._resolver = resolver or ToolchainResolver()

    def host(self) -> NativeHost:
        return detect_native_host()

    async def run(self, request: SandboxRequest) -> ExecutionResult:
        """Run to completion and return the result (no streaming)."""
        async for event in self.stream(request):
            if isinstance(event, ExecutionFinished):
                return event.result
        raise RuntimeError("execution ended without a result")  # pragma: no cover

    async def stream(
        self, request: SandboxRequest, *, stdin_stream: AsyncIterator[bytes] | None = None
    ) -> AsyncIterator[ExecutionEvent]:
        """Run the request, yielding output as it is produced and the result at the end.

        ``stdin_stream`` feeds the run step's stdin interactively (instead of
        ``request.stdin``): each chunk is written as it arrives, the end of the iteration closes
        the program's stdin. Closing or cancelling the iteration stops the program and
        everything it started.
        """
        host = self.host()
        workspace = self._new_workspace(host)
        try:
            compile_result: StepResult | None = None
            if request.compile is not None:
                build = str(workspace.make_build_dir())
                yield StepStarted(StepName.COMPILE)
                steps = self._run_step(
                    host, workspace, request, request.compile, StepName.COMPILE, build, True, None
                )
                async with contextlib.aclosing(steps):  # closing us must kill the step now
                    async for event in steps:
                        if isinstance(event, StepFinished):
                            compile_result = event.result
                        yield event
                assert compile_result is not None
                if not compile_result.ok:
                    # Release the workspace before the last event: a consumer may stop there.
                    workspace.remove()
                    yield ExecutionFinished(ExecutionResult.from_steps(compile_result, None))
                    return
            run_result: StepResult | None = None
            build_dir = str(workspace.build_dir) if workspace.build_dir else None
            yield StepStarted(StepName.RUN)
            steps = self._run_step(
                host,
                workspace,
                request,
                request.run,
                StepName.RUN,
                build_dir,
                False,
                stdin_stream if stdin_stream is not None else request.stdin,
            )
            async with contextlib.aclosing(steps):
                async for event in steps:
                    if isinstance(event, StepFinished):
                        run_result = event.result
                    yield event
            workspace.remove()
            yield ExecutionFinished(ExecutionResult.from_steps(compile_result, run_result))
        finally:
            workspace.remove()

    # -- one step ---------------------------------------------------------------------------

    def _new_workspace(self, host: NativeHost) -> _Workspace:
        lease = host.uid_pool.acquire() if host.uid_pool is not None else None
        path = Path(
            os.path.realpath(Path(host.runtime_dir) / f"exec-{os.getpid()}-{time.monotonic_ns()}")
        )
        path.mkdir(mode=0o711 if lease else 0o700)
        return _Workspace(path=path, lease=lease)

    def _toolchain_mounts(
        self, host: NativeHost, argv: tuple[str, ...]
    ) -> tuple[list[str], list[str]]:
        """Resolve argv[0]; return (resolved argv, toolchain roots to mount)."""
        name = argv[0]
        if name.startswith((f"{WORK_DIR}/", f"{BUILD_DIR}/")):  # built or placed in the sandbox
            return list(argv), []
        resolved = self._resolver.resolve(name)
        roots = [resolved.toolchain_root] if resolved.toolchain_root else []
        return [resolved.executable, *argv[1:]], roots

    def _rlimits(
        self, host: NativeHost, limits: ResourceLimits, uid: int | None, cgroup: RunCgroup | None
    ) -> list[tuple[int, tuple[int, int]]]:
        cpu = math.ceil(limits.cpu_time)
        processes = limits.processes + _BWRAP_OVERHEAD_PROCESSES
        if cgroup is not None:
            # The pids controller enforces (and reports) the limit; the rlimit is a backstop.
            processes += _RLIMIT_NPROC_SLACK
        if uid is None:  # our own uid: RLIMIT_NPROC also counts this user's other processes
            processes += _count_own_tasks(os.getuid())
        rlimits = [
            (resource.RLIMIT_CPU, (cpu, cpu + 1)),
            (resource.RLIMIT_FSIZE, (limits.file_size_bytes, limits.file_size_bytes)),
            (resource.RLIMIT_NOFILE, (limits.open_files, limits.open_files)),
            (resource.RLIMIT_NPROC, (processes, processes)),
            (resource.RLIMIT_CORE, (0, 0)),
        ]
        if cgroup is None:
            rlimits.append((resource.RLIMIT_DATA, (limits.memory_bytes, limits.memory_bytes)))
        return rlimits

    async def _run_step(
        self,
        host: NativeHost,
        workspace: _Workspace,
        request: SandboxRequest,
        spec: StepSpec,
        step: StepName,
        build_dir: str | None,
        build_writable: bool,
        stdin: StdinSource,
    ) -> AsyncGenerator[OutputChunk | StepFinished, None]:
        loop = asyncio.get_running_loop()
        limits = spec.limits
        argv, roots = self._toolchain_mounts(host, spec.argv)
        roots = list(dict.fromkeys(roots))
        staged = host.is_root and host.stage_dir is not None
        mounts = [
            Mount(f"{host.stage_dir}/{i}" if staged else root, root) for i, root in enumerate(roots)
        ]
        path_dirs = [os.path.dirname(argv[0])] if argv[0].startswith("/") else []
        env = {
            "PATH": ":".join([*dict.fromkeys(path_dirs), _BASE_PATH]),
            "HOME": "/tmp",
            "TMPDIR": "/tmp",
            "LANG": "C.UTF-8",
            "USER": "sandbox",
            "LOGNAME": "sandbox",
            **spec.env,
        }

        cgroup = (
            host.cgroups.create(limits.memory_bytes, limits.processes + _BWRAP_OVERHEAD_PROCESSES)
            if host.cgroups is not None
            else None
        )
        status_read, status_write = os.pipe2(os.O_CLOEXEC | os.O_NONBLOCK)
        fds_to_close = [status_write]
        seccomp = seccomp_fd(host.seccomp) if host.seccomp is not None else None
        if seccomp is not None:
            fds_to_close.append(seccomp)
        command = build_command(
            bwrap=host.bwrap,
            etc_dir=str(host.etc_dir),
            argv=argv,
            env=env,
            files=request.files,
            toolchain_mounts=mounts,
            build_dir=build_dir,
            build_writable=build_writable,
            network=limits.network,
            disk_bytes=limits.disk_bytes,
            status_fd=status_write,
            seccomp_fd=seccomp,
        )
        fds_to_close += command.pass_fds
        preexec = _Preexec(
            attach_files=cgroup.attach_files if cgroup else (),
            rlimits=self._rlimits(host, limits, workspace.uid, cgroup),
            stage_dir=str(host.stage_dir) if staged else None,
            stage_sources=roots,
            uid=workspace.uid,
        )
        state = _StepState(limits=limits, queue=asyncio.Queue(), step=step)
        started = time.monotonic()
        try:
            proc = subprocess.Popen(
                command.argv,
                stdin=subprocess.DEVNULL if stdin is None else subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                env={},
                pass_fds=[status_write, *command.pass_fds, *([seccomp] if seccomp else [])],
                preexec_fn=preexec,
                close_fds=True,
            )
        except (OSError, subprocess.SubprocessError) as exc:
            for fd in [*fds_to_close, status_read]:
                os.close(fd)
            if cgroup is not None:
                cgroup.remove()
            raise SandboxSetupError(
                f"could not start the sandbox for the {step.value} step: {exc}",
                hint="check that bubblewrap works: 'bwrap --ro-bind / / true'",
            ) from exc
        for fd in fds_to_close:
            os.close(fd)
        assert proc.stdout is not None and proc.stderr is not None

        pidfd = os.pidfd_open(proc.pid)
        exited = loop.create_future()
        watched: list[int] = []

        def watch(fd: int, callback: Callable[[], None]) -> None:
            loop.add_reader(fd, callback)
            watched.append(fd)

        def unwatch(fd: int) -> None:
            if fd in watched:
                loop.remove_reader(fd)
                watched.remove(fd)

        def kill() -> None:
            state.killed_by_us = True
            for pid in (state.inner_pid, proc.pid):
                if pid is not None:
                    with contextlib.suppress(ProcessLookupError, PermissionError):
                        os.kill(pid, signals.SIGKILL)

        def deliver(name: StreamName, data: bytes) -> None:
            room = limits.output_bytes - state.output_total
            if len(data) > room:
                data = data[:room]
                state.output_capped = True
            state.output_total += len(data)
            state.captured[name] += data
            if data:
                state.queue.put_nowait(OutputChunk(step, name, data))
                state.queued_bytes += len(data)
            if state.output_capped and not state.killed_by_us:
                kill()
            elif state.queued_bytes > _QUEUE_HIGH_BYTES and not state.paused:
                state.paused = True
                for fd in output_fds:
                    unwatch(fd)

        def on_output(fd: int, name: StreamName) -> None:
            try:
                data = os.read(fd, _READ_SIZE)
            except BlockingIOError:
                return
            if not data:
                unwatch(fd)
                del output_fds[fd]
                state.open_streams -= 1
                check_done()
                return
            if name == "stderr" and not state.stderr_seen:
                state.stderr_seen = True
                if data.startswith(_BWRAP_ERROR_PREFIX):
                    state.held_stderr = data  # a sandbox setup error, or the program's own
                    return
            if state.held_stderr is not None and name == "stderr":
                held, state.held_stderr = state.held_stderr, None
                deliver("stderr", held)
            deliver(name, data)

        def on_status() -> None:
            with contextlib.suppress(BlockingIOError):
                while chunk := os.read(status_read, 4096):
                    state.status_text += chunk
                unwatch(status_read)  # end of file: bwrap closed its end
            if state.inner_pid is None:
                state.inner_pid = _json_field(state.status_text, "child-pid")

        def on_exit() -> None:
            unwatch(pidfd)
            state.exited = True
            check_done()

        def check_done() -> None:
            if state.exited and state.open_streams == 0 and not exited.done():
                exited.set_result(None)

        for pipe in (proc.stdout, proc.stderr):
            os.set_blocking(pipe.fileno(), False)
        output_fds: dict[int, Callable[[], None]] = {
            proc.stdout.fileno(): functools.partial(on_output, proc.stdout.fileno(), "stdout"),
            proc.stderr.fileno(): functools.partial(on_output, proc.stderr.fileno(), "stderr"),
        }
        for fd, reader in output_fds.items():
            watch(fd, reader)
        watch(status_read, on_status)
        watch(pidfd, on_exit)
        stdin_task = (
            asyncio.ensure_future(_feed_stdin(loop, proc, stdin)) if stdin is not None else None
        )

        def on_timeout() -> None:
            if not exited.done():
                state.timed_out = True
                kill()

        timer = loop.call_later(limits.wall_timeout, on_timeout)
        exited.add_done_callback(lambda _f: state.queue.put_nowait(None))
        finished = False
        try:
            while True:
                item = await state.queue.get()
                if item is None:
                    break
                state.queued_bytes -= len(item.data)
                if state.paused and state.queued_bytes < _QUEUE_LOW_BYTES:
                    state.paused = False
                    for fd, reader in output_fds.items():
                        watch(fd, reader)
                yield item
            finished = True
        finally:
            timer.cancel()
            if not finished:
                kill()  # cancelled or closed by the consumer
            for fd in list(watched):
                unwatch(fd)
            if stdin_task is not None:
                stdin_task.cancel()
            _, status, _ = os.wait4(proc.pid, 0)
            on_status()
            inner_usage = self._reap_inner(state.inner_pid) if host.subreaper else None
            duration_ms = (time.monotonic() - started) * 1000
            stats = cgroup.stats() if cgroup is not None else None
            if cgroup is not None:
                cgroup.remove()
            for closable in (proc.stdout, proc.stderr, proc.stdin):
                if closable is not None:
                    closable.close()
            os.close(pidfd)
            os.close(status_read)
            proc.returncode = os.waitstatus_to_exitcode(status)
        if state.held_stderr is not None:
            exit_json = _json_field(state.status_text, "exit-code")
            if exit_json is None and not state.killed_by_us:
                message = state.held_stderr.decode(errors="replace").strip()
                raise SandboxSetupError(
                    f"bubblewrap could not set up the sandbox: {message}",
                    hint="unprivileged user namespaces must be enabled "
                    "(sysctl kernel.unprivileged_userns_clone=1; on Ubuntu 24.04+ allow "
                    "bwrap in AppArmor)",
                )
            deliver("stderr", state.held_stderr)
            while not state.queue.empty():
                item = state.queue.get_nowait()
                if item is not None:
                    yield item
        yield StepFinished(
            self._step_result(state, proc.returncode, inner_usage, duration_ms, stats)
        )

    @staticmethod
    def _reap_inner(inner_pid: int | None) -> resource.struct_rusage | None:
        if inner_pid is None:
            return None
        try:
            _, _, usage = os.wait4(inner_pid, 0)
        except ChildProcessError:
            return None
        return usage

    @staticmethod
    def _step_result(
        state: _StepState,
        monitor_code: int,
        usage: resource.struct_rusage | None,
        duration_ms: float,
        stats: CgroupStats | None,
    ) -> StepResult:
        exit_json = _json_field(state.status_text, "exit-code")
        if exit_json is not None and not state.killed_by_us:
            exit_code, signal = _signal_from_status(exit_json)
        elif state.killed_by_us:
            exit_code, signal = None, signals.SIGKILL
        else:
            exit_code, signal = _signal_from_status(monitor_code)
        cpu_ms = (usage.ru_utime + usage.ru_stime) * 1000 if usage is not None else None
        peak = (
            stats.peak_memory_bytes
            if stats and stats.peak_memory_bytes
            else (usage.ru_maxrss * 1024 if usage is not None else None)
        )
        stderr = bytes(state.captured["stderr"])
        evidence = StepEvidence(
            signal=signal,
            failed=exit_code != 0,
            timed_out=state.timed_out,
            output_capped=state.output_capped,
            cpu_time_ms=cpu_ms,
            stderr=stderr,
            cgroup=stats,
        )
        limits_hit = infer_limits(evidence, state.limits)
        return StepResult(
            step=state.step,
            exit_code=exit_code,
            signal=signal,
            stdout=bytes(state.captured["stdout"]),
            stderr=stderr,
            timed_out=state.timed_out,
            limit=limits_hit[0] if limits_hit else None,
            limits_hit=limits_hit,
            truncated=state.output_capped,
            duration_ms=duration_ms,
            cpu_time_ms=cpu_ms,
            peak_memory_bytes=peak,
        )


def _json_field(text: bytearray, key: str) -> int | None:
    """bwrap's --json-status-fd writes one JSON object per line."""
    for line in bytes(text).splitlines():
        try:
            value = json.loads(line).get(key)
        except (ValueError, AttributeError):
            continue
        if isinstance(value, int):
            return value
    return None


async def _write_all(loop: asyncio.AbstractEventLoop, fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        try:
            view = view[os.write(fd, view) :]
        except BlockingIOError:
            ready = loop.create_future()
            loop.add_writer(fd, ready.set_result, None)
            try:
                await ready
            finally:
                loop.remove_writer(fd)


async def _feed_stdin(
    loop: asyncio.AbstractEventLoop,
    proc: subprocess.Popen[bytes],
    source: bytes | AsyncIterator[bytes],
) -> None:
    """Write stdin without blocking the loop; a program that stops reading is fine."""
    assert proc.stdin is not None
    fd = proc.stdin.fileno()
    os.set_blocking(fd, False)
    try:
        if isinstance(source, bytes):
            await _write_all(loop, fd, source)
        else:
            async for chunk in source:
                await _write_all(loop, fd, chunk)
    except (BrokenPipeError, ConnectionResetError):
        pass
    finally:
        with contextlib.suppress(OSError):
            proc.stdin.close()
