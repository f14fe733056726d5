"""``forgeai run``: one program, in the sandbox, output streamed live."""

from __future__ import annotations

import asyncio
import sys
from dataclasses import dataclass
from pathlib import Path

from forgeai_ls.backend_factory import native_backend
from forgeai_ls.cli.report import exit_status, print_json, result_json, status_line
from forgeai_ls.cli.stdin_forwarding import forwardable, read_fd_chunks
from forgeai_ls.errors import StdinSourceError, UsageError
from forgeai_ls.plugins.bridge import PluginExecutor
from forgeai_ls.plugins.executor import StdinInput
from forgeai_ls.plugins.manager import PluginManager
from forgeai_ls.plugins.source import check_source_text, read_source_file
from forgeai_ls.sandbox import ExecutionFinished, NativeBackend, OutputChunk, ResourceLimits
from forgeai_ls.sandbox.docker_backend import DockerBackend

MIB = 1024 * 1024


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


def _stdin_input(option: str | None) -> StdinInput:
    """``--stdin FILE`` as bytes; otherwise this process's stdin, forwarded as it arrives."""
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
    try:
        fd = sys.stdin.fileno()
    except (OSError, ValueError, AttributeError):
        return None
    return read_fd_chunks(fd) if forwardable(fd) else None


def _limits(defaults: ResourceLimits, options: RunOptions) -> ResourceLimits:
    return defaults.with_overrides(
        wall_timeout=options.timeout,
        memory_bytes=options.memory_mb * MIB if options.memory_mb is not None else None,
        network=options.network or None,
    )


def _select(
    options: RunOptions, manager: PluginManager
) -> tuple[str, str | None, PluginExecutor, str]:
    """(code, file name, executor, language) from the options."""
    if options.code is not None:
        if options.file is not None:
            raise UsageError("give either a FILE or -l LANG -c CODE, not both")
        if options.language is None:
            raise UsageError("-c CODE needs -l LANG to say which language it is")
        code = check_source_text(options.code.encode(), "the -c code")
        executor, language = manager.get_executor(options.language)
        return code, None, executor, language
    if options.file is None:
        raise UsageError("nothing to run: give a FILE or -l LANG -c CODE")
    code = read_source_file(options.file)  # a missing file or a directory is the first problem
    executor, language = (
        manager.get_executor(options.language)
        if options.language
        else manager.executor_for_file(options.file)
    )
    return code, options.file.name, executor, language


async def _run(
    executor: PluginExecutor,
    language: str,
    code: str,
    file_name: str | None,
    limits: ResourceLimits,
    stdin: StdinInput,
    as_json: bool,
) -> tuple[int, dict[str, object] | None]:
    out, err = sys.stdout.buffer, sys.stderr.buffer
    events = executor.stream(language, code, file_name=file_name, limits=limits, stdin=stdin)
    async for event in events:
        if isinstance(event, OutputChunk) and not as_json:
            target = out if event.stream == "stdout" else err
            target.write(event.data)
            target.flush()
        elif isinstance(event, ExecutionFinished):
            result = event.result
            if as_json:
                return exit_status(result), result_json(
                    result, language=language, plugin=executor.name, backend=executor.backend.name
                )
            line = status_line(result, limits)
            if line:
                err.write(f"{line}\n".encode())
                err.flush()
            return exit_status(result), None
    raise RuntimeError("the sandbox ended without a result")


def run_command(options: RunOptions) -> int:
    backend: NativeBackend | DockerBackend
    if options.backend == "docker":
        backend = DockerBackend()
    else:
        backend = native_backend(compile_cache=options.compile_cache)
    manager = PluginManager(backend)
    manager.load_all()
    code, file_name, executor, language = _select(options, manager)
    # Fail early, before reading stdin, when no sandbox can run here.
    if isinstance(backend, DockerBackend):
        backend.engine()
    else:
        backend.host()
    limits = _limits(executor.language(language).run_limits(), options)
    stdin = _stdin_input(options.stdin)
    status, document = asyncio.run(
        _run(executor, language, code, file_name, limits, stdin, options.as_json)
    )
    if document is not None:
        print_json(document)
    return status
