"""The docker backend: each step runs in a fresh container of the plugin's image.

Same interface, events and results as the native backend. Each container: no network
(``network_mode='none'``) unless allowed, memory = memory + swap limit, pids limit, one CPU,
CPU-time / file-size / open-files rlimits, read-only root, size-capped tmpfs ``/work`` and
``/tmp``, every capability dropped, no-new-privileges, uid 65534, the plugin's seccomp
profile (else the engine's default). Containers are always removed: at the end, on a limit,
on cancellation and on errors.

The program's files reach the tmpfs work dir through the container's stdin, before the
program's own input: a small ``/bin/sh`` launcher copies each file with ``head -c SIZE``
(which reads exactly SIZE bytes) and then runs the command, whose exit status it returns
(128 + N for death by signal N, as bubblewrap does). This needs nothing from the engine but
the Docker API, so it works the same against a remote engine and against Podman. A compile
step writes to a per-execution volume mounted at /build, read-only in the run step.

Output is read by a thread attached to the container and handed to the event loop; the wall
clock is the event loop's own timer, never a blocking wait (a thread iterating a log stream
cannot also enforce a timeout).
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import contextlib
import dataclasses
import functools
import json
import logging
import math
import os
import signal as signals
import socket
import tempfile
import threading
import time
import uuid
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from docker.errors import APIError, DockerException, ImageNotFound, NotFound
from docker.types import Mount, Ulimit
from requests.exceptions import RequestException

from forgeai_ls.errors import EngineRefusedError, ImageMissingError
from forgeai_ls.sandbox.docker_engine import Engine, connect
from forgeai_ls.sandbox.events import (
    ExecutionEvent,
    OutputChunk,
    StepFinished,
)
from forgeai_ls.sandbox.launcher import (
    USAGE_MARKER,
    files_preamble,
    parse_usage,
    shell_launcher_argv,
)
from forgeai_ls.sandbox.limit_inference import StepEvidence, infer_limits
from forgeai_ls.sandbox.limits import ResourceLimits
from forgeai_ls.sandbox.request import BUILD_DIR, WORK_DIR, SandboxRequest, StepSpec
from forgeai_ls.sandbox.result import (
    LIMIT_PRIORITY,
    ExecutionResult,
    LimitKind,
    StepName,
    StepResult,
)
from forgeai_ls.sandbox.steps import (
    BASE_ENV,
    BASE_PATH,
    StdinSource,
    StepEvents,
    compile_then_run,
    final_result,
    signal_from_status,
)
from forgeai_ls.sandbox.supervisor_link import SandboxChannel, guard_container

log = logging.getLogger(__name__)

SANDBOX_USER = "65534:65534"
RUN_LABEL = "org.forgeai.run"
OWNER_LABEL = "org.forgeai.owner"
"""``<boot id>:<pid>`` of the ForgeAI process that made the container or volume."""


@dataclass
class _StepState:
    stdout: bytearray = field(default_factory=bytearray)
    stderr: bytearray = field(default_factory=bytearray)
    output_bytes: int = 0
    timed_out: bool = False
    output_capped: bool = False
    killed: bool = False
    held: bytearray | None = None
    """stderr from the first byte that may start the launcher's usage line, kept back."""
    usage: ContainerUsage | None = None


@dataclass(frozen=True, slots=True)
class _Prepared:
    """A created, attached, not yet started container."""

    container_id: str
    stdin: socket.socket
    frames: Any
    guard: SandboxChannel
    """The supervisor removes the container if ForgeAI dies before it does."""
    started: bool = False
    """Pooled containers are started ahead: the launcher waits on stdin for the files."""


class _ContainerPool:
    """Containers created, attached and started ahead of time (each one's launcher waiting on
    stdin for its program), per exact configuration (image, command, limits, network,
    seccomp): a run never gets a container made for other settings. Each is used once and
    replaced in the background."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._idle: dict[str, collections.deque[_Prepared]] = collections.defaultdict(
            collections.deque
        )
        self._lock = threading.Lock()
        self._closed = False
        self._fillers = concurrent.futures.ThreadPoolExecutor(1, "forgeai-docker-pool")

    def refill(self, engine: Engine, key: str, config: dict[str, Any]) -> None:
        """Top up ``key`` in the background."""
        with contextlib.suppress(RuntimeError):  # closed meanwhile
            self._fillers.submit(self.fill, engine, key, config)

    def take(self, key: str) -> _Prepared | None:
        with self._lock:
            idle = self._idle.get(key)
            return idle.popleft() if idle else None

    def fill(self, engine: Engine, key: str, config: dict[str, Any]) -> None:
        while True:
            with self._lock:
                if len(self._idle[key]) >= self.size:
                    return
            try:
                prepared = _prepare(engine, config)
                _start(engine, prepared.container_id)
            except Exception:
                return
            with self._lock:
                closed = self._closed
                if not closed:
                    self._idle[key].append(dataclasses.replace(prepared, started=True))
            if closed:  # the backend was closed while this one was being made
                _discard(engine, prepared)
                return

    def drain(self, engine: Engine) -> None:
        with self._lock:
            self._closed = True
        self._fillers.shutdown(wait=True)  # a container being made now is discarded
        with self._lock:
            idle = [p for queue in self._idle.values() for p in queue]
            self._idle.clear()
        for prepared in idle:
            _discard(engine, prepared)


def _discard(engine: Engine, prepared: _Prepared) -> None:
    prepared.stdin.close()
    prepared.frames.close()
    if _remove(engine, prepared.container_id):
        prepared.guard.release()


def _pool_key(config: dict[str, Any]) -> str:
    return json.dumps(
        {k: v for k, v in config.items() if k != "labels"}, sort_keys=True, default=str
    )


class DockerBackend:
    """Runs sandbox requests in containers through the Docker Engine API (or Podman's)."""

    name = "docker"

    def __init__(
        self, base_url: str | None = None, *, cpus: float = 1.0, pool_size: int = 0
    ) -> None:
        self.base_url = base_url
        self.cpus = cpus
        self._engine: Engine | None = None
        self._lock = threading.Lock()
        self.pool_size = pool_size
        self._pool = _ContainerPool(pool_size) if pool_size > 0 else None

    def close(self) -> None:
        """Remove the pooled containers (the ones in use are removed by their runs)."""
        if self._pool is not None and self._engine is not None:
            self._pool.drain(self._engine)

    def engine(self) -> Engine:
        """One connection per backend, reused by every run (the seed's connection reuse).
        On connecting, what dead ForgeAI processes of this machine left is removed."""
        with self._lock:
            if self._engine is None:
                self._engine = connect(self.base_url)
                sweep_dead_owners(self._engine)
            return self._engine

    async def run(self, request: SandboxRequest) -> ExecutionResult:
        return await final_result(self.stream(request))

    async def stream(
        self, request: SandboxRequest, *, stdin_stream: AsyncIterator[bytes] | None = None
    ) -> AsyncGenerator[ExecutionEvent, None]:
        engine = await asyncio.to_thread(self.engine)
        if request.image is None:
            raise ImageMissingError(
                "the plugin declares no container_image; the docker backend needs one",
                hint="use the native backend for this language",
            )
        volumes: list[str] = []  # the compile step's output, mounted into the run step

        async def run_step(spec: StepSpec, step: StepName, stdin: StdinSource) -> StepEvents:
            if step is StepName.COMPILE:
                volumes.append(await asyncio.to_thread(_create_volume, engine))
            volume = volumes[0] if volumes else None
            steps = self._step_events(engine, request, spec, step, volume, stdin)
            async with contextlib.aclosing(steps):
                async for event in steps:
                    yield event

        stdin = stdin_stream if stdin_stream is not None else request.stdin
        events = compile_then_run(request, stdin, run_step)
        try:
            async with contextlib.aclosing(events):
                async for event in events:
                    yield event
        finally:
            for volume in volumes:
                _remove_volume(engine, volume)

    # -- one step -------------------------------------------------------------------------

    def _container_config(
        self,
        engine: Engine,
        request: SandboxRequest,
        spec: StepSpec,
        step: StepName,
        volume: str | None,
        profile_path: str | None,
    ) -> dict[str, Any]:
        limits = spec.limits
        cpu = max(1, math.ceil(limits.cpu_time))
        security = ["no-new-privileges"]
        if request.seccomp_profile is not None:
            security.append(f"seccomp={profile_path or request.seccomp_profile}")
        # The engines copy the image's mount point (mode included) onto the tmpfs: owning it
        # is what makes it writable for the sandbox user whatever the image says. Docker takes
        # uid=/gid=; Podman refuses them and ignores mode=, but chowns to the user with U.
        owner = ",U" if engine.podman else ",uid=65534,gid=65534"
        tmpfs_options = f"rw,exec,nosuid,nodev,size={limits.disk_bytes}{owner}"
        mounts = (
            [Mount(BUILD_DIR, volume, type="volume", read_only=step is StepName.RUN)]
            if volume
            else []
        )
        host_config = engine.client.api.create_host_config(
            network_mode="host" if limits.network else "none",
            mem_limit=limits.memory_bytes,
            memswap_limit=limits.memory_bytes,
            pids_limit=limits.processes + 1,  # + the launcher shell
            nano_cpus=int(self.cpus * 1e9),
            ulimits=[
                Ulimit(name="cpu", soft=cpu, hard=cpu + 1),
                Ulimit(name="fsize", soft=limits.file_size_bytes, hard=limits.file_size_bytes),
                Ulimit(name="nofile", soft=limits.open_files, hard=limits.open_files),
                # pids_limit is the real limit. Podman wants nproc explicit (and refuses one
                # above its own, 32768); uid 65534's count spans every container on the host.
                Ulimit(name="nproc", soft=4096, hard=4096),
            ],
            read_only=True,
            tmpfs={WORK_DIR: tmpfs_options, "/tmp": tmpfs_options},
            mounts=mounts,
            cap_drop=["ALL"],
            security_opt=security,
        )
        environment = {"PATH": BASE_PATH, **BASE_ENV, **spec.env}
        return {
            "image": request.image,
            # `env -i`: the program gets exactly ForgeAI's environment, not what the engine
            # adds (HOSTNAME; Podman's container= and TERM=) nor the shell's PWD.
            "command": shell_launcher_argv(
                (
                    "env",
                    "-i",
                    *(f"{key}={value}" for key, value in environment.items()),
                    *spec.argv,
                ),
                report_usage=True,
            ),
            "user": SANDBOX_USER,
            "working_dir": WORK_DIR,
            "environment": environment,
            "hostname": "sandbox",
            "stdin_open": True,  # not detached: StdinOnce, stdin ends when we close it
            "labels": {RUN_LABEL: uuid.uuid4().hex, OWNER_LABEL: owner_label()},
            "host_config": host_config,
        }

    async def _step_events(
        self,
        engine: Engine,
        request: SandboxRequest,
        spec: StepSpec,
        step: StepName,
        volume: str | None,
        stdin: StdinSource,
    ) -> AsyncGenerator[OutputChunk | StepFinished, None]:
        limits = spec.limits
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[tuple[str, bytes] | None] = asyncio.Queue()
        state = _StepState()
        profile_file = None
        if request.seccomp_profile is not None and engine.podman:
            profile_file = _profile_file(request.seccomp_profile)
        config = self._container_config(engine, request, spec, step, volume, profile_file)
        container_id: str | None = None
        guard: SandboxChannel | None = None
        try:
            prepared = self._pool.take(_pool_key(config)) if self._pool else None
            if prepared is None:
                prepared = await asyncio.to_thread(_prepare, engine, config)
            if self._pool is not None:
                self._pool.refill(engine, _pool_key(config), config)
            container_id, guard = prepared.container_id, prepared.guard
            stdin_socket, frames = prepared.stdin, prepared.frames
            started = time.monotonic()
            if not prepared.started:
                await asyncio.to_thread(_start, engine, container_id)
            reader = threading.Thread(target=_read_output, args=(frames, loop, queue), daemon=True)
            reader.start()
            files = {**request.files, **request.readonly_files}  # a container's own copy
            feeder = asyncio.create_task(_feed(stdin_socket, files, stdin))
            waiter = _in_daemon_thread(loop, _wait, engine, container_id)

            def kill(reason: Callable[[], None]) -> None:
                reason()
                if not state.killed:
                    state.killed = True
                    threading.Thread(target=_kill, args=(engine, container_id), daemon=True).start()
                    # An engine that never reports the end (seen with Podman 4.3) must not
                    # hold the run: after a grace period its streams are closed.
                    loop.call_later(_KILL_GRACE_SECONDS, frames.close)

            timer = loop.call_later(
                limits.wall_timeout, kill, lambda: setattr(state, "timed_out", True)
            )
            try:
                async for stream, received in _until_exit(queue, waiter, frames):
                    data = _hold_usage(state, received) if stream == "stderr" else received
                    room = limits.output_bytes - state.output_bytes
                    if len(data) > room:
                        # Also when the output so far filled the limit exactly (room 0):
                        # any byte beyond it is over the limit.
                        data = data[:room]
                        kill(lambda: setattr(state, "output_capped", True))
                    if not data:
                        continue
                    state.output_bytes += len(data)
                    (state.stdout if stream == "stdout" else state.stderr).extend(data)
                    yield OutputChunk(step=step, stream=stream, data=data)  # type: ignore[arg-type]
                try:
                    status = await asyncio.wait_for(
                        asyncio.shield(waiter), _KILL_GRACE_SECONDS if state.killed else None
                    )
                except TimeoutError:
                    status = 128 + signals.SIGKILL  # killed; the engine did not confirm it
                if (rest := _release_usage(state)) and not state.output_capped:
                    rest = rest[: max(0, limits.output_bytes - state.output_bytes)]
                    state.output_bytes += len(rest)
                    state.stderr.extend(rest)
                    yield OutputChunk(step=step, stream="stderr", data=rest)
            finally:
                timer.cancel()
                feeder.cancel()
                waiter.cancel()
                frames.close()
                with contextlib.suppress(BaseException):
                    await feeder
            duration_ms = (time.monotonic() - started) * 1000
            oom = await asyncio.to_thread(_oom_killed, engine, container_id)
        finally:
            if container_id is not None and _remove(engine, container_id) and guard is not None:
                guard.release()
            if profile_file is not None:
                os.unlink(profile_file)
        yield StepFinished(_step_result(step, limits, state, status, oom, engine, duration_ms))


@dataclass(frozen=True, slots=True)
class ContainerUsage:
    """What the container's own cgroup says, as the launcher reported it after the program."""

    cpu_time_ms: float | None
    peak_memory_bytes: int | None
    forks_refused: bool

    @classmethod
    def parse(cls, pairs: Mapping[str, str]) -> ContainerUsage:
        cpu: float | None = None
        if "cpu.stat" in pairs:  # cgroup v2: usage_usec
            fields = dict(line.split() for line in pairs["cpu.stat"].splitlines() if " " in line)
            cpu = int(fields["usage_usec"]) / 1000 if "usage_usec" in fields else None
        for name in ("cpuacct/cpuacct.usage", "cpuacct.usage"):  # v1: nanoseconds
            if cpu is None and pairs.get(name, "").isdigit():
                cpu = int(pairs[name]) / 1e6
        peak: int | None = None
        for name in (
            "memory.peak",
            "memory/memory.max_usage_in_bytes",
            "memory.max_usage_in_bytes",
        ):
            if peak is None and pairs.get(name, "").isdigit():
                peak = int(pairs[name])
        refused = False
        for name in ("pids.events", "pids/pids.events"):
            for line in pairs.get(name, "").splitlines():
                key, _, value = line.partition(" ")
                refused = refused or (key == "max" and value.strip() not in ("", "0"))
        return cls(cpu, peak, refused)


def _hold_usage(state: _StepState, data: bytes) -> bytes:
    """What of a stderr chunk may go out now: everything before a byte that could start the
    launcher's usage line; from there on, stderr is held until the end."""
    if state.held is not None:
        state.held.extend(data)
        return b""
    start = data.find(USAGE_MARKER[:1])
    if start < 0:
        return data
    state.held = bytearray(data[start:])
    return data[:start]


def _release_usage(state: _StepState) -> bytes:
    """At the end: take the usage line off the held stderr; the rest is the program's."""
    held, state.held = bytes(state.held or b""), None
    start = held.rfind(USAGE_MARKER)
    if start < 0 or not held.endswith(b"\n") or b"\n" in held[start:-1]:
        return held
    state.usage = ContainerUsage.parse(parse_usage(held[start:-1]))
    return held[:start]


# -- engine calls (blocking; run in threads) -------------------------------------------------


def _create(engine: Engine, config: dict[str, Any]) -> str:
    try:
        created = engine.client.api.create_container(**config)
    except ImageNotFound:
        raise ImageMissingError(
            f"image {config['image']} is not in the container engine at {engine.url}",
            hint="build it with 'forgeai image build PLUGIN' (images are never pulled)",
        ) from None
    except APIError as exc:
        raise EngineRefusedError(
            f"the engine at {engine.url} refused to create the container: {exc.explanation or exc}",
            hint="check the engine's logs",
        ) from None
    return str(created["Id"])


def _prepare(engine: Engine, config: dict[str, Any]) -> _Prepared:
    """Create the container and attach to it before it starts (as `docker run` does):
    attaching to a container that has already exited can leave the stream open forever."""
    container_id = _create(engine, config)
    try:
        guard = guard_container(engine.url, container_id)
    except BaseException:
        _remove(engine, container_id)
        raise
    try:
        stdin = _attach_stdin(engine, container_id)
        frames = _attach_output(engine, container_id)
    except BaseException:
        if _remove(engine, container_id):
            guard.release()
        raise
    return _Prepared(container_id, stdin, frames, guard)


def _start(engine: Engine, container_id: str) -> None:
    try:
        engine.client.api.start(container_id)
    except APIError as exc:
        raise EngineRefusedError(
            f"the engine at {engine.url} refused to start the container: {exc.explanation or exc}",
            hint="check the engine's logs (seccomp, cgroups, storage)",
        ) from None


def _attach_stdin(engine: Engine, container_id: str) -> socket.socket:
    attached = engine.client.api.attach_socket(container_id, params={"stdin": 1, "stream": 1})
    raw = getattr(attached, "_sock", attached)
    assert isinstance(raw, socket.socket)
    return raw


async def _feed(sock: socket.socket, files: Mapping[str, bytes], stdin: StdinSource) -> None:
    """Files first (the launcher reads them), then the program's stdin, then end of input."""
    try:
        await asyncio.to_thread(sock.sendall, files_preamble(files))
        if isinstance(stdin, bytes):
            await asyncio.to_thread(sock.sendall, stdin)
        elif stdin is not None:
            async for chunk in stdin:
                await asyncio.to_thread(sock.sendall, chunk)
    except OSError:
        pass  # the program exited without reading everything
    finally:
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_WR)
        sock.close()


def _attach_output(engine: Engine, container_id: str) -> Any:
    return engine.client.api.attach(
        container_id, stdout=True, stderr=True, stream=True, logs=False, demux=True
    )


def _read_output(
    frames: Any,
    loop: asyncio.AbstractEventLoop,
    queue: asyncio.Queue[tuple[str, bytes] | None],
) -> None:
    try:
        for out, err in frames:
            if out:
                loop.call_soon_threadsafe(queue.put_nowait, ("stdout", out))
            if err:
                loop.call_soon_threadsafe(queue.put_nowait, ("stderr", err))
    except (DockerException, OSError, ValueError):
        pass  # the stream was closed: the waiter reports how the container ended
    finally:
        with contextlib.suppress(RuntimeError):  # the loop closed after a cancellation
            loop.call_soon_threadsafe(queue.put_nowait, None)


_KILL_GRACE_SECONDS = 10.0
"""After ForgeAI kills a container, how long the engine may take to report its end."""
_DRAIN_SECONDS = 2.0
"""After the container exits, how long its output stream may take to deliver the rest."""


async def _until_exit(
    queue: asyncio.Queue[tuple[str, bytes] | None], waiter: asyncio.Future[int], frames: Any
) -> AsyncGenerator[tuple[str, bytes], None]:
    """Output items until the stream ends; once the container has exited, a stream that
    stays open is closed after a short drain (the engine sometimes keeps it open)."""
    while True:
        getter: asyncio.Future[tuple[str, bytes] | None] = asyncio.ensure_future(queue.get())
        either: list[asyncio.Future[Any]] = [getter, waiter]
        await asyncio.wait(either, return_when=asyncio.FIRST_COMPLETED)
        if not getter.done():
            try:
                item = await asyncio.wait_for(getter, _DRAIN_SECONDS)
            except TimeoutError:
                frames.close()
                return
        else:
            item = getter.result()
        if item is None:
            return
        yield item


def _in_daemon_thread(
    loop: asyncio.AbstractEventLoop, function: Callable[..., int], *args: Any
) -> asyncio.Future[int]:
    """Run a call that may never return (an engine that does not report an exit) where it
    cannot keep the event loop's executor, or the process, from shutting down."""
    future: asyncio.Future[int] = loop.create_future()

    def settle(result: int | None, error: BaseException | None) -> None:
        if future.done():
            return
        if error is not None:
            future.set_exception(error)
        else:
            assert result is not None
            future.set_result(result)

    def target() -> None:
        try:
            result = function(*args)
        except BaseException as exc:  # handed to the awaiting coroutine
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(settle, None, exc)
        else:
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(settle, result, None)

    threading.Thread(target=target, daemon=True, name="forgeai-docker-wait").start()
    return future


def _wait(engine: Engine, container_id: str) -> int:
    return int(engine.client.api.wait(container_id)["StatusCode"])


def _kill(engine: Engine, container_id: str) -> None:
    with contextlib.suppress(DockerException):
        engine.client.api.kill(container_id)


def _oom_killed(engine: Engine, container_id: str) -> bool:
    try:
        return bool(engine.client.api.inspect_container(container_id)["State"].get("OOMKilled"))
    except (DockerException, RequestException):
        return False


def _remove(engine: Engine, container_id: str) -> bool:
    """Kill and delete; synchronous, so it completes even when the caller was cancelled.
    Bounded by the client's timeout: an engine that stops answering leaves the container
    (labelled, and still in the supervisor's care) rather than the run hanging. True when
    the container is gone."""
    try:
        engine.client.api.remove_container(container_id, force=True, v=True)
    except NotFound:
        pass
    except APIError as exc:
        if "already in progress" not in str(exc):
            raise
    except RequestException:
        log.warning("the engine did not remove container %s in time", container_id[:12])
        return False
    return True


@functools.cache
def _boot_id() -> str:
    try:
        with open("/proc/sys/kernel/random/boot_id") as boot:
            return boot.read().strip()
    except OSError:
        return "unknown-boot"


def owner_label() -> str:
    return f"{_boot_id()}:{os.getpid()}"


def _dead_owner(labels: Mapping[str, str] | None) -> bool:
    """Made by a ForgeAI process of this boot of this machine that is gone."""
    boot, _, pid = (labels or {}).get(OWNER_LABEL, "").rpartition(":")
    if boot != _boot_id() or not pid.isdigit() or int(pid) == os.getpid():
        return False
    return not os.path.exists(f"/proc/{pid}")


def sweep_dead_owners(engine: Engine) -> int:
    """Remove containers and volumes whose ForgeAI process died before removing them (its
    supervisor too, or the engine did not answer it); returns how many."""
    removed = 0
    try:
        containers = engine.client.api.containers(all=True, filters={"label": OWNER_LABEL})
        for container in containers:
            if _dead_owner(container.get("Labels")) and _remove(engine, container["Id"]):
                removed += 1
        listing = engine.client.api.volumes(filters={"label": OWNER_LABEL}) or {}
        for volume in listing.get("Volumes") or []:
            if _dead_owner(volume.get("Labels")):
                _remove_volume(engine, volume["Name"])
                removed += 1
    except (DockerException, RequestException) as exc:
        log.warning("could not look for containers left by dead ForgeAI processes: %s", exc)
    return removed


def _create_volume(engine: Engine) -> str:
    name = f"forgeai-build-{uuid.uuid4().hex[:16]}"
    engine.client.volumes.create(name=name, labels={RUN_LABEL: name, OWNER_LABEL: owner_label()})
    return name


def _remove_volume(engine: Engine, name: str) -> None:
    with contextlib.suppress(NotFound):
        engine.client.api.remove_volume(name, force=True)


def _profile_file(profile: str) -> str:
    """Podman takes a seccomp profile's path, not its JSON text."""
    fd, path = tempfile.mkstemp(prefix="forgeai-seccomp-", suffix=".json")
    with os.fdopen(fd, "w") as out:
        out.write(profile)
    return path


def _step_result(
    step: StepName,
    limits: ResourceLimits,
    state: _StepState,
    status: int,
    oom_killed: bool,
    engine: Engine,
    duration_ms: float,
) -> StepResult:
    exit_code: int | None
    signal: int | None
    if state.timed_out or state.output_capped:
        exit_code, signal = None, int(signals.SIGKILL)
    else:
        exit_code, signal = signal_from_status(status)
    stderr = bytes(state.stderr)
    usage = state.usage
    cpu_ms = usage.cpu_time_ms if usage is not None else None
    evidence = StepEvidence(
        signal=signal,
        failed=exit_code != 0,
        timed_out=state.timed_out,
        output_capped=state.output_capped,
        cpu_time_ms=cpu_ms,
        stderr=stderr,
        cgroup=None,
    )
    hit = set(infer_limits(evidence, limits))
    if usage is not None and usage.forks_refused:
        hit.add(LimitKind.PROCESSES)  # the pids cgroup refused a fork: exact, as natively
    # Podman does not report OOMKilled; a SIGKILL we did not send is the memory limit there.
    if oom_killed or (engine.podman and signal == signals.SIGKILL and not state.killed):
        hit.add(LimitKind.MEMORY)
    limits_hit = tuple(kind for kind in LIMIT_PRIORITY if kind in hit)
    return StepResult(
        step=step,
        exit_code=exit_code,
        signal=signal,
        stdout=bytes(state.stdout),
        stderr=stderr,
        timed_out=state.timed_out,
        limit=limits_hit[0] if limits_hit else None,
        limits_hit=limits_hit,
        truncated=state.output_capped,
        duration_ms=duration_ms,
        cpu_time_ms=cpu_ms,
        peak_memory_bytes=usage.peak_memory_bytes if usage is not None else None,
    )
