"""The docker backend against Podman's Docker-compatible API (its four differences: runc,
explicit nofile/nproc ulimits, seccomp profiles by path, OOM seen only as exit 137): the core
of the battery, run on a private Podman service."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from forgeai_ls.images.build import build_plugin_image, resolve_plugin
from forgeai_ls.plugins.executor import LanguageExecutor
from forgeai_ls.plugins.manager import ManagerConfig, PluginManager
from forgeai_ls.sandbox.docker_backend import DockerBackend
from forgeai_ls.sandbox.docker_engine import connect
from tests.docker import test_docker_battery as battery
from tests.support.dockerd import SYSTEM_PATH, DockerEngine
from tests.support.podman import PodmanStartError, PrivatePodman

REQUIRE = os.environ.get("FORGEAI_REQUIRE_DOCKER") == "1"


@pytest.fixture(scope="module")
def podman_engine() -> Iterator[DockerEngine]:
    podman = shutil.which("podman", path=f"{os.environ.get('PATH', '')}:{SYSTEM_PATH}")
    if podman is None or os.geteuid() != 0:
        reason = "podman is not installed" if podman is None else "not root"
        if REQUIRE:  # CI runs as root and installs podman
            pytest.fail(f"no Podman: {reason} (FORGEAI_REQUIRE_DOCKER=1)", pytrace=False)
        pytest.skip(f"no Podman: {reason}")
    try:
        service = PrivatePodman.start(podman)
    except PodmanStartError as exc:
        if REQUIRE:
            pytest.fail(str(exc), pytrace=False)
        pytest.skip(str(exc))
    engine = connect(service.host)
    assert engine.podman
    try:
        yield DockerEngine(host=service.host, client=engine.client, private=True)
    finally:
        engine.client.close()
        service.stop()


@pytest.fixture(scope="module")
def podman_executor(podman_engine: DockerEngine, image_home: Path) -> Any:
    config = ManagerConfig(home=image_home)
    for plugin in ("python", "c", "bash"):
        build_plugin_image(resolve_plugin(plugin, config), podman_engine.client, config=config)
    manager = PluginManager(
        DockerBackend(podman_engine.host),
        ManagerConfig(home=Path(tempfile.mkdtemp(prefix="forgeai-home-"))),
    )
    manager.load_all()

    def executor_for(language: str) -> LanguageExecutor:
        executor, name = manager.get_executor(language)
        return executor.language(name)

    return executor_for


@pytest.mark.parametrize("language", ["python", "c", "bash"])
async def test_hello_exit_and_stdin(podman_executor: Callable[..., Any], language: str) -> None:
    await battery.test_hello_world(podman_executor, language)
    await battery.test_exit_code_and_stderr(podman_executor, language)
    await battery.test_stdin_reaches_the_program(podman_executor, language)


@pytest.mark.parametrize(
    "check",
    [
        battery.test_compile_error_stops_before_running,
        battery.test_timeout,
        battery.test_memory_bomb,
        battery.test_fork_bomb,
        battery.test_output_flood_is_capped,
        battery.test_output_exactly_over_the_limit,
        battery.test_network_is_off,
        battery.test_writes_outside_the_work_dir_fail,
        battery.test_host_files_and_privileges_are_invisible,
    ],
    ids=lambda check: check.__name__.removeprefix("test_"),
)
async def test_battery(podman_executor: Callable[..., Any], check: Callable[..., Any]) -> None:
    await check(podman_executor)


async def test_containers_are_removed(
    podman_executor: Callable[..., Any], podman_engine: DockerEngine
) -> None:
    await battery.test_containers_are_removed_after_runs_limits_and_cancellation(
        podman_executor, podman_engine
    )
