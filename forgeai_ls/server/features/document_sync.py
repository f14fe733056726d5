"""textDocument/didOpen, didChange and didClose: a document of a language with a warm start
gets its warm sandboxes before the first run; stale run diagnostics are cleared."""

from __future__ import annotations

from lsprotocol import types

from forgeai_ls.server.server import ForgeAIServer


def register(server: ForgeAIServer) -> None:
    @server.feature(types.TEXT_DOCUMENT_DID_OPEN)
    def did_open(ls: ForgeAIServer, params: types.DidOpenTextDocumentParams) -> None:
        """Warm sandboxes for the document's language, started in the background."""
        ls.prewarm(params.text_document.uri)

    @server.feature(types.TEXT_DOCUMENT_DID_CHANGE)
    def did_change(ls: ForgeAIServer, params: types.DidChangeTextDocumentParams) -> None:
        """The document changed: diagnostics of earlier runs no longer match it."""
        ls.diagnostics.clear(params.text_document.uri)

    @server.feature(types.TEXT_DOCUMENT_DID_CLOSE)
    def did_close(ls: ForgeAIServer, params: types.DidCloseTextDocumentParams) -> None:
        ls.diagnostics.clear(params.text_document.uri)
        ls.lens_cache.pop(params.text_document.uri, None)
