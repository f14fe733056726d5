"""Where ForgeAI keeps its state, and where the bundled official plugins are.

Importing this module costs nothing: the language server needs these paths before anything
else is loaded.
"""

from __future__ import annotations

import os
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
OFFICIAL_LOCK_PATH = PACKAGE_DIR / "plugins" / "official.lock.json"


def forgeai_home() -> Path:
    """FORGEAI_HOME, else ~/.forgeai: keys, trust store, installed plugins, caches."""
    return Path(os.environ.get("FORGEAI_HOME") or Path.home() / ".forgeai")


def bundled_plugins_dir() -> Path:
    """The official plugins shipped with this ForgeAI (``plugins/`` of the source tree)."""
    return PACKAGE_DIR.parent / "plugins"
