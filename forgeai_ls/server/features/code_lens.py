"""textDocument/codeLens: "Run in sandbox" on supported documents, Markdown blocks and cells."""

from __future__ import annotations

from lsprotocol import types

from forgeai_ls.errors import UnknownLanguageError
from forgeai_ls.server.lenses import Span, cells, markdown_blocks
from forgeai_ls.server.server import ForgeAIServer

TITLE = "▶ Run in sandbox"


def _span_range(span: Span) -> types.Range:
    return types.Range(
        types.Position(span.start, 0), types.Position(span.end - 1, span.end_character)
    )


def _selection_lens(uri: str, span: Span, line: int, title: str) -> types.CodeLens:
    return types.CodeLens(
        range=types.Range(types.Position(line, 0), types.Position(line, 0)),
        command=types.Command(
            title=title, command="forgeai.runSelection", arguments=[uri, _span_range(span)]
        ),
    )


def markdown_lenses(ls: ForgeAIServer, uri: str, text: str) -> list[types.CodeLens]:
    catalog = ls.manager.catalog()
    lenses = []
    for block in markdown_blocks(text):
        try:
            entry = catalog.by_name(block.language)
        except UnknownLanguageError:
            continue
        lenses.append(
            _selection_lens(uri, block.code, block.fence_line, f"{TITLE} ({entry.spec.name})")
        )
    return lenses


def register(server: ForgeAIServer) -> None:
    @server.feature(types.TEXT_DOCUMENT_CODE_LENS)
    def code_lens(ls: ForgeAIServer, params: types.CodeLensParams) -> list[types.CodeLens]:
        """Lenses: the whole file, each Markdown block of a known language, each cell."""
        uri = params.text_document.uri
        document = ls.workspace.get_text_document(uri)
        if document.language_id == "markdown" or uri.endswith((".md", ".markdown")):
            return markdown_lenses(ls, uri, document.source)
        entry = ls.entry_for(document)
        if entry is None:
            return []
        lenses = [
            types.CodeLens(
                range=types.Range(types.Position(0, 0), types.Position(0, 0)),
                command=types.Command(title=TITLE, command="forgeai.runFile", arguments=[uri]),
            )
        ]
        if entry.spec.cell_marker:
            lenses += [
                _selection_lens(uri, span, span.start - 1, f"{TITLE} (cell)")
                for span in cells(document.source, entry.spec.cell_marker)
            ]
        return lenses
