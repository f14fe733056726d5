"""ForgeAI's side of the sandbox supervisor (see ``supervisor``): start it, ask it for sandboxes.

One supervisor serves the whole process, started on first use and again if it died. Each
sandbox gets a socket of its own to it (``SandboxChannel``): the spawn request goes there, the
end of the sandbox comes back there, and closing it — or ForgeAI dying — ends the sandbox.
"""

from __future__ import annotations

import array
import contextlib
import json
import socket
import subprocess
import sys
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from forgeai_ls.errors import SandboxSetupError

SCRIPT = Path(__file__).with_name("supervisor.py")
_FDS_PER_MESSAGE = 250
_REPLY_SIZE = 64 * 1024


@dataclass(frozen=True, slots=True)
class SandboxEnd:
    """How a sandbox ended: bwrap's wait status and the resources of every process in it."""

    status: int
    cpu_seconds: float
    max_rss_kib: int
    deadline_passed: bool = False
    """The supervisor killed it at its wall-clock backstop (ForgeAI could not, in time)."""


class SupervisorGone(Exception):
    """The supervisor closed its end (it was killed)."""


class SandboxChannel:
    """The socket between ForgeAI and the supervisor for one sandbox."""

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self.pid = 0
        """The bwrap monitor's pid (a child of the supervisor)."""
        self.end: SandboxEnd | None = None

    def fileno(self) -> int:
        """Readable once the sandbox has ended (or the supervisor is gone)."""
        return self._sock.fileno()

    def send(self, message: Mapping[str, Any], fds: Sequence[int] = ()) -> None:
        ancillary = [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", fds))] if fds else []
        self._sock.sendmsg([json.dumps(message).encode()], ancillary)

    def receive(self) -> dict[str, Any]:
        data = self._sock.recv(_REPLY_SIZE)
        if not data:
            raise SupervisorGone
        message = json.loads(data)
        if not isinstance(message, dict):
            raise SupervisorGone
        return message

    def kill(self) -> None:
        """Ask for the sandbox to be killed; nothing to do once it has ended."""
        if self.end is None:
            with contextlib.suppress(OSError):
                self.send({"op": "kill"})

    def backstop(self, seconds: float) -> None:
        """The supervisor kills the sandbox after ``seconds`` even if ForgeAI cannot."""
        with contextlib.suppress(OSError):
            self.send({"op": "deadline", "seconds": seconds})

    def read_end(self, *, block: bool) -> SandboxEnd | None:
        """The end report, once the sandbox has ended."""
        if self.end is not None:
            return self.end
        self._sock.setblocking(block)
        try:
            message = self.receive()
        except (BlockingIOError, InterruptedError):
            return None
        except (SupervisorGone, OSError, ValueError):
            message = {"status": 9, "cpu": 0.0, "maxrss": 0}  # as if SIGKILLed
        finally:
            self._sock.setblocking(True)
        self.end = SandboxEnd(
            status=int(message.get("status", 9)),
            cpu_seconds=float(message.get("cpu", 0.0)),
            max_rss_kib=int(message.get("maxrss", 0)),
            deadline_passed=message.get("deadline") is True,
        )
        return self.end

    def release(self) -> None:
        """The guarded container is gone: nothing for the supervisor to remove."""
        with contextlib.suppress(OSError):
            self.send({"op": "release"})
        self.close()

    def close(self) -> None:
        self._sock.close()


class _Supervisor:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._process: subprocess.Popen[bytes] | None = None
        self._control: socket.socket | None = None

    def _started(self) -> socket.socket:
        with self._lock:
            if self._process is not None and self._process.poll() is None:
                assert self._control is not None
                return self._control
            if self._control is not None:
                self._control.close()
            if self._process is not None:
                self._process.wait()
            ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
            try:
                self._process = subprocess.Popen(
                    [sys.executable, "-I", "-S", str(SCRIPT), str(theirs.fileno())],
                    pass_fds=[theirs.fileno()],
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.DEVNULL,
                    start_new_session=True,  # a terminal's SIGHUP/SIGINT is not for it
                    env={},
                )
            finally:
                theirs.close()
            self._control = ours
            return ours

    def running_pid(self) -> int | None:
        with self._lock:
            if self._process is not None and self._process.poll() is None:
                return self._process.pid
            return None

    def open_channel(self) -> SandboxChannel:
        for _attempt in range(2):
            control = self._started()
            mine, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
            try:
                control.sendmsg(
                    [b'{"op": "open"}'],
                    [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", [theirs.fileno()]))],
                )
            except OSError:  # it died: start another
                mine.close()
                continue
            finally:
                theirs.close()
            return SandboxChannel(mine)
        raise SandboxSetupError(
            "the sandbox supervisor could not be started",
            hint=f"check that '{sys.executable} -I -S {SCRIPT}' runs",
        )


_SUPERVISOR = _Supervisor()


def running_supervisor() -> list[int]:
    """The supervisor's pid while it runs (it moves into a systemd scope with ForgeAI)."""
    pid = _SUPERVISOR.running_pid()
    return [] if pid is None else [pid]


def guard_container(engine_url: str, container_id: str) -> SandboxChannel:
    """Have the supervisor remove this container if ForgeAI dies before ``release()``."""
    channel = _SUPERVISOR.open_channel()
    try:
        channel.send({"op": "container", "engine": engine_url, "id": container_id})
    except OSError as exc:
        channel.close()
        raise SandboxSetupError(
            f"the sandbox supervisor could not take the container in its care: {exc}",
            hint=f"check that '{sys.executable} -I -S {SCRIPT}' runs",
        ) from exc
    return channel


def spawn(
    argv: Sequence[str],
    fds: Mapping[int, int],
    setup: Mapping[str, Any],
    cleanup: Sequence[tuple[str, str]],
    collect: tuple[Mapping[str, Any], int] | None = None,
) -> SandboxChannel:
    """Have the supervisor start ``argv`` with ``fds`` (target number → our descriptor) in
    place, after ``setup`` (see ``ChildSetup.wire``). ``cleanup`` is what to remove if ForgeAI
    dies before the sandbox ends. ``collect``: what to read from the sandbox once it has
    ended (``{"dir", "max_files", "max_bytes"}``) and the descriptor to write it to (never
    inside the sandbox). The caller still owns (and closes) the descriptors."""
    channel = _SUPERVISOR.open_channel()
    try:
        ours = list(fds.values())
        if collect is not None:
            ours.append(collect[1])
        while len(ours) > _FDS_PER_MESSAGE:  # the targets below follow the same order
            channel.send({"op": "fds"}, ours[:_FDS_PER_MESSAGE])
            ours = ours[_FDS_PER_MESSAGE:]
        channel.send(
            {
                "op": "spawn",
                "argv": list(argv),
                "targets": list(fds),
                "setup": dict(setup),
                "cleanup": [list(entry) for entry in cleanup],
                **({"collect": dict(collect[0])} if collect is not None else {}),
            },
            ours,
        )
        reply = channel.receive()
    except (OSError, SupervisorGone, ValueError) as exc:
        channel.close()
        raise SandboxSetupError(
            f"the sandbox supervisor did not start the sandbox: {exc}",
            hint="check that bubblewrap works: 'bwrap --ro-bind / / true'",
        ) from exc
    if "pid" not in reply:
        channel.close()
        raise SandboxSetupError(
            f"could not start the sandbox: {reply.get('error', 'no reason given')}",
            hint="check that bubblewrap works: 'bwrap --ro-bind / / true'",
        )
    channel.pid = int(reply["pid"])
    return channel
