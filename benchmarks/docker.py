"""Docker backend figures: one run of ``python3 -c pass`` request -> result through the docker
backend (a fresh container; and from a pool of pre-started containers) against the native
backend's cold run and the bare process, interleaved in the same run.

Uses the engine at $DOCKER_HOST, else starts a private dockerd (Debian's docker.io) for the
duration; builds the official Python plugin's image first if it is missing.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import statistics
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from forgeai_ls.images.build import build_plugin_image
from forgeai_ls.plugins.manager import ManagerConfig, PluginManager
from forgeai_ls.sandbox import DEFAULT_RUN_LIMITS, NativeBackend, SandboxRequest, StepSpec
from forgeai_ls.sandbox.docker_backend import DockerBackend
from forgeai_ls.sandbox.docker_engine import connect


@contextlib.contextmanager
def engine_url() -> Iterator[str]:
    if os.environ.get("DOCKER_HOST"):
        yield os.environ["DOCKER_HOST"]
        return
    dockerd = shutil.which("dockerd")
    if dockerd is None:
        raise SystemExit("no DOCKER_HOST and no dockerd: install docker.io or set DOCKER_HOST")
    with tempfile.TemporaryDirectory(prefix="fdk-", dir="/tmp") as root:
        url = f"unix://{root}/d.sock"
        process = subprocess.Popen(
            [dockerd, "--data-root", f"{root}/data", "--exec-root", f"{root}/x",
             "--pidfile", f"{root}/pid", "-H", url, "--iptables=false", "--ip6tables=false",
             "--bridge=none", "--storage-driver=overlay2"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        try:
            deadline = time.monotonic() + 60
            while True:
                try:
                    connect(url, timeout=5)
                    break
                except Exception:
                    if time.monotonic() > deadline or process.poll() is not None:
                        raise
                    time.sleep(0.2)
            yield url
        finally:
            process.send_signal(signal.SIGTERM)
            process.wait(timeout=60)


def _python_image(url: str) -> str:
    engine = connect(url)
    manager = PluginManager(NativeBackend(), ManagerConfig(home=Path(tempfile.mkdtemp())))
    manager.load_all()
    plugin = next(p for p in manager.plugins() if p.name == "python")
    tag = plugin.manifest.container_image
    assert tag is not None
    if not engine.client.images.list(name=tag):
        build_plugin_image(plugin, engine.client)
    return tag


async def _time(backend: DockerBackend | NativeBackend, request: SandboxRequest) -> float:
    start = time.perf_counter()
    result = await backend.run(request)
    elapsed = (time.perf_counter() - start) * 1000
    assert result.exit_code == 0, result
    return elapsed


async def docker_latency(runs: int = 20) -> dict[str, float]:
    with engine_url() as url:
        image = _python_image(url)
        native = NativeBackend()
        python = native.resolver.resolve("python3").executable
        docker_request = SandboxRequest(
            files={}, run=StepSpec(argv=("python3", "-c", "pass"), limits=DEFAULT_RUN_LIMITS),
            image=image,
        )  # fmt: skip
        native_request = SandboxRequest(
            files={}, run=StepSpec(argv=(python, "-c", "pass"), limits=DEFAULT_RUN_LIMITS)
        )
        fresh = DockerBackend(url)
        pooled = DockerBackend(url, pool_size=2)
        try:
            for backend in (fresh, pooled):  # connect, warm the image cache and the pool
                await _time(backend, docker_request)
            await _time(native, native_request)
            series: dict[str, list[float]] = {"bare": [], "native": [], "docker": [], "pool": []}
            for _ in range(runs):
                start = time.perf_counter()
                subprocess.run([python, "-c", "pass"], check=True)
                series["bare"].append((time.perf_counter() - start) * 1000)
                series["native"].append(await _time(native, native_request))
                series["docker"].append(await _time(fresh, docker_request))
                series["pool"].append(await _time(pooled, docker_request))
                await asyncio.sleep(0.2)  # let the pool refill, as between an editor's runs
        finally:
            pooled.close()
    median = {name: statistics.median(values) for name, values in series.items()}
    return {
        "bare_ms": median["bare"],
        "native_ms": median["native"],
        "docker_ms": median["docker"],
        "docker_pool_ms": median["pool"],
        "docker_vs_bare": median["docker"] / median["bare"],
        "docker_pool_vs_bare": median["pool"] / median["bare"],
        "docker_vs_native": median["docker"] / median["native"],
        "docker_pool_vs_native": median["pool"] / median["native"],
    }


if __name__ == "__main__":
    figures = asyncio.run(docker_latency())
    print("docker_latency", "  ".join(f"{k}={v:.3f}" for k, v in figures.items()))
