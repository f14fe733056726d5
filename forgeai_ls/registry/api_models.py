"""The registry HTTP API's bodies (design.md section 3.5), as pydantic models.

The server answers with these and the OpenAPI description at ``/openapi.json`` is generated
from them; a client can validate what it receives with the same classes.
"""

from __future__ import annotations

import json

from pydantic import BaseModel, ConfigDict, Field


class _Body(BaseModel):
    model_config = ConfigDict(frozen=True)


class PluginSummary(_Body):
    """One plugin in a listing, described by its latest version."""

    name: str
    latest_version: str
    description: str
    author: str
    languages: list[str]
    updated_at: str = Field(description="When a version was last published (ISO 8601, UTC).")


class PluginList(_Body):
    """A page of plugins, sorted by name, and how many matched in all."""

    plugins: list[PluginSummary]
    total: int


class PluginDetails(_Body):
    """The latest version of a plugin (highest version number), and every version's number."""

    name: str
    version: str
    description: str
    author: str
    license: str
    homepage: str | None
    repository: str | None
    languages: list[str]
    sha256: str = Field(description="sha256 of the archive, hex.")
    size: int = Field(description="Archive size in bytes.")
    key_id: str = Field(description="Id of the Ed25519 key that signed the plugin.")
    publisher: str
    minimum_forgeai_version: str
    maximum_forgeai_version: str | None
    published_at: str = Field(description="ISO 8601, UTC.")
    versions: list[str] = Field(description="Every published version, ascending.")


class VersionEntry(_Body):
    """One published version, as listed in ``NAME/versions.json``."""

    version: str
    sha256: str
    size: int
    key_id: str
    minimum_forgeai_version: str
    maximum_forgeai_version: str | None
    published_at: str
    description: str
    languages: list[str]
    yanked: bool = False
    """Its publisher withdrew it: resolution skips it; a pin still gets it."""


class VersionList(_Body):
    """Every version of a plugin, ascending. Served as the exact bytes of the TUF target
    ``NAME/versions.json`` (see :meth:`canonical_bytes`)."""

    name: str
    versions: list[VersionEntry]

    def canonical_bytes(self) -> bytes:
        """Sorted keys, no whitespace: the bytes that are hashed into the TUF targets."""
        return json.dumps(
            self.model_dump(mode="json"), sort_keys=True, separators=(",", ":")
        ).encode()


class YankResult(_Body):
    """A version withdrawn from resolution."""

    name: str
    version: str
    yanked_at: str


class PublishResult(_Body):
    """What a successful upload stored."""

    name: str
    version: str
    sha256: str
    size: int
    key_id: str
    publisher: str


class ErrorDetail(_Body):
    code: str = Field(description="Stable ForgeAI error code, e.g. FORGEAI-E303.")
    message: str
    hint: str | None


class ErrorBody(_Body):
    """Every error answer: ``{"error": {"code", "message", "hint"}}``."""

    error: ErrorDetail


class Health(_Body):
    status: str = "ok"
