"""Installing, updating and removing plugins: the seed's processes, made atomic.

Install / update (one process; an update is an install over an older version):
  check (name, downgrade) -> extract into staging -> verify there (every loader check:
  manifest, signature and trust, compatibility, dependencies, seccomp, code analysis) ->
  keep the current version as the backup -> swap the link -> validate (load, import,
  construct) -> drop the backup; any failure after the swap swaps back (rollback).
Remove: unregister (remove the link) -> remove the files -> clean the plugin's data.

Every step runs under the plugin lock, after sweeping what an interrupted command left, so
a crash at any point leaves the old or the new version whole and the next command finishes
the cleanup.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from packaging.version import Version

from forgeai_ls.errors import DowngradeError, ForgeAIError, InstallError, PluginNotFoundError
from forgeai_ls.plugins.archive import ArchiveContents
from forgeai_ls.plugins.installed_store import (
    InstalledPlugin,
    Origin,
    PluginStore,
    checkpoint,
)
from forgeai_ls.plugins.loader import PluginSource, VerifiedPlugin
from forgeai_ls.plugins.manager import ManagerConfig, PluginManager
from forgeai_ls.plugins.signing import SIGNATURE_NAME, parse_signature
from forgeai_ls.sandbox import NativeBackend


@dataclass(frozen=True, slots=True)
class InstallOutcome:
    name: str
    version: str
    previous_version: str | None
    changed: bool
    trust: str
    signer: str | None
    repaired: list[str] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class RemoveOutcome:
    name: str
    version: str
    repaired: list[str] = field(default_factory=list)


class PluginLifecycle:
    def __init__(
        self, config: ManagerConfig, *, on_lock_wait: Callable[[], None] | None = None
    ) -> None:
        self.config = config
        self.store = PluginStore(config.home / "plugins")
        self._on_lock_wait = on_lock_wait

    def _manager(self) -> PluginManager:
        return PluginManager(NativeBackend(), self.config)

    def installed(self) -> dict[str, InstalledPlugin]:
        return self.store.installed()

    def installed_version(self, name: str) -> Version | None:
        current = self.store.installed().get(name)
        return Version(current.origin.version) if current and current.origin else None

    def repair(self) -> list[str]:
        with self.store.locked(on_wait=self._on_lock_wait):
            return self.store.repair()

    def install(
        self,
        contents: ArchiveContents,
        origin_kind: str,
        location: str,
        *,
        sha256: str | None = None,
        expected: tuple[str, str] | None = None,
        expected_key_id: str | None = None,
        allow_downgrade: bool = False,
        reinstall: bool = False,
    ) -> InstallOutcome:
        """Install ``contents`` (an archive's or a folder's files) as the live version."""
        what = location
        manifest = contents.manifest(what)
        name, version = manifest.name, manifest.version
        if expected is not None and expected != (name, version):
            raise InstallError(
                f"{what} holds {name} {version}, not the {expected[0]} {expected[1]} requested",
                hint="the registry served the wrong archive; report it to its operator",
            )
        if expected_key_id is not None:
            signature = contents.files.get(SIGNATURE_NAME)
            signed_by = parse_signature(signature, name)["key_id"] if signature else None
            if signed_by != expected_key_id:
                raise InstallError(
                    f"{name} {version} is signed by key {signed_by}, but the registry lists "
                    f"key {expected_key_id} for it",
                    hint="the archive was swapped; do not install it",
                )
        with self.store.locked(on_wait=self._on_lock_wait):
            repaired = self.store.repair()
            if self.store.unmanaged(name):
                raise InstallError(
                    f"{self.store.root / name} is a folder you placed there yourself; "
                    "ForgeAI will not replace it",
                    hint="move it away, or load it with FORGEAI_PLUGIN_DIRS instead",
                )
            current = self.store.installed().get(name)
            current_version = (
                Version(current.origin.version) if current and current.origin else None
            )
            if current is not None and current_version is not None:
                if Version(version) < current_version and not allow_downgrade:
                    raise DowngradeError(
                        f"{name} {current_version} is installed; {version} is older",
                        hint="pass --allow-downgrade to install an older version on purpose",
                    )
                if Version(version) == current_version and not reinstall:
                    plugin = self._manager().loader.verify(current.path, PluginSource.INSTALLED)
                    return _outcome(plugin, str(current_version), changed=False, repaired=repaired)
            origin = Origin(
                kind=origin_kind,
                location=location,
                name=name,
                version=version,
                sha256=sha256,
                key_id=expected_key_id,
                installed_at=time.time(),
            )
            staged = self.store.stage(contents, origin)
            checkpoint("extracted")
            try:
                self._manager().loader.verify(staged.path, PluginSource.INSTALLED)
            except ForgeAIError:
                self.store.discard(staged.store_id)
                raise
            checkpoint("verified")
            previous = self.store.commit(staged, name)
            checkpoint("swapped")
            try:
                plugin = self._validate(name)
            except ForgeAIError as error:
                self.store.restore(name, previous)
                self.store.discard(staged.store_id)
                raise InstallError(
                    f"{name} {version} failed validation after install and was rolled back "
                    f"({error.one_line()})",
                    hint="nothing changed; report the problem to the plugin's author",
                ) from error
            checkpoint("validated")
            if previous is not None:
                self.store.discard(previous.store_id)
            checkpoint("cleaned")
            return _outcome(
                plugin,
                str(current_version) if current_version else None,
                changed=True,
                repaired=repaired,
            )

    def _validate(self, name: str) -> VerifiedPlugin:
        """Load the live version the way every ForgeAI process will: verify, import, construct."""
        manager = self._manager()
        plugin = manager.load_plugin(self.store.root / name, PluginSource.INSTALLED)
        for spec in plugin.manifest.languages:
            manager.get_executor(spec.name)
        return plugin

    def remove(self, name: str) -> RemoveOutcome:
        with self.store.locked(on_wait=self._on_lock_wait):
            repaired = self.store.repair()
            if self.store.unmanaged(name):
                raise InstallError(
                    f"{self.store.root / name} is a folder you placed there yourself",
                    hint="delete it yourself if you no longer want it",
                )
            current = self.store.installed().get(name)
            if current is None:
                raise PluginNotFoundError(
                    name,
                    "is not installed in FORGEAI_HOME/plugins",
                    hint="see 'forgeai plugin list'; bundled plugins cannot be removed",
                )
            self.store.unlink(name)
            checkpoint("unregistered")
            self.store.discard(current.store_id)
            checkpoint("files-removed")
            data = self.config.home / "data" / name
            if data.exists():
                shutil.rmtree(data)
            checkpoint("data-cleaned")
            version = current.origin.version if current.origin else "?"
            return RemoveOutcome(name=name, version=version, repaired=repaired)


def _outcome(
    plugin: VerifiedPlugin, previous: str | None, *, changed: bool, repaired: list[str]
) -> InstallOutcome:
    return InstallOutcome(
        name=plugin.name,
        version=plugin.manifest.version,
        previous_version=previous,
        changed=changed,
        trust=plugin.trust_label,
        signer=plugin.signer.name if plugin.signer else None,
        repaired=repaired,
    )
