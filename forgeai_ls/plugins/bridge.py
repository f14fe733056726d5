"""PluginExecutor: the seed's Executor for one loaded plugin, over the sandbox layer.

Declarative plugins get a LanguageExecutor per declared language. Code plugins get the object
their constructor returned; it receives a ``PluginConfig`` whose ``declarative(language)``
gives it the same LanguageExecutor to build on, so it never needs to run anything itself.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from forgeai_ls.errors import UnknownLanguageError
from forgeai_ls.plugins.executor import LanguageExecutor, SandboxBackend, StdinInput
from forgeai_ls.plugins.language import LanguageSpec
from forgeai_ls.plugins.loader import VerifiedPlugin
from forgeai_ls.plugins.manifest import PluginManifest
from forgeai_ls.sandbox import ExecutionEvent, ExecutionFinished, ExecutionResult, ResourceLimits


@dataclass(frozen=True)
class PluginConfig:
    """What a code plugin's constructor receives."""

    manifest: PluginManifest
    languages: dict[str, LanguageSpec]
    backend: SandboxBackend
    seccomp_profile: str | None = None

    def declarative(self, language: str) -> LanguageExecutor:
        """The executor ForgeAI would use for ``language`` from the manifest alone."""
        return LanguageExecutor(
            self.languages[language],
            self.manifest.name,
            self.backend,
            self.seccomp_profile,
            self.manifest.container_image,
        )


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
    ) -> AsyncIterator[ExecutionEvent]:
        custom = getattr(self.code_executor, "stream", None)
        if callable(custom):
            events: AsyncIterator[ExecutionEvent] = custom(
                language, code, file_name=file_name, limits=limits, stdin=stdin
            )
            return events
        if self.code_executor is not None:
            return self._result_only(language, code, limits, stdin)
        return self.language(language).stream(
            code, file_name=file_name, limits=limits, stdin=stdin, extra_files=extra_files
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
