"""Network by allow-list: an egress proxy on the host, reached from the sandbox through a
Unix socket.

A run with an allow-list keeps its own network namespace (nothing but its loopback). Its
sandbox gets one Unix socket bound in (``SANDBOX_SOCKET``); a small forwarder inside listens on
``127.0.0.1:PROXY_PORT`` and passes each connection to that socket, and ``HTTP_PROXY`` /
``HTTPS_PROXY`` name it. On the host end, ForgeAI's proxy reads one request per connection —
``CONNECT host:port`` (HTTPS and any TLS) or a plain-HTTP request in absolute form — and
connects only when the allow-list permits the host and port. The decision is made on the name
the program asked for, before any DNS lookup: a denied host is never resolved. A permitted name
that resolves to a loopback, link-local or unspecified address is refused unless the allow-list
names such an address (or ``localhost``) itself: the host's own services are an explicit
opt-in. Every attempt is recorded with its verdict (``NetworkReport``).
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import os
import socket
from dataclasses import dataclass, field
from pathlib import Path

from forgeai_ls.sandbox.egress_policy import (
    EgressPolicy,
    NetworkReport,
    ip_literal,
    local_address,
    normal_host,
)

log = logging.getLogger(__name__)

PROXY_PORT = 3128
"""Where the program's proxy listens inside the sandbox (its own loopback)."""
SANDBOX_SOCKET = "/run/forgeai/egress.sock"
_HEAD_BYTES = 16 * 1024
_HEAD_SECONDS = 10.0
_CONNECT_SECONDS = 10.0
_PIPE_CHUNK = 64 * 1024
_HOP_HEADERS = frozenset(
    {"proxy-connection", "proxy-authorization", "connection", "keep-alive", "te", "upgrade"}
)


def proxy_environment(policy: EgressPolicy) -> dict[str, str]:
    """What points the program's HTTP clients at the forwarder. ``NO_PROXY`` keeps the
    sandbox's own loopback direct, unless the allow-list opens this machine's: then nothing
    may go around the proxy."""
    proxy = f"http://127.0.0.1:{PROXY_PORT}"
    direct = "" if policy.local else "localhost,127.0.0.1,::1"
    names = ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy")
    return {
        **dict.fromkeys(names, proxy),
        "NO_PROXY": direct,
        "no_proxy": direct,
        "FORGEAI_ALLOW_NET": str(policy),
    }


@dataclass
class EgressProxy:
    """The host end of one sandbox's egress: a Unix socket and the server behind it."""

    policy: EgressPolicy
    socket_path: Path
    _sock: socket.socket | None = None
    _server: asyncio.AbstractServer | None = None
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)
    _allowed: dict[str, None] = field(default_factory=dict)
    _denied: dict[str, None] = field(default_factory=dict)

    def listen(self, owner_uid: int | None) -> None:
        """Bind the socket (before the sandbox starts: it is bound into it) and serve it on
        the running event loop."""
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.bind(str(self.socket_path))
            if owner_uid is not None:  # root: the sandbox runs as a dedicated uid
                os.chown(self.socket_path, owner_uid, -1)
            os.chmod(self.socket_path, 0o600)
            sock.listen(64)
            sock.setblocking(False)
        except OSError:
            sock.close()
            raise
        self._sock = sock
        loop = asyncio.get_running_loop()
        task = loop.create_task(self._serve(sock))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _serve(self, sock: socket.socket) -> None:
        self._server = await asyncio.start_unix_server(self._handle, sock=sock, limit=_HEAD_BYTES)

    def report(self) -> NetworkReport:
        return NetworkReport(allowed=tuple(self._allowed), denied=tuple(self._denied))

    def close(self) -> None:
        if self._server is not None:
            self._server.close()
        elif self._sock is not None:
            self._sock.close()
        for task in list(self._tasks):
            task.cancel()
        with contextlib.suppress(OSError):
            self.socket_path.unlink()

    # -- one connection ----------------------------------------------------------------------

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        try:
            await self._relay(reader, writer)
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError):
            pass
        except asyncio.CancelledError:
            pass  # the run ended (``close``): its connections go with it
        except TimeoutError:
            await _answer(writer, 408, "the request did not arrive in time")
        finally:
            writer.close()

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await asyncio.wait_for(_read_head(reader), _HEAD_SECONDS)
        except asyncio.LimitOverrunError:
            await _answer(writer, 400, "the request head is larger than 16 KiB")
            return
        request_line, _, rest = head.partition(b"\r\n")
        parts = request_line.decode("latin-1").split(" ")
        if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
            await _answer(writer, 400, "not an HTTP/1 proxy request")
            return
        method, target, version = parts
        if method == "CONNECT":
            host, port = _split_host_port(target, default=None)
            forward = b""
        elif target.lower().startswith("http://"):
            authority, _, path = target[len("http://") :].partition("/")
            host, port = _split_host_port(authority, default=80)
            forward = _origin_request(method, "/" + path, version, rest)
        else:
            await _answer(writer, 400, "use CONNECT (https) or an absolute http:// URL")
            return
        label = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        if not self.policy.permits(host, port):
            self._denied.setdefault(label)
            log.info("egress %s: denied (not on the allow-list)", label)
            await _answer(writer, 403, f"ForgeAI: connection to {label} blocked by the allow-list")
            return
        try:
            upstream_reader, upstream_writer = await self._connect(host, port)
        except PermissionError as exc:
            self._denied.setdefault(label)
            log.info("egress %s: denied (%s)", label, exc)
            await _answer(writer, 403, f"ForgeAI: connection to {label} blocked: {exc}")
            return
        except (OSError, TimeoutError) as exc:
            self._allowed.setdefault(label)
            await _answer(writer, 502, f"ForgeAI: {label} cannot be reached: {exc}")
            return
        self._allowed.setdefault(label)
        log.info("egress %s: allowed", label)
        try:
            if method == "CONNECT":
                writer.write(b"HTTP/1.1 200 Connection Established\r\n\r\n")
                await writer.drain()
            else:
                upstream_writer.write(forward)
            await _pipe_both(reader, writer, upstream_reader, upstream_writer)
        finally:
            upstream_writer.close()

    async def _connect(
        self, host: str, port: int
    ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        """Resolve (only now, the host being allowed) and connect to a checked address."""
        literal = ip_literal(host)
        candidates: list[tuple[int, int, str]]  # (family, proto, address)
        if literal is not None:  # an address: no lookup to make
            kind = socket.AF_INET6 if literal.version == 6 else socket.AF_INET
            candidates = [(int(kind), 0, str(literal))]
        else:
            infos = await asyncio.wait_for(
                asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM),
                _CONNECT_SECONDS,
            )
            candidates = [(int(info[0]), info[2], str(info[4][0])) for info in infos]
        local_ok = self.policy.local
        error: Exception | None = None
        for family, proto, address in candidates:
            ip = ipaddress.ip_address(address)
            if local_address(ip) and not local_ok:
                error = PermissionError(
                    f"it resolves to {ip}, an address of this machine (allow it explicitly, "
                    "e.g. localhost or 127.0.0.1)"
                )
                continue
            try:
                return await asyncio.wait_for(
                    asyncio.open_connection(str(ip), port, family=family, proto=proto),
                    _CONNECT_SECONDS,
                )
            except OSError as exc:
                error = exc
        raise error or OSError(f"{host} has no address")


async def _read_head(reader: asyncio.StreamReader) -> bytes:
    """The request line and headers (the stream's limit caps them); a body stays buffered."""
    head = await reader.readuntil(b"\r\n\r\n")
    return head[:-4]


def _split_host_port(authority: str, *, default: int | None) -> tuple[str, int]:
    if authority.startswith("["):
        close = authority.index("]")
        host, rest = authority[1:close], authority[close + 1 :]
        port_text = rest[1:] if rest.startswith(":") else ""
    else:
        host, _, port_text = authority.rpartition(":") if ":" in authority else (authority, "", "")
    if not port_text:
        if default is None:
            raise ValueError("CONNECT needs host:port")
        return normal_host(host), default
    port = int(port_text)
    if not 1 <= port <= 65535:
        raise ValueError("port out of range")
    return normal_host(host), port


def _origin_request(method: str, path: str, version: str, rest: bytes) -> bytes:
    """The request as the origin server gets it: origin-form target, no proxy or hop
    headers, one request per connection."""
    lines = [f"{method} {path} {version}".encode("latin-1")]
    for line in rest.split(b"\r\n"):
        name = line.split(b":", 1)[0].strip().lower().decode("latin-1")
        if line and name not in _HOP_HEADERS:
            lines.append(line)
    lines.append(b"Connection: close")
    return b"\r\n".join(lines) + b"\r\n\r\n"


async def _answer(writer: asyncio.StreamWriter, status: int, text: str) -> None:
    reasons = {400: "Bad Request", 403: "Forbidden", 408: "Request Timeout", 502: "Bad Gateway"}
    body = (text + "\n").encode()
    writer.write(
        f"HTTP/1.1 {status} {reasons[status]}\r\nContent-Type: text/plain; charset=utf-8\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode()
        + body
    )
    with contextlib.suppress(OSError):
        await writer.drain()


async def _pipe_both(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    upstream_reader: asyncio.StreamReader,
    upstream_writer: asyncio.StreamWriter,
) -> None:
    async def pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
        try:
            while chunk := await source.read(_PIPE_CHUNK):
                sink.write(chunk)
                await sink.drain()
        finally:
            with contextlib.suppress(OSError):
                if sink.can_write_eof():
                    sink.write_eof()

    results = await asyncio.gather(
        pipe(reader, upstream_writer), pipe(upstream_reader, writer), return_exceptions=True
    )
    del results
