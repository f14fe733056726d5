"""``forgeai languages``: what can run, and through which plugin."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from forgeai_ls.cli.report import print_json
from forgeai_ls.plugins.catalog import builtin_catalog


def languages_command(as_json: bool) -> int:
    entries = builtin_catalog().entries()
    if as_json:
        print_json(
            {
                "languages": [
                    {
                        "name": e.spec.name,
                        "display_name": e.spec.display_name,
                        "aliases": list(e.spec.aliases),
                        "extensions": list(e.spec.extensions),
                        "compiled": e.spec.compile is not None,
                        "plugin": e.plugin,
                    }
                    for e in entries
                ]
            }
        )
        return 0
    table = Table("Language", "Aliases", "Extensions", "Compiled", "Plugin")
    for e in entries:
        table.add_row(
            e.spec.name,
            ", ".join(e.spec.aliases),
            ", ".join(e.spec.extensions),
            "yes" if e.spec.compile else "no",
            e.plugin,
        )
    Console().print(table)
    return 0
