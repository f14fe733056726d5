"""A PEP 723 script run from the editor: its dependencies are installed from a real index on
127.0.0.5 (with a work-done progress), cached, and an install that fails fails the run."""

from __future__ import annotations

import os
import shutil
import socket
import sys
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import pytest_lsp
from lsprotocol import types
from pygls.exceptions import JsonRpcException
from pytest_lsp import ClientServerConfig, LanguageClient, client_capabilities

from tests.server.conftest import CLIENTS, ForgeAIClient
from tests.server.test_project_environment import run_file
from tests.support.package_index import build_wheel, serve_index

pytestmark = pytest.mark.sandbox


def _free_port(address: str) -> int:
    with socket.socket() as probe:
        probe.bind((address, 0))
        return int(probe.getsockname()[1])


PORT = _free_port("127.0.0.5")
INDEX_URL = f"http://127.0.0.5:{PORT}/simple"
HOME = tempfile.mkdtemp(prefix="forgeai-deps-home-")


@pytest.fixture(scope="module", autouse=True)
def index(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    root = tmp_path_factory.mktemp("index")
    build_wheel(root, "greeter", "1.0", module="def hello():\n    return 'hello'\n")
    with serve_index(root, "127.0.0.5", PORT) as url:
        yield url
    shutil.rmtree(HOME, ignore_errors=True)


@pytest_lsp.fixture(
    config=ClientServerConfig(
        server_command=[sys.executable, "-m", "forgeai_ls"],
        server_env={**os.environ, "UV_INDEX_URL": INDEX_URL, "FORGEAI_HOME": HOME},
    ),
    params=CLIENTS,
)
async def client(lsp_client: LanguageClient, request: Any) -> Any:
    lsp_client.forgeai = ForgeAIClient(lsp_client)  # type: ignore[attr-defined]
    await lsp_client.initialize_session(
        types.InitializeParams(capabilities=client_capabilities(request.param))
    )
    yield
    await lsp_client.shutdown_session()


SCRIPT = (
    "# /// script\n# dependencies = ['greeter']\n# ///\nimport greeter\nprint(greeter.hello())\n"
)


async def test_a_script_installs_its_dependencies_then_runs(
    lsp: ForgeAIClient, tmp_path: Path
) -> None:
    program = tmp_path / "script.py"
    unique = f"greeter!=0.0.{uuid.uuid4().int % 10**9}"  # a key no earlier run installed
    program.write_text(SCRIPT.replace("'greeter'", repr(unique)).replace("hello()", "hello(), 1"))
    result = await run_file(lsp, program)
    assert (result["exitCode"], result["stdout"]) == (0, "hello 1\n"), result["stderr"]
    assert result["dependencies"]["installed"] == ["greeter==1.0"]
    started = lsp.started[result["runId"]]["environment"]
    assert started["foundBy"] == "dependencies of the PEP 723 block"
    assert started["path"].startswith(HOME)
    said = [m.message for m in lsp.client.log_messages if "Installing" in m.message]
    installs = [
        report
        for reports in lsp.client.progress_reports.values()
        for report in reports
        if isinstance(report, types.WorkDoneProgressBegin)
        and "Installing 1 package" in (report.message or "")
    ]
    assert said  # in the log, for every client
    window = lsp.client.capabilities.window if lsp.client.capabilities else None
    if window and window.work_done_progress:  # and as progress where the client shows it
        assert installs, lsp.client.progress_reports

    again = await run_file(lsp, program)
    assert again["exitCode"] == 0 and again["dependencies"]["cached"] is True


async def test_an_unknown_package_fails_the_run(lsp: ForgeAIClient, tmp_path: Path) -> None:
    program = tmp_path / "bad.py"
    program.write_text("# /// script\n# dependencies = ['absent-package']\n# ///\nprint(1)\n")
    with pytest.raises(JsonRpcException) as raised:
        await run_file(lsp, program)
    assert "FORGEAI-E142" in str(raised.value) and "absent-package" in str(raised.value)
    assert not lsp.started  # the run never started
