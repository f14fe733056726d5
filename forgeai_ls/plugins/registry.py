"""PluginRegistry: where installed plugins are, in precedence order."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from forgeai_ls.plugins.loader import PluginSource
from forgeai_ls.plugins.manifest import MANIFEST_NAME


@dataclass(frozen=True, slots=True)
class PluginLocation:
    path: Path
    source: PluginSource


class PluginRegistry:
    """The bundled official plugins, FORGEAI_HOME/plugins, then extra directories.

    Later sources take precedence when two plugins claim the same language: a plugin you
    installed overrides the bundled one, and an explicitly configured directory overrides both.
    """

    def __init__(
        self, bundled_dir: Path | None, installed_dir: Path, extra_dirs: tuple[Path, ...] = ()
    ) -> None:
        self.bundled_dir = bundled_dir
        self.installed_dir = installed_dir
        self.extra_dirs = extra_dirs

    def search_paths(self) -> list[tuple[Path, PluginSource]]:
        paths = [(self.bundled_dir, PluginSource.BUNDLED)] if self.bundled_dir else []
        paths.append((self.installed_dir, PluginSource.INSTALLED))
        paths += [(directory, PluginSource.EXTRA) for directory in self.extra_dirs]
        return paths

    def discover(self) -> list[PluginLocation]:
        found = []
        for directory, source in self.search_paths():
            if not directory.is_dir():
                continue
            for entry in sorted(directory.iterdir()):
                if (
                    entry.is_dir()
                    and not entry.name.startswith(".")
                    and (entry / MANIFEST_NAME).is_file()
                ):
                    found.append(PluginLocation(entry, source))
        return found
