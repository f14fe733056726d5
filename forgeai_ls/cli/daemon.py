"""The user's ForgeAI daemon: ``forgeai run`` served from verified plugins and warm sandboxes.

Started in the background (``daemon_client.spawn_daemon``) with the environment and working
directory of the run that found none, it computes the same identity as that client and
listens on the socket it names (mode 0600, in a 0700 directory, peers checked to be this
user). One event loop serves every client: a run uses the client's own descriptors, the same
code as an in-process run (``run_execution``) and the same native backend, with warm pools
and the compile cache, as the language server. A client's Ctrl-C, SIGTERM or SIGHUP cancels
its run; a client that disappears (its socket closes) has its run stopped at once.

The daemon declines (and the client runs in-process) what it would not run identically: a
different identity, ``--backend docker``, ``--no-compile-cache``; once ForgeAI's own files
changed (an upgrade, an edit), it declines everything and exits. When the installed plugins or
the trust store change, it verifies the plugins again before the next run. It exits after
``FORGEAI_DAEMON_IDLE`` seconds (default 600) without a run, on ``forgeai daemon stop``
(after its runs end) and on SIGTERM (stopping its runs).
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import logging
import os
import signal
import socket
import sys
import time
from pathlib import Path
from typing import Any

import typer

from forgeai_ls import __version__
from forgeai_ls.backend_factory import native_backend
from forgeai_ls.cli import run as run_command
from forgeai_ls.cli.app import usage_error
from forgeai_ls.cli.daemon_client import (
    MESSAGE_BYTES,
    decode,
    encode,
    identity,
    peer_uid,
    socket_path,
)
from forgeai_ls.cli.run import RunOptions
from forgeai_ls.cli.run_execution import select_run, stdin_input, stream_run
from forgeai_ls.cli.terminal import Terminal
from forgeai_ls.errors import ForgeAIError
from forgeai_ls.plugins.manager import ManagerConfig, PluginManager
from forgeai_ls.plugins.set_stamp import plugin_set_stamp
from forgeai_ls.sandbox.warm_pool import PoolSettings

log = logging.getLogger("forgeai.daemon")

DEFAULT_IDLE_SECONDS = 600.0
_CHECK_SECONDS = 5.0


def idle_seconds() -> float:
    try:
        return max(1.0, float(os.environ.get("FORGEAI_DAEMON_IDLE", DEFAULT_IDLE_SECONDS)))
    except ValueError:
        return DEFAULT_IDLE_SECONDS


def _code_files() -> dict[str, int]:
    """ForgeAI's own loaded files and their modification times."""
    found: dict[str, int] = {}
    for name, module in list(sys.modules.items()):
        path = getattr(module, "__file__", None)
        if name.startswith("forgeai_ls") and path:
            with contextlib.suppress(OSError):
                found[path] = os.stat(path).st_mtime_ns
    return found


async def _readable(connection: socket.socket) -> None:
    loop = asyncio.get_running_loop()
    ready: asyncio.Future[None] = loop.create_future()

    def wake() -> None:
        if not ready.done():
            ready.set_result(None)

    fd = connection.fileno()
    loop.add_reader(fd, wake)
    try:
        await ready
    finally:
        loop.remove_reader(fd)


def _send(connection: socket.socket, message: bytes) -> None:
    with contextlib.suppress(OSError):
        connection.send(message)


class Daemon:
    def __init__(self, identity_text: str, path: str, idle: float) -> None:
        self.identity = identity_text
        self.path = path
        self.idle = idle
        self.backend = native_backend(PoolSettings(idle_timeout=idle), compile_cache=True)
        self.config = ManagerConfig.from_environment()
        self.manager, self.plugin_stamp = self._load_plugins()
        self.code = _code_files()
        self.active: set[asyncio.Task[None]] = set()
        self.runs = 0
        self.started = time.time()
        self.last_used = time.monotonic()
        self._stop: asyncio.Event | None = None
        self._cancel_runs = False
        self._run_command = typer.main.get_command(run_command.app)
        """Built once: typer's introspection costs more than a warm run."""

    # -- life ---------------------------------------------------------------------------------

    async def serve(self, listener: socket.socket, prewarm: list[str] | None) -> None:
        loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        listener.setblocking(False)
        loop.add_reader(listener.fileno(), self._accept, listener)
        loop.add_signal_handler(signal.SIGTERM, self.stop, True)
        loop.add_signal_handler(signal.SIGINT, self.stop, True)
        loop.add_signal_handler(signal.SIGHUP, self.stop, True)
        if prewarm:
            self._prewarm(prewarm)
        log.info("serving %s (pid %d, idle exit after %g s)", self.path, os.getpid(), self.idle)
        while not self._stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), min(_CHECK_SECONDS, self.idle))
            if not self.active and time.monotonic() - self.last_used >= self.idle:
                log.info("idle for %g s: exiting", self.idle)
                break
        loop.remove_reader(listener.fileno())
        with contextlib.suppress(OSError):
            os.unlink(self.path)
        listener.close()
        if self._cancel_runs:
            for task in self.active:
                task.cancel()
        if self.active:
            await asyncio.wait(set(self.active))
        self.backend.close()

    def stop(self, cancel_runs: bool = False) -> None:
        """Stop taking runs; exit once the current ones end (or stop them too)."""
        self._cancel_runs = self._cancel_runs or cancel_runs
        if self._stop is not None:
            self._stop.set()

    def _accept(self, listener: socket.socket) -> None:
        try:
            connection, _ = listener.accept()
        except BlockingIOError:
            return
        connection.setblocking(False)
        task = asyncio.get_running_loop().create_task(self._client(connection))
        self.active.add(task)
        task.add_done_callback(self.active.discard)

    # -- one client ---------------------------------------------------------------------------

    async def _client(self, connection: socket.socket) -> None:
        fds: list[int] = []
        try:
            if peer_uid(connection) != os.geteuid():
                return
            await _readable(connection)
            data, fds, _, _ = socket.recv_fds(connection, MESSAGE_BYTES, 3)
            request = decode(data)
            if request == ["status"]:
                _send(connection, json.dumps(self.status()).encode())
            elif request == ["stop"]:
                _send(connection, b"stopping")
                self.stop()
            elif request[0] == "run" and len(request) >= 3:
                self.last_used = time.monotonic()
                await self._run(connection, request[1], Path(request[2]), request[3:], fds)
                self.last_used = time.monotonic()
        except (OSError, ValueError) as exc:
            log.warning("a client's request failed: %s", exc)
        except Exception:
            log.exception("a client's request failed")
        finally:
            for fd in fds:
                os.close(fd)
            connection.close()

    def status(self) -> dict[str, Any]:
        pools = self.backend.pools
        return {
            "pid": os.getpid(),
            "socket": self.path,
            "forgeai": __version__,
            "started": self.started,
            "runs": self.runs,
            "active": max(0, len(self.active) - 1),
            "idle_exit_seconds": self.idle,
            "warm_slots": len(pools.idle_slots()) if pools is not None else 0,
        }

    def _declined(self, identity_text: str, fds: list[int]) -> str | None:
        if identity_text != self.identity:
            return "another environment"
        if len(fds) != 3:
            return "no terminal descriptors"
        if self._code_changed():
            self.stop()
            return "ForgeAI's files changed since this daemon started"
        return None

    async def _run(
        self,
        connection: socket.socket,
        identity_text: str,
        cwd: Path,
        args: list[str],
        fds: list[int],
    ) -> None:
        reason = self._declined(identity_text, fds)
        parsed = self._parse(args[1:]) if reason is None else None
        if isinstance(parsed, RunOptions) and (
            parsed.backend != "native" or not parsed.compile_cache
        ):
            reason = "runs on the native backend with the compile cache only"
        if reason is not None:
            _send(connection, encode("declined", reason))
            return
        assert parsed is not None
        self._refresh_plugins()
        _send(connection, b"accepted")
        self.runs += 1
        status = await self._execute(connection, parsed, Terminal(*fds), cwd, args)
        if status is not None:
            _send(connection, encode("exit", str(status)))

    def _parse(self, args: list[str]) -> RunOptions | ForgeAIError:
        """The options of ``forgeai run ARGS``, parsed exactly as in-process."""
        captured: list[RunOptions] = []

        def capture(options: RunOptions) -> int:
            captured.append(options)
            return 0

        try:
            self._run_command.main(
                args=args, prog_name="forgeai run", standalone_mode=False, obj=capture
            )
        except typer.TyperException as exc:
            return usage_error(exc)
        except ForgeAIError as exc:
            return exc
        if not captured:
            return ForgeAIError("the run's options were not understood")
        return captured[0]

    async def _execute(
        self,
        connection: socket.socket,
        parsed: RunOptions | ForgeAIError,
        terminal: Terminal,
        cwd: Path,
        args: list[str],
    ) -> int | None:
        """Run and return the exit status; None when the client went away."""
        if isinstance(parsed, ForgeAIError):
            return terminal.fail(parsed, args)
        options = parsed.relative_to(cwd)
        try:
            selected = select_run(options, self.manager)
            self.backend.host()
            stdin = stdin_input(options.stdin, terminal)
        except ForgeAIError as exc:
            return terminal.fail(exc, args)
        running = asyncio.ensure_future(
            stream_run(
                selected,
                stdin,
                terminal,
                as_json=options.as_json,
                raw_output=options.raw_output,
                offload_writes=True,
            )
        )
        client = asyncio.ensure_future(self._client_signal(connection))
        await asyncio.wait({running, client}, return_when=asyncio.FIRST_COMPLETED)
        if running.done():
            client.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await client
            try:
                return running.result()
            except ForgeAIError as exc:
                return terminal.fail(exc, args)
            except asyncio.CancelledError:  # the daemon is stopping
                return 128 + int(signal.SIGTERM)
            except Exception as exc:
                log.exception("a run failed")
                return terminal.fail(ForgeAIError(f"the ForgeAI daemon failed: {exc}"), args)
        running.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await running
        signum = client.result()
        if signum is None:
            return None
        return 130 if signum == signal.SIGINT else 128 + signum

    async def _client_signal(self, connection: socket.socket) -> int | None:
        """The signal the client forwards, or None when it went away."""
        while True:
            await _readable(connection)
            try:
                data = connection.recv(MESSAGE_BYTES)
            except BlockingIOError:
                continue
            except OSError:
                return None
            if not data:
                return None
            message = decode(data)
            if message[0] == "signal" and len(message) == 2 and message[1].isdigit():
                return int(message[1])

    # -- plugins and freshness ----------------------------------------------------------------

    def _load_plugins(self) -> tuple[PluginManager, str]:
        stamp = self._plugin_stamp()
        manager = PluginManager(self.backend, self.config)
        for blocked in manager.load_all():
            log.info("plugin unavailable: %s", blocked.error.one_line())
        return manager, stamp

    def _plugin_stamp(self) -> str:
        return plugin_set_stamp(self.config.home, self.config.extra_dirs, [__version__])

    def _refresh_plugins(self) -> None:
        """Verify the plugins again when what decides them changed (an install, a key)."""
        if self._plugin_stamp() != self.plugin_stamp:
            log.info("the installed plugins or the trust store changed: verifying again")
            self.manager, self.plugin_stamp = self._load_plugins()

    def _code_changed(self) -> bool:
        for path, mtime in self.code.items():
            try:
                if os.stat(path).st_mtime_ns != mtime:
                    return True
            except OSError:
                return True
        return False

    def _prewarm(self, args: list[str]) -> None:
        """Start a warm sandbox for the run that started this daemon (its next one)."""
        parsed = self._parse(args[1:])
        if not isinstance(parsed, RunOptions) or parsed.backend != "native":
            return
        try:
            selected = select_run(parsed.relative_to(Path.cwd()), self.manager)
        except ForgeAIError:
            return
        request = selected.executor.language(selected.language).build_request(
            "", file_name=selected.file_name, limits=selected.limits
        )
        self.backend.prewarm(request)


def _read_startup() -> list[str]:
    """The arguments of the run that started this daemon (to warm a sandbox for)."""
    if os.isatty(0):
        return []
    with contextlib.suppress(OSError):
        data = sys.stdin.buffer.read(MESSAGE_BYTES)
        return decode(data) if data else []
    return []


def _listen(path: str) -> socket.socket:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)  # a dead daemon's socket: we hold the lock, so none serves it
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET | socket.SOCK_CLOEXEC)
    old_mask = os.umask(0o177)
    try:
        listener.bind(path)
    finally:
        os.umask(old_mask)
    listener.listen(64)
    return listener


def _sweep_dead(directory: str) -> None:
    """Remove the sockets and locks of daemons that died without cleaning up (a lock nobody
    holds any more belongs to a dead daemon); their logs stay, for whoever looks into it."""
    for name in os.listdir(directory):
        if not name.endswith(".sock.lock"):
            continue
        lock_path = os.path.join(directory, name)
        try:
            fd = os.open(lock_path, os.O_RDWR | os.O_CLOEXEC)
        except OSError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            continue  # alive
        else:
            for stale in (lock_path[: -len(".lock")], lock_path):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(stale)
        finally:
            os.close(fd)


def main() -> int:
    cwd = os.getcwd()
    identity_text = identity(cwd)
    path = socket_path(identity_text)
    lock_path = path + ".lock"
    lock = os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return 0  # another daemon for this identity is starting or running
    startup = _read_startup()
    log_path = path[: -len(".sock")] + ".log"
    log_fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    null = os.open(os.devnull, os.O_RDWR)
    for fd, target in ((0, null), (1, null), (2, log_fd)):
        os.dup2(target, fd)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    _sweep_dead(os.path.dirname(path))
    daemon = Daemon(identity_text, path, idle_seconds())
    listener = _listen(path)
    asyncio.run(daemon.serve(listener, startup))
    for leftover in (log_path, lock_path):  # a clean exit leaves nothing behind
        with contextlib.suppress(FileNotFoundError):
            os.unlink(leftover)
    os.close(lock)
    return 0


if __name__ == "__main__":
    sys.exit(main())
