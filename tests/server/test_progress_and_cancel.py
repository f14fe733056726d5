"""Work-done progress, cancelling through the request and the progress, plugin reports."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from lsprotocol import types
from pygls.exceptions import JsonRpcException

from tests.server.conftest import ForgeAIClient, open_document

pytestmark = pytest.mark.sandbox

ENDLESS = "print('started', flush=True)\nwhile True:\n    pass\n"


def _supports_progress(lsp: ForgeAIClient) -> bool:
    window = lsp.client.capabilities.window if lsp.client.capabilities else None
    return bool(window and window.work_done_progress)


async def _started(lsp: ForgeAIClient, count: int = 1) -> None:
    while len(lsp.output) < count:
        await asyncio.sleep(0.01)


async def test_run_reports_cancellable_progress(lsp: ForgeAIClient) -> None:
    """With client support, a run begins and ends a cancellable work-done progress."""
    if not _supports_progress(lsp):
        pytest.skip("this client does not announce window.workDoneProgress")
    uri = "file:///tmp/forgeai-test/progress.py"
    open_document(lsp.client, uri, "python", "print(1)\n")
    result = await lsp.client.workspace_execute_command_async(
        types.ExecuteCommandParams(command="forgeai.runFile", arguments=[uri])
    )
    reports = lsp.client.progress_reports[f"forgeai-run-{result['runId']}"]
    assert isinstance(reports[0], types.WorkDoneProgressBegin) and reports[0].cancellable
    assert isinstance(reports[-1], types.WorkDoneProgressEnd)


async def test_cancelling_the_progress_stops_the_run(lsp: ForgeAIClient) -> None:
    """window/workDoneProgress/cancel stops the program within a second."""
    if not _supports_progress(lsp):
        pytest.skip("this client does not announce window.workDoneProgress")
    uri = "file:///tmp/forgeai-test/progress-cancel.py"
    open_document(lsp.client, uri, "python", ENDLESS)
    running = asyncio.ensure_future(
        lsp.client.workspace_execute_command_async(
            types.ExecuteCommandParams(command="forgeai.runFile", arguments=[uri])
        )
    )
    await _started(lsp)
    run_id = next(iter(lsp.output))
    asked = time.monotonic()
    lsp.client.window_work_done_progress_cancel(
        types.WorkDoneProgressCancelParams(token=f"forgeai-run-{run_id}")
    )
    result = await asyncio.wait_for(running, 5)
    assert result["cancelled"] is True
    assert time.monotonic() - asked < 1.0


async def test_cancelling_the_request_stops_the_run(lsp: ForgeAIClient) -> None:
    """$/cancelRequest on the executeCommand stops the program; the request is cancelled."""
    uri = "file:///tmp/forgeai-test/request-cancel.py"
    open_document(lsp.client, uri, "python", ENDLESS)
    request = asyncio.ensure_future(
        lsp.client.protocol.send_request_async(
            types.WORKSPACE_EXECUTE_COMMAND,
            types.ExecuteCommandParams(command="forgeai.runFile", arguments=[uri]),
            msg_id="run-to-cancel",
        )
    )
    await _started(lsp)
    run_id = next(iter(lsp.output))
    asked = time.monotonic()
    lsp.client.protocol.notify(types.CANCEL_REQUEST, types.CancelParams(id="run-to-cancel"))
    with pytest.raises(JsonRpcException):
        await asyncio.wait_for(request, 5)
    while run_id not in lsp.finished:
        await asyncio.sleep(0.01)
    assert time.monotonic() - asked < 1.0
    assert lsp.finished[run_id]["cancelled"] is True


async def test_diagnostics_are_cleared_when_the_document_changes(lsp: ForgeAIClient) -> None:
    """An edit removes the run's now-stale diagnostics."""
    uri = "file:///tmp/forgeai-test/stale.py"
    open_document(lsp.client, uri, "python", "raise SystemError('x')\n")
    await lsp.client.workspace_execute_command_async(
        types.ExecuteCommandParams(command="forgeai.runFile", arguments=[uri])
    )
    assert lsp.client.diagnostics.get(uri)
    lsp.client.text_document_did_change(
        types.DidChangeTextDocumentParams(
            text_document=types.VersionedTextDocumentIdentifier(uri=uri, version=2),
            content_changes=[types.TextDocumentContentChangeWholeDocument(text="print(1)\n")],
        )
    )
    await lsp.client.wait_for_notification(types.TEXT_DOCUMENT_PUBLISH_DIAGNOSTICS)
    assert list(lsp.client.diagnostics.get(uri, [])) == []


async def test_a_refused_plugin_is_reported_once_and_the_rest_works(
    lsp: ForgeAIClient, tmp_path: Path
) -> None:
    """A broken plugin in a configured directory is logged by name once, across reloads."""
    broken = tmp_path / "plugins" / "broken-plugin"
    broken.mkdir(parents=True)
    (broken / "plugin.yaml").write_text("name: broken-plugin\nversion: [\n")
    lsp.client.workspace_did_change_configuration(
        types.DidChangeConfigurationParams(
            settings={"forgeai": {"pluginDirs": [str(tmp_path / "plugins")]}}
        )
    )
    await lsp.client.workspace_execute_command_async(
        types.ExecuteCommandParams(command="forgeai.reloadPlugins", arguments=[])
    )
    listed = await lsp.client.workspace_execute_command_async(
        types.ExecuteCommandParams(command="forgeai.listLanguages", arguments=[])
    )
    reports = [m.message for m in lsp.client.log_messages if "broken-plugin" in m.message]
    assert len(reports) == 1 and "FORGEAI-E201" in reports[0]
    assert "python" in {entry["name"] for entry in listed["languages"]}


@contextlib.contextmanager
def serving(transport: str) -> Iterator[int]:
    """forgeai-ls started with ``transport`` on a free loopback port; yields the port."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = subprocess.Popen(
        [sys.executable, "-m", "forgeai_ls", transport, "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        yield port
    finally:
        server.kill()
        server.wait()


def test_tcp_transport_answers_initialize() -> None:
    """forgeai-ls --tcp serves the protocol on a TCP port."""
    with serving("--tcp") as port:
        body = b'{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"capabilities":{}}}'
        for _ in range(200):
            try:
                connection = socket.create_connection(("127.0.0.1", port), timeout=10)
                break
            except ConnectionRefusedError:
                time.sleep(0.05)
        with connection:
            connection.sendall(b"Content-Length: %d\r\n\r\n" % len(body) + body)
            answer = b""
            while b"executeCommandProvider" not in answer:
                chunk = connection.recv(65536)
                assert chunk, answer
                answer += chunk
        assert b'"forgeai.runFile"' in answer


async def test_websocket_transport_answers_initialize() -> None:
    """forgeai-ls --ws serves the protocol over WebSockets."""
    from websockets.asyncio.client import connect

    with serving("--ws") as port:
        for _ in range(200):
            try:
                async with connect(f"ws://127.0.0.1:{port}") as websocket:
                    await websocket.send(
                        '{"jsonrpc":"2.0","id":1,"method":"initialize",'
                        '"params":{"capabilities":{}}}'
                    )
                    answer = await asyncio.wait_for(websocket.recv(), 30)
                    break
            except OSError:
                await asyncio.sleep(0.05)
        assert '"forgeai.runSelection"' in str(answer)
