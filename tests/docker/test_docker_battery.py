"""The native backend's sandbox battery, on the docker backend, against a real dockerd:
each official plugin with a Dockerfile runs in its own image, with the same limits, results
and containment."""

from __future__ import annotations

import asyncio
import contextlib
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from forgeai_ls.errors import ImageMissingError
from forgeai_ls.home import bundled_plugins_dir
from forgeai_ls.plugins.executor import LanguageExecutor
from forgeai_ls.plugins.manager import ManagerConfig, PluginManager
from forgeai_ls.plugins.testing import read_test_cases, run_case
from forgeai_ls.sandbox import ExecutionResult, LimitKind, OutputChunk
from forgeai_ls.sandbox.docker_backend import RUN_LABEL, DockerBackend
from tests.sandbox.test_containment import (
    EXACT_OUTPUT_CASES,
    EXACT_OUTPUT_LIMIT,
    exact_output_program,
)
from tests.sandbox.test_languages import ECHO_STDIN, EXIT_AND_STDERR, HELLO

PLUGIN_OF = {
    "python": "python",
    "javascript": "javascript",
    "bash": "bash",
    "c": "c",
    "cpp": "cpp",
    "rust": "rust",
    "java": "java",
}
MIB = 1024 * 1024


@pytest.fixture(scope="module")
def docker_executor(docker_engine: Any, plugin_image: Callable[[str], str]) -> Any:
    backend = DockerBackend(docker_engine.host)
    manager = PluginManager(
        backend, ManagerConfig(home=Path(tempfile.mkdtemp(prefix="forgeai-home-")))
    )
    manager.load_all()

    def executor_for(language: str) -> LanguageExecutor:
        plugin_image(PLUGIN_OF[language])
        executor, name = manager.get_executor(language)
        return executor.language(name)

    return executor_for


async def run(
    executor_for: Callable[[str], LanguageExecutor],
    language: str,
    code: str,
    stdin: bytes | None = None,
    **limits: object,
) -> ExecutionResult:
    executor = executor_for(language)
    chosen = executor.run_limits().with_overrides(**limits) if limits else None
    return await executor.execute(language, code, limits=chosen, stdin=stdin)


def leftover_containers(engine: Any) -> list[str]:
    found = engine.client.api.containers(all=True, filters={"label": RUN_LABEL})
    return [c["Id"] for c in found]


@pytest.mark.parametrize("language", sorted(HELLO))
async def test_hello_world(docker_executor: Any, language: str) -> None:
    result = await run(docker_executor, language, HELLO[language])
    assert (result.stdout, result.stderr, result.exit_code) == (b"Hello, ForgeAI\n", b"", 0)
    assert result.limit is None


@pytest.mark.parametrize("language", sorted(EXIT_AND_STDERR))
async def test_exit_code_and_stderr(docker_executor: Any, language: str) -> None:
    result = await run(docker_executor, language, EXIT_AND_STDERR[language])
    assert (result.exit_code, result.signal, result.limit) == (7, None, None)
    assert result.stderr.strip() == b"to stderr"


@pytest.mark.parametrize("language", sorted(ECHO_STDIN))
async def test_stdin_reaches_the_program(docker_executor: Any, language: str) -> None:
    result = await run(docker_executor, language, ECHO_STDIN[language], stdin=b"forge ai\nx\n")
    assert (result.stdout, result.exit_code) == (b"FORGE AI\nX\n", 0)


async def test_compile_error_stops_before_running(docker_executor: Any) -> None:
    result = await run(docker_executor, "c", "int main(void) { return undefined_name; }")
    assert result.compile_failed and result.run is None
    assert b"undefined_name" in result.stderr


async def test_timeout(docker_executor: Any) -> None:
    result = await run(docker_executor, "python", "while True: pass", wall_timeout=1)
    assert result.timed_out and result.limit is LimitKind.TIMEOUT and result.exit_code is None


async def test_memory_bomb(docker_executor: Any) -> None:
    code = "chunks = []\nwhile True: chunks.append(bytearray(16 * 1024 * 1024))"
    result = await run(docker_executor, "python", code, memory_bytes=64 * MIB)
    assert result.limit is LimitKind.MEMORY, result
    assert result.exit_code != 0


async def test_fork_bomb(docker_executor: Any) -> None:
    result = await run(
        docker_executor, "bash", ":(){ :|:& };: ; sleep 10", processes=32, wall_timeout=3
    )
    assert LimitKind.PROCESSES in result.limits_hit, result


async def test_output_flood_is_capped(docker_executor: Any) -> None:
    result = await run(
        docker_executor, "python", "while True: print('x' * 1000)", output_bytes=64 * 1024
    )
    assert result.truncated and result.limit is LimitKind.OUTPUT
    assert len(result.stdout) == 64 * 1024


@EXACT_OUTPUT_CASES
async def test_output_exactly_at_the_limit(
    docker_executor: Any, extra: str, truncated: bool
) -> None:
    """Output that fills the limit exactly is whole; one byte more is over it (and a program
    that keeps writing after the limit is full is stopped, not left to the wall clock)."""
    result = await run(
        docker_executor, "python", exact_output_program(extra), output_bytes=EXACT_OUTPUT_LIMIT
    )
    assert len(result.stdout) == EXACT_OUTPUT_LIMIT
    assert result.truncated is truncated, result
    assert (result.limit is LimitKind.OUTPUT) is truncated, result


async def test_output_exactly_over_the_limit(docker_executor: Any) -> None:
    await test_output_exactly_at_the_limit(docker_executor, "y", True)


async def test_network_is_off(docker_executor: Any) -> None:
    code = (
        "import socket\n"
        "for host in ('127.0.0.1', '10.0.0.1', '1.1.1.1'):\n"
        "    try:\n"
        "        socket.create_connection((host, 80), timeout=1); print('reached', host)\n"
        "    except OSError as exc:\n"
        "        print('refused', host, exc.errno)\n"
        "import os; print(sorted(os.listdir('/sys/class/net')))"
    )
    result = await run(docker_executor, "python", code)
    assert b"reached" not in result.stdout
    assert result.stdout.rstrip().endswith(b"['lo']")


async def test_writes_outside_the_work_dir_fail(docker_executor: Any) -> None:
    code = (
        "for path in ('/etc/x', '/usr/x', '/x', '/build/x'):\n"
        "    try:\n"
        "        open(path, 'w'); print('wrote', path)\n"
        "    except OSError as exc:\n"
        "        print('refused', path)\n"
        "open('/work/ok', 'w').write('fine'); open('/tmp/ok', 'w').write('fine')\n"
        "print(open('/work/ok').read())"
    )
    result = await run(docker_executor, "python", code)
    assert b"wrote" not in result.stdout and result.stdout.endswith(b"fine\n"), result


async def test_host_files_and_privileges_are_invisible(docker_executor: Any) -> None:
    code = (
        "import os\n"
        "print(os.getuid(), os.getgid())\n"
        "status = open('/proc/self/status').read()\n"
        "keys = ('CapEff', 'NoNewPrivs', 'Seccomp:')\n"
        "print([line for line in status.splitlines() if line.startswith(keys)])\n"
        "paths = ('/root', '/home', '/etc/shadow', '/var/run/docker.sock')\n"
        "print([p for p in paths if os.path.exists(p)])\n"
        "print(sorted(os.environ))"
    )
    result = await run(docker_executor, "python", code)
    lines = result.stdout.decode().splitlines()
    assert lines[0] == "65534 65534"
    assert "CapEff:\\t0000000000000000" in lines[1] and "NoNewPrivs:\\t1" in lines[1]
    assert "Seccomp:\\t2" in lines[1]
    assert lines[2] == "[]"
    assert set(eval(lines[3])) <= {  # exactly ForgeAI's allow-list, nothing the engine adds
        "PATH",
        "HOME",
        "TMPDIR",
        "LANG",
        "USER",
        "LOGNAME",
        "PYTHONUNBUFFERED",
        "PYTHONDONTWRITEBYTECODE",
    }


async def test_containers_are_removed_after_runs_limits_and_cancellation(
    docker_executor: Any, docker_engine: Any
) -> None:
    await run(docker_executor, "python", "print(1)")
    await run(docker_executor, "python", "while True: pass", wall_timeout=0.5)
    await run(docker_executor, "c", "int main(void) { return 0; }")
    executor = docker_executor("python")
    events = executor.stream("import time\nprint('go', flush=True)\ntime.sleep(60)")
    async with contextlib.aclosing(events):
        async for event in events:
            if isinstance(event, OutputChunk):
                break  # the program is running: stop it by closing the stream
    assert leftover_containers(docker_engine) == []
    volumes = docker_engine.client.api.volumes(filters={"label": RUN_LABEL})["Volumes"] or []
    assert volumes == []


async def test_cancelled_task_removes_its_container(
    docker_executor: Any, docker_engine: Any
) -> None:
    task = asyncio.create_task(run(docker_executor, "python", "import time; time.sleep(60)"))
    await asyncio.sleep(1.5)
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    assert leftover_containers(docker_engine) == []


async def test_missing_image_is_a_clear_error(docker_engine: Any) -> None:
    from forgeai_ls.sandbox import SandboxRequest, StepSpec
    from forgeai_ls.sandbox.limits import DEFAULT_RUN_LIMITS

    request = SandboxRequest(
        files={},
        run=StepSpec(argv=("true",), limits=DEFAULT_RUN_LIMITS),
        image="forgeai/absent:0.0.0",
    )
    with pytest.raises(ImageMissingError, match=r"forgeai/absent:0\.0\.0"):
        await DockerBackend(docker_engine.host).run(request)


async def test_pool_serves_matching_settings_only_and_carries_no_state(
    docker_engine: Any, plugin_image: Callable[[str], str]
) -> None:
    """Pooled containers are used once, only for the exact settings they were made for."""
    from forgeai_ls.sandbox import SandboxRequest, StepSpec
    from forgeai_ls.sandbox.limits import DEFAULT_RUN_LIMITS

    image = plugin_image("python")
    code = (
        "import os\n"
        "print(os.path.exists('/tmp/marker'), end=' ')\n"
        "open('/tmp/marker', 'w').close()\n"
        "print(open('/sys/fs/cgroup/memory/memory.limit_in_bytes').read().strip()\n"
        "      if os.path.exists('/sys/fs/cgroup/memory/memory.limit_in_bytes')\n"
        "      else open('/sys/fs/cgroup/memory.max').read().strip())\n"
    )

    def request(memory: int) -> SandboxRequest:
        limits = DEFAULT_RUN_LIMITS.with_overrides(memory_bytes=memory)
        return SandboxRequest(
            files={"main.py": code.encode()},
            run=StepSpec(argv=("python3", "/work/main.py"), limits=limits),
            image=image,
        )

    pooled = DockerBackend(docker_engine.host, pool_size=1)
    try:
        outputs = []
        for memory in (64 * MIB, 64 * MIB, 96 * MIB, 64 * MIB):
            result = await pooled.run(request(memory))
            assert result.exit_code == 0, result
            outputs.append(result.stdout.decode().split())
            await asyncio.sleep(0.5)  # the refill runs in the background
        assert [o[0] for o in outputs] == ["False"] * 4  # a fresh /tmp every time
        assert [int(o[1]) for o in outputs] == [64 * MIB, 64 * MIB, 96 * MIB, 64 * MIB]
        assert len(leftover_containers(docker_engine)) >= 1  # the pool holds started ones
    finally:
        pooled.close()
    assert leftover_containers(docker_engine) == []


OFFICIAL_WITH_DOCKERFILE = sorted(p.parent.name for p in bundled_plugins_dir().glob("*/Dockerfile"))


@pytest.mark.parametrize("plugin", OFFICIAL_WITH_DOCKERFILE)
async def test_official_plugin_passes_its_own_tests_in_its_image(
    docker_engine: Any, plugin_image: Callable[[str], str], plugin: str
) -> None:
    """Every official plugin with a Dockerfile: its tests.yaml programs pass in its image."""
    plugin_image(plugin)
    manager = PluginManager(
        DockerBackend(docker_engine.host),
        ManagerConfig(home=Path(tempfile.mkdtemp(prefix="forgeai-home-"))),
    )
    manager.load_all()
    loaded = next(p for p in manager.plugins() if p.name == plugin)
    executor, _ = manager.get_executor(loaded.manifest.languages[0].name)
    cases = read_test_cases(loaded.path, plugin)
    outcomes = [await run_case(executor, case) for case in cases]
    failed = {o.case.name: o.problems for o in outcomes if not o.passed}
    assert failed == {}
    assert len(outcomes) >= 3
