"""The full ``forgeai`` command line: the command named first is imported and given the rest.

Each command is a typer app in its own module (``commands.COMMANDS``), so a command loads
only what it uses.
"""

from __future__ import annotations

import importlib
import logging

import typer

from forgeai_ls import __version__
from forgeai_ls.cli.commands import COMMANDS, root_help
from forgeai_ls.cli.terminal import Terminal
from forgeai_ls.errors import ForgeAIError, UsageError

_HINT = "see 'forgeai --help' or 'forgeai COMMAND --help'"


def usage_error(exc: typer.TyperException) -> UsageError:
    """A bad option or argument, as ForgeAI reports it."""
    return UsageError(exc.format_message(), hint=_HINT)


def run_app(args: list[str], terminal: Terminal | None = None) -> int:
    """Run the command ``args`` name; every ForgeAI error becomes one line and exit 125."""
    terminal = terminal or Terminal()
    logging.basicConfig(level=logging.WARNING, format="forgeai: %(message)s")
    if not args or args[0] in ("--help", "-h"):
        terminal.out(root_help().encode())
        return 0
    if args[0] == "--version":
        terminal.out(f"forgeai {__version__}\n".encode())
        return 0
    name, rest = args[0], args[1:]
    entry = COMMANDS.get(name)
    if entry is None:
        what = "option" if name.startswith("-") else "command"
        known = ", ".join(COMMANDS)
        return terminal.fail(
            UsageError(f"no such {what} '{name}' (commands: {known})", hint=_HINT), args
        )
    try:
        holder = getattr(importlib.import_module(entry.module), entry.attribute)
        command = typer.main.get_command(holder)
        status = command.main(
            args=rest or ([] if name in ("run", "languages", "doctor") else ["--help"]),
            prog_name=f"forgeai {name}",
            standalone_mode=False,
        )
    except typer.Exit as exc:
        return int(exc.exit_code)
    except typer.TyperException as exc:  # bad options and arguments
        return terminal.fail(usage_error(exc), args)
    except typer.Abort:
        return 130
    except ForgeAIError as exc:
        return terminal.fail(exc, args)
    except KeyboardInterrupt:
        return 130
    return status if isinstance(status, int) else 0
