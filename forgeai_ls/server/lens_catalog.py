"""What code lenses need to know about languages, and a cache of it for a fast start.

Lenses only need each language's name, aliases, extensions and cell marker. The server
answers its first code lenses from ``FORGEAI_HOME/cache/lens-catalog.json`` while the plugins
are still being verified in the background, when that file was written for the same plugin
set: the same plugin folders with the same manifests and signatures (by path, size,
modification time and inode), the same official lock, trust store and settings, the same
ForgeAI. Nothing is run from it; a run always waits for the verified plugins, and once they
are loaded lenses come from them (the client is asked to refresh its lenses if they differ).
This module imports nothing heavy: it is on the path to the first lens.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path

FORMAT = "forgeai-lens-catalog/1"


@dataclass(frozen=True, slots=True)
class LensLanguage:
    name: str
    aliases: tuple[str, ...]
    extensions: tuple[str, ...]
    cell_marker: str | None


class LensCatalog:
    """Names, aliases and extensions to languages; earlier languages win a conflict (as in
    the plugins' own catalog)."""

    def __init__(self, languages: Iterable[LensLanguage]) -> None:
        self.languages = list(languages)
        self._by_name: dict[str, LensLanguage] = {}
        self._by_extension: dict[str, LensLanguage] = {}
        for language in self.languages:
            for key in (language.name, *language.aliases):
                self._by_name.setdefault(key.lower(), language)
            for extension in language.extensions:
                self._by_extension.setdefault(extension.lower(), language)

    def find(self, name: str) -> LensLanguage | None:
        return self._by_name.get(name.strip().lower())

    def for_suffix(self, suffix: str) -> LensLanguage | None:
        return self._by_extension.get(suffix.lower()) if suffix else None

    def __eq__(self, other: object) -> bool:
        return isinstance(other, LensCatalog) and self.languages == other.languages

    __hash__ = None  # type: ignore[assignment]


def unwrap_settings(raw: object) -> dict[str, object]:
    """The settings object of a client payload (bare, or wrapped as ``{"forgeai": {...}}``)."""
    if isinstance(raw, dict) and isinstance(raw.get("forgeai"), dict):
        raw = raw["forgeai"]
    return raw if isinstance(raw, dict) else {}


def load_cached(path: Path, stamp: str) -> LensCatalog | None:
    try:
        document = json.loads(path.read_text())
        if document.get("stamp") != stamp:
            return None
        return LensCatalog(
            LensLanguage(
                name=str(item["name"]),
                aliases=tuple(item["aliases"]),
                extensions=tuple(item["extensions"]),
                cell_marker=item["cell_marker"],
            )
            for item in document["languages"]
        )
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None


def save(path: Path, stamp: str, catalog: LensCatalog) -> None:
    """Write the cache atomically; a cache that cannot be written only costs time."""
    document = {"stamp": stamp, "languages": [asdict(item) for item in catalog.languages]}
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        temporary = path.with_name(f".{path.name}.{os.getpid()}")
        temporary.write_text(json.dumps(document))
        temporary.replace(path)
    except OSError:
        pass
