"""The official plugins bundled with ForgeAI, verified by digests shipped inside the package.

Bundled plugins are not signed with a private key (none may live in the repository); instead
``official.lock.json`` beside them (in ``forgeai_ls/official_plugins/``) records the sha256 of
every file of every bundled plugin. A bundled folder whose files differ from the lock is
refused like a tampered signed plugin. Regenerate the lock after changing a bundled plugin::

    python -m forgeai_ls.plugins.official_lock
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path

from forgeai_ls.errors import IntegrityError
from forgeai_ls.home import bundled_plugins_dir, official_lock_path
from forgeai_ls.plugins.manifest import read_manifest
from forgeai_ls.plugins.signing import PluginFiles, read_plugin_files

LOCK_FORMAT = "forgeai-official-lock/1"


@dataclass(frozen=True, slots=True)
class OfficialLock:
    plugins: dict[str, dict[str, object]]

    @classmethod
    def load(cls, path: Path | None = None) -> OfficialLock:
        try:
            document = json.loads((path or official_lock_path()).read_text())
        except (OSError, ValueError):
            return cls(plugins={})  # no lock: no bundled plugin verifies
        if document.get("format") != LOCK_FORMAT:
            return cls(plugins={})
        return cls(plugins=dict(document.get("plugins", {})))

    def verify(self, name: str, version: str, files: PluginFiles) -> None:
        entry = self.plugins.get(name)
        if entry is None:
            raise IntegrityError(
                name,
                "is in the bundled plugin folder but not one of the "
                "official plugins this ForgeAI shipped with",
                hint="install it as a user plugin instead",
            )
        if entry.get("version") != version:
            raise IntegrityError(
                name,
                f"bundled version {version} differs from the shipped {entry.get('version')}",
                hint="reinstall ForgeAI",
            )
        locked = entry.get("files")
        assert isinstance(locked, dict)
        actual = files.digests()
        for what, names in (
            ("changed", sorted(n for n in locked.keys() & actual.keys() if locked[n] != actual[n])),
            ("added", sorted(actual.keys() - locked.keys())),
            ("removed", sorted(locked.keys() - actual.keys())),
        ):
            if names:
                raise IntegrityError(
                    name,
                    f"bundled files {what} since ForgeAI shipped: {', '.join(names)}",
                    hint="reinstall ForgeAI",
                )


def build_lock(plugins_dir: Path) -> dict[str, object]:
    plugins: dict[str, object] = {}
    for folder in sorted(p for p in plugins_dir.iterdir() if (p / "plugin.yaml").is_file()):
        manifest, _ = read_manifest(folder)
        plugins[manifest.name] = {
            "version": manifest.version,
            "files": read_plugin_files(folder, manifest.name).digests(),
        }
    return {"format": LOCK_FORMAT, "plugins": plugins}


def main() -> int:
    lock = build_lock(bundled_plugins_dir())
    path = official_lock_path()
    path.write_text(json.dumps(lock, indent=2, sort_keys=True) + "\n")
    sys.stdout.write(f"locked {len(lock['plugins'])} official plugins in {path}\n")  # type: ignore[arg-type]
    return 0


if __name__ == "__main__":
    sys.exit(main())
