"""``forgeai run``: its options. The run itself is ``run_execution`` (in this process) or the
user's daemon (``daemon``), both through ``run_execution.execute``."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer


class Backend(StrEnum):
    NATIVE = "native"
    DOCKER = "docker"


@dataclass(frozen=True, slots=True)
class RunOptions:
    file: Path | None
    language: str | None
    code: str | None
    stdin: str | None
    timeout: float | None
    memory_mb: int | None
    network: bool
    backend: str
    as_json: bool
    compile_cache: bool = True
    raw_output: bool = False
    docker_host: str | None = None
    env: str | None = None
    """``--env``: the project environment to use (a virtualenv, its interpreter...)."""
    project_env: bool = True
    cwd: Path | None = None
    """The client's working directory (``relative_to``); None: this process's."""
    allow_net: tuple[str, ...] = ()
    """``--allow-net``: hosts the program may reach through the egress proxy."""
    deps: str | None = None
    """``--deps`` ("auto": requirements.txt or pyproject.toml beside the program) or
    ``--deps-file FILE``: dependencies to install first."""
    out: Path | None = None
    """``--out DIR``: where the program's files out go (default ./forgeai-out/RUN/)."""
    force: bool = False

    def relative_to(self, directory: Path) -> RunOptions:
        """The options with relative paths taken from ``directory`` (a client's cwd)."""
        stdin = self.stdin
        if stdin is not None and stdin != "-":
            stdin = str(directory / stdin)
        file = directory / self.file if self.file is not None else None
        env = str(directory / Path(self.env).expanduser()) if self.env is not None else None
        deps = self.deps
        if deps is not None and deps != "auto":
            deps = str(directory / Path(deps).expanduser())
        out = directory / self.out.expanduser() if self.out is not None else None
        return dataclasses.replace(
            self, file=file, stdin=stdin, env=env, cwd=directory, deps=deps, out=out
        )


Runner = Callable[[RunOptions], int]
"""What runs the parsed options; ``typer.Context.obj`` may name another (the daemon's)."""

app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)


@app.command("run")
def run(
    ctx: typer.Context,
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
    network: Annotated[
        bool, typer.Option("--network", help="Allow all network access (the host's network).")
    ] = False,
    allow_net: Annotated[
        list[str] | None,
        typer.Option(
            "--allow-net",
            help="Allow only these hosts (comma-separated, repeatable): pypi.org, "
            "*.example.com, api.example.com:443, localhost:8080 (this machine's own services "
            "only when named). Everything else is refused and reported.",
            show_default=False,
        ),
    ] = None,
    backend: Annotated[
        Backend, typer.Option("--backend", help="Sandbox backend.")
    ] = Backend.NATIVE,
    docker_host: Annotated[
        str | None,
        typer.Option(
            "--docker-host",
            help="Engine for --backend docker (default: $DOCKER_HOST, else the local socket).",
        ),
    ] = None,
    env: Annotated[
        str | None,
        typer.Option(
            "--env",
            help="Project environment: a virtualenv folder or its interpreter (Python), a "
            "node_modules folder (JavaScript). Default: $VIRTUAL_ENV, else the nearest .venv, "
            "venv or node_modules from the file's folder up.",
            show_default=False,
        ),
    ] = None,
    deps: Annotated[
        bool,
        typer.Option(
            "--deps",
            help="Install the dependencies in requirements.txt (else pyproject.toml) beside "
            "the file first, in a sandbox, cached. A PEP 723 '# /// script' block is always "
            "read.",
        ),
    ] = False,
    deps_file: Annotated[
        str | None,
        typer.Option(
            "--deps-file",
            help="Like --deps, from this requirements file or pyproject.toml.",
            show_default=False,
        ),
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option(
            "--out",
            help="Where files the program writes to /work/out ($FORGEAI_OUTPUT_DIR) are "
            "copied (default: ./forgeai-out/RUN/, made only when there are some).",
            show_default=False,
        ),
    ] = None,
    force: Annotated[
        bool, typer.Option("--force", help="Let --out replace files of the same name.")
    ] = False,
    project_env: Annotated[
        bool,
        typer.Option(
            "--project-env/--no-project-env",
            help="Use the project's environment (see --env).",
        ),
    ] = True,
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
    raw_output: Annotated[
        bool,
        typer.Option(
            "--raw-output",
            help="Write the program's output to a terminal unfiltered (by default only text, "
            "colours and cursor movement reach it).",
        ),
    ] = False,
) -> int:
    """Run FILE (or -l LANG -c CODE) in the sandbox, streaming its output.

    Exit status: the program's own; 124 when the wall-clock limit stopped it;
    125 when ForgeAI itself failed.
    """
    options = RunOptions(
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
        raw_output=raw_output,
        docker_host=docker_host,
        env=env,
        project_env=project_env,
        allow_net=tuple(allow_net or ()),
        deps=deps_file if deps_file is not None else ("auto" if deps else None),
        out=out,
        force=force,
    )
    if callable(ctx.obj):
        runner: Runner = ctx.obj
        return runner(options)
    from forgeai_ls.cli.run_execution import run_here

    return run_here(options)
