"""The sandbox supervisor: the process that starts every sandbox and ends it, whatever ForgeAI does.

ForgeAI starts one supervisor per process (``python -I -S supervisor.py FD``, see
``supervisor_link``), in a session of its own, and asks it over a Unix socket to start each
bubblewrap sandbox. The supervisor is therefore the parent of every bwrap monitor, and a child
subreaper, so that a sandbox's PID 1 whose monitor died is re-parented here rather than to the
system's init. No sandboxed program can reach it: it is outside every sandbox namespace and
runs as a uid the program does not have (as root) or in a PID namespace the program cannot see.

It ends a sandbox (SIGKILL to its PID 1 from outside, which takes the whole PID namespace, then
to the monitor) when:
- ForgeAI asks (``kill``), closes the sandbox's socket, or dies: every descriptor of a killed
  process is closed by the kernel, so a SIGKILLed ForgeAI is noticed at once;
- the sandbox's wall-clock backstop passes (``deadline``; ForgeAI's own timer normally ends the
  run first — this one holds when ForgeAI hangs);
- a child of the supervisor is not a live monitor (an orphaned PID 1).
After ForgeAI died it also removes the cgroups and work directories ForgeAI named for its
sandboxes, then exits.

It also guards the docker backend's containers: ForgeAI names each container it creates
(``container``) before starting it and releases it (``release``) once it has removed it
itself; a container still guarded when ForgeAI is gone is removed (killed first) through the
engine's API.

Protocol (SOCK_SEQPACKET, one JSON object per message, descriptors with SCM_RIGHTS):
- on the control socket, from ForgeAI: ``{"op": "open"}`` with one descriptor: a new socket,
  private to one sandbox;
- on a sandbox socket, from ForgeAI: ``{"op": "fds"}`` (more descriptors for the next spawn,
  when there are more than one message carries), then ``{"op": "spawn", "argv", "targets",
  "setup", "cleanup"}`` (``targets``: the descriptor number, in the child, of each descriptor
  received so far, in order), later ``{"op": "deadline", "seconds"}`` and ``{"op": "kill"}``;
  or ``{"op": "container", "engine": URL, "id": ID}`` and later ``{"op": "release"}``;
- from the supervisor: ``{"pid": N}`` or ``{"error": TEXT}`` after a spawn, and once the sandbox
  is gone ``{"status": WAITSTATUS, "cpu": SECONDS, "maxrss": KIB, "deadline": BOOL}``
  (``deadline``: the supervisor killed it at its wall-clock backstop).

This file is run as a script with ``-I -S`` (no site-packages, no user environment): standard
library only, nothing from ForgeAI, and cheap to start.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import fcntl
import json
import os
import resource
import selectors
import signal
import socket
import sys
import time
from typing import Any

MAX_MESSAGE = 1 << 20
MAX_FDS = 253
"""The kernel's SCM_MAX_FD: descriptors one message may carry."""
CLEANUP_SECONDS = 5.0
ENGINE_TIMEOUT_SECONDS = 10.0
PR_SET_CHILD_SUBREAPER = 36
CLONE_NEWNS = 0x00020000
CLONE_NEWUSER = 0x10000000
NS_GET_USERNS = 0xB701
"""ioctl on a namespace file: a descriptor of the user namespace that owns it."""
MS_BIND = 4096
MS_REC = 16384
MS_SLAVE = 1 << 19

_libc: Any = None


def _libc_call(name: str, *args: Any) -> None:
    global _libc
    if _libc is None:
        _libc = ctypes.CDLL(None, use_errno=True)  # the C library Python itself uses
    if getattr(_libc, name)(*args) != 0:
        code = ctypes.get_errno()
        raise OSError(code, f"{name}: {os.strerror(code)}")


# -- the child, between fork and exec ----------------------------------------------------------


def _stage(stage_dir: str, sources: list[str]) -> None:
    """Bind toolchains the sandbox uid cannot reach into a private mount namespace (root)."""
    _libc_call("unshare", CLONE_NEWNS)
    _libc_call("mount", b"none", b"/", None, ctypes.c_ulong(MS_REC | MS_SLAVE), None)
    _libc_call(
        "mount", b"tmpfs", stage_dir.encode(), b"tmpfs", ctypes.c_ulong(0), b"size=64k,mode=0755"
    )
    for index, source in enumerate(sources):
        target = f"{stage_dir}/{index}"
        if os.path.isdir(source):
            os.mkdir(target)
        else:
            os.close(os.open(target, os.O_CREAT | os.O_WRONLY, 0o755))
        _libc_call(
            "mount", source.encode(), target.encode(), None, ctypes.c_ulong(MS_BIND | MS_REC), None
        )


def _install_fds(fds: list[int], targets: list[int]) -> None:
    """Put each received descriptor at its target number; everything else closes at exec."""
    base = max([*targets, 2]) + 1
    moved = [fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, base) for fd in fds]
    for fd, target in zip(moved, targets, strict=True):
        os.dup2(fd, target, inheritable=True)
    if 0 not in targets:
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0, inheritable=True)


def _become_sandbox(request: dict[str, Any], fds: list[int]) -> None:
    """In the forked child: join the cgroups, stage, take the descriptors, limit, drop the uid,
    exec bubblewrap. Raises on failure (the caller reports it)."""
    for number in (signal.SIGPIPE, signal.SIGXFSZ, signal.SIGINT, signal.SIGHUP, signal.SIGCHLD):
        signal.signal(number, signal.SIG_DFL)
    setup = request["setup"]
    for attach in setup["attach"]:
        fd = os.open(attach, os.O_WRONLY)
        try:
            os.write(fd, b"0")
        finally:
            os.close(fd)
    if setup["stage_dir"] is not None and setup["stage_sources"]:
        _stage(setup["stage_dir"], setup["stage_sources"])
    _install_fds(fds, request["targets"])
    for kind, soft, hard in setup["rlimits"]:
        resource.setrlimit(kind, (soft, hard))
    uid = setup["uid"]
    if uid is not None:
        os.setgroups([])
        os.setresgid(uid, uid, uid)
        os.setresuid(uid, uid, uid)
    argv = request["argv"]
    os.execve(argv[0], argv, {})  # noqa: S606 - bwrap, by absolute path, no shell


# -- the collector, forked once a sandbox has ended -------------------------------------------


def _collect(
    ns_fds: list[int], directory: str, out_fd: int, max_files: int, max_bytes: int
) -> None:
    """Join the ended sandbox's user and mount namespaces (kept alive by ``ns_fds``: no process
    of it is left to race with) and write what ``directory`` holds to ``out_fd``, as frames:
    a 4-byte big-endian length, a JSON header (``{"name", "kind", "size"}``), then ``size``
    bytes for ``kind == "file"``. Links, FIFOs, devices and sockets are listed, never followed
    or opened; past ``max_files`` entries or ``max_bytes`` of data, entries are listed as
    ``"over"`` without their bytes."""
    import stat as stat_module
    import struct

    for number in (signal.SIGPIPE, signal.SIGTERM, signal.SIGCHLD):
        signal.signal(number, signal.SIG_DFL)
    user_fd, mnt_fd = ns_fds
    _libc_call("setns", user_fd, CLONE_NEWUSER)
    _libc_call("setns", mnt_fd, CLONE_NEWNS)
    os.chdir("/")
    state = {"files": 0, "bytes": 0}

    def frame(header: dict[str, Any], data: bytes = b"") -> None:
        encoded = json.dumps(header).encode()
        payload = struct.pack(">I", len(encoded)) + encoded + data
        view = memoryview(payload)
        while view:
            written = os.write(out_fd, view)
            view = view[written:]

    def walk(path: str, relative: str, depth: int) -> None:
        try:
            entries = sorted(os.scandir(path), key=lambda entry: entry.name)
        except OSError:
            return
        for entry in entries:
            name = f"{relative}{entry.name}"
            try:
                info = entry.stat(follow_symlinks=False)
            except OSError:
                continue
            mode = info.st_mode
            if stat_module.S_ISDIR(mode):
                if depth < 32:
                    walk(entry.path, f"{name}/", depth + 1)
                continue
            if not stat_module.S_ISREG(mode):
                kind = "link" if stat_module.S_ISLNK(mode) else "special"
                frame({"name": name, "kind": kind, "size": 0})
                continue
            over = state["files"] >= max_files or state["bytes"] + info.st_size > max_bytes
            if over:
                frame({"name": name, "kind": "over", "size": info.st_size})
                continue
            try:
                fd = os.open(entry.path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
                try:
                    data = os.read(fd, info.st_size + 1)
                finally:
                    os.close(fd)
            except OSError:
                frame({"name": name, "kind": "unreadable", "size": 0})
                continue
            data = data[: info.st_size]
            state["files"] += 1
            state["bytes"] += len(data)
            frame({"name": name, "kind": "file", "size": len(data)}, data)

    if os.path.isdir(directory) and not os.path.islink(directory):
        walk(directory, "", 0)


# -- the supervisor ----------------------------------------------------------------------------


class Sandbox:
    """One sandbox: its socket to ForgeAI, its monitor, and what is known of its end."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.fds: list[int] = []
        self.pid: int | None = None
        self.inner: set[int] = set()
        """Its PID 1 (and any other child of the monitor) once it was killed from here."""
        self.status: int | None = None
        self.cpu = 0.0
        self.maxrss = 0
        self.deadline: float | None = None
        self.deadline_passed = False
        self.cleanup: list[list[str]] = []
        self.client_gone = False
        self.reported = False
        self.container: tuple[str, str] | None = None
        """A docker container to remove if ForgeAI goes: (engine URL, id)."""
        self.collect: dict[str, Any] | None = None
        """``{"dir", "max_files", "max_bytes"}``: what to collect once it has ended."""
        self.collect_fd: int | None = None
        self.ns_fds: list[int] = []
        """Its PID 1's user and mount namespaces, held open for the collection."""
        self.collector: int | None = None
        self.block_fd: int | None = None
        """Holds the program back until its namespaces are held (``--block-fd``)."""

    @property
    def running(self) -> bool:
        return self.pid is not None and self.status is None


def _children(pid: int) -> set[int]:
    found: set[int] = set()
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return found
    for task in tasks:
        try:
            with open(f"/proc/{pid}/task/{task}/children") as listing:
                found.update(int(child) for child in listing.read().split())
        except (OSError, ValueError):
            continue
    return found


def _signal(pid: int, number: int = signal.SIGKILL) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.kill(pid, number)


class Supervisor:
    def __init__(self, control: socket.socket) -> None:
        self.control = control
        self.selector = selectors.DefaultSelector()
        self.sandboxes: dict[int, Sandbox] = {}
        """Running ones, by monitor pid."""
        self.owner_of_inner: dict[int, Sandbox] = {}
        self.open: set[Sandbox] = set()
        self.collectors: set[int] = set()
        """Children reading an ended sandbox's output (not orphans to kill)."""
        self.stopping = False
        wake_read, wake_write = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self.wake = wake_read
        signal.set_wakeup_fd(wake_write, warn_on_full_buffer=False)
        signal.signal(signal.SIGCHLD, lambda *_: None)
        signal.signal(signal.SIGTERM, lambda *_: self._stop_all())
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGHUP, signal.SIG_IGN)
        self.selector.register(control, selectors.EVENT_READ, self._on_control)
        self.selector.register(wake_read, selectors.EVENT_READ, self._on_wake)

    # -- messages ------------------------------------------------------------------------------

    def _receive(self, sock: socket.socket) -> tuple[dict[str, Any] | None, list[int]]:
        """One message and its descriptors; (None, []) at end of file."""
        try:
            data, ancillary, _flags, _ = sock.recvmsg(
                MAX_MESSAGE, socket.CMSG_SPACE(MAX_FDS * 4), socket.MSG_CMSG_CLOEXEC
            )
        except (BlockingIOError, InterruptedError):
            return {}, []
        except OSError:
            return None, []
        fds: list[int] = []
        for level, kind, payload in ancillary:
            if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                usable = len(payload) - len(payload) % 4
                fds.extend(memoryview(payload)[:usable].cast("i"))
        if not data:
            for fd in fds:
                os.close(fd)
            return None, []
        try:
            message = json.loads(data)
        except ValueError:
            message = {"op": "garbage"}
        return (message if isinstance(message, dict) else {"op": "garbage"}), fds

    @staticmethod
    def _send(sandbox: Sandbox, message: dict[str, Any]) -> None:
        if sandbox.client_gone:
            return
        with contextlib.suppress(OSError):
            sandbox.sock.send(json.dumps(message).encode())

    def _on_control(self, _fd: int) -> None:
        message, fds = self._receive(self.control)
        if message is None:  # ForgeAI is gone
            self._stop_all()
            return
        for fd in fds:
            sandbox = Sandbox(socket.socket(fileno=fd))
            self.open.add(sandbox)
            self.selector.register(sandbox.sock, selectors.EVENT_READ, self._reader(sandbox))

    def _reader(self, sandbox: Sandbox) -> Any:
        return lambda _fd: self._on_sandbox_message(sandbox)

    def _on_sandbox_message(self, sandbox: Sandbox) -> None:
        message, fds = self._receive(sandbox.sock)
        if message is None:
            self._on_client_gone(sandbox)
            return
        op = message.get("op")
        sandbox.fds.extend(fds)
        if op == "spawn" and sandbox.pid is None:
            self._spawn(sandbox, message)
        elif op == "kill":
            self._kill(sandbox)
        elif op == "deadline":
            sandbox.deadline = time.monotonic() + float(message.get("seconds", 0))
        elif op == "container":
            sandbox.container = (str(message.get("engine")), str(message.get("id")))
        elif op == "release":
            sandbox.container = None
        elif op != "fds":
            self._send(sandbox, {"error": f"unknown request {op!r}"})

    def _on_client_gone(self, sandbox: Sandbox) -> None:
        """ForgeAI closed this sandbox's socket: a sandbox still running is abandoned."""
        self.selector.unregister(sandbox.sock)
        sandbox.client_gone = True
        for fd in sandbox.fds:
            os.close(fd)
        sandbox.fds.clear()
        if sandbox.running:
            self._kill(sandbox)
        else:
            self._forget(sandbox, clean=sandbox.pid is not None and not sandbox.reported)

    def _forget(self, sandbox: Sandbox, *, clean: bool) -> None:
        if sandbox.container is not None:
            _remove_container(*sandbox.container)
            sandbox.container = None
        if clean:
            _clean(sandbox.cleanup)
        self.open.discard(sandbox)
        sandbox.sock.close()

    # -- starting ------------------------------------------------------------------------------

    def _spawn(self, sandbox: Sandbox, request: dict[str, Any]) -> None:
        fds, sandbox.fds = sandbox.fds, []
        sandbox.cleanup = [list(entry) for entry in request.get("cleanup", [])]
        collect = request.get("collect")
        if isinstance(collect, dict) and fds and len(fds) == len(request.get("targets", [])) + 1:
            sandbox.collect, sandbox.collect_fd = collect, fds.pop()
        if len(fds) != len(request.get("targets", [])):
            for fd in fds:
                os.close(fd)
            self._send(sandbox, {"error": "descriptors and targets do not match"})
            return
        # bwrap reports its PID 1 on an info descriptor of ours: the process to kill, and
        # whose resource usage (it re-parents here when bwrap's monitor exits) is the run's.
        info_read, info_write = os.pipe2(os.O_CLOEXEC)
        info_target = max([*request["targets"], 2]) + 1
        argv = request["argv"]
        request = {
            **request,
            "argv": [argv[0], "--info-fd", str(info_target), *argv[1:]],
            "targets": [*request["targets"], info_target],
        }
        fds = [*fds, info_write]
        if sandbox.collect is not None:
            # The program waits (bwrap --block-fd) until the namespaces are held: however
            # short it is, its output directory outlives it.
            block_read, sandbox.block_fd = os.pipe2(os.O_CLOEXEC)
            block_target = info_target + 1
            request["argv"][1:1] = ["--block-fd", str(block_target)]
            request["targets"] = [*request["targets"], block_target]
            fds = [*fds, block_read]
        report_read, report_write = os.pipe2(os.O_CLOEXEC)
        pid = os.fork()
        if pid == 0:
            try:
                os.close(report_read)
                _become_sandbox(request, fds)
            except BaseException as exc:  # reported to ForgeAI, then the child exits
                with_errno = f"{type(exc).__name__}: {exc}"
                os.write(report_write, with_errno.encode(errors="replace")[:4000])
            os._exit(127)
        os.close(report_write)
        for fd in fds:
            os.close(fd)
        chunks = []
        while chunk := _read_retrying(report_read):
            chunks.append(chunk)
        os.close(report_read)
        if chunks:
            os.close(info_read)
            self._unblock(sandbox)
            os.waitpid(pid, 0)
            error = b"".join(chunks).decode(errors="replace")
            self._send(sandbox, {"error": error})
            return
        sandbox.pid = pid
        self.sandboxes[pid] = sandbox
        self.selector.register(info_read, selectors.EVENT_READ, self._info_reader(sandbox))
        self._send(sandbox, {"pid": pid})

    def _info_reader(self, sandbox: Sandbox) -> Any:
        info = bytearray()

        def on_info(fd: int) -> None:
            chunk = _read_retrying(fd)
            info.extend(chunk)
            if chunk:
                return
            self.selector.unregister(fd)
            os.close(fd)
            try:
                inner = json.loads(bytes(info)).get("child-pid")
            except (ValueError, AttributeError):
                inner = None
            if isinstance(inner, int) and sandbox.status is None:
                sandbox.inner.add(inner)
                self.owner_of_inner[inner] = sandbox
                if sandbox.collect is not None:
                    self._hold_namespaces(sandbox, inner)
            self._unblock(sandbox)

        return on_info

    @staticmethod
    def _unblock(sandbox: Sandbox) -> None:
        """Let the program start (or, closed, let bwrap go on to its end)."""
        if sandbox.block_fd is not None:
            with contextlib.suppress(OSError):
                os.write(sandbox.block_fd, b"g")
            os.close(sandbox.block_fd)
            sandbox.block_fd = None

    @staticmethod
    def _hold_namespaces(sandbox: Sandbox, pid1: int) -> None:
        """Hold PID 1's mount namespace (it has it from its clone) and the user namespace
        that owns it (asked of the mount namespace: PID 1 may already have moved on into a
        nested one, which could not enter it)."""
        try:
            mnt_fd = os.open(f"/proc/{pid1}/ns/mnt", os.O_RDONLY | os.O_CLOEXEC)
        except OSError:  # gone already: nothing can be collected
            return
        try:
            user_fd = fcntl.ioctl(mnt_fd, NS_GET_USERNS)
        except OSError:
            os.close(mnt_fd)
            return
        os.set_inheritable(user_fd, False)
        sandbox.ns_fds = [user_fd, mnt_fd]

    def _start_collector(self, sandbox: Sandbox) -> None:
        """Once the sandbox has ended: a child that reads its output directory (the end is
        reported when the child is done, so the output is complete by then)."""
        out_fd, sandbox.collect_fd = sandbox.collect_fd, None
        ns_fds, sandbox.ns_fds = sandbox.ns_fds, []
        collect = sandbox.collect or {}
        if out_fd is None:
            return
        if len(ns_fds) == 2 and not sandbox.client_gone:
            pid = os.fork()
            if pid == 0:
                keep = {out_fd, *ns_fds, 0, 1, 2}
                for name in os.listdir("/proc/self/fd"):
                    if int(name) not in keep:
                        with contextlib.suppress(OSError):
                            os.close(int(name))
                # What was written stays; a failure only ends the output early.
                with contextlib.suppress(BaseException):
                    _collect(
                        ns_fds,
                        str(collect.get("dir", "")),
                        out_fd,
                        int(collect.get("max_files", 1000)),
                        int(collect.get("max_bytes", 50 * 1024 * 1024)),
                    )
                os._exit(0)
            sandbox.collector = pid
            self.collectors.add(pid)
            sandbox.inner.add(pid)
            self.owner_of_inner[pid] = sandbox
        for fd in (out_fd, *ns_fds):
            os.close(fd)

    # -- ending --------------------------------------------------------------------------------

    def _kill(self, sandbox: Sandbox) -> None:
        """SIGKILL the sandbox's PID 1 from outside (its namespace goes with it), then bwrap."""
        if not sandbox.running:
            return
        assert sandbox.pid is not None
        _signal(sandbox.pid, signal.SIGSTOP)  # it cannot start another child meanwhile
        for child in _children(sandbox.pid):
            sandbox.inner.add(child)
            self.owner_of_inner[child] = sandbox
            _signal(child)
        _signal(sandbox.pid)

    def _on_wake(self, _fd: int) -> None:
        while _read_retrying(self.wake, nonblocking=True):
            pass
        self._reap()

    def _reap(self) -> None:
        while True:
            try:
                pid, status, usage = os.wait4(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            sandbox = self.sandboxes.pop(pid, None)
            if sandbox is not None:
                self._unblock(sandbox)
                sandbox.status = status
                self._add_usage(sandbox, usage)
                self._kill_orphans()
                if sandbox.collect_fd is not None:
                    self._start_collector(sandbox)
                mine = _children(os.getpid())
                for gone in sandbox.inner - mine:  # reaped by its monitor, not re-parented
                    sandbox.inner.discard(gone)
                    self.owner_of_inner.pop(gone, None)
                self._finish_if_done(sandbox)
                continue
            owner = self.owner_of_inner.pop(pid, None)
            if owner is not None:
                owner.inner.discard(pid)
                self.collectors.discard(pid)
                if pid != owner.collector:  # ForgeAI's own work is not the run's
                    self._add_usage(owner, usage)
                self._finish_if_done(owner)

    @staticmethod
    def _add_usage(sandbox: Sandbox, usage: resource.struct_rusage) -> None:
        sandbox.cpu += usage.ru_utime + usage.ru_stime
        sandbox.maxrss = max(sandbox.maxrss, usage.ru_maxrss)

    def _kill_orphans(self) -> None:
        """Any child that is not a running monitor is a sandbox's PID 1 whose monitor left."""
        for child in _children(os.getpid()):
            if child not in self.sandboxes and (self.stopping or child not in self.collectors):
                _signal(child)

    def _finish_if_done(self, sandbox: Sandbox) -> None:
        if sandbox.status is None or sandbox.inner:
            return
        self._send(
            sandbox,
            {
                "status": sandbox.status,
                "cpu": sandbox.cpu,
                "maxrss": sandbox.maxrss,
                "deadline": sandbox.deadline_passed,
            },
        )
        sandbox.reported = True
        if sandbox.client_gone:
            self._forget(sandbox, clean=True)

    def _check_deadlines(self) -> float | None:
        now = time.monotonic()
        upcoming = None
        for sandbox in list(self.sandboxes.values()):
            if sandbox.deadline is None:
                continue
            if sandbox.deadline <= now:
                sandbox.deadline = None
                sandbox.deadline_passed = sandbox.running
                self._kill(sandbox)
            else:
                left = sandbox.deadline - now
                upcoming = left if upcoming is None else min(upcoming, left)
        return upcoming

    def _stop_all(self) -> None:
        self.stopping = True
        for sandbox in list(self.sandboxes.values()):
            self._kill(sandbox)

    def _drain(self) -> None:
        """After ForgeAI is gone: wait for every sandbox to end, then remove what it left."""
        end = time.monotonic() + CLEANUP_SECONDS
        while (self.sandboxes or self.owner_of_inner) and time.monotonic() < end:
            self._stop_all()
            self._kill_orphans()
            self._reap()
            for pending in list(self.owner_of_inner):
                if pending not in _children(os.getpid()):  # reaped by its monitor
                    owner = self.owner_of_inner.pop(pending)
                    owner.inner.discard(pending)
                    self._finish_if_done(owner)
            time.sleep(0.01)
        for sandbox in list(self.open):
            if sandbox.container is not None:
                _remove_container(*sandbox.container)
            _clean(sandbox.cleanup)

    def serve(self) -> None:
        while not self.stopping:
            timeout = self._check_deadlines()
            for key, _events in self.selector.select(timeout):
                key.data(key.fd)
                if self.stopping:
                    break
        self._drain()


def _read_retrying(fd: int, *, nonblocking: bool = False) -> bytes:
    while True:
        try:
            return os.read(fd, 4096)
        except InterruptedError:
            continue
        except BlockingIOError:
            if nonblocking:
                return b""
            raise


def _clean(entries: list[list[str]]) -> None:
    """Remove what a sandbox left: ``["rmdir", cgroup]`` and ``["rmtree", work dir]``."""
    for _attempt in range(50):
        pending = False
        for kind, path in entries:
            if not os.path.lexists(path):
                continue
            if kind == "rmtree":
                import shutil  # only after ForgeAI died: not paid at every start

                shutil.rmtree(path, ignore_errors=True)
            elif kind == "rmdir":
                try:
                    os.rmdir(path)
                except OSError as exc:
                    pending = pending or exc.errno == errno.EBUSY
        if not pending:
            return
        time.sleep(0.02)


def _remove_container(engine: str, container_id: str) -> None:
    """Kill and remove a container through the Docker Engine API (Docker or Podman), over
    the engine's Unix socket or plain TCP; an engine behind TLS or SSH is left to the next
    ForgeAI start, which removes containers of dead ForgeAI processes by label."""
    import http.client  # only where containers are used: the supervisor starts without it

    class UnixConnection(http.client.HTTPConnection):
        def connect(self) -> None:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.settimeout(ENGINE_TIMEOUT_SECONDS)
            sock.connect(engine[len("unix://") :])
            self.sock = sock

    if engine.startswith("unix://"):
        connection: http.client.HTTPConnection = UnixConnection(
            "localhost", timeout=ENGINE_TIMEOUT_SECONDS
        )
    elif engine.startswith(("tcp://", "http://")):
        address = engine.split("://", 1)[1].rstrip("/")
        connection = http.client.HTTPConnection(address, timeout=ENGINE_TIMEOUT_SECONDS)
    else:
        return
    try:
        connection.request("DELETE", f"/containers/{container_id}?force=1&v=1")
        connection.getresponse().read()
    except (OSError, http.client.HTTPException):
        pass
    finally:
        connection.close()


def main() -> None:
    control = socket.socket(fileno=int(sys.argv[1]))
    os.set_inheritable(control.fileno(), False)
    _libc_call(
        "prctl",
        PR_SET_CHILD_SUBREAPER,
        ctypes.c_ulong(1),
        ctypes.c_ulong(0),
        ctypes.c_ulong(0),
        ctypes.c_ulong(0),
    )
    Supervisor(control).serve()


if __name__ == "__main__":
    main()
