"""Issue 14's figures: what real code's features cost. The allow-list proxy: sequential HTTP
requests from a sandboxed program to an HTTP server on this machine, through the egress proxy
(``--allow-net``) against the same requests made directly (``--network``: the host's network),
interleaved in the same run."""

from __future__ import annotations

import statistics
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from forgeai_ls.plugins.manager import ManagerConfig, PluginManager
from forgeai_ls.sandbox import DEFAULT_RUN_LIMITS, NativeBackend
from forgeai_ls.sandbox.egress_policy import EgressPolicy

PROGRAM = """
import json, time, urllib.request
times = []
for _ in range({count}):
    start = time.perf_counter()
    with urllib.request.urlopen({url!r}) as answer:
        answer.read()
    times.append((time.perf_counter() - start) * 1000)
print(json.dumps(times[5:]))
"""


class _Quiet(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.0"

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *_args: object) -> None:
        pass


async def egress_latency(rounds: int = 4, count: int = 105) -> dict[str, float]:
    """Per-request p50 through the proxy and directly; the difference is what the proxy adds
    (the forwarder in the sandbox, the Unix socket, the host proxy's relay)."""
    import json
    import tempfile

    server = ThreadingHTTPServer(("127.0.0.2", 0), _Quiet)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.2:{server.server_address[1]}/"
    backend = NativeBackend()
    try:
        with tempfile.TemporaryDirectory() as home:
            manager = PluginManager(backend, ManagerConfig(home=Path(home)))
            manager.load_all()
            executor, name = manager.get_executor("python")
            language = executor.language(name)
            code = PROGRAM.format(count=count, url=url)
            limits = DEFAULT_RUN_LIMITS.with_overrides(wall_timeout=60)
            direct: list[float] = []
            proxied: list[float] = []
            policy = EgressPolicy.parse([f"127.0.0.2:{server.server_address[1]}"])
            for _ in range(rounds):
                for target, how in ((direct, "direct"), (proxied, "proxy")):
                    request = language.build_request(
                        code,
                        limits=limits.with_overrides(network=how == "direct"),
                        egress=policy if how == "proxy" else None,
                    )
                    result = await backend.run(request)
                    assert result.exit_code == 0, result.stderr
                    target += json.loads(result.stdout)
    finally:
        server.shutdown()
        server.server_close()
    return {
        "direct_p50_ms": statistics.median(direct),
        "proxy_p50_ms": statistics.median(proxied),
        "added_p50_ms": statistics.median(proxied) - statistics.median(direct),
        "requests_each": float(len(direct)),
    }
