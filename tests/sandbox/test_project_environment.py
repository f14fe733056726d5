"""A project's environment inside the sandbox: its interpreter and packages, read-only, and
warm slots that never mix two environments (run again with every run served warm)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from forgeai_ls.project_env import EnvironmentChoice, ProjectEnvironment, project_environment
from tests.conftest import run_code

pytestmark = pytest.mark.sandbox


def venv_with(path: Path, value: str) -> ProjectEnvironment:
    subprocess.run(
        [sys.executable, "-m", "venv", "--without-pip", str(path)], check=True, timeout=120
    )
    (next(path.glob("lib/python3*/site-packages")) / "envmark.py").write_text(
        f"VALUE = {value!r}\n"
    )
    found = project_environment("python3", EnvironmentChoice(start=None, explicit=str(path)))
    assert found is not None
    return found


PROGRAM = "import envmark, os, sys\nprint(envmark.VALUE, sys.prefix, os.environ['VIRTUAL_ENV'])\n"


async def test_each_environment_gets_its_own_sandbox(tmp_path: Path) -> None:
    first = venv_with(tmp_path / "one", "first")
    second = venv_with(tmp_path / "two", "second")
    for found, value in ((first, "first"), (second, "second"), (first, "first")):
        result = await run_code("python", PROGRAM, environment=found)
        assert result.exit_code == 0, result.stderr
        assert result.stdout.decode() == f"{value} {found.path} {found.path}\n"
    plain = await run_code("python", "import envmark")
    assert plain.exit_code == 1 and b"No module named 'envmark'" in plain.stderr


async def test_nothing_of_the_environment_is_writable(tmp_path: Path) -> None:
    found = venv_with(tmp_path / "venv", "x")
    code = (
        "import envmark, os\n"
        "for path in (envmark.__file__, os.path.dirname(envmark.__file__) + '/new.py'):\n"
        "    try:\n"
        "        open(path, 'a').close()\n"
        "        print('wrote', path)\n"
        "    except OSError as exc:\n"
        "        print(exc.errno)\n"
    )
    result = await run_code("python", code, environment=found)
    assert result.exit_code == 0, result.stderr
    assert b"wrote" not in result.stdout
    assert not (next((tmp_path / "venv").glob("lib/python3*/site-packages")) / "new.py").exists()


async def test_an_editable_install_imports_from_the_projects_src(tmp_path: Path) -> None:
    """`pip install -e .` of a src layout: the .pth names src/, which is mounted."""
    (tmp_path / "src" / "mylib").mkdir(parents=True)
    (tmp_path / "src" / "mylib" / "__init__.py").write_text("NAME = 'editable'\n")
    (tmp_path / "secret.env").write_text("TOKEN=do-not-leak\n")
    venv = tmp_path / ".venv"
    venv_with(venv, "x")
    (next(venv.glob("lib/python3*/site-packages")) / "_mylib.pth").write_text(
        f"{tmp_path / 'src'}\n"
    )
    found = project_environment("python3", EnvironmentChoice(start=tmp_path))
    assert found is not None
    code = (
        f"import mylib, os\nprint(mylib.NAME, os.path.exists({str(tmp_path / 'secret.env')!r}))\n"
    )
    result = await run_code("python", code, environment=found)
    assert (result.exit_code, result.stdout) == (0, b"editable False\n"), result.stderr


async def test_two_projects_node_modules_never_share_a_warm_sandbox(tmp_path: Path) -> None:
    """Same program, same command: only the mounted node_modules differ."""
    found = []
    for project in ("a", "b"):
        package = tmp_path / project / "node_modules" / "which"
        package.mkdir(parents=True)
        (package / "index.js").write_text(f"module.exports = {project!r};\n")
        environment = project_environment("node", EnvironmentChoice(start=tmp_path / project))
        assert environment is not None
        found.append((environment, project))
    for environment, project in (*found, found[0]):
        result = await run_code(
            "javascript", "console.log(require('which'));\n", environment=environment
        )
        assert (result.exit_code, result.stdout) == (0, f"{project}\n".encode()), result.stderr
