"""A real HTTP server on 127.0.0.1 that misbehaves the way broken registries do."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class _Handler(BaseHTTPRequestHandler):
    behaviour = "garbage"

    def do_GET(self) -> None:
        if self.behaviour in ("drip", "huge"):
            self._endless()
            return
        if self.behaviour == "slow":
            time.sleep(3)
        if self.behaviour == "error":
            self.send_response(503)
            self.end_headers()
            return
        body = b"<html>definitely not a registry</html>\x00\xff"
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        with suppress(OSError):
            self.wfile.write(body)

    def _endless(self) -> None:
        """A 200 whose body never ends: a byte a second (drip), or as fast as it goes
        (huge, counted in ``sent``)."""
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        chunk = b"[" if self.behaviour == "drip" else b"[0," * 65536
        with suppress(OSError):
            for _ in range(10**6):
                self.wfile.write(chunk)
                self.wfile.flush()
                type(self).sent += len(chunk)
                if self.behaviour == "drip":
                    time.sleep(1)

    sent = 0

    def log_message(self, *_: object) -> None:
        pass


@contextmanager
def hostile_registry(behaviour: str) -> Iterator[str]:
    """``garbage`` (200 with junk), ``slow`` (answers after 3 s), ``error`` (503), ``drip``
    (a body of one byte a second, never ending) or ``huge`` (a never-ending body, fast)."""
    handler = type("Handler", (_Handler,), {"behaviour": behaviour})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
