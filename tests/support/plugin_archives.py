"""Signed plugins and their archives, for lifecycle and registry tests."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import tarfile
from pathlib import Path

from forgeai_ls.plugins.archive import archive_name, build_archive
from forgeai_ls.plugins.signing import sign_folder
from forgeai_ls.plugins.trust import KeyStore, TrustLevel, TrustStore

FORGEAI = [sys.executable, "-m", "forgeai_ls.cli.main"]

MANIFEST = """\
name: {name}
version: {version}
description: {description}
author: Tests
license: MIT
supported_languages: [{language}]
dependencies: [python3]
minimum_forgeai_version: {minimum}
maximum_forgeai_version: {maximum}
security_level: high
languages:
  - name: {language}
    display_name: Test {language}
    extensions: [.{language}]
    source_file: main.py
    run: [python3, "{{source}}"]
"""


class Author:
    """A plugin author with a key pair in ``home`` (optionally trusted there too)."""

    def __init__(self, home: Path, work: Path, key: str = "author") -> None:
        self.home, self.work, self.key = home, work, key
        self.keys = KeyStore(home)
        if key not in self.keys.names():
            self.keys.generate(key)

    @property
    def public_key_path(self) -> Path:
        return self.keys.directory / f"{self.key}.pub"

    def trust_in(self, home: Path, level: TrustLevel = TrustLevel.COMMUNITY) -> None:
        TrustStore(home).trust(self.keys.private_key(self.key).public_key(), self.key, level)

    def folder(
        self,
        name: str,
        version: str,
        *,
        language: str | None = None,
        description: str = "A test executor",
        minimum: str = "0.1.0",
        maximum: str = "0.99.0",
        sign: bool = True,
    ) -> Path:
        path = self.work / f"{name}-{version}" / name
        path.mkdir(parents=True, exist_ok=True)
        (path / "plugin.yaml").write_text(
            MANIFEST.format(
                name=name,
                version=version,
                description=description,
                language=language or name.split("-")[0],
                minimum=minimum,
                maximum=maximum,
            )
        )
        (path / "README.md").write_text(f"# {name} {version}\n")
        if sign:
            sign_folder(path, self.keys.private_key(self.key))
        return path

    def archive(self, name: str, version: str, **options: object) -> Path:
        data, _ = build_archive(self.folder(name, version, **options))  # type: ignore[arg-type]
        target = self.work / archive_name(name, version)
        target.write_bytes(data)
        return target


def tar_gz(members: list[tuple[tarfile.TarInfo, bytes | None]]) -> bytes:
    """A hand-made archive (for hostile ones: links, '..', devices)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for info, content in members:
            if content is not None:
                info.size = len(content)
            tar.addfile(info, io.BytesIO(content) if content is not None else None)
    return buffer.getvalue()


def forgeai(
    home: Path, *args: str, env: dict[str, str] | None = None, crash_at: str | None = None
) -> subprocess.CompletedProcess[str]:
    """Run the CLI with FORGEAI_HOME=home; with ``crash_at``, it SIGKILLs itself at that step."""
    command = [sys.executable, "-m", "tests.support.crash_cli", crash_at] if crash_at else FORGEAI
    return subprocess.run(
        [*command, *args],
        capture_output=True,
        text=True,
        env={**os.environ, "FORGEAI_HOME": str(home), **(env or {})},
        stdin=subprocess.DEVNULL,
        cwd=Path(__file__).resolve().parents[2],
        timeout=120,
        check=False,
    )
