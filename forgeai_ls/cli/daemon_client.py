"""The client side of the user's ForgeAI daemon: ``forgeai run`` handed to a warm process.

A ``forgeai run`` first tries the daemon: a per-user process that has the plugins verified and
keeps warm sandboxes, exactly as the language server does. The client passes its own standard
input, output and error descriptors over a Unix socket (``SCM_RIGHTS``), so the daemon reads
and writes the user's terminal or pipes directly; the client then only waits for the exit
status, forwarding Ctrl-C, SIGTERM and SIGHUP (unless this process ignores them). If the
client dies, the daemon sees its socket close and stops the run.

A daemon serves only clients that would have run exactly the same way in-process: the same
user, the same ForgeAI and Python, the same environment as far as ForgeAI reads it
(``ENV_NAMES``, ``ENV_PREFIXES``) and the same version-manager files (pyenv's and rustup's)
for the working directory. That *identity* names the socket, so clients that differ reach
different daemons. A run never waits for a daemon that is not there: with none listening, the
run happens in-process and a daemon is started in the background for the next one; a daemon
that exists but declines (older code, ``--backend docker``) makes the client run in-process
too. ``FORGEAI_DAEMON=0`` turns the daemon off. A daemon exits after
``FORGEAI_DAEMON_IDLE`` seconds (default 600) without a run.

This module is on the path of every ``forgeai run``, so it imports only modules written in C
(``_socket``, ``_signal``, ``_struct``, ``zlib``): their Python wrappers load ``enum`` and
``selectors`` and cost more than the whole warm run. Messages are one packet each
(``SOCK_SEQPACKET``), fields separated by NUL bytes (no argument can contain one):

    client -> daemon   run NUL identity NUL cwd NUL arg...     (+ the three descriptors)
    daemon -> client   accepted | declined NUL reason | exit NUL status
    client -> daemon   signal NUL number
    control            status -> one JSON object;  stop -> stopping
"""

from __future__ import annotations

import _signal  # type: ignore[import-not-found]  # no stub: the C core of signal
import _socket
import _struct
import os
import sys
import zlib

from forgeai_ls import __version__
from forgeai_ls.runtime_dir import NotPrivateError, private_dir, runtime_base

TYPE_CHECKING = False  # not typing's: importing typing costs every run milliseconds
if TYPE_CHECKING:
    import subprocess

PROTOCOL = 1
ENV_NAMES = ("PATH", "HOME", "TMPDIR", "VIRTUAL_ENV", "CONDA_PREFIX")
ENV_PREFIXES = ("FORGEAI_", "PYENV_", "RUSTUP_", "CARGO_", "DOCKER_", "XDG_", "UV_", "PIP_")
TOOL_FILES = (".python-version", "rust-toolchain.toml", "rust-toolchain")
"""Files a version manager reads from the working directory up (pyenv, rustup)."""
ACCEPT_TIMEOUT = 5.0
"""How long a client waits for a daemon to take its run before running in-process."""
MESSAGE_BYTES = 1 << 20
FORWARDED_SIGNALS = (_signal.SIGINT, _signal.SIGTERM, _signal.SIGHUP)
_CREDENTIALS = _struct.Struct("3i")


def enabled() -> bool:
    return os.environ.get("FORGEAI_DAEMON", "1").lower() not in ("0", "off", "no", "false")


def _stamp(path: str) -> str | None:
    try:
        info = os.stat(path)
    except OSError:
        return None
    return f"{path!r} {info.st_size} {info.st_mtime_ns} {info.st_ino}"


def _tool_files(directory: str) -> list[str]:
    """The version-manager files that decide which toolchain a command name resolves to."""
    found = []
    while True:
        for name in TOOL_FILES:
            stamp = _stamp(os.path.join(directory, name))
            if stamp is not None:
                found.append(stamp)
        parent = os.path.dirname(directory)
        if parent == directory:
            break
        directory = parent
    home = os.environ.get("HOME", "")
    pyenv_root = os.environ.get("PYENV_ROOT") or os.path.join(home, ".pyenv")
    rustup_home = os.environ.get("RUSTUP_HOME") or os.path.join(home, ".rustup")
    for path in (os.path.join(pyenv_root, "version"), os.path.join(rustup_home, "settings.toml")):
        stamp = _stamp(path)
        if stamp is not None:
            found.append(stamp)
    return found


def daemon_environment() -> dict[str, str]:
    """The part of the environment ForgeAI reads: the daemon gets exactly this."""
    return {
        name: value
        for name, value in os.environ.items()
        if name in ENV_NAMES or name.startswith(ENV_PREFIXES)
    }


def identity(cwd: str) -> str:
    """What a run's outcome depends on besides its arguments, as one string."""
    lines = [
        f"protocol {PROTOCOL}",
        f"forgeai {__version__}",
        f"package {os.path.dirname(os.path.abspath(__file__))!r}",
        f"python {sys.executable!r}",
        f"uid {os.geteuid()}",
        *(f"env {name}={value!r}" for name, value in sorted(daemon_environment().items())),
        *(f"tool {stamp}" for stamp in _tool_files(cwd)),
    ]
    return "\n".join(lines)


def daemon_dir() -> str:
    return private_dir(os.path.join(runtime_base(), "daemon"), 0o700)


def socket_path(identity_text: str) -> str:
    """The socket of the daemon for this identity. The name only routes (a daemon compares
    the whole identity before it takes a run), so a cheap checksum is enough."""
    data = identity_text.encode()
    return os.path.join(daemon_dir(), f"{zlib.crc32(data):08x}{zlib.adler32(data):08x}.sock")


def peer_uid(connection: _socket.socket) -> int:
    credentials = connection.getsockopt(_socket.SOL_SOCKET, _socket.SO_PEERCRED, _CREDENTIALS.size)
    return int(_CREDENTIALS.unpack(credentials)[1])


def connect(path: str) -> _socket.socket | None:
    """A connection to the daemon at ``path``, or None when none listens there (or it is
    not this user's)."""
    connection = _socket.socket(_socket.AF_UNIX, _socket.SOCK_SEQPACKET | _socket.SOCK_CLOEXEC)
    try:
        connection.connect(path)
        if peer_uid(connection) != os.geteuid():
            raise ConnectionRefusedError(f"{path} is not served by this user")
    except OSError:
        connection.close()
        return None
    return connection


def encode(*fields: str) -> bytes:
    return b"\0".join(os.fsencode(field) for field in fields)


def decode(message: bytes) -> list[str]:
    return [os.fsdecode(field) for field in message.split(b"\0")]


def _standard_fds() -> tuple[list[int], list[int]]:
    """This process's stdin, stdout and stderr, with /dev/null for any that is closed;
    also the descriptors opened here (to close after sending)."""
    fds, opened = [], []
    for fd, mode in ((0, os.O_RDONLY), (1, os.O_WRONLY), (2, os.O_WRONLY)):
        try:
            os.fstat(fd)
            fds.append(fd)
        except OSError:
            null = os.open(os.devnull, mode | os.O_CLOEXEC)
            opened.append(null)
            fds.append(null)
    return fds, opened


def run_in_daemon(args: list[str]) -> int | None:
    """Run ``forgeai run ARGS`` in the user's daemon; its exit status, or None when no daemon
    took the run (the caller then runs it in-process)."""
    if not enabled() or "--help" in args:
        return None
    try:
        cwd = os.getcwd()
        identity_text = identity(cwd)
        path = socket_path(identity_text)
    except (OSError, NotPrivateError):
        return None
    connection = connect(path)
    if connection is None:
        return None
    try:
        return _hand_over(connection, encode("run", identity_text, cwd, *args), args)
    finally:
        connection.close()


def _hand_over(connection: _socket.socket, request: bytes, args: list[str]) -> int | None:
    pending: list[int] = []
    accepted = False

    def forward(signum: int, _frame: object) -> None:
        pending.append(signum)
        if accepted:
            _send_signals(connection, pending)

    # A signal this process ignores (SIGINT of `forgeai run ... &` in a script, SIGHUP under
    # nohup) stays ignored, as it would be for an in-process run.
    previous = {
        sig: _signal.signal(sig, forward)
        for sig in FORWARDED_SIGNALS
        if _signal.getsignal(sig) != _signal.SIG_IGN
    }
    try:
        fds, opened = _standard_fds()
        try:
            rights = (_socket.SOL_SOCKET, _socket.SCM_RIGHTS, _struct.pack("3i", *fds))
            connection.sendmsg([request], [rights])
        finally:
            for fd in opened:
                os.close(fd)
        connection.settimeout(ACCEPT_TIMEOUT)
        if connection.recv(MESSAGE_BYTES) != b"accepted":
            return 128 + pending[0] if pending else None  # declined: run in-process
        accepted = True
        connection.settimeout(None)
        _send_signals(connection, pending)
        while True:
            message = decode(connection.recv(MESSAGE_BYTES))
            if message[0] == "exit" and len(message) == 2:
                return int(message[1])
            if message == [""]:  # the daemon closed the connection without an answer
                return _daemon_ended(args)
    except (OSError, ValueError):
        if accepted:
            return _daemon_ended(args)
        return None
    finally:
        for sig, handler in previous.items():
            _signal.signal(sig, handler)


def _daemon_ended(args: list[str]) -> int:
    from forgeai_ls.cli.terminal import Terminal
    from forgeai_ls.errors import DaemonEndedError

    ended = DaemonEndedError(
        "the ForgeAI daemon running this program ended before it",
        hint="run it again; 'forgeai daemon status' lists the daemons",
    )
    return Terminal().fail(ended, args)


def _send_signals(connection: _socket.socket, pending: list[int]) -> None:
    while pending:
        connection.send(encode("signal", str(pending.pop(0))))


def start_daemon_for_next_time(args: list[str]) -> None:
    """Start the daemon this run would have used, in the background; it pre-warms a sandbox
    for ``args``'s kind of run. Never waits for it, never fails the run."""
    if not enabled():
        return
    try:
        cwd = os.getcwd()
        path = socket_path(identity(cwd))
        found = connect(path)
        if found is not None:
            found.close()
            return  # one is there (it declined this run: it stops itself if outdated)
        spawn_daemon(cwd, args)
    except (OSError, NotPrivateError):
        return


def spawn_daemon(cwd: str, prewarm: list[str]) -> subprocess.Popen[bytes]:
    """Start a daemon for this environment, detached from the terminal. ``prewarm`` (a run's
    arguments, to warm a sandbox for) goes on its stdin, never in its command line, which
    other users can read."""
    import subprocess  # only here: the client's usual path never starts a process

    process = subprocess.Popen(
        [sys.executable, "-m", "forgeai_ls.cli.daemon"],
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        cwd=cwd,
        env=daemon_environment(),
        start_new_session=True,
        close_fds=True,
    )
    assert process.stdin is not None
    try:
        process.stdin.write(encode(*prewarm))
        process.stdin.close()
    except BrokenPipeError:
        pass
    return process


def ask(path: str, message: str, timeout: float = 5.0) -> bytes | None:
    """Send one control message (``status``, ``stop``) to the daemon at ``path``; its answer,
    or None when none answers there."""
    connection = connect(path)
    if connection is None:
        return None
    try:
        connection.settimeout(timeout)
        connection.send(message.encode())
        return connection.recv(MESSAGE_BYTES) or None
    except OSError:
        return None
    finally:
        connection.close()


def daemon_sockets() -> list[str]:
    """Every daemon socket of this user (each environment has its own daemon)."""
    directory = daemon_dir()
    return sorted(
        os.path.join(directory, name) for name in os.listdir(directory) if name.endswith(".sock")
    )
