"""PluginLoader: the seed's loading stages, in order, each with its own error.

manifest validation -> signature and file hashes -> ForgeAI version compatibility ->
dependencies -> security profile -> static analysis of plugin code -> load (import) ->
initialise (constructor) -> (registration is the manager's).

Stages up to static analysis read bytes and check them; nothing from the plugin is imported
or executed before all of them have passed.
"""

from __future__ import annotations

import json
import logging
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

from packaging.version import Version

from forgeai_ls import __version__
from forgeai_ls.errors import (
    ConstructorMissingError,
    IncompatibleVersionError,
    ManifestError,
    MissingDependencyError,
    TrustLevelError,
    UnsignedPluginError,
    UntrustedSignerError,
)
from forgeai_ls.plugins.analysis import Finding, analyse_python, validate_seccomp_profile
from forgeai_ls.plugins.manifest import MANIFEST_NAME, PluginManifest, parse_manifest
from forgeai_ls.plugins.official_lock import OfficialLock
from forgeai_ls.plugins.signing import (
    SIGNATURE_NAME,
    PluginFiles,
    parse_signature,
    read_plugin_files,
    verify_signature,
)
from forgeai_ls.plugins.trust import TrustLevel, TrustPolicy, TrustStore
from forgeai_ls.plugins.verification_cache import VerificationCache

log = logging.getLogger(__name__)

SECCOMP_NAME = "seccomp.json"


class PluginSource(StrEnum):
    """Where a plugin was found; also the order of precedence, last wins a conflict."""

    BUNDLED = "bundled"
    INSTALLED = "installed"
    EXTRA = "extra"


@dataclass(frozen=True, slots=True)
class Signer:
    key_id: str
    name: str
    level: TrustLevel


@dataclass(slots=True)
class VerifiedPlugin:
    """A plugin that passed every check before loading; its data is what was verified."""

    manifest: PluginManifest
    path: Path
    source: PluginSource
    signer: Signer | None
    """``None``: an unsigned folder allowed by the development policy."""
    content_digest: str
    seccomp_profile: dict[str, object] | None
    findings: list[Finding] = field(default_factory=list)
    code: dict[str, bytes] | None = None
    """The verified Python sources of a code plugin (relative path -> bytes)."""

    @property
    def name(self) -> str:
        return self.manifest.name

    @property
    def seccomp_json(self) -> str | None:
        """The validated profile as canonical JSON text, for the sandbox layer."""
        if self.seccomp_profile is None:
            return None
        return json.dumps(self.seccomp_profile, sort_keys=True, separators=(",", ":"))

    @property
    def trust_label(self) -> str:
        return self.signer.level.label if self.signer else "unsigned"


class PluginLoader:
    def __init__(
        self,
        *,
        trust_store: TrustStore,
        policy: TrustPolicy,
        official_lock: OfficialLock,
        cache: VerificationCache | None = None,
        forgeai_version: str = __version__,
        which: Callable[[str], str | None] = shutil.which,
    ) -> None:
        self.trust_store = trust_store
        self.policy = policy
        self.official_lock = official_lock
        self.cache = cache
        self.forgeai_version = Version(forgeai_version)
        self._which = which

    # -- stages 1-6: verification ---------------------------------------------------------

    def verify(self, path: Path, source: PluginSource) -> VerifiedPlugin:
        """Every check before loading, in the seed's order; raises the first failure."""
        files = read_plugin_files(path, path.name) if path.is_dir() else None
        if files is None or MANIFEST_NAME not in files.contents:
            raise ManifestError(path.name, f"no {MANIFEST_NAME} in {path}")
        manifest = self.validate_manifest(files)
        signer = self.verify_signature(manifest, files, source)
        self.check_compatibility(manifest)
        self.check_dependencies(manifest)
        profile = self.validate_security_profile(manifest, files)
        findings = self.analyse_code(manifest, files)
        code = (
            {n: d for n, d in files.contents.items() if n.endswith(".py")}
            if manifest.entry_point
            else None
        )
        return VerifiedPlugin(
            manifest=manifest,
            path=path,
            source=source,
            signer=signer,
            content_digest=files.content_digest(),
            seccomp_profile=profile,
            findings=findings,
            code=code,
        )

    def validate_manifest(self, files: PluginFiles) -> PluginManifest:
        return parse_manifest(files.contents[MANIFEST_NAME], str(files.root / MANIFEST_NAME))

    def verify_signature(
        self, manifest: PluginManifest, files: PluginFiles, source: PluginSource
    ) -> Signer | None:
        name = manifest.name
        if source is PluginSource.BUNDLED:
            self.official_lock.verify(name, manifest.version, files)
            return Signer(key_id="bundled", name="forgeai-official", level=TrustLevel.OFFICIAL)
        raw = files.contents.get(SIGNATURE_NAME)
        if raw is None:
            if self.policy.allow_unsigned:
                log.warning(
                    "plugin '%s' is unsigned; loaded only because unsigned plugins are "
                    "allowed (development)",
                    name,
                )
                return None
            raise UnsignedPluginError(
                name,
                f"{files.root} has no {SIGNATURE_NAME}",
                hint="sign it with 'forgeai plugin build --sign-key NAME', or allow unsigned "
                "plugins for development (FORGEAI_ALLOW_UNSIGNED=1)",
            )
        document = parse_signature(raw, name)
        trusted = self.trust_store.get(document["key_id"])
        if trusted is None:
            raise UntrustedSignerError(
                name,
                f"signed by key {document['key_id']}, which is not in the trust store",
                hint="if you trust its publisher: 'forgeai key trust KEYFILE --level LEVEL'",
            )
        digest = files.content_digest()
        if self.cache is None or not self.cache.signature_known(digest, trusted.key_id):
            verify_signature(document, trusted.load(), files, name, manifest.version)
            if self.cache is not None:
                self.cache.remember_signature(digest, trusted.key_id)
        if trusted.level < self.policy.minimum_level:
            raise TrustLevelError(
                name,
                f"signed by '{trusted.name}' ({trusted.level.label}); the policy requires "
                f"at least {self.policy.minimum_level.label}",
                hint="lower the policy's minimum level or use a plugin from a more trusted "
                "publisher",
            )
        return Signer(key_id=trusted.key_id, name=trusted.name, level=trusted.level)

    def check_compatibility(self, manifest: PluginManifest) -> None:
        low = Version(manifest.minimum_forgeai_version)
        high = (
            Version(manifest.maximum_forgeai_version) if manifest.maximum_forgeai_version else None
        )
        if self.forgeai_version < low or (high is not None and self.forgeai_version > high):
            span = f"{low} to {high}" if high else f"{low} or later"
            raise IncompatibleVersionError(
                manifest.name,
                f"supports ForgeAI {span}; this is ForgeAI {self.forgeai_version}",
                hint="install a version of the plugin made for this ForgeAI",
            )

    def check_dependencies(self, manifest: PluginManifest) -> None:
        missing = [tool for tool in manifest.dependencies if self._which(tool) is None]
        if missing:
            raise MissingDependencyError(
                manifest.name,
                f"needs {', '.join(repr(m) for m in missing)} on PATH, which is not installed",
                hint=f"install {', '.join(missing)} (e.g. with your system's package manager)",
            )

    def validate_security_profile(
        self, manifest: PluginManifest, files: PluginFiles
    ) -> dict[str, object] | None:
        data = files.contents.get(SECCOMP_NAME)
        return None if data is None else validate_seccomp_profile(manifest.name, data)

    def analyse_code(self, manifest: PluginManifest, files: PluginFiles) -> list[Finding]:
        """A lint, not a security boundary: a code plugin runs in a sandbox of its own whatever
        its code does. Findings are logged (and shown by ``forgeai plugin info``)."""
        findings = [
            finding
            for name, data in sorted(files.contents.items())
            if name.endswith(".py")
            for finding in analyse_python(name, data)
        ]
        for finding in findings:
            log.warning(
                "plugin '%s' (security_level %s): %s",
                manifest.name,
                manifest.security_level.value,
                finding,
            )
        return findings

    # -- stage 7: the entry point (the code itself runs only in the plugin's process) -------

    def check_entry_point(self, plugin: VerifiedPlugin) -> None:
        """The entry point names a module the plugin ships. Importing it and calling the
        constructor happen in the plugin's sandboxed process (see ``plugin_process``)."""
        assert plugin.manifest.entry_point is not None and plugin.code is not None
        module_name, _ = plugin.manifest.entry_point.split(":")
        if f"{module_name.replace('.', '/')}.py" not in plugin.code:
            raise ConstructorMissingError(
                plugin.name,
                f"entry_point module '{module_name}' has no file "
                f"{module_name.replace('.', '/')}.py",
            )
