"""The language server runs a file with `backend: docker` end to end (real forgeai-ls, real
dockerd, the official Python plugin's image)."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

import pytest_lsp
from lsprotocol import types
from pytest_lsp import ClientServerConfig, LanguageClient, client_capabilities

from tests.server.conftest import ForgeAIClient, open_document


@pytest_lsp.fixture(
    config=ClientServerConfig(server_command=[sys.executable, "-m", "forgeai_ls"]),
)
async def docker_client(
    lsp_client: LanguageClient, docker_engine: Any, plugin_image: Callable[[str], str]
) -> Any:
    plugin_image("python")
    lsp_client.forgeai = ForgeAIClient(lsp_client)  # type: ignore[attr-defined]
    await lsp_client.initialize_session(
        types.InitializeParams(
            capabilities=client_capabilities("visual-studio-code"),
            initialization_options={
                "forgeai": {"backend": "docker", "dockerHost": docker_engine.host}
            },
        )
    )
    yield
    await lsp_client.shutdown_session()


async def test_run_file_in_a_container(docker_client: LanguageClient) -> None:
    lsp: ForgeAIClient = docker_client.forgeai  # type: ignore[attr-defined]
    uri = "file:///tmp/forgeai-test/in_docker.py"
    code = "import os\nprint('uid', os.getuid())\nraise SystemExit(open('/etc/hostname').read())\n"
    open_document(docker_client, uri, "python", code)
    result = await docker_client.workspace_execute_command_async(
        types.ExecuteCommandParams(command="forgeai.runFile", arguments=[uri])
    )
    assert isinstance(result, dict), result
    assert result["stdout"] == "uid 65534\n", result
    assert result["stderr"].strip() == "sandbox"
    assert result["exitCode"] == 1
    run_id = result["runId"]
    streamed = "".join(chunk["text"] for chunk in lsp.output[run_id] if chunk["stream"] == "stdout")
    assert streamed == "uid 65534\n"
    assert lsp.finished[run_id]["exitCode"] == 1
