"""The ForgeAI error tree.

Every error ForgeAI itself raises carries a stable code (``FORGEAI-Exxx``), a one-line message
naming what failed and which check refused it, and, where one helps, a hint saying what to do.
Codes never change meaning; new failures get new codes.
"""

from __future__ import annotations


class ForgeAIError(Exception):
    """Root of every error ForgeAI raises on purpose."""

    CODE = "FORGEAI-E100"

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    @property
    def code(self) -> str:
        return self.CODE

    def one_line(self) -> str:
        """The error as printed on a terminal: code, message and hint on one line."""
        text = f"{self.code}: {self.message}"
        if self.hint:
            text += f" (hint: {self.hint})"
        return text


class UsageError(ForgeAIError):
    """A command-line option or argument is invalid."""

    CODE = "FORGEAI-E101"


class UnknownLanguageError(ForgeAIError):
    """No installed executor handles the requested language or file extension."""

    CODE = "FORGEAI-E102"


class SourceError(ForgeAIError):
    """The program to run cannot be read: missing, a directory, not text, too large."""

    CODE = "FORGEAI-E103"


class StdinSourceError(ForgeAIError):
    """The file given as the program's standard input cannot be read."""

    CODE = "FORGEAI-E104"


class MissingExtraError(ForgeAIError):
    """The command needs an optional part of ForgeAI (an extra) that is not installed."""

    CODE = "FORGEAI-E105"


class SandboxUnavailableError(ForgeAIError):
    """No sandbox can be started on this machine (bubblewrap missing or unusable)."""

    CODE = "FORGEAI-E110"


class SandboxSetupError(ForgeAIError):
    """The sandbox refused to start for this run (a mount, namespace or limit failed)."""

    CODE = "FORGEAI-E111"


class ToolchainNotFoundError(ForgeAIError):
    """The compiler or interpreter a language needs is not installed on this machine."""

    CODE = "FORGEAI-E112"


class LimitsError(ForgeAIError):
    """Resource limits are out of range or inconsistent."""

    CODE = "FORGEAI-E113"


class SandboxCapacityError(SandboxUnavailableError):
    """Every sandbox user id is taken by runs in progress (as root, each run has its own)."""

    CODE = "FORGEAI-E114"


class DaemonEndedError(ForgeAIError):
    """The ForgeAI daemon running a ``forgeai run`` ended before the run did."""

    CODE = "FORGEAI-E115"


class DaemonStartError(ForgeAIError):
    """``forgeai daemon start`` could not start the daemon (or it is turned off)."""

    CODE = "FORGEAI-E116"


class DockerUnavailableError(SandboxUnavailableError):
    """The docker backend was chosen but no Docker (or Podman) engine answers."""

    CODE = "FORGEAI-E120"


class ImageMissingError(ForgeAIError):
    """The plugin's container image is not present in the engine (images are never pulled)."""

    CODE = "FORGEAI-E121"


class EngineRefusedError(ForgeAIError):
    """The container engine refused to create, start or build something."""

    CODE = "FORGEAI-E122"


class ImageBuildError(ForgeAIError):
    """A plugin's image could not be built (Dockerfile, root filesystem or engine error)."""

    CODE = "FORGEAI-E123"


class ProjectEnvironmentError(ForgeAIError):
    """The project environment named for a run (``--env``, a setting) cannot be used."""

    CODE = "FORGEAI-E130"


class NetworkPolicyError(ForgeAIError):
    """A network allow-list entry is not a host (``--allow-net``, a setting)."""

    CODE = "FORGEAI-E131"


class DependencySpecError(ForgeAIError):
    """Declared dependencies cannot be read: a malformed PEP 723 block, an invalid
    requirement, a requirements file that is missing or uses options."""

    CODE = "FORGEAI-E140"


class DependencyInstallError(ForgeAIError):
    """Installing declared dependencies failed (the run did not start, nothing was cached)."""

    CODE = "FORGEAI-E141"


class UnknownPackageError(DependencyInstallError):
    """A declared package is not on the index."""

    CODE = "FORGEAI-E142"


class DependencyConflictError(DependencyInstallError):
    """The declared requirements cannot all be satisfied together (or not by this Python)."""

    CODE = "FORGEAI-E143"


class IndexUnreachableError(DependencyInstallError):
    """The package index cannot be reached."""

    CODE = "FORGEAI-E144"


class ArtifactOutputError(ForgeAIError):
    """A run's files out cannot be saved where asked (``--out``): not a folder, not empty,
    a file that would be overwritten."""

    CODE = "FORGEAI-E150"


class PluginError(ForgeAIError):
    """A plugin was refused or failed; the message names the plugin and the failed check."""

    CODE = "FORGEAI-E200"

    def __init__(self, plugin: str, message: str, *, hint: str | None = None) -> None:
        super().__init__(f"plugin '{plugin}': {message}", hint=hint)
        self.plugin = plugin


class ManifestError(PluginError):
    """plugin.yaml is missing, unreadable, not YAML, or does not match the schema."""

    CODE = "FORGEAI-E201"


class UnsignedPluginError(PluginError):
    """The plugin carries no signature and unsigned plugins are not allowed."""

    CODE = "FORGEAI-E202"


class IntegrityError(PluginError):
    """The signature does not verify, or a file was changed, added or removed since signing."""

    CODE = "FORGEAI-E203"


class UntrustedSignerError(PluginError):
    """The plugin is signed by a key that is not in the trust store."""

    CODE = "FORGEAI-E204"


class TrustLevelError(PluginError):
    """The signing key is trusted, but below the level the policy requires."""

    CODE = "FORGEAI-E205"


class IncompatibleVersionError(PluginError):
    """The plugin does not support this ForgeAI version."""

    CODE = "FORGEAI-E206"


class MissingDependencyError(PluginError):
    """A tool the plugin needs is not installed."""

    CODE = "FORGEAI-E207"


class SecurityProfileError(PluginError):
    """seccomp.json is not a well-formed syscall profile."""

    CODE = "FORGEAI-E208"


class PluginLoadError(PluginError):
    """The plugin's code failed to load in its process (syntax error, failed import)."""

    CODE = "FORGEAI-E210"


class ConstructorMissingError(PluginError):
    """The entry point does not name a callable constructor."""

    CODE = "FORGEAI-E211"


class ConstructorSignatureError(PluginError):
    """The constructor does not accept (config) or its result lacks the Executor methods."""

    CODE = "FORGEAI-E212"


class ConstructorFailedError(PluginError):
    """The constructor raised an exception."""

    CODE = "FORGEAI-E213"


class PluginProcessError(PluginError):
    """A code plugin's sandboxed process crashed, hung, flooded or broke the protocol; it was
    stopped (other plugins are not affected)."""

    CODE = "FORGEAI-E215"


class PluginNotFoundError(PluginError):
    """No plugin folder at the given path, or no installed plugin of that name."""

    CODE = "FORGEAI-E214"


class KeyStoreError(ForgeAIError):
    """A signing key or trust-store entry is missing, malformed or already exists."""

    CODE = "FORGEAI-E220"


class ArchiveError(ForgeAIError):
    """A plugin archive is corrupt, unsafe (absolute path, '..', link, device) or too large."""

    CODE = "FORGEAI-E230"


class InstallError(ForgeAIError):
    """An install, update or removal was refused; nothing was changed."""

    CODE = "FORGEAI-E231"


class DowngradeError(InstallError):
    """The requested version is older than the installed one and no downgrade was allowed."""

    CODE = "FORGEAI-E232"


class LockTimeoutError(InstallError):
    """Another ForgeAI command holds the plugin lock for too long."""

    CODE = "FORGEAI-E233"


class RegistryError(ForgeAIError):
    """A remote registry operation failed."""

    CODE = "FORGEAI-E300"


class RegistryNotConfiguredError(RegistryError):
    """No registry URL is configured."""

    CODE = "FORGEAI-E301"


class RegistryUnavailableError(RegistryError):
    """The registry cannot be reached, timed out, or answered with a server error."""

    CODE = "FORGEAI-E302"


class RegistryNotFoundError(RegistryError):
    """The registry has no such plugin or version."""

    CODE = "FORGEAI-E303"


class RegistryResponseError(RegistryError):
    """The registry answered something that is not a valid answer (garbage, wrong size)."""

    CODE = "FORGEAI-E304"


class RegistryIntegrityError(RegistryError):
    """The registry's signed metadata failed verification: tampered, rolled back or expired."""

    CODE = "FORGEAI-E305"


class PublishRefusedError(RegistryError):
    """The registry refused an upload (authentication, ownership, duplicate, invalid archive)."""

    CODE = "FORGEAI-E306"


class RegistryServerError(ForgeAIError):
    """The registry server cannot start or a token cannot be created."""

    CODE = "FORGEAI-E310"
