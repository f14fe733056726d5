"""Settings changes are never lost, whatever their timing against the plugin loading.

The plugins are verified in a background thread that starts at ``initialized`` and first
validates the settings it was started with (importing pydantic on the way). A
``workspace/didChangeConfiguration`` sent right after ``initialized`` arrives during that
validation; it used to be overwritten by the thread's older settings (the timing itself is
forced in tests/unit/test_server_settings.py; here the whole path runs in a real server).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest
import pytest_lsp
from lsprotocol import types
from pytest_lsp import ClientServerConfig, LanguageClient, client_capabilities

from forgeai_ls.home import bundled_plugins_dir
from tests.server.conftest import CLIENTS, open_document

pytestmark = pytest.mark.sandbox


@pytest_lsp.fixture(
    config=ClientServerConfig(server_command=[sys.executable, "-m", "forgeai_ls"]),
    params=CLIENTS,
)
async def fresh(lsp_client: LanguageClient, request: Any) -> Any:
    """A server that has just been told ``initialized`` (its plugins are still loading)."""

    @lsp_client.feature(types.WORKSPACE_CODE_LENS_REFRESH)
    def refresh(_client: LanguageClient, _params: None) -> None:
        """Asked for when the loaded plugins' languages differ from the start-up cache's."""

    await lsp_client.initialize_session(
        types.InitializeParams(
            capabilities=client_capabilities(request.param),
            initialization_options={"forgeai": {"limits": {"timeout": 20}}},
        )
    )
    yield
    await lsp_client.shutdown_session()


def _change(client: LanguageClient, settings: dict[str, Any]) -> None:
    client.workspace_did_change_configuration(
        types.DidChangeConfigurationParams(settings={"forgeai": settings})
    )


async def _run_file(client: LanguageClient, uri: str) -> dict[str, Any]:
    result = await client.workspace_execute_command_async(
        types.ExecuteCommandParams(command="forgeai.runFile", arguments=[uri])
    )
    assert isinstance(result, dict), result
    return result


async def test_a_limit_changed_while_plugins_load_is_applied(fresh: LanguageClient) -> None:
    """A timeout sent at once after initialized stops the next run (not the initial 20 s)."""
    _change(fresh, {"limits": {"timeout": 0.5}})
    uri = "file:///tmp/forgeai-test/slow.py"
    open_document(fresh, uri, "python", "import time\ntime.sleep(60)\n")
    result = await _run_file(fresh, uri)
    assert (result["timedOut"], result["limit"]) == (True, "timeout")
    assert result["durationMs"] < 10_000


async def test_plugin_dirs_changed_while_plugins_load_are_loaded(
    fresh: LanguageClient, tmp_path: Path
) -> None:
    """A plugin directory and a limit sent during the loading both take effect: the
    directory's plugin runs its language, under the new limit."""
    folder = tmp_path / "extra" / "snake"
    folder.mkdir(parents=True)
    manifest = (bundled_plugins_dir() / "python" / "plugin.yaml").read_text()
    manifest = (
        manifest.replace("name: python\n", "name: snake\n", 1)
        .replace("supported_languages: [python]", "supported_languages: [snake]")
        .replace("  - name: python\n", "  - name: snake\n")
        .replace('aliases: ["py", "python3"]', "aliases: []")
        .replace('extensions: [".py", ".pyw"]', 'extensions: [".snake"]')
    )
    (folder / "plugin.yaml").write_text(manifest)
    _change(
        fresh,
        {
            "pluginDirs": [str(folder.parent)],
            "trust": {"allowUnsigned": True},
            "limits": {"timeout": 0.5},
        },
    )
    uri = f"file://{tmp_path}/slow.snake"
    open_document(fresh, uri, "snake", "import time\nprint('in', flush=True)\ntime.sleep(60)\n")
    result = await _run_file(fresh, uri)
    assert result["stdout"] == "in\n"
    assert (result["timedOut"], result["limit"]) == (True, "timeout")
