"""A Docker engine for the docker tests, and the official plugins' images built in it.

``docker_engine`` starts a private dockerd (as root, with Debian's docker.io) for the session
and stops it at the end; without dockerd or root it uses the engine at $DOCKER_HOST, else the
tests are skipped, with the reason. With FORGEAI_REQUIRE_DOCKER=1 (CI) no engine is a failure.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import NoReturn

import pytest

from forgeai_ls.errors import DockerUnavailableError, MissingDependencyError
from forgeai_ls.images.build import build_plugin_image, resolve_plugin
from forgeai_ls.plugins.manager import ManagerConfig
from forgeai_ls.sandbox.docker_engine import docker_client
from tests.support.dockerd import SYSTEM_PATH, DockerdStartError, DockerEngine, PrivateDockerd

REQUIRE_DOCKER = os.environ.get("FORGEAI_REQUIRE_DOCKER") == "1"


def _unavailable(reason: str) -> NoReturn:
    if REQUIRE_DOCKER:
        pytest.fail(f"no Docker engine: {reason} (FORGEAI_REQUIRE_DOCKER=1)", pytrace=False)
    pytest.skip(f"no Docker engine: {reason}")


@pytest.fixture(scope="session")
def docker_engine() -> Iterator[DockerEngine]:
    """A Docker engine: a private dockerd this session starts and stops, else $DOCKER_HOST's."""
    dockerd = shutil.which("dockerd", path=f"{os.environ.get('PATH', '')}:{SYSTEM_PATH}")
    if dockerd is not None and os.geteuid() == 0:
        try:
            daemon = PrivateDockerd.start(dockerd)
        except DockerdStartError as exc:
            _unavailable(f"a private dockerd did not start: {exc}")
        client = docker_client(daemon.host)
        try:
            yield DockerEngine(host=daemon.host, client=client, private=True)
        finally:
            client.close()
            daemon.stop()
        return
    why = "dockerd is not installed" if dockerd is None else "not root (dockerd needs root)"
    host = os.environ.get("DOCKER_HOST")
    if not host:
        _unavailable(f"{why}, and DOCKER_HOST is not set")
    try:
        client = docker_client(host)
    except DockerUnavailableError as exc:
        _unavailable(f"{why}, and {exc.message}")
    try:
        yield DockerEngine(host=host, client=client, private=False)
    finally:
        client.close()


@pytest.fixture(scope="session")
def image_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """FORGEAI_HOME of the image builds: their root filesystem cache lives here."""
    return tmp_path_factory.mktemp("forgeai-image-home")


@pytest.fixture(scope="session")
def plugin_image(docker_engine: DockerEngine, image_home: Path) -> Callable[[str], str]:
    """``plugin_image(name)`` builds the official plugin's image once per session, the way
    ``forgeai image build NAME`` does, and returns its tag."""
    config = ManagerConfig(home=image_home)
    built: dict[str, str] = {}

    def build(name: str) -> str:
        if name not in built:
            try:
                plugin = resolve_plugin(name, config)
            except MissingDependencyError as exc:
                pytest.skip(f"{name}: its toolchain is not installed here ({exc.message})")
            built[name] = build_plugin_image(plugin, docker_engine.client, config=config).tag
        return built[name]

    return build
