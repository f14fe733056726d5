"""Running ``forgeai run``: the executor, the limits, stdin, and the output streamed to a
terminal. The same code serves a run in this process and a run in the user's daemon."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal as signals
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

from forgeai_ls.artifact_files import (
    SavedArtifact,
    check_output_dir,
    new_run_name,
    save_artifacts,
)
from forgeai_ls.cli.report import exit_status, result_json, status_line
from forgeai_ls.cli.run import RunOptions
from forgeai_ls.cli.stdin_forwarding import forwardable, read_fd_chunks
from forgeai_ls.cli.terminal import Terminal
from forgeai_ls.cli.terminal_filter import TerminalFilter
from forgeai_ls.dependencies.declared import DeclaredDependencies
from forgeai_ls.dependencies.for_run import (
    DependencyReport,
    declared_dependencies,
    dependency_environment,
)
from forgeai_ls.errors import ProjectEnvironmentError, StdinSourceError, UsageError
from forgeai_ls.notices import first_time
from forgeai_ls.plugins.bridge import PluginExecutor
from forgeai_ls.plugins.executor import StdinInput
from forgeai_ls.plugins.manager import PluginManager
from forgeai_ls.plugins.source import check_source_text, read_source_file, sibling_sources
from forgeai_ls.project_env import EnvironmentChoice, ProjectEnvironment, project_environment
from forgeai_ls.sandbox import ExecutionFinished, NativeBackend, OutputChunk, ResourceLimits
from forgeai_ls.sandbox.artifacts import Artifacts
from forgeai_ls.sandbox.egress_policy import EgressPolicy

MIB = 1024 * 1024
EXIT_BROKEN_PIPE = 128 + int(signals.SIGPIPE)
"""Whoever read the output went away (``forgeai run x | head -1``): as a killed-by-SIGPIPE
program would, the run stops and ForgeAI exits 141."""


@dataclass(frozen=True, slots=True)
class SelectedRun:
    """What one ``forgeai run`` runs, decided before anything starts."""

    executor: PluginExecutor
    language: str
    code: str
    file_name: str | None
    extra_files: dict[str, bytes]
    """The program file's siblings (``sibling_sources``), as the language server sends."""
    limits: ResourceLimits
    environment: ProjectEnvironment | None = None
    """The project environment the run uses (``project_env``)."""
    egress: EgressPolicy | None = None
    """``--allow-net``: the hosts the run may reach."""
    declared: DeclaredDependencies | None = None
    """Dependencies to install before the run (PEP 723, ``--deps``)."""
    out: Path | None = None
    """Where files out go: ``--out``, else ``./forgeai-out/RUN/`` (made when there are some)."""
    force: bool = False


def select_run(options: RunOptions, manager: PluginManager) -> SelectedRun:
    """The executor, program text, files and limits of ``options``."""
    extra_files: dict[str, bytes] = {}
    if options.code is not None:
        if options.file is not None:
            raise UsageError("give either a FILE or -l LANG -c CODE, not both")
        if options.language is None:
            raise UsageError("-c CODE needs -l LANG to say which language it is")
        code = check_source_text(options.code.encode(), "the -c code")
        executor, language = manager.get_executor(options.language)
        file_name = None
    else:
        if options.file is None:
            raise UsageError("nothing to run: give a FILE or -l LANG -c CODE")
        code = read_source_file(options.file)  # a missing file or a directory comes first
        executor, language = (
            manager.get_executor(options.language)
            if options.language
            else manager.executor_for_file(options.file)
        )
        file_name = options.file.name
        extra_files = sibling_sources(options.file)
    limits = (
        executor.language(language)
        .run_limits()
        .with_overrides(
            wall_timeout=options.timeout,
            memory_bytes=options.memory_mb * MIB if options.memory_mb is not None else None,
            network=options.network or None,
        )
    )
    environment = _environment(options, executor, language)
    egress = None
    if options.allow_net:
        if options.network:
            raise UsageError("give either --network (everything) or --allow-net HOSTS, not both")
        if options.backend != "native":
            raise UsageError("--allow-net needs the native backend")
        egress = EgressPolicy.parse(options.allow_net)
    declared = None
    if executor.code_executor is None and options.backend == "native":
        declared = declared_dependencies(
            executor.language(language).spec.run[0], code, file=options.file, deps=options.deps
        )
    elif options.deps is not None:
        raise UsageError("--deps and --deps-file need the native backend")
    here = options.cwd or Path.cwd()
    if options.out is not None:
        check_output_dir(here / options.out, force=options.force)
    out = here / options.out if options.out is not None else here / "forgeai-out" / new_run_name()
    return SelectedRun(
        executor,
        language,
        code,
        file_name,
        extra_files,
        limits,
        environment,
        egress,
        declared,
        out,
        options.force,
    )


def _environment(
    options: RunOptions, executor: PluginExecutor, language: str
) -> ProjectEnvironment | None:
    """The project environment of ``options`` (a code plugin decides its own runs)."""
    if options.env is not None and not options.project_env:
        raise UsageError("give either --env PATH or --no-project-env, not both")
    if executor.code_executor is not None:
        return None
    if options.backend != "native":
        if options.env is not None:
            raise ProjectEnvironmentError(
                f"--env {options.env}: project environments apply to the native backend",
                hint="drop --env, or run with --backend native",
            )
        return None
    start = options.file.parent if options.file is not None else options.cwd or Path.cwd()
    choice = EnvironmentChoice(start=start, explicit=options.env, enabled=options.project_env)
    return project_environment(executor.language(language).spec.run[0], choice)


def stdin_input(option: str | None, terminal: Terminal) -> StdinInput:
    """``--stdin FILE`` as bytes; otherwise the terminal's stdin, forwarded as it arrives."""
    if option is not None and option != "-":
        path = Path(option)
        try:
            if path.is_dir():
                raise StdinSourceError(f"--stdin {option} is a directory, not a file")
            return path.read_bytes()
        except FileNotFoundError:
            raise StdinSourceError(f"--stdin {option}: no such file") from None
        except OSError as exc:
            raise StdinSourceError(f"--stdin {option}: cannot be read ({exc.strerror})") from exc
    fd = terminal.stdin_fd
    return read_fd_chunks(fd) if forwardable(fd) else None


async def stream_run(
    run: SelectedRun,
    stdin: StdinInput,
    terminal: Terminal,
    *,
    as_json: bool,
    raw_output: bool = False,
    offload_writes: bool = False,
) -> int:
    """Run, streaming output to the terminal (or printing one JSON object at the end);
    returns the exit status. Output going to a terminal passes through a ``TerminalFilter``
    unless ``raw_output``. ``offload_writes``: write from a worker thread, so a reader that
    stalls never blocks the event loop (the daemon serves other runs on it)."""

    async def write(fd: int, data: bytes) -> None:
        if offload_writes:
            await asyncio.to_thread(terminal.write, fd, data)
        else:
            terminal.write(fd, data)

    notice = limits_notice(run)
    if notice is not None:
        with contextlib.suppress(BrokenPipeError):
            await write(terminal.stderr_fd, f"forgeai: {notice}\n".encode())
    environment, dependencies = run.environment, None
    if run.declared is not None:
        environment, dependencies = await _install(run, terminal, write, as_json)
    events = run.executor.stream(
        run.language,
        run.code,
        file_name=run.file_name,
        limits=run.limits,
        stdin=stdin,
        extra_files=run.extra_files,
        environment=environment,
        egress=run.egress,
    )
    filters = (
        {}
        if as_json or raw_output
        else {
            fd: TerminalFilter() for fd in (terminal.stdout_fd, terminal.stderr_fd) if os.isatty(fd)
        }
    )
    try:
        async with contextlib.aclosing(events):  # type: ignore[type-var]
            async for event in events:
                if isinstance(event, OutputChunk) and not as_json:
                    fd = terminal.stdout_fd if event.stream == "stdout" else terminal.stderr_fd
                    screen = filters.get(fd)
                    data = screen.feed(event.data) if screen is not None else event.data
                    if data:
                        await write(fd, data)
                elif isinstance(event, ExecutionFinished):
                    for fd, screen in filters.items():
                        if rest := screen.end():
                            await write(fd, rest)
                    return await _finish(
                        event, run, terminal, as_json, write, environment, dependencies
                    )
    except BrokenPipeError:
        return EXIT_BROKEN_PIPE
    raise RuntimeError("the sandbox ended without a result")


async def _install(
    run: SelectedRun,
    terminal: Terminal,
    write: Callable[[int, bytes], Awaitable[None]],
    as_json: bool,
) -> tuple[ProjectEnvironment, DependencyReport]:
    """The run's declared dependencies, installed (or found in the cache); what is being
    installed is said on stderr (not with --json)."""
    assert run.declared is not None
    backend = run.executor.backend
    assert isinstance(backend, NativeBackend)
    said: list[str] = []
    started = time.monotonic()

    def progress(text: str) -> None:
        said.append(text)

    install = asyncio.ensure_future(
        dependency_environment(run.declared, backend, base=run.environment, progress=progress)
    )
    shown = 0
    while not install.done():
        await asyncio.wait([install], timeout=0.05)
        for text in said[shown:]:
            if not as_json:
                await write(terminal.stderr_fd, f"forgeai: {text}...\n".encode())
        shown = len(said)
    environment, report = install.result()
    if not report.cached and not as_json:
        seconds = time.monotonic() - started
        line = f"forgeai: installed {', '.join(report.installed)} in {seconds:.1f} s\n"
        await write(terminal.stderr_fd, line.encode())
    return environment, report


def _artifact_lines(
    artifacts: Artifacts, saved: list[SavedArtifact], directory: Path | None
) -> list[str]:
    lines = []
    if saved:
        names = ", ".join(item.name for item in saved[:10])
        more = f" and {len(saved) - 10} more" if len(saved) > 10 else ""
        count = f"{len(saved)} file{'s' * (len(saved) != 1)}"
        lines.append(f"{count} out in {directory}/: {names}{more}")
    lines += [f"not copied: {reason}" for reason in artifacts.skipped]
    return lines


def limits_notice(run: SelectedRun) -> str | None:
    """The once-per-boot line when the native sandbox's limits fall back to rlimits here."""
    backend = run.executor.backend
    if not isinstance(backend, NativeBackend):
        return None
    notice = backend.host().limits_notice
    return notice if notice is not None and first_time(notice) else None


async def _finish(
    event: ExecutionFinished,
    run: SelectedRun,
    terminal: Terminal,
    as_json: bool,
    write: Callable[[int, bytes], Awaitable[None]],
    environment: ProjectEnvironment | None,
    dependencies: DependencyReport | None,
) -> int:
    result = event.result
    saved: list[SavedArtifact] = []
    if result.artifacts is not None and not result.artifacts.empty:
        saved = save_artifacts(result.artifacts, run.out or Path("forgeai-out"), force=run.force)
        if not as_json:
            for said in _artifact_lines(result.artifacts, saved, run.out):
                await write(terminal.stderr_fd, f"forgeai: {said}\n".encode())
    if result.network is not None and not as_json:
        for blocked in result.network.denied:
            notice = f"forgeai: connection to {blocked} blocked (add it to --allow-net to permit)"
            await write(terminal.stderr_fd, f"{notice}\n".encode())
    if as_json:
        document = result_json(
            result,
            language=run.language,
            plugin=run.executor.name,
            backend=run.executor.backend.name,
            environment=environment,
            dependencies=dependencies,
            artifacts=(saved, result.artifacts.skipped if result.artifacts else ()),
        )
        await write(terminal.stdout_fd, terminal.json_line(document))
    else:
        line = status_line(result, run.limits)
        if line:
            await write(terminal.stderr_fd, f"{line}\n".encode())
    return exit_status(result)


def run_here(options: RunOptions, terminal: Terminal | None = None) -> int:
    """Run in this process, with a sandbox made for this one run."""
    from forgeai_ls.backend_factory import docker_backend, native_backend

    terminal = terminal or Terminal()
    if options.backend == "docker":
        docker = docker_backend(options.docker_host)
        manager = PluginManager(docker)
        manager.load_all()
        selected = select_run(options, manager)
        docker.engine()  # fail early, before reading stdin, when no engine answers
    else:
        native = native_backend(compile_cache=options.compile_cache)
        manager = PluginManager(native)
        manager.load_all()
        selected = select_run(options, manager)
        native.host()  # fail early, before reading stdin, when no sandbox can run here
    stdin = stdin_input(options.stdin, terminal)
    return asyncio.run(
        stream_run(
            selected, stdin, terminal, as_json=options.as_json, raw_output=options.raw_output
        )
    )
