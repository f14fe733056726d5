"""A real forgeai-ls subprocess driven by pytest-lsp, as VS Code and as Neovim."""

from __future__ import annotations

import sys
from collections import defaultdict
from typing import Any

import pytest
import pytest_lsp
from lsprotocol import types
from pytest_lsp import ClientServerConfig, LanguageClient, client_capabilities

CLIENTS = ["visual-studio-code", "neovim"]


class ForgeAIClient:
    """Collects ForgeAI's custom notifications per run."""

    def __init__(self, client: LanguageClient) -> None:
        self.client = client
        self.output: dict[str, list[dict[str, Any]]] = defaultdict(list)
        self.finished: dict[str, dict[str, Any]] = {}
        self.started: dict[str, dict[str, Any]] = {}
        self.events: list[tuple[str, str]] = []
        """(notification, runId) in the order they arrived."""
        self.position_encoding: str | None = None
        """The encoding the server chose at initialize (None: UTF-16, the default)."""

        @client.feature("forgeai/runStarted")
        def on_started(_client: LanguageClient, params: Any) -> None:
            data = _plain(params)
            self.started[data["runId"]] = data
            self.events.append(("runStarted", data["runId"]))

        @client.feature("forgeai/output")
        def on_output(_client: LanguageClient, params: Any) -> None:
            data = _plain(params)
            self.output[data["runId"]].append(data)
            self.events.append(("output", data["runId"]))

        @client.feature("forgeai/runFinished")
        def on_finished(_client: LanguageClient, params: Any) -> None:
            data = _plain(params)
            self.finished[data["runId"]] = data
            self.events.append(("runFinished", data["runId"]))


def _plain(params: Any) -> dict[str, Any]:
    plain = _plain_value(params)
    assert isinstance(plain, dict), params
    return plain


def _plain_value(value: Any) -> Any:
    """pygls hands unknown notifications' params over as named tuples: back to plain data."""
    if isinstance(value, dict):
        return {key: _plain_value(item) for key, item in value.items()}
    if hasattr(value, "_fields"):
        return {key: _plain_value(getattr(value, key)) for key in value._fields}
    if isinstance(value, list | tuple):
        return [_plain_value(item) for item in value]
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return {key: _plain_value(getattr(value, key)) for key in dir(value) if not key.startswith("_")}


@pytest_lsp.fixture(
    config=ClientServerConfig(server_command=[sys.executable, "-m", "forgeai_ls"]),
    params=CLIENTS,
)
async def client(lsp_client: LanguageClient, request: Any) -> Any:
    forgeai = lsp_client.forgeai = ForgeAIClient(lsp_client)  # type: ignore[attr-defined]
    result = await lsp_client.initialize_session(
        types.InitializeParams(
            capabilities=client_capabilities(request.param),
            initialization_options={"forgeai": {"limits": {"timeout": 5}}},
        )
    )
    forgeai.position_encoding = result.capabilities.position_encoding
    yield
    await lsp_client.shutdown_session()


@pytest.fixture
def lsp(client: LanguageClient) -> ForgeAIClient:
    """The client plus what ForgeAI notified it of."""
    return client.forgeai  # type: ignore[attr-defined,no-any-return]


def open_document(client: LanguageClient, uri: str, language_id: str, text: str) -> None:
    client.text_document_did_open(
        types.DidOpenTextDocumentParams(
            text_document=types.TextDocumentItem(
                uri=uri, language_id=language_id, version=1, text=text
            )
        )
    )


def span(value: Any) -> tuple[tuple[int, int], tuple[int, int]]:
    """A range argument as the client received it (an object or a mapping) as plain tuples."""

    def get(obj: Any, key: str) -> Any:
        return obj[key] if isinstance(obj, dict) else getattr(obj, key)

    start, end = get(value, "start"), get(value, "end")
    return (
        (get(start, "line"), get(start, "character")),
        (get(end, "line"), get(end, "character")),
    )
