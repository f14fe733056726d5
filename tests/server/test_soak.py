"""200 runs in a row: the server's descriptors, children and memory stay level."""

from __future__ import annotations

import asyncio

import psutil
import pytest
from lsprotocol import types

from tests.server.conftest import ForgeAIClient, open_document

pytestmark = pytest.mark.sandbox

SETTLE_SECONDS = 0.5
"""After a run its warm slot's replacement starts and holds a few descriptors and a child:
both samples are taken once that has happened."""


async def _run(lsp: ForgeAIClient, uri: str) -> None:
    result = await lsp.client.workspace_execute_command_async(
        types.ExecuteCommandParams(command="forgeai.runFile", arguments=[uri])
    )
    assert result["exitCode"] == 0


async def test_two_hundred_runs_leave_no_growth(lsp: ForgeAIClient) -> None:
    """No fd, child process or memory growth of the server across 200 runs.

    The pool is capped at 2 slots (a spare beside the running one): otherwise its size follows
    the pace of the runs and the two samples could see different numbers of warm slots, each
    with its own descriptors and child.
    """
    server = psutil.Process(lsp.client._server.pid)  # type: ignore[attr-defined,union-attr]
    lsp.client.workspace_did_change_configuration(
        types.DidChangeConfigurationParams(
            settings={"forgeai": {"limits": {"timeout": 5}, "pool": {"size": 2}}}
        )
    )
    uri = "file:///tmp/forgeai-test/soak.py"
    open_document(lsp.client, uri, "python", "print(1)\n")
    for _ in range(20):  # warm up: caches, first imports, allocator arenas
        await _run(lsp, uri)
    await asyncio.sleep(SETTLE_SECONDS)
    fds, children, memory = server.num_fds(), len(server.children()), server.memory_info().rss
    for _ in range(200):
        await _run(lsp, uri)
    await asyncio.sleep(SETTLE_SECONDS)
    assert server.num_fds() == fds
    assert len(server.children()) == children
    assert server.memory_info().rss - memory < 16 * 1024 * 1024
