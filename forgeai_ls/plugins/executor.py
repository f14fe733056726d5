"""The seed's Executor for declaratively described languages, over a sandbox backend."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from pathlib import Path, PurePosixPath
from typing import Protocol

from forgeai_ls.plugins.language import LanguageSpec
from forgeai_ls.plugins.source import read_source_file
from forgeai_ls.project_env import PYTHON_COMMANDS, ProjectEnvironment
from forgeai_ls.sandbox import (
    BUILD_DIR,
    DEFAULT_COMPILE_LIMITS,
    DEFAULT_RUN_LIMITS,
    WORK_DIR,
    ExecutionEvent,
    ExecutionResult,
    ResourceLimits,
    SandboxRequest,
    StepSpec,
    final_result,
)
from forgeai_ls.sandbox.egress_policy import EgressPolicy

MIB = 1024 * 1024


StdinInput = bytes | AsyncIterator[bytes] | None
"""The program's stdin: all at once, interactively as chunks arrive, or nothing."""


class SandboxBackend(Protocol):
    name: str

    def stream(
        self, request: SandboxRequest, *, stdin_stream: AsyncIterator[bytes] | None = None
    ) -> AsyncIterator[ExecutionEvent]: ...


def _substitute(template: tuple[str, ...], values: dict[str, str]) -> tuple[str, ...]:
    return tuple(part.format_map(values) for part in template)


class LanguageExecutor:
    """Compiles (when the language needs it) and runs code of one language in the sandbox."""

    def __init__(
        self,
        spec: LanguageSpec,
        plugin: str,
        backend: SandboxBackend,
        seccomp_profile: str | None = None,
        image: str | None = None,
    ) -> None:
        self.spec = spec
        self.plugin = plugin
        self.backend = backend
        self.seccomp_profile = seccomp_profile
        """The plugin's seccomp.json (canonical JSON), applied to every step."""
        self.image = image
        """The plugin's container_image, for the docker backend."""

    def supported_languages(self) -> list[str]:
        return [self.spec.name]

    def run_limits(self, overrides: ResourceLimits | None = None) -> ResourceLimits:
        return (
            overrides if overrides is not None else self.spec.run_limits.apply(DEFAULT_RUN_LIMITS)
        )

    def build_request(
        self,
        code: str,
        *,
        file_name: str | None = None,
        limits: ResourceLimits | None = None,
        stdin: bytes | None = None,
        extra_files: Mapping[str, bytes] | None = None,
        environment: ProjectEnvironment | None = None,
        egress: EgressPolicy | None = None,
    ) -> SandboxRequest:
        """The sandbox request for ``code``; ``environment`` (see ``project_env``) is mounted
        and, for Python, its interpreter runs the program; ``egress``: the hosts the run may
        reach through the egress proxy."""
        run_limits = self.run_limits(limits)
        compile_limits = self.spec.compile_limits.apply(DEFAULT_COMPILE_LIMITS)
        source_name = self.spec.source_name_for(code, file_name)
        values = {
            "source": f"{WORK_DIR}/{source_name}",
            "stem": PurePosixPath(source_name).stem,
            "work": WORK_DIR,
            "build": BUILD_DIR,
        }

        def step(template: tuple[str, ...], limits: ResourceLimits) -> StepSpec:
            sized = {
                **values,
                "memory_bytes": str(limits.memory_bytes),
                "memory_mb": str(limits.memory_bytes // MIB),
            }
            argv = _substitute(template, sized)
            env = dict(self.spec.env)
            if environment is not None and environment.interpreter is not None:
                if argv[0] in PYTHON_COMMANDS:
                    argv = (environment.interpreter, *argv[1:])
                if environment.kind == "python-venv":
                    env["VIRTUAL_ENV"] = environment.path
            return StepSpec(argv=argv, limits=limits, env=env)

        return SandboxRequest(
            files={**(extra_files or {}), source_name: code.encode()},
            compile=step(self.spec.compile, compile_limits) if self.spec.compile else None,
            run=step(self.spec.run, run_limits),
            stdin=stdin,
            seccomp_profile=self.seccomp_profile,
            image=self.image,
            warm=self.spec.warm_start(),
            mounts=environment.mounts if environment is not None else (),
            egress=egress,
        )

    def stream(
        self,
        code: str,
        *,
        file_name: str | None = None,
        limits: ResourceLimits | None = None,
        stdin: StdinInput = None,
        extra_files: Mapping[str, bytes] | None = None,
        environment: ProjectEnvironment | None = None,
        egress: EgressPolicy | None = None,
    ) -> AsyncIterator[ExecutionEvent]:
        """Events of one execution: output as produced, the result last.

        ``extra_files`` are placed beside the source (a project's sibling modules);
        ``environment`` is the project's (``project_environment``).
        """
        interactive = None if stdin is None or isinstance(stdin, bytes) else stdin
        request = self.build_request(
            code,
            file_name=file_name,
            limits=limits,
            stdin=stdin if isinstance(stdin, bytes) else None,
            extra_files=extra_files,
            environment=environment,
            egress=egress,
        )
        return self.backend.stream(request, stdin_stream=interactive)

    async def execute(
        self,
        language: str,
        code: str,
        *,
        limits: ResourceLimits | None = None,
        stdin: bytes | None = None,
    ) -> ExecutionResult:
        """Run a snippet of ``language`` (the seed's Execute)."""
        del language  # one executor serves one language here
        return await final_result(self.stream(code, limits=limits, stdin=stdin))

    async def execute_file(
        self, path: Path, *, limits: ResourceLimits | None = None, stdin: bytes | None = None
    ) -> ExecutionResult:
        """Run the file at ``path``, keeping its name (the seed's ExecuteFile)."""
        code = read_source_file(path)
        events = self.stream(code, file_name=path.name, limits=limits, stdin=stdin)
        return await final_result(events)
