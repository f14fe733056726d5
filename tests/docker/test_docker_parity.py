"""The same programs on the native and the docker backend give the same results."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from forgeai_ls.plugins.manager import ManagerConfig, PluginManager
from forgeai_ls.sandbox import ExecutionResult, LimitKind, NativeBackend
from forgeai_ls.sandbox.docker_backend import DockerBackend
from tests.support.dockerd import DockerEngine

SCRIPT = r"""
mkdir -p tree/a tree/b
printf 'apple 3\nbanana 5\ncherry 7\n' > tree/a/fruit.txt
printf 'kiwi 2\n' > tree/b/more.txt
find tree -name '*.txt' | sort | xargs cat | grep -v kiwi | sed 's/a/A/g' \
  | awk '{ total += $2 } END { print NR, total }'
"""

PROGRAMS = {
    "killed-by-a-signal": ("python", "import os, signal\nos.kill(os.getpid(), signal.SIGKILL)"),
    "ordinary-script": ("bash", SCRIPT),
    "exit-status-and-stderr": ("bash", "echo out; echo err >&2; exit 3"),
}


@pytest.fixture(scope="module")
def backends(docker_engine: DockerEngine, plugin_image: Callable[[str], str]) -> Any:
    plugin_image("python")
    plugin_image("bash")
    home = Path(tempfile.mkdtemp(prefix="forgeai-home-"))
    managers = {
        name: PluginManager(backend, ManagerConfig(home=home))
        for name, backend in (
            ("native", NativeBackend()),
            ("docker", DockerBackend(docker_engine.host)),
        )
    }
    for manager in managers.values():
        manager.load_all()
    return managers


async def _run(manager: PluginManager, language: str, code: str) -> ExecutionResult:
    executor, name = manager.get_executor(language)
    return await executor.execute(name, code)


@pytest.mark.parametrize("program", sorted(PROGRAMS))
async def test_same_results_on_both_backends(backends: Any, program: str) -> None:
    language, code = PROGRAMS[program]
    native = await _run(backends["native"], language, code)
    docker = await _run(backends["docker"], language, code)
    for field in ("exit_code", "signal", "stdout", "stderr", "limit"):
        assert getattr(docker, field) == getattr(native, field), (field, native, docker)
    if program == "killed-by-a-signal":
        assert native.signal == signal.SIGKILL and native.stderr == b""
    if program == "ordinary-script":
        assert native.stdout == b"3 15\n"


def test_the_cli_takes_the_engine_from_docker_host(
    tmp_path: Path, docker_engine: DockerEngine, plugin_image: Callable[[str], str]
) -> None:
    """`--docker-host URL` names the engine (no DOCKER_HOST needed)."""
    plugin_image("python")
    env = {k: v for k, v in os.environ.items() if k != "DOCKER_HOST"}
    done = subprocess.run(
        [sys.executable, "-m", "forgeai_ls.cli.main", "run", "--backend", "docker",
         "--docker-host", docker_engine.host, "-l", "python", "-c", "print('via flag')"],
        env={**env, "FORGEAI_HOME": str(tmp_path)}, capture_output=True, text=True,
        timeout=120, check=False,
    )  # fmt: skip
    assert (done.returncode, done.stdout) == (0, "via flag\n"), done.stderr


FORKS_UNTIL_REFUSED = """
import os, sys, time
children = 0
try:
    while True:
        if os.fork() == 0:
            time.sleep(5)
            os._exit(0)
        children += 1
except OSError:
    print("refused after", children > 0)
    sys.exit(1)
"""


async def test_the_process_limit_is_named_on_both_backends(backends: Any) -> None:
    """A fork refused by the limit is `limit: processes` on both (docker: from the
    container's pids cgroup, as natively from the run's)."""
    results = {}
    for name, manager in backends.items():
        executor, language = manager.get_executor("python")
        limits = executor.language(language).run_limits().with_overrides(processes=16)
        results[name] = await executor.execute(language, FORKS_UNTIL_REFUSED, limits=limits)
    for name, result in results.items():
        assert result.stdout == b"refused after True\n", (name, result)
        assert result.limit is LimitKind.PROCESSES, (name, result)


async def test_cpu_time_and_peak_memory_are_measured_on_docker_too(backends: Any) -> None:
    code = (
        "import time\nblock = bytearray(80 << 20)\nend = time.process_time() + 0.4\n"
        "while time.process_time() < end:\n    pass\nprint('done')"
    )
    for name, manager in backends.items():
        result = await _run(manager, "python", code)
        assert result.stdout == b"done\n" and result.stderr == b"", (name, result)
        assert result.cpu_time_ms is not None and result.cpu_time_ms >= 350, (name, result)
        assert result.peak_memory_bytes is not None, (name, result)
        assert result.peak_memory_bytes >= 80 << 20, (name, result)
