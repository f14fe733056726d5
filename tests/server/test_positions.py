"""Positions in the negotiated encoding: UTF-16 for VS Code, UTF-8 for Neovim's profile.

An emoji counts 2 UTF-16 units and 4 UTF-8 bytes, a CJK character 1 and 3: selections, lens
ranges and diagnostic ranges must count as the client counts, wherever such characters
stand before or inside the range.
"""

from __future__ import annotations

from typing import Any

import pytest
from lsprotocol import types

from tests.server.conftest import ForgeAIClient, open_document, span
from tests.server.test_run_commands import diagnostics, execute

pytestmark = pytest.mark.sandbox


def _units(lsp: ForgeAIClient, text: str) -> int:
    """Length of ``text`` in the position encoding the server chose for this client."""
    encoding = lsp.position_encoding
    if encoding == types.PositionEncodingKind.Utf8:
        return len(text.encode())
    if encoding == types.PositionEncodingKind.Utf32:
        return len(text)
    return len(text.encode("utf-16-le")) // 2


def _range(start: tuple[int, int], end: tuple[int, int]) -> dict[str, Any]:
    return {
        "start": {"line": start[0], "character": start[1]},
        "end": {"line": end[0], "character": end[1]},
    }


async def test_a_selection_after_an_emoji_on_its_line(lsp: ForgeAIClient) -> None:
    uri = "file:///tmp/forgeai-test/emoji-before.py"
    prefix = 'face = "😀 漢字"; '
    line = prefix + 'print("after")'
    open_document(lsp.client, uri, "python", line + "\n")
    start, end = _units(lsp, prefix), _units(lsp, line)
    result = await execute(lsp, "forgeai.runSelection", uri, _range((0, start), (0, end)))
    assert (result["exitCode"], result["stdout"]) == (0, "after\n"), result


async def test_a_selection_with_emoji_and_cjk_inside(lsp: ForgeAIClient) -> None:
    uri = "file:///tmp/forgeai-test/emoji-inside.py"
    lines = ["# 😀 before", 'print("漢字😀ok")', 'print("not run")']
    open_document(lsp.client, uri, "python", "\n".join(lines) + "\n")
    selection = _range((1, 0), (1, _units(lsp, lines[1])))
    result = await execute(lsp, "forgeai.runSelection", uri, selection)
    assert (result["exitCode"], result["stdout"]) == (0, "漢字😀ok\n"), result


async def test_a_diagnostic_after_an_emoji_spans_the_line_in_client_units(
    lsp: ForgeAIClient,
) -> None:
    """A traceback line selected after an emoji: the diagnostic is on that line, ending at
    the line's end as the client counts it."""
    uri = "file:///tmp/forgeai-test/emoji-error.py"
    prefix = 'mark = "😀😀"; '
    line = prefix + "1 / 0"
    open_document(lsp.client, uri, "python", "x = 1\n" + line + "\n")
    selection = _range((1, _units(lsp, prefix)), (1, _units(lsp, line)))
    result = await execute(lsp, "forgeai.runSelection", uri, selection)
    assert result["exitCode"] == 1
    (found,) = diagnostics(lsp, uri)
    assert (found.range.start.line, found.range.start.character) == (1, 0)
    assert (found.range.end.line, found.range.end.character) == (1, _units(lsp, line))


async def test_markdown_lens_ranges_end_where_the_client_counts(lsp: ForgeAIClient) -> None:
    """A fenced block whose last line holds an emoji: the lens's range ends at that line's
    end in client units, and running it runs the whole block."""
    uri = "file:///tmp/forgeai-test/emoji.md"
    last = 'print("漢字 😀")'
    text = f"# 😀 notes\n\n```python\nx = '😀'\n{last}\n```\n"
    open_document(lsp.client, uri, "markdown", text)
    lenses = await lsp.client.text_document_code_lens_async(
        types.CodeLensParams(text_document=types.TextDocumentIdentifier(uri=uri))
    )
    assert lenses is not None and len(lenses) == 1
    command = lenses[0].command
    assert command is not None and command.arguments is not None
    selection = command.arguments[1]
    assert span(selection) == ((3, 0), (4, _units(lsp, last)))
    result = await execute(lsp, "forgeai.runSelection", uri, selection)
    assert (result["exitCode"], result["stdout"]) == (0, "漢字 😀\n"), result
