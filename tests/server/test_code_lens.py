"""textDocument/codeLens over a real server, with VS Code and Neovim capabilities."""

from __future__ import annotations

from lsprotocol import types

from tests.server.conftest import ForgeAIClient, open_document, span

MARKDOWN = """# Notes

```python
print("one")
print("two")
```

```c
int main(void) { return 0; }
```

```cobol
DISPLAY 'NO'.
```

~~~js
console.log(3)
~~~
"""


async def lenses(lsp: ForgeAIClient, uri: str) -> list[types.CodeLens]:
    result = await lsp.client.text_document_code_lens_async(
        types.CodeLensParams(text_document=types.TextDocumentIdentifier(uri=uri))
    )
    return list(result or [])


async def test_python_file_gets_one_run_file_lens(lsp: ForgeAIClient) -> None:
    """A Python document gets "Run in sandbox" on line 0 running forgeai.runFile [uri]."""
    uri = "file:///tmp/forgeai-test/hello.py"
    open_document(lsp.client, uri, "python", "print('hi')\n")
    found = await lenses(lsp, uri)
    assert len(found) == 1
    assert found[0].range == types.Range(types.Position(0, 0), types.Position(0, 0))
    assert found[0].command is not None
    assert found[0].command.command == "forgeai.runFile"
    assert list(found[0].command.arguments or []) == [uri]


async def test_c_file_by_extension(lsp: ForgeAIClient) -> None:
    """A C file is recognised even when the client sends no useful languageId."""
    uri = "file:///tmp/forgeai-test/prog.c"
    open_document(lsp.client, uri, "plaintext", "int main(void){return 0;}\n")
    found = await lenses(lsp, uri)
    assert [lens.command.command for lens in found if lens.command] == ["forgeai.runFile"]


async def test_markdown_blocks_get_selection_lenses(lsp: ForgeAIClient) -> None:
    """Three known blocks (python, c, js) get lenses with their exact code ranges; cobol none."""
    uri = "file:///tmp/forgeai-test/notes.md"
    open_document(lsp.client, uri, "markdown", MARKDOWN)
    found = await lenses(lsp, uri)
    got = [
        (lens.range.start.line, lens.command.arguments[0], span(lens.command.arguments[1]))
        for lens in found
        if lens.command and lens.command.arguments
    ]
    assert got == [
        (2, uri, ((3, 0), (4, 12))),
        (7, uri, ((8, 0), (8, 28))),
        (15, uri, ((16, 0), (16, 14))),
    ]
    assert all(lens.command and lens.command.command == "forgeai.runSelection" for lens in found)


async def test_python_cells_get_lenses(lsp: ForgeAIClient) -> None:
    """'# %%' cells in Python each get a lens that runs just that cell."""
    uri = "file:///tmp/forgeai-test/cells.py"
    text = "# %%\nx = 1\nprint(x)\n\n# %% second\nprint(2)\n"
    open_document(lsp.client, uri, "python", text)
    found = await lenses(lsp, uri)
    cell_ranges = [
        span(lens.command.arguments[1])
        for lens in found
        if lens.command
        and lens.command.arguments
        and lens.command.command == "forgeai.runSelection"
    ]
    assert cell_ranges == [((1, 0), (2, 8)), ((5, 0), (5, 8))]


async def test_unsupported_document_gets_no_lens(lsp: ForgeAIClient) -> None:
    uri = "file:///tmp/forgeai-test/data.xyz"
    open_document(lsp.client, uri, "plaintext", "hello\n")
    assert await lenses(lsp, uri) == []
