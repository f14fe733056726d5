"""Issue 8's figures that the older modules do not cover: warm runs, throughput, the compile
cache, server start-up with 50 plugins against a minimal pygls server, and 1,000 runs through
the server (descriptors, processes, memory)."""

from __future__ import annotations

import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import psutil
from lsprotocol import types

from benchmarks.plugins import make_plugins
from benchmarks.server import RawConnection, open_document, started_client
from forgeai_ls.plugins.manager import ManagerConfig, PluginManager
from forgeai_ls.sandbox import NativeBackend, SandboxRequest
from forgeai_ls.sandbox.compile_cache import CompileCache
from forgeai_ls.sandbox.toolchain import ToolchainResolver
from forgeai_ls.sandbox.warm_pool import PoolSettings

MINIMAL_SERVER = Path(__file__).with_name("minimal_server.py")


def _python() -> str:
    return ToolchainResolver().resolve("python3").executable


def _bare_ms(argv: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(argv, check=True, capture_output=True)
    return (time.perf_counter() - start) * 1000


def _request(manager: PluginManager, language: str, code: str) -> SandboxRequest:
    executor, name = manager.get_executor(language)
    return executor.language(name).build_request(code)


def _manager(backend: NativeBackend, home: Path) -> PluginManager:
    manager = PluginManager(backend, ManagerConfig(home=home))
    manager.load_all()
    return manager


async def warm_run(runs: int) -> dict[str, float]:
    """print(1) request → result from a ready warm slot, against the bare interpreter."""
    python = _python()
    backend = NativeBackend(pools=PoolSettings(size=1))
    with tempfile.TemporaryDirectory() as home:
        request = _request(_manager(backend, Path(home)), "python", "print(1)")
        warm, bare = [], []
        try:
            for _ in range(runs + 2):
                backend.prewarm(request)
                assert await backend.wait_warm(request) == 1
                await asyncio.sleep(0.02)  # ready means idle: the slot waits in read()
                start = time.perf_counter()
                result = await backend.run(request)
                warm.append((time.perf_counter() - start) * 1000)
                assert result.stdout == b"1\n", result
                bare.append(_bare_ms([python, "-c", "print(1)"]))
        finally:
            backend.close()
    warm_ms, bare_ms = statistics.median(warm[2:]), statistics.median(bare[2:])
    return {"warm_ms": warm_ms, "bare_ms": bare_ms, "ratio": warm_ms / bare_ms}


async def throughput(total: int = 200, callers: int = 8) -> dict[str, float]:
    """``total`` short runs (print(1)) from ``callers`` concurrent callers: runs per second
    through warm pools, cold, and with the bare process."""
    python = _python()
    figures: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as home:
        for label, settings in (("pooled", PoolSettings(size=callers)), ("cold", None)):
            backend = NativeBackend(pools=settings)
            request = _request(_manager(backend, Path(home)), "python", "print(1)")
            if settings is not None:  # the pool as a steady stream of callers leaves it
                await asyncio.gather(*(backend.run(request) for _ in range(callers)))
                await backend.wait_warm(request, callers)
            queue: asyncio.Queue[int] = asyncio.Queue()
            for index in range(total):
                queue.put_nowait(index)
            start = time.perf_counter()
            await asyncio.gather(*(_caller(queue, backend, request) for _ in range(callers)))
            figures[f"{label}_runs_per_s"] = total / (time.perf_counter() - start)
            backend.close()

    semaphore = asyncio.Semaphore(callers)

    async def bare_run() -> None:
        async with semaphore:
            proc = await asyncio.create_subprocess_exec(
                python, "-c", "print(1)", stdout=asyncio.subprocess.PIPE
            )
            await proc.communicate()

    start = time.perf_counter()
    await asyncio.gather(*(bare_run() for _ in range(total)))
    figures["bare_runs_per_s"] = total / (time.perf_counter() - start)
    figures["ratio_pooled_to_bare"] = figures["pooled_runs_per_s"] / figures["bare_runs_per_s"]
    return figures


async def _caller(
    queue: asyncio.Queue[int], backend: NativeBackend, request: SandboxRequest
) -> None:
    while not queue.empty():
        queue.get_nowait()
        result = await backend.run(request)
        assert result.stdout == b"1\n", result


C_PROGRAM = '#include <stdio.h>\nint main(void) { puts("hello"); return 0; }\n'
RUST_PROGRAM = 'fn main() { println!("hello"); }\n'


async def compile_cache(rounds: int = 5) -> dict[str, float]:
    """Second run of an unchanged C and Rust program (compile served by the cache) against
    the first (compiled), request → result."""
    figures: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as home:
        for language, code in (("c", C_PROGRAM), ("rust", RUST_PROGRAM)):
            first, second = [], []
            for index in range(rounds):
                cache = CompileCache(Path(home) / f"cache-{language}-{index}")
                backend = NativeBackend(compile_cache=cache)
                request = _request(_manager(backend, Path(home)), language, code)
                for series in (first, second):
                    start = time.perf_counter()
                    result = await backend.run(request)
                    series.append((time.perf_counter() - start) * 1000)
                    assert result.stdout == b"hello\n", result
                assert result.compile is not None and result.compile.cached
            figures[f"{language}_first_ms"] = statistics.median(first)
            figures[f"{language}_second_ms"] = statistics.median(second)
            figures[f"{language}_ratio"] = statistics.median(second) / statistics.median(first)
    return figures


def _first_lens_ms(argv: list[str], env: dict[str, str], uri: str, language: str) -> float:
    """Spawn a server, then initialize → initialized → didOpen → codeLens; time until the
    code-lens response is read."""
    start = time.perf_counter()
    connection = RawConnection(argv, env)
    try:
        connection.read_response(connection.send("initialize", {"capabilities": {}}) or 0)
        connection.send("initialized", {}, request=False)
        connection.send(
            "textDocument/didOpen",
            {"textDocument": {"uri": uri, "languageId": language, "version": 1, "text": "x\n"}},
            request=False,
        )
        body = connection.read_response(
            connection.send("textDocument/codeLens", {"textDocument": {"uri": uri}}) or 0
        )
        elapsed = (time.perf_counter() - start) * 1000
        assert b'"result": [{' in body or b'"result":[{' in body, body[:200]
    finally:
        connection.close()
    return elapsed


def server_start(plugins: int = 50, rounds: int = 10) -> dict[str, float]:
    """forgeai-ls with ``plugins`` installed plugins (plus the official ones) from process
    start to its first code lens, against a minimal pygls server answering one lens."""
    with tempfile.TemporaryDirectory() as scratch:
        home = Path(scratch) / "home"
        make_plugins(home / "plugins", home, plugins)
        env = {**os.environ, "FORGEAI_HOME": str(home)}
        forgeai = [sys.executable, "-m", "forgeai_ls"]
        minimal = [sys.executable, str(MINIMAL_SERVER)]
        uri = "file:///tmp/forgeai-bench/start.b7"
        _first_lens_ms(forgeai, env, uri, "bench7")  # the verification cache, the page cache
        ours, theirs = [], []
        for _ in range(rounds):
            ours.append(_first_lens_ms(forgeai, env, uri, "bench7"))
            theirs.append(_first_lens_ms(minimal, env, uri, "bench7"))
    ours_ms, theirs_ms = statistics.median(ours), statistics.median(theirs)
    return {"forgeai_ms": ours_ms, "minimal_pygls_ms": theirs_ms, "ratio": ours_ms / theirs_ms}


def _server_state(pid: int) -> dict[str, float]:
    process = psutil.Process(pid)
    return {
        "fds": float(process.num_fds()),
        "children": float(len(process.children(recursive=True))),
        "rss_mib": process.memory_info().rss / (1024 * 1024),
    }


async def endurance(runs: int = 1000) -> dict[str, float]:
    """``runs`` runSelection runs in a row through one server: its descriptors, child
    processes and memory after a warm-up and at the end."""
    client, finished, pid = await started_client()
    uri = "file:///tmp/forgeai-bench/endurance.py"
    open_document(client, uri, "python", "print(1)\n")
    arguments: list[Any] = [uri, {"start": {"line": 0, "character": 0},
                                  "end": {"line": 0, "character": 8}}]  # fmt: skip
    before: dict[str, float] = {}
    try:
        for index in range(runs + 20):
            if index == 20:
                await asyncio.sleep(0.5)
                before = _server_state(pid)
            result = await client.workspace_execute_command_async(
                _command("forgeai.runSelection", arguments)
            )
            await finished.setdefault(result["runId"], asyncio.Event()).wait()
            assert result["stdout"] == "1\n", result
        await asyncio.sleep(0.5)
        after = _server_state(pid)
    finally:
        await client.shutdown_async(None)
        client.exit(None)
        await client.stop()
    figures = {f"before_{key}": value for key, value in before.items()}
    figures.update({f"after_{key}": value for key, value in after.items()})
    figures["runs"] = float(runs)
    return figures


def _command(name: str, arguments: list[Any]) -> types.ExecuteCommandParams:
    return types.ExecuteCommandParams(command=name, arguments=arguments)
