"""Finding the language (and the executor that owns it) for a name, alias or file."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import PurePath

from forgeai_ls.errors import UnknownLanguageError
from forgeai_ls.plugins.language import LanguageSpec


@dataclass(frozen=True, slots=True)
class LanguageEntry:
    spec: LanguageSpec
    plugin: str


class LanguageCatalog:
    """Maps names, aliases and extensions to languages. Earlier entries win a conflict."""

    def __init__(self, entries: Iterable[LanguageEntry]) -> None:
        self._entries: list[LanguageEntry] = []
        self._by_name: dict[str, LanguageEntry] = {}
        self._by_extension: dict[str, LanguageEntry] = {}
        for entry in entries:
            self._entries.append(entry)
            for key in (entry.spec.name, *entry.spec.aliases):
                self._by_name.setdefault(key.lower(), entry)
            for extension in entry.spec.extensions:
                self._by_extension.setdefault(extension.lower(), entry)

    def entries(self) -> list[LanguageEntry]:
        return list(self._entries)

    def find(self, name: str) -> LanguageEntry | None:
        """The language called ``name`` (or an alias of it), or ``None``."""
        return self._by_name.get(name.strip().lower())

    def by_name(self, name: str) -> LanguageEntry:
        entry = self.find(name)
        if entry is None:
            raise UnknownLanguageError(
                f"unknown language '{name}'",
                hint=f"known languages: {', '.join(sorted(e.spec.name for e in self._entries))}"
                " (see 'forgeai languages')",
            )
        return entry

    def for_file(self, path: PurePath) -> LanguageEntry:
        entry = self._by_extension.get(path.suffix.lower())
        if entry is None:
            what = f"extension '{path.suffix}'" if path.suffix else "no extension"
            raise UnknownLanguageError(
                f"cannot tell the language of {path}: {what} belongs to no installed language",
                hint="name it with -l LANG (see 'forgeai languages')",
            )
        return entry
