"""The baseline of the start-up figure: the smallest pygls server that answers a code lens.

It imports pygls and lsprotocol and answers every textDocument/codeLens with one lens, so
the difference to forgeai-ls is ForgeAI's own start-up work (plugins, settings, features).
"""

from __future__ import annotations

from lsprotocol import types
from pygls.lsp.server import LanguageServer

server = LanguageServer("minimal-lens-server", "1")


@server.feature(types.TEXT_DOCUMENT_CODE_LENS)
def code_lens(ls: LanguageServer, params: types.CodeLensParams) -> list[types.CodeLens]:
    return [
        types.CodeLens(
            range=types.Range(types.Position(0, 0), types.Position(0, 0)),
            command=types.Command(title="Run", command="minimal.run", arguments=[]),
        )
    ]


if __name__ == "__main__":
    server.start_io()
