"""What the `forgeai` command imports before it does anything: each command only what it
uses, `--version` and `--help` almost nothing, a run through the daemon only C modules.

Speed itself is measured in benchmarks/ (figure 9); these tests keep the import graph from
growing back silently.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import typer

from forgeai_ls.cli.commands import COMMANDS, root_help

FORGEAI = [sys.executable, "-X", "importtime", "-m", "forgeai_ls.cli.main"]
HEAVY = ("typer", "pydantic", "rich", "yaml", "cryptography", "json", "asyncio", "socket")
FOREIGN_TO_RUN = ("docker", "requests", "fastapi", "starlette", "uvicorn", "httpx", "tuf")


def imported(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None) -> set[str]:
    """The modules `forgeai ARGS` imported (from -X importtime) beyond what the same
    interpreter imports to run nothing (site, .pth files, an editable install's finder)."""
    return _imports([*FORGEAI, *args], env, cwd) - _imports(
        [sys.executable, "-X", "importtime", "-c", "pass"], env, cwd
    )


def _imports(argv: list[str], env: dict[str, str] | None, cwd: Path | None) -> set[str]:
    done = subprocess.run(
        argv,
        capture_output=True,
        env={**os.environ, **(env or {})},
        cwd=cwd,
        timeout=120,
        check=False,
        stdin=subprocess.DEVNULL,
    )
    names = set()
    for line in done.stderr.decode().splitlines():
        if line.startswith("import time:") and line.count("|") == 2:
            names.add(line.rsplit("|", 1)[1].strip())
    assert names, done.stderr
    return names


def _ours(names: set[str]) -> set[str]:
    return {name for name in names if name.startswith("forgeai_ls")}


@pytest.mark.parametrize("args", [["--version"], ["--help"], []])
def test_version_and_help_import_almost_nothing(args: list[str]) -> None:
    names = imported(*args)
    assert _ours(names) <= {"forgeai_ls", "forgeai_ls.cli", "forgeai_ls.cli.main",
                            "forgeai_ls.cli.commands", "forgeai_ls.cli.terminal"}  # fmt: skip
    assert not names & set(HEAVY)


@pytest.mark.sandbox
def test_a_run_in_process_imports_no_registry_image_or_docker_module() -> None:
    names = imported("run", "-l", "python", "-c", "print(1)", env={"FORGEAI_DAEMON": "0"})
    assert "forgeai_ls.plugins.manager" in names  # it did run, in this process
    unwanted = {
        name
        for name in names
        if name.startswith(
            ("forgeai_ls.registry", "forgeai_ls.images", "forgeai_ls.sandbox.docker")
        )
        or name.split(".")[0] in FOREIGN_TO_RUN
    }
    assert unwanted == set()


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[dict[str, str]]:
    env = {"FORGEAI_HOME": str(tmp_path), "FORGEAI_DAEMON": "1"}
    command = [sys.executable, "-m", "forgeai_ls.cli.main", "daemon"]
    full_env = {**os.environ, **env}
    subprocess.run([*command, "start"], env=full_env, cwd=tmp_path, check=True, timeout=120)
    yield env
    subprocess.run([*command, "stop"], env=full_env, cwd=tmp_path, check=True, timeout=120)


@pytest.mark.sandbox
def test_a_run_through_the_daemon_imports_only_the_client(
    daemon: dict[str, str], tmp_path: Path
) -> None:
    """The client of the daemon loads none of the plugin, sandbox or typer code, and not
    even the Python wrappers of socket and signal."""
    names = imported("run", "-l", "python", "-c", "print(1)", env=daemon, cwd=tmp_path)
    assert "forgeai_ls.cli.daemon_client" in names
    assert _ours(names) <= {
        "forgeai_ls",
        "forgeai_ls.cli",
        "forgeai_ls.cli.main",
        "forgeai_ls.cli.daemon_client",
        "forgeai_ls.cli.terminal",
        "forgeai_ls.runtime_dir",
    }
    assert not names & {*HEAVY, "signal", "selectors", "enum"}


def _summary(holder: typer.Typer) -> str:
    command = typer.main.get_command(holder)
    return (command.help or "").strip().splitlines()[0]


def test_the_command_table_matches_the_commands() -> None:
    """The root help lists every command with the first line of its own help."""
    import importlib

    for name, entry in COMMANDS.items():
        holder = getattr(importlib.import_module(entry.module), entry.attribute)
        assert entry.summary == _summary(holder), name
        assert f"  {name} " in root_help()
