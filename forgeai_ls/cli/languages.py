"""``forgeai languages``: what can run, through which plugin, and what is unavailable."""

from __future__ import annotations

import sys
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from forgeai_ls.cli.report import print_json
from forgeai_ls.plugins.manager import PluginManager
from forgeai_ls.sandbox import NativeBackend

app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)


@app.command("languages")
def languages_command(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> int:
    """List the languages ForgeAI can run, with aliases, extensions and plugin."""
    manager = PluginManager(NativeBackend())
    blocked = manager.load_all()
    plugins = {p.name: p for p in manager.plugins()}
    entries = manager.catalog().entries()
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
                        "trust": plugins[e.plugin].trust_label,
                    }
                    for e in entries
                ],
                "unavailable": [
                    {
                        "plugin": b.error.plugin,
                        "path": str(b.path),
                        "code": b.error.code,
                        "reason": b.error.message,
                    }
                    for b in blocked
                ],
            }
        )
        return 0
    table = Table("Language", "Aliases", "Extensions", "Compiled", "Plugin", "Trust")
    for e in entries:
        table.add_row(
            e.spec.name,
            ", ".join(e.spec.aliases),
            ", ".join(e.spec.extensions),
            "yes" if e.spec.compile else "no",
            e.plugin,
            plugins[e.plugin].trust_label,
        )
    Console().print(table)
    for b in blocked:
        sys.stderr.write(f"unavailable: {b.error.one_line()}\n")
    return 0
