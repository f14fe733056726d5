"""plugin.yaml: the seed's manifest fields plus a declarative section per language."""

from __future__ import annotations

import re
from enum import StrEnum
from pathlib import Path
from typing import Any

import yaml
from packaging.version import InvalidVersion, Version
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from forgeai_ls.errors import ManifestError
from forgeai_ls.plugins.language import LanguageSpec

MANIFEST_NAME = "plugin.yaml"
MAX_MANIFEST_BYTES = 256 * 1024


class SecurityLevel(StrEnum):
    """What the plugin promises about its own code; ``high`` refuses any sandbox bypass."""

    HIGH = "high"
    MEDIUM = "medium"
    LOW = "low"


def _version(value: str, field: str) -> str:
    try:
        Version(value)
    except InvalidVersion:
        raise ValueError(f"{field} {value!r} is not a version like 1.2.3") from None
    return value


class PluginManifest(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(pattern=r"^[a-z][a-z0-9]*(?:-[a-z0-9]+)*$", max_length=64)
    version: str
    description: str = Field(min_length=1, max_length=500)
    author: str
    license: str
    homepage: str | None = None
    repository: str | None = None
    supported_languages: tuple[str, ...] = Field(min_length=1)
    dependencies: tuple[str, ...] = ()
    """Commands the plugin needs on the host (compilers, interpreters)."""
    minimum_forgeai_version: str
    maximum_forgeai_version: str | None = None
    security_level: SecurityLevel = SecurityLevel.HIGH
    container_image: str | None = None
    entry_point: str | None = None
    """``module:function`` of a code plugin's constructor; declarative plugins omit it."""
    languages: tuple[LanguageSpec, ...] = Field(min_length=1)

    @field_validator("version", "minimum_forgeai_version", "maximum_forgeai_version")
    @classmethod
    def _versions(cls, value: str | None, info: Any) -> str | None:
        return None if value is None else _version(value, info.field_name)

    @field_validator("dependencies")
    @classmethod
    def _commands(cls, names: tuple[str, ...]) -> tuple[str, ...]:
        for name in names:
            if not re.fullmatch(r"[A-Za-z0-9._+-]+", name):
                raise ValueError(f"dependency {name!r} must be a command name")
        return names

    @field_validator("entry_point")
    @classmethod
    def _entry_point(cls, value: str | None) -> str | None:
        if value is not None and not re.fullmatch(
            r"[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*:[A-Za-z_]\w*", value
        ):
            raise ValueError(f"entry_point {value!r} must look like 'main:create_executor'")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> PluginManifest:
        declared = {spec.name for spec in self.languages}
        if set(self.supported_languages) != declared:
            raise ValueError(
                f"supported_languages {sorted(self.supported_languages)} must name exactly the "
                f"languages declared under 'languages' {sorted(declared)}"
            )
        if self.maximum_forgeai_version is not None and Version(
            self.maximum_forgeai_version
        ) < Version(self.minimum_forgeai_version):
            raise ValueError("maximum_forgeai_version is lower than minimum_forgeai_version")
        return self

    @property
    def parsed_version(self) -> Version:
        return Version(self.version)


class _NoAliasLoader(yaml.SafeLoader):
    """Safe YAML without anchors and aliases: no 'billion laughs' expansion bombs."""

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()  # type: ignore[no-untyped-call]
            raise yaml.composer.ComposerError(
                None,
                None,
                "anchors and aliases (&name, *name) are not allowed in plugin manifests",
                event.start_mark,
            )
        return super().compose_node(parent, index)


def _load_yaml_without_aliases(text: bytes) -> Any:
    """Parse YAML safely, refusing anchors and aliases; libyaml (C) when PyYAML has it."""
    fast = getattr(yaml, "CSafeLoader", None)
    if fast is None:
        return yaml.load(text, Loader=_NoAliasLoader)  # noqa: S506 (a SafeLoader subclass)
    for event in yaml.parse(text, Loader=fast):
        if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None):
            mark = event.start_mark
            where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
            raise yaml.composer.ComposerError(
                None,
                None,
                f"anchors and aliases (&name, *name) are not allowed in plugin manifests{where}",
            )
    return yaml.load(text, Loader=fast)  # noqa: S506 (libyaml's safe loader)


def parse_manifest(text: bytes, source: str) -> PluginManifest:
    """Validate manifest bytes; errors name the file, the field and what was expected."""
    plugin = Path(source).parent.name or source
    if len(text) > MAX_MANIFEST_BYTES:
        raise ManifestError(plugin, f"{source} is over {MAX_MANIFEST_BYTES} bytes")
    try:
        data = _load_yaml_without_aliases(text)
    except yaml.YAMLError as exc:
        reason = " ".join(str(exc).split())  # PyYAML's message spans lines
        raise ManifestError(plugin, f"{source} is not valid YAML: {reason}") from None
    if not isinstance(data, dict):
        kind = type(data).__name__
        raise ManifestError(plugin, f"{source} must be a mapping of fields, not {kind}")
    try:
        return PluginManifest.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "(top level)"
        more = f" (and {len(exc.errors()) - 1} more)" if len(exc.errors()) > 1 else ""
        raise ManifestError(
            str(data.get("name") or plugin),
            f"{source}: field '{where}': {first['msg']}{more}",
            hint="see docs/plugins.md for the manifest fields",
        ) from None


def read_manifest(plugin_dir: Path) -> tuple[PluginManifest, bytes]:
    """The manifest of the plugin in ``plugin_dir`` and its exact bytes."""
    path = plugin_dir / MANIFEST_NAME
    try:
        text = path.read_bytes()
    except FileNotFoundError:
        raise ManifestError(plugin_dir.name, f"no {MANIFEST_NAME} in {plugin_dir}") from None
    except OSError as exc:
        raise ManifestError(plugin_dir.name, f"{path} cannot be read: {exc.strerror}") from None
    return parse_manifest(text, str(path)), text
