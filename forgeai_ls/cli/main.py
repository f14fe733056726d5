"""Entry point of the ``forgeai`` command."""

from __future__ import annotations

import logging
import sys
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from forgeai_ls import __version__
from forgeai_ls.cli.image_commands import image_app
from forgeai_ls.cli.key_commands import key_app
from forgeai_ls.cli.languages import languages_command
from forgeai_ls.cli.plugin_commands import plugin_app
from forgeai_ls.cli.registry_commands import registry_app
from forgeai_ls.cli.report import EXIT_FORGEAI_FAILED, print_json
from forgeai_ls.cli.run import RunOptions, run_command
from forgeai_ls.errors import ForgeAIError, UsageError


class Backend(StrEnum):
    NATIVE = "native"
    DOCKER = "docker"


app = typer.Typer(
    name="forgeai",
    help="Run code you do not trust, in a sandbox, with limits.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"forgeai {__version__}")
        raise typer.Exit(0)


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
) -> None:
    """Run code you do not trust, in a sandbox, with limits."""


@app.command("run")
def run(
    file: Annotated[
        Path | None, typer.Argument(help="Source file to run.", show_default=False)
    ] = None,
    language: Annotated[
        str | None,
        typer.Option(
            "--language", "-l", help="Language name or alias (default: from the file extension)."
        ),
    ] = None,
    code: Annotated[
        str | None, typer.Option("--code", "-c", help="Code to run instead of a file.")
    ] = None,
    stdin: Annotated[
        str | None,
        typer.Option(
            "--stdin", help="File fed to the program's stdin ('-' for this terminal's stdin)."
        ),
    ] = None,
    timeout: Annotated[
        float | None,
        typer.Option(
            "--timeout", min=0.001, max=3600, help="Wall-clock limit in seconds (default 10)."
        ),
    ] = None,
    memory: Annotated[
        int | None,
        typer.Option(
            "--memory", min=16, max=1024 * 1024, help="Memory limit in MiB (default 512)."
        ),
    ] = None,
    network: Annotated[bool, typer.Option("--network", help="Allow network access.")] = False,
    backend: Annotated[
        Backend, typer.Option("--backend", help="Sandbox backend.")
    ] = Backend.NATIVE,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print one JSON object, no streaming.")
    ] = False,
    compile_cache: Annotated[
        bool,
        typer.Option(
            "--compile-cache/--no-compile-cache",
            help="Reuse the output of an identical earlier compile (native backend).",
        ),
    ] = True,
) -> int:
    """Run FILE (or -l LANG -c CODE) in the sandbox, streaming its output.

    Exit status: the program's own; 124 when the wall-clock limit stopped it;
    125 when ForgeAI itself failed.
    """
    return run_command(
        RunOptions(
            file=file,
            language=language,
            code=code,
            stdin=stdin,
            timeout=timeout,
            memory_mb=memory,
            network=network,
            backend=Backend(backend).value,
            as_json=as_json,
            compile_cache=compile_cache,
        )
    )


@app.command("languages")
def languages(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> int:
    """List the languages ForgeAI can run, with aliases, extensions and plugin."""
    return languages_command(as_json)


app.add_typer(plugin_app, name="plugin")
app.add_typer(key_app, name="key")
app.add_typer(registry_app, name="registry")
app.add_typer(image_app, name="image")


def _fail(error: ForgeAIError, args: list[str]) -> int:
    """One line on stderr; with --json also a JSON error object on stdout for scripts."""
    sys.stderr.write(f"forgeai: {error.one_line()}\n")
    if "--json" in args:
        print_json({"error": {"code": error.code, "message": error.message, "hint": error.hint}})
    return EXIT_FORGEAI_FAILED


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.WARNING, format="forgeai: %(message)s")
    command = typer.main.get_command(app)
    args = sys.argv[1:] if argv is None else argv
    try:
        status = command.main(args=args or ["--help"], prog_name="forgeai", standalone_mode=False)
    except typer.Exit as exc:
        return int(exc.exit_code)
    except typer.TyperException as exc:  # bad options and arguments
        return _fail(
            UsageError(
                exc.format_message(), hint="see 'forgeai --help' or 'forgeai COMMAND --help'"
            ),
            args,
        )
    except typer.Abort:
        return 130
    except ForgeAIError as exc:
        return _fail(exc, args)
    except KeyboardInterrupt:
        return 130
    return status if isinstance(status, int) else 0


def entry() -> None:
    """Console-script entry point."""
    sys.exit(main())


if __name__ == "__main__":
    entry()
