"""Declared dependencies installed by uv in a sandbox of their own, from a real package index
on 127.0.0.4 (wheels built here), cached, and never half-cached."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from forgeai_ls.dependencies.declared import DeclaredDependencies, script_metadata
from forgeai_ls.dependencies.environment_cache import EnvironmentCache
from forgeai_ls.dependencies.installer import prepare_environment
from forgeai_ls.dependencies.package_index import PackageIndex
from forgeai_ls.errors import (
    DependencyConflictError,
    IndexUnreachableError,
    UnknownPackageError,
)
from forgeai_ls.sandbox import NativeBackend
from tests.conftest import run_code
from tests.support.package_index import build_wheel, serve_index

pytestmark = pytest.mark.sandbox


@pytest.fixture(scope="module")
def index_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    root = tmp_path_factory.mktemp("index")
    build_wheel(root, "greeter", "1.0", module="def hello():\n    return 'hello 1.0'\n")
    build_wheel(root, "greeter", "2.0", module="def hello():\n    return 'hello 2.0'\n")
    build_wheel(
        root,
        "shouter",
        "1.0",
        module="import greeter\ndef shout():\n    return greeter.hello().upper()\n",
        requires=("greeter<2",),
    )
    with serve_index(root) as url:
        yield url


def declared(*requirements: str, requires_python: str | None = None) -> DeclaredDependencies:
    return DeclaredDependencies(
        requirements=requirements, requires_python=requires_python, source="PEP 723 block"
    )


async def prepare(
    cache: EnvironmentCache, url: str, dependencies: DeclaredDependencies
) -> tuple[object, list[str]]:
    said: list[str] = []
    environment = await prepare_environment(
        dependencies,
        backend=NativeBackend(),
        cache=cache,
        index=PackageIndex(url, "the test index"),
        python="python3",
        progress=said.append,
    )
    return environment, said


def no_environments(cache: EnvironmentCache) -> bool:
    """Nothing a run could use, nothing half-built."""
    if not cache.root.exists():
        return True
    return not [p for p in cache.root.iterdir() if p.name not in (".locks", ".versions.json")]


async def test_installed_once_then_from_the_cache(index_url: str, tmp_path: Path) -> None:
    cache = EnvironmentCache(tmp_path / "envs")
    wanted = declared("shouter")
    environment, said = await prepare(cache, index_url, wanted)
    assert said == [f"Installing 1 package from {index_url}"]
    again, said_again = await prepare(cache, index_url, wanted)
    assert said_again == [] and again == environment
    record = cache.record(Path(environment.path))  # type: ignore[attr-defined]
    assert record is not None and record.installed == ("greeter==1.0", "shouter==1.0")
    code = "import shouter, sys\nprint(shouter.shout(), sys.prefix)\n"
    result = await run_code("python", code, environment=environment)  # type: ignore[arg-type]
    assert result.exit_code == 0, result.stderr
    assert result.stdout.decode() == f"HELLO 1.0 {environment.path}\n"  # type: ignore[attr-defined]


async def test_the_run_itself_cannot_reach_the_index(index_url: str, tmp_path: Path) -> None:
    environment, _ = await prepare(
        EnvironmentCache(tmp_path / "envs"), index_url, declared("greeter")
    )
    code = (
        "import urllib.request\n"
        "try:\n"
        f"    urllib.request.urlopen({index_url!r}, timeout=3)\n"
        "    print('reached')\n"
        "except OSError as exc:\n"
        "    print(type(exc).__name__)\n"
    )
    result = await run_code("python", code, environment=environment)  # type: ignore[arg-type]
    assert result.exit_code == 0 and b"reached" not in result.stdout, result.stdout


async def test_an_unknown_package(index_url: str, tmp_path: Path) -> None:
    cache = EnvironmentCache(tmp_path / "envs")
    with pytest.raises(UnknownPackageError) as raised:
        await prepare(cache, index_url, declared("greeter", "no-such-package"))
    assert raised.value.code == "FORGEAI-E142"
    assert "'no-such-package' is not on the index" in raised.value.message
    assert no_environments(cache)


async def test_a_version_conflict(index_url: str, tmp_path: Path) -> None:
    cache = EnvironmentCache(tmp_path / "envs")
    with pytest.raises(DependencyConflictError) as raised:
        await prepare(cache, index_url, declared("shouter", "greeter>=2"))
    assert raised.value.code == "FORGEAI-E143"
    assert "cannot be installed together" in raised.value.message
    assert no_environments(cache)


async def test_this_python_does_not_match_requires_python(index_url: str, tmp_path: Path) -> None:
    cache = EnvironmentCache(tmp_path / "envs")
    with pytest.raises(DependencyConflictError, match="requires Python >=4"):
        await prepare(cache, index_url, declared("greeter", requires_python=">=4"))
    assert no_environments(cache)


async def test_an_index_that_cannot_be_reached(tmp_path: Path) -> None:
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.4", 0))
        dead = f"http://127.0.0.4:{probe.getsockname()[1]}/simple"
    cache = EnvironmentCache(tmp_path / "envs")
    with pytest.raises(IndexUnreachableError) as raised:
        await prepare(cache, dead, declared("greeter"))
    assert raised.value.code == "FORGEAI-E144" and dead in raised.value.message
    assert no_environments(cache)


async def test_a_pep_723_script_end_to_end(index_url: str, tmp_path: Path) -> None:
    code = (
        "# /// script\n# dependencies = ['greeter==2.0']\n# ///\n"
        "import greeter\nprint(greeter.hello())\n"
    )
    found = script_metadata(code)
    assert found is not None
    environment, _ = await prepare(EnvironmentCache(tmp_path / "envs"), index_url, found)
    result = await run_code("python", code, environment=environment)  # type: ignore[arg-type]
    assert (result.exit_code, result.stdout) == (0, b"hello 2.0\n"), result.stderr
