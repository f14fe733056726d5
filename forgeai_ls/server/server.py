"""The ForgeAI language server: state shared by the features, and the assembly of them.

Start-up does no work it can defer. Until the first lenses are answered the server imports
only pygls, lsprotocol, pydantic (settings) and its own light modules; the plugins are
verified in a background thread started at ``initialized`` (which also imports the plugin
and sandbox layers). Code lenses asked for meanwhile come from the lens catalog cached by the
previous start for the same plugin set (``lens_catalog``); anything else that needs the
plugins waits for them.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import threading
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlparse

from lsprotocol import types
from pygls import uris
from pygls.exceptions import JsonRpcException, JsonRpcInvalidParams
from pygls.lsp.server import LanguageServer
from pygls.workspace import TextDocument

from forgeai_ls import __version__
from forgeai_ls.errors import ForgeAIError
from forgeai_ls.home import forgeai_home
from forgeai_ls.plugins.set_stamp import plugin_set_stamp
from forgeai_ls.server import lens_catalog
from forgeai_ls.server.lens_catalog import LensCatalog, LensLanguage
from forgeai_ls.server.protocol import ForgeAIProtocol
from forgeai_ls.server.rpc import SOURCE, rpc_error

if TYPE_CHECKING:  # loaded in the background after start (docker-py: only when chosen)
    from forgeai_ls.dependencies.declared import DeclaredDependencies
    from forgeai_ls.plugins.bridge import PluginExecutor
    from forgeai_ls.plugins.manager import BlockedPlugin, PluginManager
    from forgeai_ls.project_env import ProjectEnvironment
    from forgeai_ls.sandbox import NativeBackend, ResourceLimits
    from forgeai_ls.sandbox.docker_backend import DockerBackend
    from forgeai_ls.sandbox.egress_policy import EgressPolicy
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


def file_name_of(uri: str) -> str | None:
    """The file name a document's URI ends with (runs of a file keep its name)."""
    name = PurePosixPath(unquote(urlparse(uri).path)).name
    return name or None


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
        self._backend: NativeBackend | DockerBackend | None = None
        self._native_settings: tuple[object, ...] | None = None
        """The pool and compile-cache settings the native backend was made with."""
        self._raw_settings: Any = None
        self._settings: ServerSettings | None = None
        self._settings_lock = threading.Lock()
        self._generation = 0
        """Counts settings payloads: a validation of an older one is never stored."""
        self.diagnostics = DiagnosticsStore(self)
        self._runs: RunRegistry | None = None
        self._manager: PluginManager | None = None
        self._loading: threading.Thread | None = None
        self._loading_lock = threading.Lock()
        self._lens_catalog: tuple[int, LensCatalog] | None = None
        self._cached_catalog: LensCatalog | None = None
        self._prewarm_later: list[str] = []
        self._reported_blocked: set[str] = set()
        self.lens_cache: dict[str, tuple[tuple[int | None, int], list[dict[str, Any]]]] = {}
        """Per document: (version, plugin set) and the lenses computed for them."""
        self.pending_problem: str | None = None
        """A settings problem found at initialize, shown once the client is ready."""

    # -- settings -----------------------------------------------------------------------------

    @property
    def settings(self) -> ServerSettings:
        """The settings, validated on first use (pydantic loads after the first lens); an
        invalid payload gives the defaults and sets ``pending_problem``.

        Safe from any thread: the plugin-loading thread may validate the settings it started
        with while a newer payload arrives; the newer one always wins.
        """
        with self._settings_lock:
            current, raw, generation = self._settings, self._raw_settings, self._generation
        if current is not None:
            return current
        from forgeai_ls.server.settings import parse_settings

        parsed, problem = parse_settings(raw)
        with self._settings_lock:
            if self._generation != generation:  # replaced while parsing: use the newer ones
                newer = self._settings
            else:
                self._settings = newer = parsed
                self.pending_problem = self.pending_problem or problem
        return newer if newer is not None else self.settings

    def use_settings(self, raw: Any, parsed: ServerSettings | None = None) -> None:
        """New settings from the client (initializationOptions, didChangeConfiguration);
        ``parsed``: already validated from ``raw``."""
        with self._settings_lock:
            self._raw_settings = raw
            self._settings = parsed
            self._generation += 1

    # -- plugins ------------------------------------------------------------------------------

    @property
    def backend(self) -> NativeBackend | DockerBackend:
        if self._backend is None:
            self._backend = self._backend_for_settings()
        return self._backend

    @property
    def runs(self) -> RunRegistry:
        if self._runs is None:
            from forgeai_ls.server.runs import RunRegistry

            self._runs = RunRegistry(self)
        return self._runs

    @property
    def manager(self) -> PluginManager:
        """The verified plugins; waits for the background loading when it is under way."""
        loading = self._loading
        if loading is not None:
            loading.join()
        if self._manager is None:
            self.reload_plugins()
        assert self._manager is not None
        return self._manager

    @property
    def plugins_loaded(self) -> bool:
        return self._manager is not None and self._loading is None

    def load_plugins_in_background(self, done: Any) -> None:
        """Verify the plugins in a thread; ``done(blocked)`` is then called on the event
        loop. Lenses meanwhile come from the cached lens catalog, when it is current."""
        self._cached_catalog = lens_catalog.load_cached(self._catalog_path(), self._stamp())
        loop = asyncio.get_running_loop()

        def load() -> None:
            try:
                self.settings  # noqa: B018 - validated here, off the event loop
                blocked = self.reload_plugins()
            except BaseException as exc:
                log.exception("loading the plugins failed: %s", exc)
                blocked = []
            finally:
                self._loading = None
            loop.call_soon_threadsafe(done, blocked)
            try:
                self._report_degraded(loop)
            except Exception as exc:  # a diagnosis that fails must not stop the server
                log.exception("checking the machine failed: %s", exc)

        self._loading = threading.Thread(target=load, name="forgeai-load-plugins", daemon=True)
        self._loading.start()

    def _report_degraded(self, loop: asyncio.AbstractEventLoop) -> None:
        """What is degraded on this machine (see ``forgeai doctor``), once, in the log."""
        from forgeai_ls.doctor import startup_problems

        for problem in startup_problems(self._backend):
            loop.call_soon_threadsafe(
                self.window_log_message,
                types.LogMessageParams(
                    type=types.MessageType.Warning,
                    message=f"{SOURCE}: {problem} (details: 'forgeai doctor')",
                ),
            )

    def reload_plugins(self) -> list[BlockedPlugin]:
        from forgeai_ls.plugins.manager import ManagerConfig, PluginManager

        with self._loading_lock:
            config = ManagerConfig(
                home=forgeai_home(),
                extra_dirs=self.settings.plugin_paths(),
                policy=self.settings.trust.policy(),
            )
            self._backend = self._backend_for_settings()
            manager = PluginManager(self._backend, config)
            blocked = manager.load_all()
            self._manager = manager
            self._save_lens_catalog(manager)
            return blocked

    # -- the lens catalog ------------------------------------------------------------------

    def lens_catalog(self) -> LensCatalog:
        """Languages for code lenses: the verified plugins' once loaded, before that the
        cached catalog of the same plugin set, else (no cache) the plugins' after waiting."""
        if not self.plugins_loaded and self._cached_catalog is not None:
            return self._cached_catalog
        manager = self.manager
        if self._lens_catalog is None or self._lens_catalog[0] != id(manager):
            self._lens_catalog = (id(manager), _lens_catalog_of(manager))
        return self._lens_catalog[1]

    def lens_catalog_changed(self) -> bool:
        """Whether the lenses served from the cache differ from the verified plugins'."""
        cached, self._cached_catalog = self._cached_catalog, None
        return cached is not None and cached != self.lens_catalog()

    def _catalog_path(self) -> Path:
        return forgeai_home() / "cache" / "lens-catalog.json"

    def _stamp(self) -> str:
        """The plugin set's fingerprint, from the client's raw settings (no validation
        needed, so it costs nothing before the first lens)."""
        raw = lens_catalog.unwrap_settings(self._raw_settings)
        listed = raw.get("pluginDirs")
        plugin_dirs: list[object] = listed if isinstance(listed, list) else []
        extra_dirs = [Path(str(d)).expanduser() for d in plugin_dirs]
        settings = json.dumps([plugin_dirs, raw.get("trust")], sort_keys=True, default=str)
        return plugin_set_stamp(
            forgeai_home(), extra_dirs, [lens_catalog.FORMAT, __version__, settings]
        )

    def _save_lens_catalog(self, manager: PluginManager) -> None:
        lens_catalog.save(self._catalog_path(), self._stamp(), _lens_catalog_of(manager))

    def _backend_for_settings(self) -> NativeBackend | DockerBackend:
        """The configured backend; the current one is kept (with its engine connection and
        its pool) while the choice does not change."""
        from forgeai_ls.backend_factory import docker_backend, native_backend
        from forgeai_ls.sandbox import NativeBackend

        current = self._backend
        if self.settings.backend == "docker":
            wanted = (self.settings.docker_host, self.settings.docker_pool)
            if current is not None and current.name == "docker":
                from forgeai_ls.sandbox.docker_backend import DockerBackend  # loaded with it

                assert isinstance(current, DockerBackend)
                if (current.base_url, current.pool_size) == wanted:
                    return current
            self.close_backend()
            return docker_backend(self.settings.docker_host, pool_size=self.settings.docker_pool)
        wanted_native = (self.settings.pool, self.settings.compile_cache)
        if isinstance(current, NativeBackend) and self._native_settings == wanted_native:
            return current
        self.close_backend()
        self._native_settings = wanted_native
        return native_backend(
            self.settings.pool.settings(), compile_cache=self.settings.compile_cache
        )

    async def stop_runs(self) -> None:
        if self._runs is not None:
            await self._runs.stop_all()
            await asyncio.sleep(0)  # the runs' requests are answered before shutdown's

    def close_backend(self) -> None:
        if self._backend is not None:
            self._backend.close()

    def prewarm(self, uri: str) -> None:
        """Start warm sandboxes for the run a lens of this document would start (once the
        plugins are loaded)."""
        if not self.plugins_loaded:
            self._prewarm_later.append(uri)
            return
        document = self.open_document(uri)
        if document is None:
            return
        language = self.language_of(document)
        backend = self.backend
        if language is None or not hasattr(backend, "prewarm"):
            return
        try:
            executor, name = self.executor(language.name)
            environment = self.environment_for(uri, executor, name)
        except JsonRpcException:
            return  # a blocked plugin or an unusable environment: reported when it runs
        request = executor.language(name).build_request(
            "",
            file_name=file_name_of(uri),
            limits=self.run_limits(executor, name),
            environment=environment,
        )
        backend.prewarm(request)

    def prewarm_pending(self) -> None:
        pending, self._prewarm_later = self._prewarm_later, []
        for uri in pending:
            self.prewarm(uri)

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

    def open_document(self, uri: str) -> TextDocument | None:
        """The open document ``uri`` names, however its characters are percent-encoded (pygls
        keys documents by the decoded URI: ``my%20file.py`` and ``my file.py`` are one)."""
        document: TextDocument | None = self.workspace.text_documents.get(unquote(uri))
        return document

    def document(self, uri: str) -> TextDocument:
        document = self.open_document(uri)
        if document is None:
            raise JsonRpcInvalidParams(
                message=f"document {uri} is not open in the editor; open it first"
            )
        return document

    def language_of(self, document: TextDocument, *, verified: bool = False) -> LensLanguage | None:
        """The language of a document: its languageId, else its file extension. ``verified``:
        from the loaded plugins only (a run), never from the start-up cache (a lens)."""
        if verified:
            self.manager  # noqa: B018 - waits for the plugins
        catalog = self.lens_catalog()
        found = catalog.find(document.language_id) if document.language_id else None
        if found is None:
            found = catalog.for_suffix(PurePosixPath(unquote(urlparse(document.uri).path)).suffix)
        return found

    def executor(self, language: str) -> tuple[PluginExecutor, str]:
        try:
            return self.manager.get_executor(language)
        except ForgeAIError as error:
            raise rpc_error(error) from None

    def environment_for(
        self, uri: str, executor: PluginExecutor, language: str
    ) -> ProjectEnvironment | None:
        """The project environment a run of ``uri`` uses (settings ``forgeai.environment``;
        the search starts at the file's folder and stays inside its workspace folder)."""
        from forgeai_ls.project_env import EnvironmentChoice, project_environment

        if executor.code_executor is not None or self.settings.backend != "native":
            return None  # the docker backend runs the image's interpreter (environments.md)
        path = uris.to_fs_path(uri) if uri.startswith("file:") else None
        start = Path(path).parent if path else None
        folder = self._workspace_folder_of(Path(path)) if path else None
        settings = self.settings.environment
        command = executor.language(language).spec.run[0]
        explicit, explicit_by = settings.python, "forgeai.environment.python"
        if os.path.basename(command) == "node":
            explicit, explicit_by = settings.node_modules, "forgeai.environment.nodeModules"
        if explicit is not None and not os.path.isabs(os.path.expanduser(explicit)):
            explicit = str((folder or Path.cwd()) / explicit)
        choice = EnvironmentChoice(
            start=start,
            explicit=explicit,
            explicit_by=explicit_by,
            editor_interpreter=settings.python_from_editor,
            enabled=settings.enabled,
            stop_at=folder,
        )
        try:
            return project_environment(command, choice)
        except ForgeAIError as error:
            raise rpc_error(error) from None

    def _workspace_folder_of(self, path: Path) -> Path | None:
        """The innermost workspace folder holding ``path`` (else the root path, if it does)."""
        candidates = [uris.to_fs_path(folder.uri) for folder in self.workspace.folders.values()]
        candidates.append(self.workspace.root_path)
        holding = [
            Path(folder)
            for folder in candidates
            if folder and (Path(folder) == path or Path(folder) in path.parents)
        ]
        return max(holding, key=lambda folder: len(folder.parts), default=None)

    def declared_for(
        self, uri: str, executor: PluginExecutor, language: str, code: str
    ) -> DeclaredDependencies | None:
        """The PEP 723 dependencies of the code a run of ``uri`` runs (native backend)."""
        from forgeai_ls.dependencies.for_run import declared_dependencies

        if executor.code_executor is not None or self.settings.backend != "native":
            return None
        path = uris.to_fs_path(uri) if uri.startswith("file:") else None
        command = executor.language(language).spec.run[0]
        try:
            return declared_dependencies(
                command, code, file=Path(path) if path else None, deps=None
            )
        except ForgeAIError as error:
            raise rpc_error(error) from None

    def egress(self) -> EgressPolicy | None:
        """The allow-list of runs (``forgeai.network.allow``), unless the whole network is
        open (``limits.network``) or the backend is docker."""
        from forgeai_ls.sandbox.egress_policy import EgressPolicy

        allow = self.settings.network.allow
        if not allow or self.settings.limits.network or self.settings.backend != "native":
            return None
        try:
            return EgressPolicy.parse(allow, source="forgeai.network.allow")
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


def _lens_catalog_of(manager: PluginManager) -> LensCatalog:
    return LensCatalog(
        LensLanguage(
            name=entry.spec.name,
            aliases=tuple(entry.spec.aliases),
            extensions=tuple(entry.spec.extensions),
            cell_marker=entry.spec.cell_marker,
        )
        for entry in manager.catalog().entries()
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
