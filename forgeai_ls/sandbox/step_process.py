"""One running bubblewrap process: its output, stdin, limits in time and output, and its end.

Everything here runs on the event loop's thread with non-blocking descriptors watched by the
loop (the program's stdout and stderr, bwrap's JSON status pipe and a pidfd for its exit); no
helper threads. The output cap and the wall clock are enforced here by killing the sandbox.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import os
import resource
import signal as signals
import subprocess
import time
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from typing import IO

from forgeai_ls.errors import SandboxSetupError
from forgeai_ls.sandbox.events import OutputChunk, StreamName
from forgeai_ls.sandbox.limits import ResourceLimits
from forgeai_ls.sandbox.result import StepName
from forgeai_ls.sandbox.steps import StdinSource

_READ_SIZE = 64 * 1024
_QUEUE_HIGH_BYTES = 1024 * 1024
"""Output read but not yet taken by the consumer; above this, reading pauses (the program's
writes then block), so a slow consumer never makes ForgeAI hold a flood in memory."""
_QUEUE_LOW_BYTES = 256 * 1024
_BWRAP_ERROR_PREFIX = b"bwrap: "


@dataclass(frozen=True, slots=True)
class StepOutcome:
    """What is known once the step's processes are gone."""

    monitor_status: int
    """The bwrap monitor's own exit status (128 + N for signal N)."""
    program_status: int | None
    """The program's exit status as bwrap reported it, when the program ran to its end."""
    killed_by_us: bool
    timed_out: bool
    output_capped: bool
    stdout: bytes
    stderr: bytes
    usage: resource.struct_rusage | None
    """Resource usage of the sandbox's PID 1, which includes every process of the run."""
    duration_ms: float


@dataclass(slots=True)
class _Output:
    captured: dict[str, bytearray] = field(
        default_factory=lambda: {"stdout": bytearray(), "stderr": bytearray()}
    )
    total: int = 0
    capped: bool = False
    queued: int = 0
    paused: bool = False
    held_stderr: bytes | None = None
    stderr_seen: bool = False


def json_status_field(text: bytes, key: str) -> int | None:
    """bwrap's --json-status-fd writes one JSON object per line."""
    for line in text.splitlines():
        try:
            value = json.loads(line).get(key)
        except (ValueError, AttributeError):
            continue
        if isinstance(value, int):
            return value
    return None


class StepProcess:
    """Starts bwrap, streams its output, enforces the wall clock and the output cap."""

    def __init__(self, step: StepName, limits: ResourceLimits, stdin: StdinSource) -> None:
        self.step = step
        self.limits = limits
        self._stdin = stdin
        self._status_read, self.status_fd = os.pipe2(os.O_CLOEXEC | os.O_NONBLOCK)
        """The write end, to pass to bwrap as --json-status-fd."""
        self._status = bytearray()
        self._output = _Output()
        self._queue: asyncio.Queue[OutputChunk | None] = asyncio.Queue()
        self._watched: list[int] = []
        self._output_fds: dict[int, Callable[[], None]] = {}
        self._proc: subprocess.Popen[bytes] | None = None
        self._pidfd = -1
        self._inner_pid: int | None = None
        self._exited = False
        self._killed = False
        self._timed_out = False
        self._started = 0.0
        self._end_fd = -1
        self._end_text = bytearray()
        self._reported_status: int | None = None
        self.outcome: StepOutcome | None = None

    # -- start --------------------------------------------------------------------------------

    def start(
        self, argv: Sequence[str], pass_fds: Sequence[int], preexec: Callable[[], None]
    ) -> None:
        """Spawn bwrap; the descriptors in ``pass_fds`` are closed here once it has them."""
        self._started = time.monotonic()
        try:
            self._proc = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL if self._stdin is None else subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                env={},
                pass_fds=[self.status_fd, *pass_fds],
                preexec_fn=preexec,
                close_fds=True,
            )
        except (OSError, subprocess.SubprocessError) as exc:
            os.close(self._status_read)
            self._status_read = -1
            raise SandboxSetupError(
                f"could not start the sandbox for the {self.step.value} step: {exc}",
                hint="check that bubblewrap works: 'bwrap --ro-bind / / true'",
            ) from exc
        finally:
            for fd in (self.status_fd, *pass_fds):
                os.close(fd)
        self._pidfd = os.pidfd_open(self._proc.pid)

    @property
    def pid(self) -> int | None:
        """The bwrap monitor's pid."""
        return self._proc.pid if self._proc is not None else None

    @property
    def inner_pid(self) -> int | None:
        """The sandbox's PID 1 (as the host sees it), once bwrap has reported it."""
        if self.outcome is None and self._status_read >= 0:
            self._on_status()
        return self._inner_pid

    @property
    def pidfd(self) -> int:
        """A descriptor that becomes readable when bwrap has exited."""
        return self._pidfd

    def assign(self, stdin: StdinSource, end_fd: int = -1) -> None:
        """Give a started, still unused process (a warm slot) its input; from now on it is
        a run: the wall clock and the duration start here.

        ``end_fd`` (owned from now on by this object) is where the slot's starter reports the
        program's end as ``e<status>\n``, after the program's output has been written: the
        run then ends at once, without waiting for the interpreter to tear itself down.
        """
        self._stdin = stdin
        self._started = time.monotonic()
        self._end_fd = end_fd

    def discard(self) -> None:
        """Kill and reap a process whose output nobody reads (an unused warm slot)."""
        if self._proc is None or self.outcome is not None:
            return
        self._on_status()  # learn the sandbox's PID 1, if bwrap has reported it
        self.kill()
        self._finish()

    def close_if_unstarted(self) -> None:
        """Release the status pipe of a step that never started."""
        if self._started == 0.0 and self.status_fd >= 0:
            os.close(self.status_fd)
            os.close(self._status_read)
            self.status_fd = -1

    # -- run ----------------------------------------------------------------------------------

    async def chunks(self) -> AsyncGenerator[OutputChunk, None]:
        """Output as it is read; when the iteration ends, ``outcome`` is set.

        Leaving the iteration early (cancellation, ``aclose``) kills the sandbox first.
        """
        proc = self._proc
        assert proc is not None and proc.stdout is not None and proc.stderr is not None
        loop = asyncio.get_running_loop()
        done = loop.create_future()
        done.add_done_callback(lambda _f: self._queue.put_nowait(None))
        streams: tuple[tuple[IO[bytes], StreamName], ...] = (
            (proc.stdout, "stdout"),
            (proc.stderr, "stderr"),
        )
        for pipe, name in streams:
            os.set_blocking(pipe.fileno(), False)
            self._output_fds[pipe.fileno()] = functools.partial(
                self._on_output, pipe.fileno(), name, done
            )
        for fd, reader in self._output_fds.items():
            self._watch(fd, reader)
        self._watch(self._status_read, self._on_status)
        self._watch(self._pidfd, functools.partial(self._on_exit, done))
        if self._end_fd >= 0:
            self._watch(self._end_fd, self._on_end_report)
        stdin_task = (
            asyncio.ensure_future(self._feed_stdin(self._stdin))
            if self._stdin is not None
            else None
        )
        timer = loop.call_later(self.limits.wall_timeout, self._on_timeout, done)
        finished = False
        try:
            while (item := await self._queue.get()) is not None:
                self._consumed(len(item.data))
                yield item
            finished = True
        finally:
            timer.cancel()
            if not finished:
                self.kill()
            for fd in list(self._watched):
                self._unwatch(fd)
            if stdin_task is not None:
                stdin_task.cancel()
            self._finish()
        if self._output.held_stderr is not None:
            self._release_held_stderr(final=True)
            while not self._queue.empty():
                item = self._queue.get_nowait()
                if item is not None:
                    yield item

    def kill(self) -> None:
        """Kill the sandbox: PID 1 takes its whole PID namespace with it."""
        self._killed = True
        self._stop()

    def _stop(self) -> None:
        assert self._proc is not None
        for pid in (self._inner_pid, self._proc.pid):
            if pid is not None:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, signals.SIGKILL)

    # -- event-loop callbacks -----------------------------------------------------------------

    def _watch(self, fd: int, callback: Callable[[], None]) -> None:
        asyncio.get_running_loop().add_reader(fd, callback)
        self._watched.append(fd)

    def _unwatch(self, fd: int) -> None:
        if fd in self._watched:
            asyncio.get_running_loop().remove_reader(fd)
            self._watched.remove(fd)

    def _on_output(self, fd: int, name: StreamName, done: asyncio.Future[None]) -> None:
        try:
            data = os.read(fd, _READ_SIZE)
        except BlockingIOError:
            return
        if not data:
            self._unwatch(fd)
            del self._output_fds[fd]
            self._check_done(done)
            return
        output = self._output
        if name == "stderr" and not output.stderr_seen:
            output.stderr_seen = True
            if data.startswith(_BWRAP_ERROR_PREFIX):
                output.held_stderr = data  # a sandbox setup error, or the program's own
                return
        if name == "stderr" and output.held_stderr is not None:
            self._release_held_stderr(final=False)
        self._deliver(name, data)

    def _deliver(self, name: StreamName, data: bytes) -> None:
        output = self._output
        room = self.limits.output_bytes - output.total
        if len(data) > room:
            data = data[:room]
            output.capped = True
        output.total += len(data)
        output.captured[name] += data
        if data:
            self._queue.put_nowait(OutputChunk(self.step, name, data))
            output.queued += len(data)
        if output.capped and not self._killed:
            self.kill()
        elif output.queued > _QUEUE_HIGH_BYTES and not output.paused:
            output.paused = True
            for fd in self._output_fds:
                self._unwatch(fd)

    def _consumed(self, size: int) -> None:
        output = self._output
        output.queued -= size
        if output.paused and output.queued < _QUEUE_LOW_BYTES:
            output.paused = False
            for fd, reader in self._output_fds.items():
                self._watch(fd, reader)

    def _release_held_stderr(self, *, final: bool) -> None:
        """Deliver the held first stderr chunk, or, at the end, raise it as a setup error.

        It was bwrap's own error when bwrap never reported the program's exit status (the
        program never started) and ForgeAI did not kill it.
        """
        held, self._output.held_stderr = self._output.held_stderr, None
        if held is None:
            return
        program_ran = json_status_field(bytes(self._status), "exit-code") is not None
        if final and not program_ran and not self._killed:
            message = held.decode(errors="replace").strip()
            raise SandboxSetupError(
                f"bubblewrap could not set up the sandbox: {message}",
                hint="unprivileged user namespaces must be enabled (sysctl "
                "kernel.unprivileged_userns_clone=1; on Ubuntu 24.04+ allow bwrap in AppArmor)",
            )
        self._deliver("stderr", held)

    def _on_status(self) -> None:
        with contextlib.suppress(BlockingIOError):
            while chunk := os.read(self._status_read, 4096):
                self._status += chunk
            self._unwatch(self._status_read)  # end of file: bwrap closed its end
        if self._inner_pid is None:
            self._inner_pid = json_status_field(bytes(self._status), "child-pid")

    def _on_end_report(self) -> None:
        try:
            data = os.read(self._end_fd, 64)
        except BlockingIOError:
            return
        self._end_text += data
        if not data or b"\n" in self._end_text:
            self._unwatch(self._end_fd)
        text = bytes(self._end_text)
        if text.startswith(b"e") and b"\n" in text:
            try:
                self._reported_status = int(text[1 : text.index(b"\n")])
            except ValueError:
                return
            self._drain_output()
            self._stop()  # the program is done; its interpreter's teardown is not needed

    def _drain_output(self) -> None:
        """Deliver what the pipes hold: everything written before the end was reported."""
        for fd, reader in list(self._output_fds.items()):
            while fd in self._output_fds and not self._output.paused:
                before = self._output.total
                reader()
                if self._output.total == before:
                    break

    def _on_exit(self, done: asyncio.Future[None]) -> None:
        self._unwatch(self._pidfd)
        self._exited = True
        self._check_done(done)

    def _check_done(self, done: asyncio.Future[None]) -> None:
        if self._exited and not self._output_fds and not done.done():
            done.set_result(None)

    def _on_timeout(self, done: asyncio.Future[None]) -> None:
        if not done.done():
            self._timed_out = True
            self.kill()

    # -- end ----------------------------------------------------------------------------------

    def _finish(self) -> None:
        proc = self._proc
        assert proc is not None
        _, status, _ = os.wait4(proc.pid, 0)
        self._exited = True
        self._on_status()
        usage = self._reap_inner()
        for stream in (proc.stdout, proc.stderr, proc.stdin):
            if stream is not None:
                with contextlib.suppress(OSError):
                    stream.close()
        os.close(self._pidfd)
        os.close(self._status_read)
        if self._end_fd >= 0:
            os.close(self._end_fd)
            self._end_fd = -1
        proc.returncode = os.waitstatus_to_exitcode(status)
        self.outcome = StepOutcome(
            monitor_status=proc.returncode,
            program_status=(
                self._reported_status
                if self._reported_status is not None and not self._killed
                else json_status_field(bytes(self._status), "exit-code")
            ),
            killed_by_us=self._killed,
            timed_out=self._timed_out,
            output_capped=self._output.capped,
            stdout=bytes(self._output.captured["stdout"]),
            stderr=bytes(self._output.captured["stderr"]),
            usage=usage,
            duration_ms=(time.monotonic() - self._started) * 1000,
        )

    def _reap_inner(self) -> resource.struct_rusage | None:
        """Reap bwrap's PID 1, re-parented to this (subreaper) process when the monitor left."""
        if self._inner_pid is None:
            return None
        try:
            _, _, usage = os.wait4(self._inner_pid, 0)
        except ChildProcessError:  # not our child: this process is no subreaper
            return None
        return usage

    async def _feed_stdin(self, source: bytes | AsyncIterator[bytes]) -> None:
        """Write stdin without blocking the loop; a program that stops reading is fine."""
        assert self._proc is not None and self._proc.stdin is not None
        fd = self._proc.stdin.fileno()
        os.set_blocking(fd, False)
        try:
            if isinstance(source, bytes):
                await _write_all(fd, source)
            else:
                async for chunk in source:
                    await _write_all(fd, chunk)
        except (BrokenPipeError, ConnectionResetError):
            pass
        finally:
            with contextlib.suppress(OSError):
                self._proc.stdin.close()


async def _write_all(fd: int, data: bytes) -> None:
    loop = asyncio.get_running_loop()
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
