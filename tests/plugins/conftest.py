"""Plugin folders, keys and a manager in a private FORGEAI_HOME, for the loader tests."""

from __future__ import annotations

import shutil
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest

from forgeai_ls.plugins.manager import ManagerConfig, PluginManager
from forgeai_ls.plugins.signing import sign_folder
from forgeai_ls.plugins.trust import KeyStore, TrustLevel, TrustPolicy, TrustStore
from forgeai_ls.sandbox import NativeBackend

MANIFEST = """\
name: {name}
version: 1.0.0
description: A test executor
author: Tests
license: MIT
supported_languages: [{language}]
dependencies: [python3]
minimum_forgeai_version: 0.1.0
maximum_forgeai_version: 0.99.0
security_level: {security_level}
{extra}languages:
  - name: {language}
    display_name: Test {language}
    aliases: [{language}-alias]
    extensions: [.{language}]
    source_file: main.py
    run: [python3, "{{source}}"]
    env: {{PYTHONUNBUFFERED: "1"}}
"""


class PluginFactory:
    def __init__(self, home: Path, root: Path) -> None:
        self.home = home
        self.root = root
        self.keys = KeyStore(home)
        self.trust = TrustStore(home)

    def folder(
        self,
        name: str,
        *,
        language: str | None = None,
        security_level: str = "high",
        extra: str = "",
        code: str | None = None,
    ) -> Path:
        path = self.root / name
        path.mkdir(parents=True)
        (path / "plugin.yaml").write_text(
            MANIFEST.format(
                name=name,
                language=language or name.replace("-", ""),
                security_level=security_level,
                extra=extra,
            )
        )
        (path / "README.md").write_text(f"# {name}\n")
        if code is not None:
            (path / "main.py").write_text(textwrap.dedent(code))
        return path

    def key(self, name: str, level: TrustLevel | None = TrustLevel.COMMUNITY) -> str:
        """Generate a key; trust it at ``level`` (None: leave it untrusted)."""
        key_id, _ = self.keys.generate(name)
        if level is not None:
            self.trust.trust(self.keys.private_key(name).public_key(), name, level)
        return key_id

    def sign(self, path: Path, key: str) -> None:
        sign_folder(path, self.keys.private_key(key))

    def manager(self, *, policy: TrustPolicy | None = None) -> PluginManager:
        return PluginManager(
            NativeBackend(),
            ManagerConfig(home=self.home, policy=policy or TrustPolicy(), bundled_dir=None),
        )


@pytest.fixture
def plugins(tmp_path: Path) -> PluginFactory:
    return PluginFactory(tmp_path / "home", tmp_path / "plugins")


@pytest.fixture
def copy_official(tmp_path: Path) -> Callable[[str], Path]:
    def copy(name: str) -> Path:
        from forgeai_ls.home import bundled_plugins_dir

        target = tmp_path / "bundled" / name
        shutil.copytree(bundled_plugins_dir() / name, target)
        return target

    return copy
