"""One running bubblewrap sandbox: its output, stdin, limits in time and output, and its end.

The sandbox is started and ended by the supervisor (see ``supervisor``); everything here runs
on the event loop's thread with non-blocking descriptors watched by the loop (the program's
stdout and stderr, bwrap's JSON status pipe and the sandbox's channel to the supervisor, which
reports its end); no helper threads. The output cap and the wall clock are enforced here by
having the supervisor kill the sandbox; the supervisor also holds a wall clock of its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import math
import os
import time
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from forgeai_ls.errors import SandboxSetupError
from forgeai_ls.sandbox.child_setup import ChildSetup
from forgeai_ls.sandbox.events import OutputChunk, StreamName
from forgeai_ls.sandbox.limits import ResourceLimits
from forgeai_ls.sandbox.result import StepName
from forgeai_ls.sandbox.steps import StdinSource
from forgeai_ls.sandbox.supervisor_link import SandboxChannel, spawn

_READ_SIZE = 64 * 1024
_QUEUE_HIGH_BYTES = 1024 * 1024
"""Output read but not yet taken by the consumer; above this, reading pauses (the program's
writes then block), so a slow consumer never makes ForgeAI hold a flood in memory."""
_QUEUE_LOW_BYTES = 256 * 1024
_BWRAP_ERROR_PREFIX = b"bwrap: "
BACKSTOP_GRACE_SECONDS = 2.0
COLLECTED_BYTES_CAP = 64 * 1024 * 1024 + 1024 * 1024
"""What is read of a collection at most: its data cap and room for the frames' headers."""


@dataclass(frozen=True, slots=True)
class Usage:
    cpu_seconds: float
    max_rss_kib: int


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
    usage: Usage
    """Resources used by every process of the run."""
    duration_ms: float
    collected: bytes = b""
    """What the supervisor read from the output directory once the sandbox ended (frames:
    see ``artifacts``), at most ``COLLECTED_BYTES_CAP``."""


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
        self._channel: SandboxChannel | None = None
        self._stdin_fd = -1
        self._stdout_fd = -1
        self._stderr_fd = -1
        self._inner_pid: int | None = None
        self._exited = False
        self._killed = False
        self._timed_out = False
        self._started = 0.0
        self._end_fd = -1
        self._end_text = bytearray()
        self._reported_status: int | None = None
        self._reported_cpu = 0.0
        self._collect_fd = -1
        self._collected = bytearray()
        self.outcome: StepOutcome | None = None

    # -- start --------------------------------------------------------------------------------

    def start(
        self,
        argv: Sequence[str],
        pass_fds: Sequence[int],
        setup: ChildSetup,
        cleanup: Sequence[tuple[str, str]] = (),
        collect: Mapping[str, Any] | None = None,
    ) -> None:
        """Have the supervisor start bwrap; the descriptors in ``pass_fds`` (kept at their
        numbers in the sandbox) are closed here once it has them. ``cleanup``: what the
        supervisor removes if ForgeAI dies before the sandbox ends; ``collect``: the output
        directory it reads once the sandbox has ended (``outcome.collected``)."""
        self._started = time.monotonic()
        ends: dict[int, int] = {}
        collect_write = -1
        try:
            if collect is not None:
                self._collect_fd, collect_write = os.pipe2(os.O_CLOEXEC)
                os.set_blocking(self._collect_fd, False)
            if self._stdin is not None:
                stdin_read, self._stdin_fd = os.pipe2(os.O_CLOEXEC)
                ends[0] = stdin_read
            self._stdout_fd, ends[1] = os.pipe2(os.O_CLOEXEC)
            self._stderr_fd, ends[2] = os.pipe2(os.O_CLOEXEC)
            targets = {**ends, self.status_fd: self.status_fd, **{fd: fd for fd in pass_fds}}
            self._channel = spawn(
                argv,
                targets,
                setup.wire(),
                cleanup,
                (collect, collect_write) if collect is not None else None,
            )
        except BaseException:
            os.close(self._status_read)
            self._status_read = -1
            for fd in (self._stdin_fd, self._stdout_fd, self._stderr_fd, self._collect_fd):
                if fd >= 0:
                    os.close(fd)
            self._stdin_fd = self._stdout_fd = self._stderr_fd = self._collect_fd = -1
            raise
        finally:
            for fd in (*ends.values(), self.status_fd, *pass_fds):
                os.close(fd)
            if collect_write >= 0:
                os.close(collect_write)

    @property
    def pid(self) -> int | None:
        """The bwrap monitor's pid."""
        return self._channel.pid if self._channel is not None else None

    @property
    def inner_pid(self) -> int | None:
        """The sandbox's PID 1 (as the host sees it), once bwrap has reported it."""
        if self.outcome is None and self._status_read >= 0:
            self._on_status()
        return self._inner_pid

    @property
    def ended_fd(self) -> int:
        """A descriptor that becomes readable when the sandbox has ended."""
        assert self._channel is not None
        return self._channel.fileno()

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
        if self._channel is None or self.outcome is not None:
            return
        self.kill()  # the supervisor finds PID 1 itself
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
        assert self._channel is not None
        loop = asyncio.get_running_loop()
        done = loop.create_future()
        done.add_done_callback(lambda _f: self._queue.put_nowait(None))
        streams: tuple[tuple[int, StreamName], ...] = (
            (self._stdout_fd, "stdout"),
            (self._stderr_fd, "stderr"),
        )
        for fd, name in streams:
            os.set_blocking(fd, False)
            self._output_fds[fd] = functools.partial(self._on_output, fd, name, done)
        for fd, reader in self._output_fds.items():
            self._watch(fd, reader)
        self._watch(self._status_read, self._on_status)
        self._watch(self.ended_fd, functools.partial(self._on_exit, done))
        if self._end_fd >= 0:
            self._watch(self._end_fd, self._on_end_report)
        if self._collect_fd >= 0:
            self._watch(self._collect_fd, functools.partial(self._on_collected, done))
        # The supervisor's own wall clock, a little later than ForgeAI's: it holds when this
        # process is too busy (or too stuck) to end the run itself.
        self._channel.backstop(self.limits.wall_timeout + BACKSTOP_GRACE_SECONDS)
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
        assert self._channel is not None
        self._channel.kill()

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
            status, _, cpu = text[1 : text.index(b"\n")].partition(b" ")
            try:
                self._reported_status = int(status)
                reported_cpu = float(cpu or 0)
                if math.isfinite(reported_cpu) and reported_cpu > 0:
                    self._reported_cpu = reported_cpu
            except ValueError:
                return
            self._drain_output()
            self._stop()  # the program is done; its interpreter's teardown is not needed

    def _on_collected(self, done: asyncio.Future[None]) -> None:
        try:
            data = os.read(self._collect_fd, _READ_SIZE)
        except BlockingIOError:
            return
        if data and len(self._collected) < COLLECTED_BYTES_CAP:
            self._collected += data[: COLLECTED_BYTES_CAP - len(self._collected)]
            return
        if data:
            return  # past the cap: read and dropped, so the collector never blocks
        self._unwatch(self._collect_fd)
        os.close(self._collect_fd)
        self._collect_fd = -1
        self._check_done(done)

    def _drain_output(self) -> None:
        """Deliver what the pipes hold: everything written before the end was reported."""
        for fd, reader in list(self._output_fds.items()):
            while fd in self._output_fds and not self._output.paused:
                before = self._output.total
                reader()
                if self._output.total == before:
                    break

    def _on_exit(self, done: asyncio.Future[None]) -> None:
        assert self._channel is not None
        if self._channel.read_end(block=False) is None:
            return
        self._unwatch(self._channel.fileno())
        self._exited = True
        self._check_done(done)

    def _check_done(self, done: asyncio.Future[None]) -> None:
        collecting = self._collect_fd >= 0
        if self._exited and not self._output_fds and not collecting and not done.done():
            done.set_result(None)

    def _on_timeout(self, done: asyncio.Future[None]) -> None:
        if not done.done():
            self._timed_out = True
            self.kill()

    # -- end ----------------------------------------------------------------------------------

    def _finish(self) -> None:
        channel = self._channel
        assert channel is not None
        if self._collect_fd >= 0:  # left early (cancelled): the output is not wanted, and a
            with contextlib.suppress(OSError):  # collector must not wait on a full pipe
                os.close(self._collect_fd)
            self._collect_fd = -1
            self._collected.clear()
        end = channel.read_end(block=True)
        assert end is not None
        channel.close()
        self._exited = True
        self._on_status()
        for fd in (self._stdout_fd, self._stderr_fd, self._stdin_fd, self._status_read):
            if fd >= 0:
                with contextlib.suppress(OSError):
                    os.close(fd)
        self._stdout_fd = self._stderr_fd = self._stdin_fd = -1
        if self._end_fd >= 0:
            os.close(self._end_fd)
            self._end_fd = -1
        self.outcome = StepOutcome(
            monitor_status=os.waitstatus_to_exitcode(end.status),
            program_status=(
                self._reported_status
                if self._reported_status is not None and not self._killed
                else json_status_field(bytes(self._status), "exit-code")
            ),
            # The supervisor's backstop ended it: a timeout, though this process (stopped,
            # or too busy) saw its own timer fire only after the sandbox's end.
            killed_by_us=self._killed or end.deadline_passed,
            timed_out=self._timed_out or end.deadline_passed,
            output_capped=self._output.capped,
            stdout=bytes(self._output.captured["stdout"]),
            stderr=bytes(self._output.captured["stderr"]),
            # A warm Python slot's interpreter is killed once it reported the end: its own
            # CPU time came with the report (the larger figure; never both counted).
            usage=Usage(max(end.cpu_seconds, self._reported_cpu), end.max_rss_kib),
            duration_ms=(time.monotonic() - self._started) * 1000,
            collected=bytes(self._collected),
        )

    async def _feed_stdin(self, source: bytes | AsyncIterator[bytes]) -> None:
        """Write stdin without blocking the loop; a program that stops reading is fine."""
        fd = self._stdin_fd
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
            if self._stdin_fd >= 0:
                os.close(self._stdin_fd)
                self._stdin_fd = -1


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
