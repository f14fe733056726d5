"""Language-server figures: runSelection of print(1) to runFinished, and code lenses on a
10,000-line Markdown file, against a real forgeai-ls subprocess."""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import subprocess
import sys
import time
from typing import Any

from lsprotocol import types
from pygls.lsp.client import LanguageClient

from forgeai_ls.sandbox.toolchain import ToolchainResolver

_PAUSE_SECONDS = 0.1
"""Between runs, as between a user's clicks: the warm slot the last run used is replaced."""


def _percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


async def started_client() -> tuple[LanguageClient, dict[str, asyncio.Event], int]:
    """A pygls client connected to a fresh forgeai-ls subprocess, initialized; the events
    of finished runs by runId; the server's pid."""
    client = LanguageClient("forgeai-bench", "1")
    finished: dict[str, asyncio.Event] = {}

    @client.feature("forgeai/output")
    def on_output(_client: LanguageClient, params: Any) -> None:
        pass  # streamed output is not what is measured here

    @client.feature("forgeai/runFinished")
    def on_finished(_client: LanguageClient, params: Any) -> None:
        run_id = params["runId"] if isinstance(params, dict) else params.runId
        finished.setdefault(run_id, asyncio.Event()).set()

    await client.start_io(sys.executable, "-m", "forgeai_ls")
    await client.initialize_async(types.InitializeParams(capabilities=types.ClientCapabilities()))
    client.initialized(types.InitializedParams())
    server = getattr(client, "_server", None)
    return client, finished, int(getattr(server, "pid", 0))


def open_document(client: LanguageClient, uri: str, language: str, text: str) -> None:
    client.text_document_did_open(
        types.DidOpenTextDocumentParams(
            text_document=types.TextDocumentItem(
                uri=uri, language_id=language, version=1, text=text
            )
        )
    )


def run_selection_latency(
    runs: int = 40, *, pause: float | None = None, path_first: str | None = None
) -> dict[str, float]:
    """executeCommand forgeai.runSelection of print(1) until the forgeai/runFinished
    notification is read, over the server's raw stdio (as an editor that parses JSON
    natively sees it; a Python LSP client would add its own parsing to every message).
    Also from the same request until the response itself.

    Spaced like a user's clicks (``pause``, default 100 ms, between runs, a bare start
    measured after each), or with ``pause=0`` back to back as an agent or a test loop sends
    them (the bare starts are then measured after the whole batch, not in between).
    ``path_first``: a directory put first on the server's PATH (which python3 runs)."""
    pause = _PAUSE_SECONDS if pause is None else pause
    env = dict(os.environ)
    if path_first:
        env["PATH"] = f"{path_first}:{env.get('PATH', '')}"
    connection = RawConnection(env=env)
    uri = "file:///tmp/forgeai-bench/sel.py"
    python = ToolchainResolver(env).resolve("python3").executable
    selection = {"start": {"line": 0, "character": 0}, "end": {"line": 0, "character": 8}}
    finished_ms: list[float] = []
    response_ms: list[float] = []
    bare_ms: list[float] = []
    try:
        connection.read_response(connection.send("initialize", {"capabilities": {}}) or 0)
        connection.send("initialized", {}, request=False)
        connection.send(
            "textDocument/didOpen",
            {"textDocument": {"uri": uri, "languageId": "python", "version": 1,
                              "text": "print(1)\n"}},
            request=False,
        )  # fmt: skip
        for index in range(runs + 3):
            start = time.perf_counter()
            wanted = connection.send(
                "workspace/executeCommand",
                {"command": "forgeai.runSelection", "arguments": [uri, selection]},
            )
            finished = connection.read_message(b'"forgeai/runFinished"')
            finished_at = time.perf_counter()
            body = connection.read_response(wanted or 0)
            answered_at = time.perf_counter()
            result = json.loads(body)["result"]
            assert result["stdout"] == "1\n" and b'"exitCode": 0' in finished, body
            if index < 3:  # warm-up: the plugins load, the sandbox is probed, pools fill
                time.sleep(max(pause, _PAUSE_SECONDS))
                continue
            finished_ms.append((finished_at - start) * 1000)
            response_ms.append((answered_at - start) * 1000)
            if pause:
                bare_ms.append(_bare_ms(python))
                time.sleep(pause)
    finally:
        connection.close()
    if not pause:
        bare_ms = [_bare_ms(python) for _ in range(runs)]
    return {
        "p50_ms": statistics.median(finished_ms),
        "p95_ms": _percentile(finished_ms, 0.95),
        "response_p50_ms": statistics.median(response_ms),
        "bare_p50_ms": statistics.median(bare_ms),
        "ratio_p50": statistics.median(finished_ms) / statistics.median(bare_ms),
    }


def _bare_ms(python: str) -> float:
    start = time.perf_counter()
    subprocess.run([python, "-c", "print(1)"], check=True, capture_output=True)
    return (time.perf_counter() - start) * 1000


def _big_markdown(lines: int = 10_000) -> str:
    chunk = [
        "## Section",
        "",
        "Some prose about the example below.",
        "",
        "```python",
        "print('hello')",
        "x = 1",
        "```",
        "",
        "```text",
        "not code",
        "```",
        "",
    ]
    out: list[str] = []
    while len(out) < lines:
        out += chunk
    return "\n".join(out[:lines]) + "\n"


class RawConnection:
    """Bytes-level JSON-RPC over a server's stdio: measures the server, not a client's
    parsing (pygls' client spends longer structuring 769 lenses than the server computes
    them; editors parse JSON natively)."""

    def __init__(self, argv: list[str] | None = None, env: dict[str, str] | None = None) -> None:
        self.process = subprocess.Popen(
            argv or [sys.executable, "-m", "forgeai_ls"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env=env,
        )
        self.next_id = 0

    def send(self, method: str, params: Any, request: bool = True) -> int | None:
        message: dict[str, Any] = {"jsonrpc": "2.0", "method": method, "params": params}
        if request:
            self.next_id += 1
            message["id"] = self.next_id
        body = json.dumps(message).encode()
        assert self.process.stdin is not None
        self.process.stdin.write(b"Content-Length: %d\r\n\r\n" % len(body) + body)
        self.process.stdin.flush()
        return message.get("id")

    def read_body(self) -> bytes:
        assert self.process.stdout is not None
        length = 0
        while line := self.process.stdout.readline().strip():
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":")[1])
        return self.process.stdout.read(length)

    def read_response(self, wanted: int) -> bytes:
        while True:
            body = self.read_body()
            if f'"id": {wanted},'.encode() in body or f'"id": {wanted}}}'.encode() in body:
                return body

    def read_message(self, marker: bytes) -> bytes:
        """The next message whose body contains ``marker``."""
        while marker not in (body := self.read_body()):
            pass
        return body

    def close(self) -> None:
        self.process.kill()
        self.process.wait()


def code_lens_server_latency(requests: int = 30) -> dict[str, float]:
    connection = RawConnection()
    uri = "file:///tmp/forgeai-bench/raw.md"
    text = _big_markdown()
    try:
        connection.read_response(connection.send("initialize", {"capabilities": {}}) or 0)
        connection.send("initialized", {}, request=False)
        connection.send(
            "textDocument/didOpen",
            {"textDocument": {"uri": uri, "languageId": "markdown", "version": 1, "text": text}},
            request=False,
        )
        # Steady state: the plugins, verified in the background after start, are loaded.
        listed = connection.send(
            "workspace/executeCommand", {"command": "forgeai.listLanguages", "arguments": []}
        )
        connection.read_response(listed or 0)
        edited, repeated, size = [], [], 0
        for index in range(requests + 2):
            text += "\n"
            connection.send(
                "textDocument/didChange",
                {
                    "textDocument": {"uri": uri, "version": index + 2},
                    "contentChanges": [{"text": text}],
                },
                request=False,
            )
            for series in (edited, repeated):
                start = time.perf_counter()
                body = connection.read_response(
                    connection.send("textDocument/codeLens", {"textDocument": {"uri": uri}}) or 0
                )
                if index >= 2:
                    series.append((time.perf_counter() - start) * 1000)
                size = len(body)
    finally:
        connection.close()
    return {
        "lines": 10_000,
        "response_bytes": size,
        "after_edit_p50_ms": statistics.median(edited),
        "after_edit_p95_ms": _percentile(edited, 0.95),
        "unchanged_p50_ms": statistics.median(repeated),
    }
