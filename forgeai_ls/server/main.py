"""Entry point of ``forgeai-ls``, the language server.

The server itself is built in a later milestone (design.md §3.4); until then the command says
so plainly instead of pretending to serve.
"""

from __future__ import annotations

import sys

from forgeai_ls.errors import ForgeAIError


class LanguageServerUnavailableError(ForgeAIError):
    CODE = "FORGEAI-E190"


def main() -> None:
    error = LanguageServerUnavailableError(
        "the language server is not included in this version of ForgeAI",
        hint="use 'forgeai run FILE' from the terminal meanwhile",
    )
    sys.stderr.write(f"forgeai-ls: {error.one_line()}\n")
    sys.exit(125)
