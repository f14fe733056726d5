"""Where ForgeAI keeps its state, and where the bundled official plugins are.

Importing this module costs nothing: the language server and the CLI's fast paths need these
paths before anything else is loaded.
"""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path

OFFICIAL_PLUGINS_PACKAGE = "forgeai_ls.official_plugins"


def forgeai_home() -> Path:
    """FORGEAI_HOME, else ~/.forgeai: keys, trust store, installed plugins, caches."""
    return Path(os.environ.get("FORGEAI_HOME") or Path.home() / ".forgeai")


def bundled_plugins_dir() -> Path:
    """The official plugins shipped inside the package (package data, found through
    ``importlib.resources``, so a wheel, an sdist and a source tree all find them)."""
    folder = resources.files(OFFICIAL_PLUGINS_PACKAGE)
    if not isinstance(folder, Path):  # a zip import: plugin folders must be real directories
        raise RuntimeError(f"ForgeAI must be installed as files, not zipped ({folder})")
    return folder


def official_lock_path() -> Path:
    """The digests of every bundled plugin file (see ``plugins.official_lock``)."""
    return bundled_plugins_dir() / "official.lock.json"
