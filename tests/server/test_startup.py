"""Start-up: plugins are verified in the background; the first lenses may come from the lens
catalog cached for the same plugin set, never from a stale one, and a run never trusts it;
documents opened early get their warm sandboxes once the plugins are loaded."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import psutil
import pytest
from lsprotocol import types
from pygls.lsp.client import LanguageClient

GHOST_MANIFEST = """\
name: ghost
version: 1.0.0
description: A test language
author: Tests
license: MIT
supported_languages: [ghostlang]
dependencies: [python3]
minimum_forgeai_version: 0.1.0
security_level: high
languages:
  - name: ghostlang
    display_name: Ghost
    extensions: [.ghost]
    source_file: main.ghost
    run: [python3, "{source}"]
"""


@asynccontextmanager
async def server(
    home: Path,
    options: dict[str, Any] | None = None,
    env: dict[str, str] | None = None,
    logged: list[types.LogMessageParams] | None = None,
) -> AsyncIterator[tuple[LanguageClient, list[str]]]:
    """A forgeai-ls subprocess with FORGEAI_HOME=home (and ``env``), initialized (with
    code-lens refresh support); yields the client and the list of workspace/codeLens/refresh
    requests seen. ``logged`` collects its window/logMessage notifications."""
    client = LanguageClient("startup-test", "1")
    refreshes: list[str] = []

    @client.feature(types.WINDOW_LOG_MESSAGE)
    def log_message(_client: LanguageClient, params: types.LogMessageParams) -> None:
        if logged is not None:
            logged.append(params)

    @client.feature(types.WORKSPACE_CODE_LENS_REFRESH)
    def refresh(_client: LanguageClient, _params: Any) -> None:
        refreshes.append("refresh")

    env = {**os.environ, "FORGEAI_HOME": str(home), **(env or {})}
    await client.start_io(sys.executable, "-m", "forgeai_ls", env=env)
    capabilities = types.ClientCapabilities(
        workspace=types.WorkspaceClientCapabilities(
            code_lens=types.CodeLensWorkspaceClientCapabilities(refresh_support=True)
        )
    )
    await client.initialize_async(
        types.InitializeParams(capabilities=capabilities, initialization_options=options)
    )
    client.initialized(types.InitializedParams())
    try:
        yield client, refreshes
    finally:
        await client.shutdown_async(None)
        client.exit(None)
        await client.stop()


def open_document(client: LanguageClient, uri: str, language: str, text: str) -> None:
    client.text_document_did_open(
        types.DidOpenTextDocumentParams(
            text_document=types.TextDocumentItem(
                uri=uri, language_id=language, version=1, text=text
            )
        )
    )


async def lens_commands(client: LanguageClient, uri: str) -> list[str]:
    lenses = await client.text_document_code_lens_async(
        types.CodeLensParams(text_document=types.TextDocumentIdentifier(uri=uri))
    )
    return [lens.command.command for lens in lenses or [] if lens.command is not None]


async def eventually(check: Callable[[], bool], timeout: float = 10.0) -> bool:
    for _ in range(int(timeout / 0.05)):
        if check():
            return True
        await asyncio.sleep(0.05)
    return check()


async def test_the_cached_lens_catalog_is_used_only_for_the_same_plugin_set(
    tmp_path: Path,
) -> None:
    home = tmp_path / "home"
    cache = home / "cache" / "lens-catalog.json"
    extra = tmp_path / "extra"
    (extra / "ghost").mkdir(parents=True)
    (extra / "ghost" / "plugin.yaml").write_text(GHOST_MANIFEST)
    ghost_uri = (tmp_path / "x.ghost").as_uri()

    async with server(home) as (client, _):
        open_document(client, "file:///tmp/forgeai-start/a.py", "python", "print(1)\n")
        assert await lens_commands(client, "file:///tmp/forgeai-start/a.py") == ["forgeai.runFile"]
        assert await eventually(cache.exists)
    first = json.loads(cache.read_text())
    assert "ghostlang" not in {item["name"] for item in first["languages"]}

    # Another plugin set (an extra directory with a new language): the cache does not apply.
    options = {"forgeai": {"pluginDirs": [str(extra)], "trust": {"allowUnsigned": True}}}
    async with server(home, options) as (client, _):
        open_document(client, ghost_uri, "ghostlang", "print('boo')\n")
        assert await lens_commands(client, ghost_uri) == ["forgeai.runFile"]
    second = json.loads(cache.read_text())
    assert second["stamp"] != first["stamp"]
    assert "ghostlang" in {item["name"] for item in second["languages"]}


async def test_a_wrong_cache_only_ever_shows_lenses_and_is_corrected(tmp_path: Path) -> None:
    """A cache entry for a language no plugin provides (same stamp, doctored content) can at
    most show a lens; once the plugins are verified the client is asked to refresh its lenses,
    which are then right, and running that document is refused."""
    home = tmp_path / "home"
    cache = home / "cache" / "lens-catalog.json"
    async with server(home) as (client, _):
        open_document(client, "file:///tmp/forgeai-start/b.py", "python", "print(1)\n")
        await lens_commands(client, "file:///tmp/forgeai-start/b.py")
        assert await eventually(cache.exists)
    document = json.loads(cache.read_text())
    document["languages"].append(
        {"name": "phantom", "aliases": [], "extensions": [".phantom"], "cell_marker": None}
    )
    cache.write_text(json.dumps(document))

    uri = (tmp_path / "y.phantom").as_uri()
    async with server(home) as (client, refreshes):
        open_document(client, uri, "phantom", "print('no')\n")
        await lens_commands(client, uri)  # from the cache, or already from the plugins
        assert await eventually(lambda: bool(refreshes))
        assert await lens_commands(client, uri) == []
        with pytest.raises(Exception, match="no installed plugin runs"):
            await client.workspace_execute_command_async(
                types.ExecuteCommandParams(command="forgeai.runFile", arguments=[uri])
            )


def _bwrap_children(pid: int) -> list[psutil.Process]:
    """The server's sandboxes (bwrap with ForgeAI's status descriptor: not the start-up
    diagnosis's `bwrap --version` and user-namespace probe)."""
    try:
        children = psutil.Process(pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return []
    found = []
    for child in children:
        try:
            if child.name() == "bwrap" and "--json-status-fd" in child.cmdline():
                found.append(child)
        except psutil.NoSuchProcess:
            continue
    return found


@pytest.mark.sandbox
@pytest.mark.parametrize("size", [2, 0])
async def test_opening_a_document_warms_its_sandbox(tmp_path: Path, size: int) -> None:
    """With pools on, opening a Python document starts a warm sandbox for it; with
    ``pool.size`` 0 nothing is started until a run."""
    options = {"forgeai": {"pool": {"size": size}}}
    async with server(tmp_path / "home", options) as (client, _):
        pid = int(client._server.pid)  # type: ignore[union-attr]
        open_document(client, "file:///tmp/forgeai-start/warm.py", "python", "print(1)\n")
        warmed = await eventually(lambda: bool(_bwrap_children(pid)), timeout=5)
        assert warmed is (size > 0)
        result = await client.workspace_execute_command_async(
            types.ExecuteCommandParams(
                command="forgeai.runFile", arguments=["file:///tmp/forgeai-start/warm.py"]
            )
        )
        assert result["stdout"] == "1\n"


def test_the_server_starts_without_the_heavy_layers() -> None:
    """Creating the server (what happens before the first lens) imports neither pydantic nor
    the plugin, sandbox, signing or docker layers: they load in the background later."""
    probe = (
        "import sys\nfrom forgeai_ls.server.server import create_server\ncreate_server()\n"
        "heavy = ('pydantic', 'yaml', 'cryptography', 'docker', 'forgeai_ls.sandbox', "
        "'forgeai_ls.plugins.manager', 'forgeai_ls.plugins.signing')\n"
        "print(sorted(name for name in heavy if name in sys.modules))"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True
    )
    assert result.stdout.strip() == "[]", result.stdout


async def test_a_degraded_machine_is_reported_in_the_log_at_start(tmp_path: Path) -> None:
    """Where memory and process limits fall back to rlimits (forced here with an unusable
    FORGEAI_CGROUP_BASE), the server says so once at start, with why and where to look."""
    logged: list[types.LogMessageParams] = []
    bad_base = {"FORGEAI_CGROUP_BASE": str(tmp_path / "missing" / "base")}
    async with server(tmp_path / "home", env=bad_base, logged=logged):
        for _ in range(500):
            if any("rlimits" in m.message for m in logged):
                break
            await asyncio.sleep(0.02)
    degraded = [m for m in logged if "rlimits" in m.message]
    assert len(degraded) == 1, [m.message for m in logged]
    assert degraded[0].type == types.MessageType.Warning
    assert "FORGEAI_CGROUP_BASE is not usable" in degraded[0].message
    assert "forgeai doctor" in degraded[0].message
