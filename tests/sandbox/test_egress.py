"""Network by allow-list, through the real egress proxy: HTTP servers on 127.0.0.x of this
machine, programs in the real sandbox."""

from __future__ import annotations

import hashlib
import ipaddress
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from forgeai_ls.sandbox.egress_policy import EgressPolicy
from tests.conftest import run_code

pytestmark = pytest.mark.sandbox


class Site:
    """An HTTP server on one loopback address that counts the requests it got."""

    def __init__(self, address: str) -> None:
        site = self
        self.requests: list[str] = []

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                site.requests.append(self.path)
                body = f"hello from {address}".encode()
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_POST(self) -> None:  # the body arrives whole, answered with its digest
                size = int(self.headers["Content-Length"])
                body = hashlib.sha256(self.rfile.read(size)).hexdigest().encode()
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *_args: object) -> None:
                pass

        self.server = ThreadingHTTPServer((address, 0), Handler)
        self.address = address
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://{self.address}:{self.port}/"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def sites() -> Iterator[tuple[Site, Site]]:
    allowed, other = Site("127.0.0.2"), Site("127.0.0.3")
    yield allowed, other
    allowed.close()
    other.close()


FETCH = """
import sys, urllib.request, urllib.error
for url in sys.argv[1:] or URLS:
    try:
        with urllib.request.urlopen(url, timeout=10) as answer:
            print(answer.status, answer.read().decode())
    except urllib.error.HTTPError as exc:
        print(exc.code, exc.read().decode().strip())
    except OSError as exc:
        print("error", type(exc).__name__)
"""


async def test_an_allowed_host_is_reached_another_is_refused_and_reported(
    sites: tuple[Site, Site],
) -> None:
    allowed, other = sites
    policy = EgressPolicy.parse([f"{allowed.address}:{allowed.port}"])
    code = f"URLS = [{allowed.url!r}, {other.url!r}]\n{FETCH}"
    result = await run_code("python", code, egress=policy)
    assert result.exit_code == 0, result.stderr
    lines = result.stdout.decode().splitlines()
    assert lines[0] == f"200 hello from {allowed.address}"
    assert lines[1].startswith("403 ForgeAI: connection to 127.0.0.3:") and "blocked" in lines[1]
    assert allowed.requests == ["/"] and other.requests == []
    assert result.network is not None
    assert result.network.allowed == (f"{allowed.address}:{allowed.port}",)
    assert result.network.denied == (f"{other.address}:{other.port}",)


async def test_https_style_tunnels_go_through_connect(sites: tuple[Site, Site]) -> None:
    """CONNECT (what HTTPS uses) to an allowed host works; to another it is refused."""
    allowed, other = sites
    code = (
        "import http.client\n"
        f"for host, port in (({allowed.address!r}, {allowed.port}), "
        f"({other.address!r}, {other.port})):\n"
        "    connection = http.client.HTTPConnection('127.0.0.1', 3128, timeout=10)\n"
        "    connection.set_tunnel(host, port)\n"
        "    try:\n"
        "        connection.request('GET', '/tunnel')\n"
        "        print(connection.getresponse().read().decode())\n"
        "    except OSError as exc:\n"
        "        print('refused', exc)\n"
    )
    policy = EgressPolicy.parse([f"{allowed.address}"])
    result = await run_code("python", code, egress=policy)
    assert result.exit_code == 0, result.stderr
    lines = result.stdout.decode().splitlines()
    assert lines[0] == f"hello from {allowed.address}"
    assert lines[1].startswith("refused") and "403" in lines[1]
    assert allowed.requests == ["/tunnel"] and other.requests == []


async def test_going_around_the_proxy_reaches_nothing(sites: tuple[Site, Site]) -> None:
    """The sandbox keeps its own network namespace: a direct connection to an allowed host,
    or to the host's services, finds only the sandbox's own loopback."""
    allowed, _ = sites
    code = (
        "import socket\n"
        f"for address in (({allowed.address!r}, {allowed.port}), ('10.0.0.1', 80)):\n"
        "    try:\n"
        "        socket.create_connection(address, timeout=3)\n"
        "        print('connected')\n"
        "    except OSError as exc:\n"
        "        print(type(exc).__name__)\n"
    )
    result = await run_code("python", code, egress=EgressPolicy.parse([allowed.address]))
    assert result.exit_code == 0, result.stderr
    assert b"connected" not in result.stdout
    assert allowed.requests == []


async def test_an_allowed_name_that_resolves_to_this_machine_is_refused() -> None:
    """Only an explicit loopback entry opens this machine's services: a name on the list that
    resolves to a loopback address (DNS rebinding, a hosts entry) is refused."""
    name = _loopback_name()
    code = f"URLS = ['http://{name}:9/']\n{FETCH}"
    result = await run_code("python", code, egress=EgressPolicy.parse([name]))
    assert result.exit_code == 0, result.stderr
    expected = f"403 ForgeAI: connection to {name}:9 blocked: it resolves to".encode()
    assert result.stdout.startswith(expected), result.stdout
    assert b"address of this machine" in result.stdout
    assert result.network is not None and result.network.denied == (f"{name}:9",)


def _loopback_name() -> str:
    """A name other than localhost that this machine resolves to a loopback address (hosts
    files have one: Debian's ip6-localhost, a container's own host name)."""
    for line in Path("/etc/hosts").read_text().splitlines():
        fields = line.split("#", 1)[0].split()
        if len(fields) < 2 or not ipaddress.ip_address(fields[0]).is_loopback:
            continue
        for name in fields[1:]:
            if name.lower() == "localhost":
                continue
            try:
                found = socket.getaddrinfo(name, 9, type=socket.SOCK_STREAM)
            except OSError:
                continue
            if all(ipaddress.ip_address(info[4][0]).is_loopback for info in found):
                return name
    pytest.skip("no name besides localhost resolves to a loopback address here")


async def test_without_an_allow_list_there_is_no_proxy(sites: tuple[Site, Site]) -> None:
    allowed, _ = sites
    code = f"import os\nprint(os.environ.get('HTTP_PROXY'))\nURLS = [{allowed.url!r}]\n{FETCH}"
    result = await run_code("python", code)
    assert result.exit_code == 0, result.stderr
    assert result.stdout.decode().splitlines() == ["None", "error URLError"]
    assert result.network is None and allowed.requests == []


@pytest.fixture
def echo_server() -> Iterator[tuple[str, int]]:
    """A TCP server on 127.0.0.2 that sends back everything it reads, then closes."""
    server = socket.create_server(("127.0.0.2", 0))
    stop = threading.Event()

    def serve() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                client, _ = server.accept()
            except TimeoutError:
                continue
            with client:
                while data := client.recv(65536):
                    client.sendall(data)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield "127.0.0.2", server.getsockname()[1]
    stop.set()
    thread.join()
    server.close()


async def test_a_tunnel_carries_megabytes_both_ways_intact(echo_server: tuple[str, int]) -> None:
    """CONNECT to a raw TCP service: 4 MiB up and back through the forwarder and the proxy,
    byte for byte, with the half-close passed along."""
    host, port = echo_server
    code = (
        "import hashlib, os, socket, threading\n"
        "sock = socket.create_connection(('127.0.0.1', 3128))\n"
        f"sock.sendall(b'CONNECT {host}:{port} HTTP/1.1\\r\\nHost: x\\r\\n\\r\\n')\n"
        "head = b''\n"
        "while not head.endswith(b'\\r\\n\\r\\n'):\n"
        "    head += sock.recv(1)\n"
        "print(head.split(b'\\r\\n')[0].decode())\n"
        "payload = os.urandom(4 * 1024 * 1024)\n"
        "def send():\n"
        "    sock.sendall(payload)\n"
        "    sock.shutdown(socket.SHUT_WR)\n"
        "threading.Thread(target=send).start()\n"
        "back = bytearray()\n"
        "while chunk := sock.recv(65536):\n"
        "    back += chunk\n"
        "print(len(back), hashlib.sha256(back).digest() == hashlib.sha256(payload).digest())\n"
    )
    result = await run_code("python", code, egress=EgressPolicy.parse([f"{host}:{port}"]))
    assert result.exit_code == 0, result.stderr
    assert result.stdout.decode().splitlines() == [
        "HTTP/1.1 200 Connection Established",
        f"{4 * 1024 * 1024} True",
    ]


async def test_a_plain_http_request_body_passes_whole(sites: tuple[Site, Site]) -> None:
    allowed, _ = sites
    code = (
        "import hashlib, os, urllib.request\n"
        "body = os.urandom(3 * 1024 * 1024)\n"
        f"answer = urllib.request.urlopen(urllib.request.Request({allowed.url!r}, data=body))\n"
        "print(answer.read().decode() == hashlib.sha256(body).hexdigest())\n"
    )
    result = await run_code("python", code, egress=EgressPolicy.parse([allowed.address]))
    assert (result.exit_code, result.stdout) == (0, b"True\n"), result.stderr
