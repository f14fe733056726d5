"""The ForgeAI language server: state shared by the features, and the assembly of them."""

from __future__ import annotations

import logging
from pathlib import PurePosixPath
from typing import Any
from urllib.parse import unquote, urlparse

from lsprotocol import types
from pygls.exceptions import JsonRpcInvalidParams
from pygls.lsp.server import LanguageServer
from pygls.workspace import TextDocument

from forgeai_ls import __version__
from forgeai_ls.errors import ForgeAIError, UnknownLanguageError
from forgeai_ls.plugins.bridge import PluginExecutor
from forgeai_ls.plugins.catalog import LanguageEntry
from forgeai_ls.plugins.manager import BlockedPlugin, ManagerConfig, PluginManager
from forgeai_ls.plugins.trust import forgeai_home
from forgeai_ls.sandbox import NativeBackend, ResourceLimits
from forgeai_ls.sandbox.docker_backend import DockerBackend
from forgeai_ls.server.convert import SOURCE, rpc_error
from forgeai_ls.server.protocol import ForgeAIProtocol
from forgeai_ls.server.runs import RunRegistry
from forgeai_ls.server.settings import ServerSettings

log = logging.getLogger(__name__)

COMMANDS = (
    "forgeai.runFile",
    "forgeai.runSelection",
    "forgeai.cancelRun",
    "forgeai.listLanguages",
    "forgeai.reloadPlugins",
)
MIB = 1024 * 1024


class DiagnosticsStore:
    """Diagnostics ForgeAI published, per document, so they can be cleared."""

    def __init__(self, server: ForgeAIServer) -> None:
        self.server = server
        self._published: set[str] = set()

    def publish(self, uri: str, diagnostics: list[types.Diagnostic]) -> None:
        if not diagnostics and uri not in self._published:
            return
        self.server.text_document_publish_diagnostics(
            types.PublishDiagnosticsParams(uri=uri, diagnostics=diagnostics)
        )
        if diagnostics:
            self._published.add(uri)
        else:
            self._published.discard(uri)

    def clear(self, uri: str) -> None:
        self.publish(uri, [])


class ForgeAIServer(LanguageServer):
    def __init__(self) -> None:
        super().__init__("forgeai-ls", __version__, protocol_cls=ForgeAIProtocol)
        self.backend: NativeBackend | DockerBackend = NativeBackend()
        self.settings = ServerSettings()
        self.diagnostics = DiagnosticsStore(self)
        self.runs = RunRegistry(self)
        self._manager: PluginManager | None = None
        self._reported_blocked: set[str] = set()
        self.lens_cache: dict[str, tuple[tuple[int | None, int], list[dict[str, Any]]]] = {}
        """Per document: (version, plugin set) and the lenses computed for them."""
        self.pending_problem: str | None = None
        """A settings problem found at initialize, shown once the client is ready."""

    # -- plugins ------------------------------------------------------------------------------

    @property
    def manager(self) -> PluginManager:
        if self._manager is None:
            self.reload_plugins()
        assert self._manager is not None
        return self._manager

    def reload_plugins(self) -> list[BlockedPlugin]:
        config = ManagerConfig(
            home=forgeai_home(),
            extra_dirs=self.settings.plugin_paths(),
            policy=self.settings.trust.policy(),
        )
        self.backend = self._backend_for_settings()
        manager = PluginManager(self.backend, config)
        blocked = manager.load_all()
        self._manager = manager
        return blocked

    def _backend_for_settings(self) -> NativeBackend | DockerBackend:
        """The configured backend; the current one is kept (with its engine connection and
        its pool) while the choice does not change."""
        current = self.backend
        if self.settings.backend == "docker":
            wanted = (self.settings.docker_host, self.settings.docker_pool)
            if (
                isinstance(current, DockerBackend)
                and (current.base_url, current.pool_size) == wanted
            ):
                return current
            self.close_backend()
            return DockerBackend(self.settings.docker_host, pool_size=self.settings.docker_pool)
        if isinstance(current, NativeBackend):
            return current
        self.close_backend()
        return NativeBackend()

    def close_backend(self) -> None:
        if isinstance(self.backend, DockerBackend):
            self.backend.close()

    def report_blocked(self, blocked: list[BlockedPlugin]) -> None:
        """Tell the user once per plugin and reason which plugins could not load."""
        for item in blocked:
            key = f"{item.path}:{item.error.code}"
            if key in self._reported_blocked:
                continue
            self._reported_blocked.add(key)
            self.window_log_message(
                types.LogMessageParams(
                    type=types.MessageType.Warning, message=f"{SOURCE}: {item.error.one_line()}"
                )
            )

    # -- documents ----------------------------------------------------------------------------

    def document(self, uri: str) -> TextDocument:
        if uri not in self.workspace.text_documents:
            raise JsonRpcInvalidParams(
                message=f"document {uri} is not open in the editor; open it first"
            )
        return self.workspace.get_text_document(uri)

    def entry_for(self, document: TextDocument) -> LanguageEntry | None:
        """The language of a document: its languageId, else its file extension."""
        catalog = self.manager.catalog()
        if document.language_id:
            try:
                return catalog.by_name(document.language_id)
            except UnknownLanguageError:
                pass
        try:
            return catalog.for_file(PurePosixPath(unquote(urlparse(document.uri).path)))
        except UnknownLanguageError:
            return None

    def executor(self, language: str) -> tuple[PluginExecutor, str]:
        try:
            return self.manager.get_executor(language)
        except ForgeAIError as error:
            raise rpc_error(error) from None

    def run_limits(self, executor: PluginExecutor, language: str) -> ResourceLimits:
        limits = self.settings.limits
        return (
            executor.language(language)
            .run_limits()
            .with_overrides(
                wall_timeout=limits.timeout,
                memory_bytes=limits.memory_mb * MIB if limits.memory_mb else None,
                network=limits.network or None,
            )
        )


def create_server() -> ForgeAIServer:
    """The server with every feature registered (one module per feature)."""
    from forgeai_ls.server.features import (
        code_lens,
        configuration,
        document_sync,
        info_commands,
        lifecycle,
        run_commands,
    )

    server = ForgeAIServer()
    for feature in (
        lifecycle,
        configuration,
        document_sync,
        code_lens,
        run_commands,
        info_commands,
    ):
        feature.register(server)
    return server
