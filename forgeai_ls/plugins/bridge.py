"""PluginExecutor: the seed's Executor for one loaded plugin, over the sandbox layer.

Declarative plugins get a LanguageExecutor per declared language. A code plugin's calls go to
its ``CodePluginExecutor`` (``plugin_process``): the plugin runs in a sandboxed process of its
own, and the code it runs goes through the same LanguageExecutors.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any

from forgeai_ls.errors import UnknownLanguageError
from forgeai_ls.plugins.executor import LanguageExecutor, SandboxBackend, StdinInput
from forgeai_ls.plugins.loader import VerifiedPlugin
from forgeai_ls.project_env import ProjectEnvironment
from forgeai_ls.sandbox import ExecutionEvent, ExecutionFinished, ExecutionResult, ResourceLimits
from forgeai_ls.sandbox.egress_policy import EgressPolicy


class PluginExecutor:
    def __init__(
        self, plugin: VerifiedPlugin, backend: SandboxBackend, code_executor: Any | None = None
    ) -> None:
        self.plugin = plugin
        self.backend = backend
        self.code_executor = code_executor
        self._declarative = {
            spec.name: LanguageExecutor(
                spec, plugin.name, backend, plugin.seccomp_json, plugin.manifest.container_image
            )
            for spec in plugin.manifest.languages
        }

    @property
    def name(self) -> str:
        return self.plugin.name

    def declarative_executors(self) -> dict[str, LanguageExecutor]:
        """The manifest's languages, as ForgeAI runs them without the plugin's code."""
        return dict(self._declarative)

    def supported_languages(self) -> list[str]:
        if self.code_executor is not None:
            return list(self.code_executor.supported_languages())
        return list(self._declarative)

    def language(self, language: str) -> LanguageExecutor:
        try:
            return self._declarative[language]
        except KeyError:
            raise UnknownLanguageError(f"plugin '{self.name}' does not run '{language}'") from None

    def stream(
        self,
        language: str,
        code: str,
        *,
        file_name: str | None = None,
        limits: ResourceLimits | None = None,
        stdin: StdinInput = None,
        extra_files: Mapping[str, bytes] | None = None,
        environment: ProjectEnvironment | None = None,
        egress: EgressPolicy | None = None,
    ) -> AsyncIterator[ExecutionEvent]:
        """A run's events. A code plugin gets neither ``extra_files``, ``environment`` nor
        ``egress`` (its own ``stream`` decides what to run)."""
        custom = getattr(self.code_executor, "stream", None)
        if callable(custom):
            events: AsyncIterator[ExecutionEvent] = custom(
                language, code, file_name=file_name, limits=limits, stdin=stdin
            )
            return events
        if self.code_executor is not None:
            return self._result_only(language, code, limits, stdin)
        return self.language(language).stream(
            code,
            file_name=file_name,
            limits=limits,
            stdin=stdin,
            extra_files=extra_files,
            environment=environment,
            egress=egress,
        )

    async def _result_only(
        self, language: str, code: str, limits: ResourceLimits | None, stdin: StdinInput
    ) -> AsyncIterator[ExecutionEvent]:
        result = await self.code_executor.execute(language, code, limits=limits, stdin=stdin)  # type: ignore[union-attr]
        yield ExecutionFinished(result)

    async def execute(
        self,
        language: str,
        code: str,
        *,
        limits: ResourceLimits | None = None,
        stdin: bytes | None = None,
    ) -> ExecutionResult:
        if self.code_executor is not None:
            result: ExecutionResult = await self.code_executor.execute(
                language, code, limits=limits, stdin=stdin
            )
            return result
        return await self.language(language).execute(language, code, limits=limits, stdin=stdin)

    async def execute_file(
        self,
        path: Path,
        language: str | None = None,
        *,
        limits: ResourceLimits | None = None,
        stdin: bytes | None = None,
    ) -> ExecutionResult:
        if self.code_executor is not None:
            result: ExecutionResult = await self.code_executor.execute_file(
                path, limits=limits, stdin=stdin
            )
            return result
        spec = language or next(iter(self._declarative))
        return await self.language(spec).execute_file(path, limits=limits, stdin=stdin)
