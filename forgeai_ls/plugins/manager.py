"""PluginManager: the plugin lifecycle, and which executor runs which language.

Lifecycle (the seed's): discovery (registry) -> loading (verification, then code on first
use) -> initialisation (constructor) -> registration (languages) -> execution -> unloading.
A plugin that fails any stage is blocked and reported by name; the others keep working.

Conflicts: when two plugins claim the same language name, alias or extension, the one from the
later source wins (bundled < installed < extra directories); within one source the plugin whose
name sorts first wins. Each conflict is logged as a warning naming both plugins.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import logging
import os
from collections.abc import Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from forgeai_ls.errors import PluginError, PluginNotFoundError, UnknownLanguageError
from forgeai_ls.home import bundled_plugins_dir, forgeai_home
from forgeai_ls.plugins.bridge import PluginExecutor
from forgeai_ls.plugins.catalog import LanguageCatalog, LanguageEntry
from forgeai_ls.plugins.executor import SandboxBackend
from forgeai_ls.plugins.loader import PluginLoader, PluginSource, VerifiedPlugin
from forgeai_ls.plugins.manifest import read_manifest
from forgeai_ls.plugins.official_lock import OfficialLock
from forgeai_ls.plugins.plugin_process import CodePluginExecutor
from forgeai_ls.plugins.registry import PluginLocation, PluginRegistry
from forgeai_ls.plugins.trust import TrustLevel, TrustPolicy, TrustStore
from forgeai_ls.plugins.verification_cache import VerificationCache
from forgeai_ls.sandbox import NativeBackend

log = logging.getLogger(__name__)
T = TypeVar("T")

_SOURCE_RANK = {PluginSource.BUNDLED: 0, PluginSource.INSTALLED: 1, PluginSource.EXTRA: 2}


@dataclass(frozen=True)
class ManagerConfig:
    home: Path = field(default_factory=forgeai_home)
    extra_dirs: tuple[Path, ...] = ()
    policy: TrustPolicy = field(default_factory=TrustPolicy)
    bundled_dir: Path | None = field(default_factory=bundled_plugins_dir)

    @classmethod
    def from_environment(cls) -> ManagerConfig:
        """FORGEAI_HOME, FORGEAI_PLUGIN_DIRS (':'-separated), FORGEAI_MIN_TRUST,
        FORGEAI_ALLOW_UNSIGNED=1 (development)."""
        extra = tuple(Path(p) for p in os.environ.get("FORGEAI_PLUGIN_DIRS", "").split(":") if p)
        minimum = os.environ.get("FORGEAI_MIN_TRUST")
        policy = TrustPolicy(
            minimum_level=TrustLevel.parse(minimum) if minimum else TrustLevel.COMMUNITY,
            allow_unsigned=os.environ.get("FORGEAI_ALLOW_UNSIGNED") == "1",
        )
        return cls(extra_dirs=extra, policy=policy)


@dataclass(frozen=True, slots=True)
class BlockedPlugin:
    path: Path
    error: PluginError
    claims: frozenset[str] = frozenset()
    """Language names, aliases and extensions its manifest declares (when it parsed)."""


def _claims(path: Path) -> frozenset[str]:
    """What a refused plugin would have provided, to explain a later 'unknown language'."""
    try:
        manifest, _ = read_manifest(path)
    except PluginError:
        return frozenset()
    return frozenset(
        key.lower()
        for spec in manifest.languages
        for key in (spec.name, *spec.aliases, *spec.extensions)
    )


@dataclass
class _Registered:
    plugin: VerifiedPlugin
    executor: PluginExecutor | None = None
    """Built on first use (code plugins import their code only then)."""


class PluginManager:
    def __init__(self, backend: SandboxBackend, config: ManagerConfig | None = None) -> None:
        self.config = config or ManagerConfig.from_environment()
        self.backend = backend
        home = self.config.home
        self.trust_store = TrustStore(home)
        self.loader = PluginLoader(
            trust_store=self.trust_store,
            policy=self.config.policy,
            official_lock=OfficialLock.load(),
            cache=VerificationCache(home / "cache" / "verified-signatures.json"),
        )
        self.registry = PluginRegistry(
            self.config.bundled_dir, home / "plugins", self.config.extra_dirs
        )
        self._plugins: dict[str, _Registered] = {}
        self._blocked: list[BlockedPlugin] = []
        self._catalog: LanguageCatalog | None = None

    # -- loading ------------------------------------------------------------------------------

    def load_all(self) -> list[BlockedPlugin]:
        """Discover and verify every installed plugin; returns the blocked ones.

        One after the other: every stage is Python holding the GIL, and a thread pool was
        measured 1.6-2.5x slower than this loop on 50 plugins (benchmarks/plugins.py). The
        language server instead verifies in a background thread while it answers requests.
        """
        for location in self.registry.discover():
            self._load_location(location)
        return list(self._blocked)

    def load_plugins_from_dir(
        self, directory: Path, source: PluginSource = PluginSource.EXTRA
    ) -> list[BlockedPlugin]:
        before = len(self._blocked)
        for entry in sorted(directory.iterdir()) if directory.is_dir() else []:
            if entry.is_dir() and not entry.name.startswith("."):
                self._load_location(PluginLocation(entry, source))
        return self._blocked[before:]

    def load_plugin(self, path: Path, source: PluginSource = PluginSource.EXTRA) -> VerifiedPlugin:
        """Verify and register one plugin folder; raises the stage's error on failure."""
        if not path.is_dir():
            raise PluginNotFoundError(path.name, f"no plugin folder at {path}")
        plugin = self.loader.verify(path, source)
        self._register(plugin)
        return plugin

    def _load_location(self, location: PluginLocation) -> None:
        try:
            self.load_plugin(location.path, location.source)
        except PluginError as error:
            self._block(location, error)

    def _block(self, location: PluginLocation, error: PluginError) -> None:
        log.debug("%s (blocked; other plugins keep working)", error.one_line())
        self._blocked.append(BlockedPlugin(location.path, error, _claims(location.path)))

    def _register(self, plugin: VerifiedPlugin) -> None:
        existing = self._plugins.get(plugin.name)
        if existing is not None and not self._outranks(plugin, existing.plugin):
            log.warning(
                "plugin '%s' at %s is ignored: the one at %s takes precedence",
                plugin.name,
                plugin.path,
                existing.plugin.path,
            )
            return
        if existing is not None:
            self.unload(plugin.name)
        self._plugins[plugin.name] = _Registered(plugin)
        self._catalog = None

    @staticmethod
    def _outranks(new: VerifiedPlugin, old: VerifiedPlugin) -> bool:
        return _SOURCE_RANK[new.source] > _SOURCE_RANK[old.source]

    def unload(self, name: str) -> None:
        """Forget a plugin: its languages, its executor and its imported code."""
        registered = self._plugins.pop(name, None)
        if registered is None:
            raise PluginNotFoundError(name, "is not loaded")
        self._catalog = None

    # -- lookup -------------------------------------------------------------------------------

    def plugins(self) -> list[VerifiedPlugin]:
        return [r.plugin for r in self._plugins.values()]

    def blocked(self) -> list[BlockedPlugin]:
        return list(self._blocked)

    def catalog(self) -> LanguageCatalog:
        """Languages in precedence order: the winner of a conflict comes first."""
        if self._catalog is None:
            ordered = sorted(
                self._plugins.values(),
                key=lambda r: (-_SOURCE_RANK[r.plugin.source], r.plugin.name),
            )
            entries = [
                LanguageEntry(spec, r.plugin.name)
                for r in ordered
                for spec in r.plugin.manifest.languages
            ]
            self._warn_conflicts(entries)
            self._catalog = LanguageCatalog(entries)
        return self._catalog

    @staticmethod
    def _warn_conflicts(entries: list[LanguageEntry]) -> None:
        owner: dict[str, str] = {}
        for entry in entries:
            keys = [entry.spec.name, *entry.spec.aliases, *entry.spec.extensions]
            for key in keys:
                winner = owner.setdefault(key.lower(), entry.plugin)
                if winner != entry.plugin:
                    log.warning(
                        "'%s' is claimed by plugins '%s' and '%s'; '%s' is used",
                        key,
                        winner,
                        entry.plugin,
                        winner,
                    )

    def supported_languages(self) -> list[str]:
        return sorted(
            {spec.name for r in self._plugins.values() for spec in r.plugin.manifest.languages}
        )

    def get_executor(self, language: str) -> tuple[PluginExecutor, str]:
        """The executor for a language name or alias, and the language's canonical name."""
        try:
            entry = self.catalog().by_name(language)
        except UnknownLanguageError:
            self._raise_if_blocked(language.strip().lower())
            raise
        return self._executor(entry.plugin), entry.spec.name

    def executor_for_file(self, path: Path) -> tuple[PluginExecutor, str]:
        try:
            entry = self.catalog().for_file(path)
        except UnknownLanguageError:
            self._raise_if_blocked(path.suffix.lower())
            raise
        return self._executor(entry.plugin), entry.spec.name

    def _raise_if_blocked(self, key: str) -> None:
        """A language that a refused plugin would provide: its refusal is the real answer."""
        for blocked in self._blocked:
            if key and key in blocked.claims:
                raise blocked.error

    def _executor(self, name: str) -> PluginExecutor:
        registered = self._plugins.get(name)
        if registered is None:
            raise UnknownLanguageError(f"plugin '{name}' is not loaded")
        if registered.executor is None:
            registered.executor = self._initialise(registered.plugin)
        return registered.executor

    def _initialise(self, plugin: VerifiedPlugin) -> PluginExecutor:
        """A declarative plugin's executor; for a code plugin, its constructor is run once in
        the plugin's sandboxed process (never here), which must answer what it supports."""
        executor = PluginExecutor(plugin, self.backend)
        if plugin.manifest.entry_point is None:
            return executor
        try:
            self.loader.check_entry_point(plugin)
            code_executor = CodePluginExecutor(
                plugin, plugin_host_backend(), executor.declarative_executors()
            )
            in_thread(code_executor.supported_languages_async())
        except PluginError as error:
            self._plugins.pop(plugin.name, None)
            self._catalog = None
            self._blocked.append(BlockedPlugin(plugin.path, error, _claims(plugin.path)))
            raise
        return PluginExecutor(plugin, self.backend, code_executor)


def in_thread(work: Coroutine[Any, Any, T]) -> T:
    """Run ``work`` to its end on an event loop of its own, in a worker thread: callable from
    code that may itself be running on an event loop (the server's, the daemon's)."""
    with concurrent.futures.ThreadPoolExecutor(1, "forgeai-plugin-init") as pool:
        return pool.submit(asyncio.run, work).result()


@functools.cache
def plugin_host_backend() -> NativeBackend:
    """Where code plugins' processes run: always natively (their own sandbox, whatever backend
    runs the code they ask for), without warm pools."""
    return NativeBackend()
