"""The sandbox's end of the egress proxy: a forwarder from its loopback to the Unix socket.

The run step of a sandbox with an allow-list starts as ``python3 -I -S -c FORWARDER PORT SOCKET
-- PROGRAM...`` (ForgeAI's own interpreter, mounted read-only like any toolchain). It binds
``127.0.0.1:PORT`` and ``[::1]:PORT`` first (so the program never races it), forks a child
that relays every connection to the Unix socket (one thread, a selector: nothing per
connection but two sockets), and then becomes the program (exec): the
program keeps the process, exit status and signals it would have had. The child ends with the
sandbox. It runs as the program's user: the program could stop it or connect to the socket
itself, which gives it nothing the proxy does not already decide on.
"""

from __future__ import annotations

FORWARDER = r"""
import os, selectors, socket, sys
port, path, program = int(sys.argv[1]), sys.argv[2], sys.argv[4:]
listeners = []
for family, host in ((socket.AF_INET, "127.0.0.1"), (socket.AF_INET6, "::1")):
    try:
        listener = socket.socket(family, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((host, port))
        listener.listen(128)
        listeners.append(listener)
    except OSError:
        pass
if os.fork() == 0:
    null = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(null, fd)
    chooser = selectors.DefaultSelector()
    peer, out, done, mask = {}, {}, {}, {}
    def update(sock):
        want = 0
        if not done[sock] and not out[peer[sock]]:
            want |= selectors.EVENT_READ
        if out[sock]:
            want |= selectors.EVENT_WRITE
        if want == mask[sock]:
            return
        if mask[sock] == 0:
            chooser.register(sock, want)
        elif want == 0:
            chooser.unregister(sock)
        else:
            chooser.modify(sock, want)
        mask[sock] = want
    def finish(sock):
        other = peer[sock]
        if done[sock] and done[other] and not out[sock] and not out[other]:
            for end in (sock, other):
                if mask[end]:
                    chooser.unregister(end)
                end.close()
                for table in (peer, out, done, mask):
                    table.pop(end, None)
            return True
        return False
    def write(sock):
        try:
            sent = sock.send(out[sock])
        except BlockingIOError:
            return
        except OSError:
            out[sock], done[sock], done[peer[sock]] = b"", True, True
            return
        out[sock] = out[sock][sent:]
        if not out[sock] and done[peer[sock]]:
            try:
                sock.shutdown(socket.SHUT_WR)
            except OSError:
                pass
    for listener in listeners:
        listener.setblocking(False)
        chooser.register(listener, selectors.EVENT_READ, "accept")
    while True:
        for key, events in chooser.select():
            sock = key.fileobj
            if key.data == "accept":
                try:
                    client, _ = sock.accept()
                    upstream = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                except OSError:
                    continue
                try:
                    upstream.connect(path)
                except OSError:
                    client.close()
                    upstream.close()
                    continue
                for end, other in ((client, upstream), (upstream, client)):
                    end.setblocking(False)
                    peer[end], out[end], done[end], mask[end] = other, b"", False, 0
                update(client)
                update(upstream)
                continue
            if sock not in peer:
                continue
            other = peer[sock]
            if events & selectors.EVENT_WRITE:
                write(sock)
            if events & selectors.EVENT_READ and not done[sock]:
                try:
                    data = sock.recv(262144)
                except BlockingIOError:
                    data = None
                except OSError:
                    data = b""
                if data:
                    out[other] = data
                    write(other)
                elif data is not None:
                    done[sock] = True
                    if not out[other]:
                        try:
                            other.shutdown(socket.SHUT_WR)
                        except OSError:
                            pass
            if not finish(sock):
                update(sock)
                update(other)
for listener in listeners:
    listener.close()
try:
    os.execvp(program[0], program)
except OSError as exc:
    print(f"forgeai: cannot start {program[0]}: {exc.strerror}", file=sys.stderr)
    os._exit(127)
"""


def forwarded_argv(python: str, port: int, socket_path: str, argv: list[str]) -> list[str]:
    """``argv`` started behind the forwarder."""
    return [python, "-I", "-S", "-c", FORWARDER, str(port), socket_path, "--", *argv]
