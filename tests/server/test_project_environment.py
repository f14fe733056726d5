"""Runs from the editor use the project's environment: found, chosen by settings or by the
editor's selected interpreter, announced before the program starts, switchable off."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from lsprotocol import types
from pygls import uris
from pygls.exceptions import JsonRpcException

from tests.server.conftest import ForgeAIClient, open_document
from tests.server.test_run_commands import execute

pytestmark = pytest.mark.sandbox

PROGRAM = "import sys, projdep\nprint(projdep.VALUE, sys.prefix)\n"


@pytest.fixture
def project(tmp_path: Path) -> Path:
    venv = tmp_path / ".venv"
    subprocess.run(
        [sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120
    )
    (next(venv.glob("lib/python3*/site-packages")) / "projdep.py").write_text("VALUE = 'dep'\n")
    (tmp_path / "app").mkdir()
    (tmp_path / "app" / "main.py").write_text(PROGRAM)
    return tmp_path


def configure(lsp: ForgeAIClient, environment: dict[str, Any]) -> None:
    lsp.client.workspace_did_change_configuration(
        types.DidChangeConfigurationParams(settings={"forgeai": {"environment": environment}})
    )


async def run_file(lsp: ForgeAIClient, path: Path) -> dict[str, Any]:
    uri = uris.from_fs_path(str(path))
    assert uri is not None
    open_document(lsp.client, uri, "python", path.read_text())
    return await execute(lsp, "forgeai.runFile", uri)


async def test_a_file_runs_in_the_nearest_venv_and_the_run_says_so_first(
    lsp: ForgeAIClient, project: Path
) -> None:
    result = await run_file(lsp, project / "app" / "main.py")
    venv = str(project / ".venv")
    assert (result["exitCode"], result["stdout"]) == (0, f"dep {venv}\n"), result["stderr"]
    run_id = result["runId"]
    started = lsp.started[run_id]["environment"]
    assert (started["kind"], started["path"], started["foundBy"]) == (
        "python-venv",
        venv,
        "nearest .venv",
    )
    assert started["interpreter"] == f"{venv}/bin/python3"
    assert lsp.finished[run_id]["environment"] == started
    mine = [name for name, ident in lsp.events if ident == run_id]
    assert mine[0] == "runStarted" and mine[-1] == "runFinished"


async def test_selections_of_the_file_use_it_too(lsp: ForgeAIClient, project: Path) -> None:
    path = project / "app" / "main.py"
    uri = uris.from_fs_path(str(path))
    open_document(lsp.client, uri, "python", PROGRAM)
    selection = types.Range(types.Position(0, 0), types.Position(1, 0))
    result = await execute(lsp, "forgeai.runSelection", uri, selection)
    assert result["exitCode"] == 0, result["stderr"]
    assert lsp.started[result["runId"]]["environment"]["path"] == str(project / ".venv")


async def test_switched_off_by_the_setting(lsp: ForgeAIClient, project: Path) -> None:
    configure(lsp, {"enabled": False})
    result = await run_file(lsp, project / "app" / "main.py")
    assert result["exitCode"] == 1 and "No module named 'projdep'" in result["stderr"]
    assert lsp.started[result["runId"]]["environment"] is None


async def test_the_editors_interpreter_and_the_setting(
    lsp: ForgeAIClient, project: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """A file outside any project: the interpreter the editor selected decides; the
    `python` setting (relative to nothing here: absolute) overrides it."""
    elsewhere = tmp_path_factory.mktemp("loose") / "loose.py"
    elsewhere.write_text(PROGRAM)
    configure(lsp, {"pythonFromEditor": str(project / ".venv" / "bin" / "python")})
    result = await run_file(lsp, elsewhere)
    assert result["exitCode"] == 0, result["stderr"]
    assert lsp.started[result["runId"]]["environment"]["foundBy"] == "the editor's interpreter"

    configure(lsp, {"python": str(project / ".venv"), "pythonFromEditor": "/usr/bin/python3"})
    result = await run_file(lsp, elsewhere)
    assert result["exitCode"] == 0, result["stderr"]
    found = lsp.started[result["runId"]]["environment"]
    assert found["foundBy"] == "forgeai.environment.python"


async def test_a_setting_naming_no_environment_is_a_clear_error(
    lsp: ForgeAIClient, project: Path
) -> None:
    configure(lsp, {"python": str(project / "app")})
    with pytest.raises(JsonRpcException) as raised:
        await run_file(lsp, project / "app" / "main.py")
    assert "FORGEAI-E130" in str(raised.value) and "not a Python environment" in str(raised.value)
