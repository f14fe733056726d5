"""The server's settings: initializationOptions and workspace/didChangeConfiguration
(section ``forgeai``). Every field has a default; invalid input is reported, never fatal."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

if TYPE_CHECKING:  # the plugin and sandbox layers load after the first lens (lens_catalog)
    from forgeai_ls.plugins.trust import TrustPolicy
    from forgeai_ls.sandbox.warm_pool import PoolSettings


class LimitSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    timeout: float | None = Field(None, gt=0, le=3600, description="Wall-clock seconds.")
    memory_mb: int | None = Field(None, ge=16, alias="memoryMb")
    network: bool = False


class TrustSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    minimum_level: Literal["official", "enterprise", "verified", "community"] = Field(
        "community", alias="minimumLevel"
    )
    allow_unsigned: bool = Field(False, alias="allowUnsigned")

    def policy(self) -> TrustPolicy:
        from forgeai_ls.plugins.trust import TrustLevel, TrustPolicy

        return TrustPolicy(
            minimum_level=TrustLevel.parse(self.minimum_level), allow_unsigned=self.allow_unsigned
        )


class PoolSettingsModel(BaseModel):
    """Warm pools of the native backend (see docs/performance.md)."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    size: int = Field(4, ge=0, le=16)
    """Most warm sandboxes per language and configuration (0: no pools)."""
    sizes: dict[str, int] = Field(default_factory=dict)
    """Per-language sizes, e.g. {"python": 4}."""
    idle_timeout: float = Field(300.0, gt=0, le=86400, alias="idleTimeout")
    memory_budget_mb: int = Field(512, ge=1, le=65536, alias="memoryBudgetMb")

    def settings(self) -> PoolSettings:
        from forgeai_ls.sandbox.warm_pool import PoolSettings

        return PoolSettings(
            size=self.size,
            sizes={name: max(0, min(16, size)) for name, size in self.sizes.items()},
            idle_timeout=self.idle_timeout,
            memory_budget_bytes=self.memory_budget_mb * 1024 * 1024,
        )


class NetworkSettings(BaseModel):
    """Hosts runs may reach through the egress proxy (docs/network.md)."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    allow: list[str] = Field(default_factory=list)
    """pypi.org, *.example.com, api.example.com:443, localhost:8080...; empty: no network
    (unless ``limits.network`` opens all of it)."""


class EnvironmentSettings(BaseModel):
    """Which project environment runs use (see docs/environments.md)."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    enabled: bool = True
    """Use the project's environment (a virtualenv, node_modules) at all."""
    python: str | None = None
    """A virtualenv folder or its interpreter, relative to the workspace folder; overrides
    the search."""
    node_modules: str | None = Field(None, alias="nodeModules")
    """A node_modules folder (or the folder holding it), relative to the workspace folder."""
    python_from_editor: str | None = Field(None, alias="pythonFromEditor")
    """The interpreter the editor selected (sent by the VS Code extension from the Python
    extension); used when it belongs to an environment."""


class ServerSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    backend: Literal["native", "docker"] = "native"
    docker_host: str | None = Field(None, alias="dockerHost")
    """The engine for the docker backend (default: DOCKER_HOST, else the default socket)."""
    docker_pool: int = Field(0, ge=0, le=8, alias="dockerPool")
    """Pre-started containers kept per configuration for the docker backend (0: none)."""
    pool: PoolSettingsModel = PoolSettingsModel()
    compile_cache: bool = Field(True, alias="compileCache")
    """Reuse successful compiles of unchanged code (native backend)."""
    limits: LimitSettings = LimitSettings()
    plugin_dirs: list[str] = Field(default_factory=list, alias="pluginDirs")
    trust: TrustSettings = TrustSettings()
    environment: EnvironmentSettings = EnvironmentSettings()
    network: NetworkSettings = NetworkSettings()
    replace_previous_run: bool = Field(True, alias="replacePreviousRun")
    """A new run of a document stops the one still running for it."""

    def loading_key(self) -> tuple[object, ...]:
        """What plugins and the backend depend on: a change means reloading them."""
        return (
            tuple(self.plugin_dirs),
            self.trust,
            self.backend,
            self.docker_host,
            self.docker_pool,
            self.pool,
            self.compile_cache,
        )

    def plugin_paths(self) -> tuple[Path, ...]:
        return tuple(Path(p).expanduser() for p in self.plugin_dirs)


def parse_settings(raw: Any) -> tuple[ServerSettings, str | None]:
    """Settings from a client payload, or the defaults and a message saying what was wrong.

    Accepts the settings object itself or one wrapped as ``{"forgeai": {...}}``.
    """
    if raw is None or raw == [] or raw == {"forgeai": []}:  # Lua's empty table is a JSON []
        return ServerSettings(), None
    if isinstance(raw, dict) and isinstance(raw.get("forgeai"), dict):
        raw = raw["forgeai"]
    if not isinstance(raw, dict):
        return ServerSettings(), f"ForgeAI settings must be an object, not {type(raw).__name__}"
    try:
        return ServerSettings.model_validate(raw), None
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()
        )
        return ServerSettings(), f"invalid ForgeAI settings ({problems}); using the defaults"
