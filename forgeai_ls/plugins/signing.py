"""Ed25519 signatures over a plugin's manifest and a digest of every file.

A plugin folder is signed by writing ``SIGNATURE.json`` next to ``plugin.yaml``::

    {"format": "forgeai-plugin-signature/1", "plugin": NAME, "version": VERSION,
     "key_id": KEY_ID, "files": {"plugin.yaml": "sha256:...", "main.py": "sha256:..."},
     "signature": BASE64}

The signature covers the canonical JSON of everything but ``signature``, so any changed, added
or removed file (or a renamed plugin, or another version) fails verification.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from forgeai_ls.errors import IntegrityError
from forgeai_ls.plugins.manifest import read_manifest

if TYPE_CHECKING:  # cryptography is imported where keys are used (see KEY_IMPORTS_NOTE)
    from cryptography.hazmat.primitives.asymmetric.ed25519 import (
        Ed25519PrivateKey,
        Ed25519PublicKey,
    )

KEY_IMPORTS_NOTE = """cryptography (about 40 ms to import) is imported inside the functions that
handle keys: a start where every plugin's signature check is cached never needs it."""

SIGNATURE_NAME = "SIGNATURE.json"
SIGNATURE_FORMAT = "forgeai-plugin-signature/1"
MAX_PLUGIN_FILES = 2000
MAX_PLUGIN_BYTES = 64 * 1024 * 1024
_SKIPPED_DIRS = frozenset({"__pycache__"})


@dataclass(frozen=True, slots=True)
class PluginFiles:
    """Every file of a plugin folder, read once: the bytes that are verified are the bytes used."""

    root: Path
    contents: dict[str, bytes]

    def digests(self) -> dict[str, str]:
        """sha256 of every file except the signature itself."""
        return {
            name: "sha256:" + hashlib.sha256(data).hexdigest()
            for name, data in sorted(self.contents.items())
            if name != SIGNATURE_NAME
        }

    def content_digest(self) -> str:
        """One digest of all names and contents, signature included (the cache's key)."""
        whole = hashlib.sha256()
        for name, data in sorted(self.contents.items()):
            whole.update(f"{name}\0{hashlib.sha256(data).hexdigest()}\n".encode())
        return whole.hexdigest()


def key_id(public_key: Ed25519PublicKey) -> str:
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    raw = public_key.public_bytes(Encoding.Raw, PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def read_plugin_files(root: Path, plugin: str) -> PluginFiles:
    """All regular files under ``root`` (``__pycache__`` excepted, ignored by design: ForgeAI
    never imports from it). Links, devices and oversized trees are refused."""
    contents: dict[str, bytes] = {}
    total = 0
    # An installed plugin is a link into the store: resolve it once, so that a concurrent
    # update (which swaps the link) cannot mix files of two versions in one read.
    root = root.resolve() if root.is_symlink() else root
    for directory, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d not in _SKIPPED_DIRS)
        for entry in [*dirnames, *filenames]:
            path = Path(directory) / entry
            info = path.lstat()
            relative = path.relative_to(root).as_posix()
            if stat.S_ISLNK(info.st_mode):
                raise IntegrityError(
                    plugin, f"{relative} is a symbolic link; plugins may not contain links"
                )
            if entry in dirnames:
                continue
            if not stat.S_ISREG(info.st_mode):
                raise IntegrityError(plugin, f"{relative} is not a regular file")
            total += info.st_size
            if len(contents) >= MAX_PLUGIN_FILES or total > MAX_PLUGIN_BYTES:
                raise IntegrityError(
                    plugin, f"more than {MAX_PLUGIN_FILES} files or {MAX_PLUGIN_BYTES} bytes"
                )
            contents[relative] = path.read_bytes()
    return PluginFiles(root=root, contents=contents)


def _signed_payload(document: dict[str, Any]) -> bytes:
    unsigned = {key: value for key, value in document.items() if key != "signature"}
    return json.dumps(unsigned, sort_keys=True, separators=(",", ":")).encode()


def sign_plugin(
    files: PluginFiles, name: str, version: str, private_key: Ed25519PrivateKey
) -> dict[str, Any]:
    """The signature document for ``files`` (which must not include an old signature)."""
    document: dict[str, Any] = {
        "format": SIGNATURE_FORMAT,
        "plugin": name,
        "version": version,
        "key_id": key_id(private_key.public_key()),
        "files": files.digests(),
    }
    document["signature"] = base64.b64encode(private_key.sign(_signed_payload(document))).decode()
    return document


def parse_signature(data: bytes, plugin: str) -> dict[str, Any]:
    try:
        document = json.loads(data)
    except ValueError as exc:
        raise IntegrityError(plugin, f"{SIGNATURE_NAME} is not JSON ({exc})") from None
    if not isinstance(document, dict) or document.get("format") != SIGNATURE_FORMAT:
        raise IntegrityError(plugin, f"{SIGNATURE_NAME} is not a {SIGNATURE_FORMAT} document")
    for field, kind in (
        ("plugin", str),
        ("version", str),
        ("key_id", str),
        ("files", dict),
        ("signature", str),
    ):
        if not isinstance(document.get(field), kind):
            raise IntegrityError(plugin, f"{SIGNATURE_NAME} lacks a valid '{field}'")
    return document


def verify_signature(
    document: dict[str, Any],
    public_key: Ed25519PublicKey,
    files: PluginFiles,
    name: str,
    version: str,
) -> None:
    """Raise IntegrityError unless ``document`` signs exactly ``files`` for name and version."""
    from cryptography.exceptions import InvalidSignature

    try:
        public_key.verify(
            base64.b64decode(document["signature"], validate=True), _signed_payload(document)
        )
    except (InvalidSignature, ValueError):
        raise IntegrityError(
            name,
            "the signature does not verify: the signature file was "
            "altered or made with another key",
        ) from None
    if (document["plugin"], document["version"]) != (name, version):
        raise IntegrityError(
            name,
            f"the signature is for {document['plugin']} "
            f"{document['version']}, not {name} {version}",
        )
    signed: dict[str, str] = document["files"]
    actual = files.digests()
    changed = sorted(n for n in signed.keys() & actual.keys() if signed[n] != actual[n])
    added = sorted(actual.keys() - signed.keys())
    removed = sorted(signed.keys() - actual.keys())
    for what, names in (("changed", changed), ("added", added), ("removed", removed)):
        if names:
            raise IntegrityError(
                name,
                f"files {what} since signing: {', '.join(names)}",
                hint="reinstall the plugin from its source",
            )


def sign_folder(root: Path, private_key: Ed25519PrivateKey) -> dict[str, Any]:
    """Sign the plugin folder ``root`` in place (writes SIGNATURE.json, replacing an old one)."""
    manifest, _ = read_manifest(root)
    files = read_plugin_files(root, manifest.name)
    document = sign_plugin(files, manifest.name, manifest.version, private_key)
    temporary = root / f".{SIGNATURE_NAME}.tmp"
    temporary.write_text(json.dumps(document, indent=2, sort_keys=True) + "\n")
    temporary.replace(root / SIGNATURE_NAME)
    return document
