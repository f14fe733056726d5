"""textDocument/codeLens: "Run in sandbox" on supported documents, Markdown blocks and cells."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from lsprotocol import types
from pygls.workspace import TextDocument

from forgeai_ls.server.lenses import Span, cells, markdown_blocks
from forgeai_ls.server.server import ForgeAIServer

TITLE = "▶ Run in sandbox"

Lens = dict[str, Any]
"""A CodeLens already in its JSON form: thousands of them serialise several times faster
than lsprotocol objects, which matters for long Markdown files."""


class _Units:
    """Line lengths in the client's position units (UTF-16 unless negotiated otherwise)."""

    def __init__(self, document: TextDocument) -> None:
        self._document = document
        self._lines: Sequence[str] | None = None
        self._ascii = document.source.isascii()  # every encoding counts ASCII alike

    def end_of(self, span: Span) -> int:
        if self._ascii:
            return span.end_character
        if self._lines is None:
            self._lines = self._document.lines
        text = self._lines[span.end - 1][: span.end_character]
        return int(self._document.position_codec.client_num_units(text))


def _span_range(span: Span, units: _Units) -> dict[str, dict[str, int]]:
    """A range as a command argument (plain JSON: arguments are LSPAny)."""
    return {
        "start": {"line": span.start, "character": 0},
        "end": {"line": span.end - 1, "character": units.end_of(span)},
    }


def _lens(line: int, title: str, command: str, arguments: list[Any]) -> Lens:
    position = {"line": line, "character": 0}
    return {
        "range": {"start": position, "end": position},
        "command": {"title": title, "command": command, "arguments": arguments},
    }


def _selection_lens(uri: str, span: Span, units: _Units, line: int, title: str) -> Lens:
    return _lens(line, title, "forgeai.runSelection", [uri, _span_range(span, units)])


def markdown_lenses(ls: ForgeAIServer, uri: str, document: TextDocument) -> list[Lens]:
    catalog = ls.lens_catalog()
    units = _Units(document)
    lenses = []
    for block in markdown_blocks(document.source):
        found = catalog.find(block.language)
        if found is not None:
            lenses.append(
                _selection_lens(uri, block.code, units, block.fence_line, f"{TITLE} ({found.name})")
            )
    return lenses


def compute_lenses(ls: ForgeAIServer, uri: str, document: TextDocument) -> list[Lens]:
    """Lenses for one version of a document."""
    if document.language_id == "markdown" or uri.endswith((".md", ".markdown")):
        return markdown_lenses(ls, uri, document)
    found = ls.language_of(document)
    if found is None:
        return []
    lenses = [_lens(0, TITLE, "forgeai.runFile", [uri])]
    if found.cell_marker:
        units = _Units(document)
        lenses += [
            _selection_lens(uri, span, units, span.start - 1, f"{TITLE} (cell)")
            for span in cells(document.source, found.cell_marker)
        ]
    return lenses


def register(server: ForgeAIServer) -> None:
    @server.feature(types.TEXT_DOCUMENT_CODE_LENS)
    def code_lens(ls: ForgeAIServer, params: types.CodeLensParams) -> list[Lens]:
        """Lenses: the whole file, each Markdown block of a known language, each cell.

        Computed once per document version (and plugin set); editors ask often.
        """
        uri = params.text_document.uri
        document = ls.workspace.get_text_document(uri)
        key = (document.version, id(ls.lens_catalog()))  # a plugin reload: a new catalog
        cached = ls.lens_cache.get(uri)
        if cached is not None and cached[0] == key:
            return cached[1]
        lenses = compute_lenses(ls, uri, document)
        ls.lens_cache[uri] = (key, lenses)
        return lenses
