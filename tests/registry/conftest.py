"""A real registry server on 127.0.0.1 and signed plugin archives to publish to it.

Fixtures (usable by any test under tests/registry/):

- ``registry``: a ``forgeai registry serve --port 0`` subprocess with its own data folder,
  stopped at teardown. See :class:`RunningRegistry` (``.url``, ``.data``, ``.token()``,
  ``.stop()``).
- ``start_registry``: starts more registries, with extra ``serve`` options
  (``start_registry("--max-archive-mb", "1")``); all are stopped at teardown.
- ``archives``: an :class:`ArchiveFactory` that makes publisher keys and signed ``.fpkg``
  archives of test plugins (built with the plugin tests' ``PluginFactory``).

Typical use::

    def test_publish(registry, archives):
        key = archives.key("alice")
        token = registry.token("alice", key)
        response = registry.publish(archives.archive("demo-plugin", key="alice"), token)
        assert response.status_code == 201
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from forgeai_ls.plugins.archive import build_archive
from tests.plugins.conftest import PluginFactory

FORGEAI = str(Path(sys.executable).with_name("forgeai"))
"""The ``forgeai`` console script of the interpreter running the tests (.venv/bin/forgeai)."""

READY_PREFIX = "forgeai registry: serving "
STARTUP_GUARD_SECONDS = 60.0
"""Only a guard against a server that hangs before listening; normal start takes ~1 s."""


def forgeai_environment(home: Path) -> dict[str, str]:
    environment = {**os.environ, "FORGEAI_HOME": str(home)}
    environment.pop("FORGEAI_REGISTRY_DATA", None)
    return environment


class RunningRegistry:
    """A ``forgeai registry serve`` process.

    Attributes: ``url`` (``http://127.0.0.1:PORT``, no trailing slash), ``data`` (its data
    folder), ``home`` (the FORGEAI_HOME its commands run with), ``process`` and ``stderr``
    (every line the server wrote to stderr so far, for failure messages).
    """

    def __init__(self, data: Path, home: Path, *serve_options: str) -> None:
        """Start the server on a free port and return once it listens."""
        self.data = data
        self.home = home
        self.stderr: list[str] = []
        self.process = subprocess.Popen(
            [
                FORGEAI,
                "registry",
                "serve",
                "--host",
                "127.0.0.1",
                "--port",
                "0",
                "--data",
                str(data),
                *serve_options,
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            env=forgeai_environment(home),
        )
        try:
            self.url = self._wait_until_serving()
        except BaseException:
            self.stop()
            raise
        # Keep draining stderr so the server never blocks on a full pipe.
        threading.Thread(target=self._drain, daemon=True).start()

    def _wait_until_serving(self) -> str:
        """The URL from the server's 'serving' line, read as it is written (no polling)."""
        assert self.process.stderr is not None
        guard = threading.Timer(STARTUP_GUARD_SECONDS, self.process.kill)
        guard.start()
        try:
            for line in self.process.stderr:
                self.stderr.append(line)
                if line.startswith(READY_PREFIX):
                    return line.removeprefix(READY_PREFIX).split()[0]
        finally:
            guard.cancel()
        raise RuntimeError(
            f"forgeai registry serve did not start (exit {self.process.wait()}): "
            + "".join(self.stderr)
        )

    def _drain(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            self.stderr.append(line)

    def token(self, publisher: str, *public_keys: Path) -> str:
        """A new token for ``publisher`` registering the given ``NAME.pub`` files, made by
        ``forgeai registry token create`` on this registry's data folder (the running server
        reads tokens from the shared database, so the token works at once)."""
        keys = [argument for path in public_keys for argument in ("--key", str(path))]
        options = ["--data", str(self.data), "--json"]
        done = subprocess.run(
            [FORGEAI, "registry", "token", "create", publisher, *keys, *options],
            capture_output=True,
            text=True,
            env=forgeai_environment(self.home),
            stdin=subprocess.DEVNULL,
            timeout=120,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        token: str = json.loads(done.stdout)["token"]
        return token

    def publish(self, archive: bytes, token: str | None) -> httpx.Response:
        """POST ``archive`` to /v1/plugins, with ``Authorization: Bearer token`` if given."""
        headers = {"Content-Type": "application/octet-stream"}
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        with httpx.Client(trust_env=False, timeout=120) as client:
            return client.post(f"{self.url}/v1/plugins", content=archive, headers=headers)

    def stop(self) -> int:
        """Terminate the server (SIGTERM) and wait for it; its exit status."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode


class ArchiveFactory:
    """Publisher keys and signed ``.fpkg`` archives of test plugins.

    Keys live in a private FORGEAI_HOME (``home``); ``key(NAME)`` returns the ``NAME.pub``
    file that ``RunningRegistry.token`` registers.
    """

    def __init__(self, home: Path, root: Path) -> None:
        self.home = home
        self.root = root
        self._plugins = PluginFactory(home, root)
        self._made = 0
        self.key_ids: dict[str, str] = {}
        """Key name -> key id, for every key made by :meth:`key`."""

    def key(self, name: str) -> Path:
        """Generate the key pair NAME (untrusted); the path of its public half."""
        self.key_ids[name] = self._plugins.key(name, level=None)
        return self._plugins.keys.directory / f"{name}.pub"

    def folder(
        self,
        name: str,
        *,
        key: str,
        version: str = "1.0.0",
        language: str | None = None,
        description: str | None = None,
    ) -> Path:
        """A plugin folder signed with key ``key``."""
        self._made += 1
        factory = PluginFactory(self.home, self.root / str(self._made))
        folder = factory.folder(name, language=language)
        manifest = folder / "plugin.yaml"
        text = manifest.read_text().replace("version: 1.0.0", f"version: '{version}'", 1)
        if description is not None:
            text = text.replace("description: A test executor", f"description: {description}")
        manifest.write_text(text)
        self._plugins.sign(folder, key)
        return folder

    def archive(
        self,
        name: str,
        *,
        key: str,
        version: str = "1.0.0",
        language: str | None = None,
        description: str | None = None,
        after_signing: Callable[[Path], None] | None = None,
    ) -> bytes:
        """The archive bytes of a test plugin signed with ``key``; ``after_signing`` may
        change the folder between signing and packing (to make a tampered archive)."""
        folder = self.folder(
            name, key=key, version=version, language=language, description=description
        )
        if after_signing is not None:
            after_signing(folder)
        data, _ = build_archive(folder)
        return data


@pytest.fixture
def start_registry(tmp_path: Path) -> Iterator[Callable[..., RunningRegistry]]:
    started: list[RunningRegistry] = []

    def start(*serve_options: str) -> RunningRegistry:
        index = len(started)
        server = RunningRegistry(
            tmp_path / f"registry-data-{index}", tmp_path / "registry-home", *serve_options
        )
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture
def registry(start_registry: Callable[..., RunningRegistry]) -> RunningRegistry:
    return start_registry()


@pytest.fixture
def archives(tmp_path: Path) -> ArchiveFactory:
    return ArchiveFactory(tmp_path / "publisher-home", tmp_path / "publisher-plugins")


@pytest.fixture
def http() -> Iterator[httpx.Client]:
    """An HTTP client for 127.0.0.1 (no proxies from the environment)."""
    with httpx.Client(trust_env=False, timeout=60) as client:
        yield client
