"""The sandbox's end of the egress proxy: a forwarder from its loopback to the Unix socket.

The run step of a sandbox with an allow-list starts as ``python3 -I -S -c FORWARDER PORT SOCKET
-- PROGRAM...`` (ForgeAI's own interpreter, mounted read-only like any toolchain). It binds
``127.0.0.1:PORT`` and ``[::1]:PORT`` first (so the program never races it), forks a child
that passes every connection to the Unix socket, and then becomes the program (exec): the
program keeps the process, exit status and signals it would have had. The child ends with the
sandbox. It runs as the program's user: the program could stop it or connect to the socket
itself, which gives it nothing the proxy does not already decide on.
"""

from __future__ import annotations

FORWARDER = r"""
import os, socket, sys, threading
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
def pump(source, sink):
    try:
        while True:
            data = source.recv(65536)
            if not data:
                break
            sink.sendall(data)
    except OSError:
        pass
    for end, how in ((sink, socket.SHUT_WR), (source, socket.SHUT_RD)):
        try:
            end.shutdown(how)
        except OSError:
            pass
def serve(client):
    upstream = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        upstream.connect(path)
    except OSError:
        client.close()
        upstream.close()
        return
    back = threading.Thread(target=pump, args=(upstream, client), daemon=True)
    back.start()
    pump(client, upstream)
    back.join()
    client.close()
    upstream.close()
def accept(listener):
    while True:
        try:
            client, _ = listener.accept()
        except OSError:
            continue
        threading.Thread(target=serve, args=(client,), daemon=True).start()
if os.fork() == 0:
    null = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(null, fd)
    for listener in listeners[1:]:
        threading.Thread(target=accept, args=(listener,), daemon=True).start()
    if listeners:
        accept(listeners[0])
    os._exit(0)
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
