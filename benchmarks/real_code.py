"""Issue 14's figures: what real code's features cost. The allow-list proxy: sequential HTTP
requests from a sandboxed program to an HTTP server on this machine, through the egress proxy
(``--allow-net``) against the same requests made directly (``--network``: the host's network),
interleaved in the same run."""

from __future__ import annotations

import os
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


SMALL_SET = ("shouter", "colorish", "tablefmt")


def _small_index(root: Path) -> None:
    from tests.support.package_index import build_wheel

    build_wheel(root, "greeter", "1.0", module="def hello():\n    return 'hello'\n")
    build_wheel(
        root, "shouter", "1.0", module="import greeter\nSHOUT = 1\n", requires=("greeter<2",)
    )
    build_wheel(root, "colorish", "2.1", module="RED = '\\x1b[31m'\n")
    build_wheel(root, "tablefmt", "0.9", module="def table(rows):\n    return rows\n")


def first_install(rounds: int = 5) -> dict[str, float]:
    """Installing a small set (4 packages with one dependency) from a local index into a fresh
    environment: ForgeAI's sandboxed install (a fresh cache each time) against `uv venv` +
    `uv pip install` bare into a fresh directory with a fresh uv cache, interleaved."""
    import asyncio
    import subprocess
    import tempfile
    import time

    from forgeai_ls.dependencies.declared import DeclaredDependencies
    from forgeai_ls.dependencies.environment_cache import EnvironmentCache
    from forgeai_ls.dependencies.installer import prepare_environment, uv_binary
    from forgeai_ls.dependencies.package_index import PackageIndex
    from forgeai_ls.sandbox.toolchain import ToolchainResolver
    from tests.support.package_index import serve_index

    python = ToolchainResolver().resolve("python3").executable
    uv = uv_binary()
    declared = DeclaredDependencies(requirements=SMALL_SET, source="benchmark")
    backend = NativeBackend()
    ours: list[float] = []
    bare: list[float] = []
    with (
        tempfile.TemporaryDirectory() as scratch,
        serve_index(Path(scratch) / "index", "127.0.0.6") as url,
    ):
        _small_index(Path(scratch) / "index")
        requirements = Path(scratch) / "requirements.txt"
        requirements.write_text("\n".join(SMALL_SET) + "\n")
        for round_number in range(rounds + 1):
            target = Path(scratch) / f"bare-{round_number}"
            env = {**os.environ, "UV_CACHE_DIR": str(Path(scratch) / f"uvc-{round_number}")}
            start = time.perf_counter()
            subprocess.run([uv, "venv", "-q", "--python", python, str(target)], env=env, check=True)
            subprocess.run(
                [uv, "pip", "install", "-q", "--python", str(target / "bin" / "python"),
                 "--index-url", url, "-r", str(requirements)],
                env=env, check=True,
            )  # fmt: skip
            bare_ms = (time.perf_counter() - start) * 1000
            cache = EnvironmentCache(Path(scratch) / f"envs-{round_number}")
            start = time.perf_counter()
            asyncio.run(
                prepare_environment(
                    declared,
                    backend=backend,
                    cache=cache,
                    index=PackageIndex(url, "benchmark"),
                    python="python3",
                )
            )
            ours_ms = (time.perf_counter() - start) * 1000
            if round_number:  # the first round warms the page cache
                bare.append(bare_ms)
                ours.append(ours_ms)
    return {
        "forgeai_ms": statistics.median(ours),
        "bare_uv_ms": statistics.median(bare),
        "ratio": statistics.median(ours) / statistics.median(bare),
    }


def cached_dependencies_cli(runs: int = 15) -> dict[str, float]:
    """Whole `forgeai run` processes (the daemon serving them, as users get it): a script
    whose PEP 723 dependencies are cached against the same script with none, interleaved."""
    import subprocess
    import sys
    import tempfile
    import time

    from tests.support.package_index import serve_index

    forgeai = [sys.executable, "-m", "forgeai_ls.cli.main"]
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch)
        _small_index(root / "index")
        with serve_index(root / "index", "127.0.0.6") as url:
            env = {**os.environ, "FORGEAI_HOME": str(root / "home"), "UV_INDEX_URL": url}
            with_deps = root / "with_deps.py"
            with_deps.write_text(
                "# /// script\n# dependencies = ['shouter', 'colorish', 'tablefmt']\n# ///\n"
                "import shouter\nprint(1)\n"
            )
            plain = root / "plain.py"
            plain.write_text("print(1)\n")

            def once(program: Path) -> float:
                start = time.perf_counter()
                subprocess.run(
                    [*forgeai, "run", str(program)], env=env, cwd=root, check=True,
                    capture_output=True,
                )  # fmt: skip
                return (time.perf_counter() - start) * 1000

            subprocess.run([*forgeai, "daemon", "start"], env=env, cwd=root, check=True)
            try:
                for _ in range(3):  # install, start the daemon's pools for both
                    once(with_deps)
                    once(plain)
                deps_ms, plain_ms = [], []
                for _ in range(runs):
                    deps_ms.append(once(with_deps))
                    plain_ms.append(once(plain))
            finally:
                subprocess.run([*forgeai, "daemon", "stop"], env=env, cwd=root, check=False)
    return {
        "with_cached_deps_ms": statistics.median(deps_ms),
        "no_deps_ms": statistics.median(plain_ms),
        "ratio": statistics.median(deps_ms) / statistics.median(plain_ms),
    }
