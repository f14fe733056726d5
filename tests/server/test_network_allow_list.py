"""forgeai.network.allow through a real server: allowed hosts answer, refusals become
diagnostics, a bad entry fails the run clearly."""

from __future__ import annotations

from pathlib import Path

import pytest
from lsprotocol import types
from pygls import uris
from pygls.exceptions import JsonRpcException

from tests.sandbox.test_egress import FETCH, Site
from tests.server.conftest import ForgeAIClient
from tests.server.test_project_environment import run_file

pytestmark = pytest.mark.sandbox


async def test_the_network_allow_list_setting(lsp: ForgeAIClient, tmp_path: Path) -> None:
    """forgeai.network.allow: an allowed host answers, another is refused; the refusal is an
    information diagnostic naming the setting, and the summary lists both."""
    allowed, other = Site("127.0.0.2"), Site("127.0.0.3")
    try:
        lsp.client.workspace_did_change_configuration(
            types.DidChangeConfigurationParams(
                settings={"forgeai": {"network": {"allow": [f"127.0.0.2:{allowed.port}"]}}}
            )
        )
        program = tmp_path / "fetch.py"
        program.write_text(f"URLS = [{allowed.url!r}, {other.url!r}]\n{FETCH}")
        result = await run_file(lsp, program)
        assert result["exitCode"] == 0, result["stderr"]
        assert result["stdout"].splitlines()[0] == "200 hello from 127.0.0.2"
        assert result["network"] == {
            "allowed": [f"127.0.0.2:{allowed.port}"],
            "denied": [f"127.0.0.3:{other.port}"],
        }
        uri = uris.from_fs_path(str(program))
        found = [d for d in lsp.client.diagnostics.get(uri, []) if d.code == "network-blocked"]
        assert [d.message for d in found] == [
            f"Connection to 127.0.0.3:{other.port} blocked — add it to forgeai.network.allow "
            "to permit"
        ]
        assert found[0].severity == types.DiagnosticSeverity.Information
    finally:
        allowed.close()
        other.close()


async def test_an_allow_list_entry_that_is_not_a_host_fails_the_run(
    lsp: ForgeAIClient, tmp_path: Path
) -> None:
    lsp.client.workspace_did_change_configuration(
        types.DidChangeConfigurationParams(
            settings={"forgeai": {"network": {"allow": ["https://pypi.org/simple"]}}}
        )
    )
    with pytest.raises(JsonRpcException) as raised:
        program = tmp_path / "main.py"
        program.write_text("print(1)\n")
        await run_file(lsp, program)
    assert "FORGEAI-E131" in str(raised.value) and "forgeai.network.allow" in str(raised.value)
