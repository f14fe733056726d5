"""Signing keys, the trust store and the trust policy.

``FORGEAI_HOME/keys/NAME.key`` holds a private Ed25519 key (PEM, mode 0600) and ``NAME.pub``
its public half. ``FORGEAI_HOME/trust/KEY_ID.json`` is a trusted public key with a level.
Levels, most trusted first: official (the ForgeAI team), enterprise (your organisation),
verified (a publisher a registry vouched for), community (anyone you chose to trust).
"""

from __future__ import annotations

import base64
import json
import os
import re
import time
from enum import IntEnum
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict

from forgeai_ls.errors import KeyStoreError
from forgeai_ls.home import forgeai_home
from forgeai_ls.plugins.signing import key_id

if TYPE_CHECKING:  # imported where keys are used: see signing.KEY_IMPORTS_NOTE
    from cryptography.hazmat.primitives.asymmetric.ed25519 import (
        Ed25519PrivateKey,
        Ed25519PublicKey,
    )


class TrustLevel(IntEnum):
    COMMUNITY = 1
    VERIFIED = 2
    ENTERPRISE = 3
    OFFICIAL = 4

    @classmethod
    def parse(cls, text: str) -> TrustLevel:
        try:
            return cls[text.strip().upper()]
        except KeyError:
            names = ", ".join(level.name.lower() for level in cls)
            raise KeyStoreError(
                f"unknown trust level '{text}'", hint=f"use one of: {names}"
            ) from None

    @property
    def label(self) -> str:
        return self.name.lower()


class TrustPolicy(BaseModel):
    """Which plugins may load: a minimum signer level; unsigned only in development."""

    model_config = ConfigDict(frozen=True)

    minimum_level: TrustLevel = TrustLevel.COMMUNITY
    allow_unsigned: bool = False
    """Development only: load plugin folders without a signature (reported as unsigned)."""


class TrustedKey(BaseModel):
    model_config = ConfigDict(frozen=True)

    key_id: str
    name: str
    level: TrustLevel
    public_key: str
    """Raw Ed25519 public key, base64."""
    added_at: float

    def load(self) -> Ed25519PublicKey:
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

        return Ed25519PublicKey.from_public_bytes(base64.b64decode(self.public_key))


def _raw_public(public_key: Ed25519PublicKey) -> str:
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    return base64.b64encode(public_key.public_bytes(Encoding.Raw, PublicFormat.Raw)).decode()


def _check_key_name(name: str) -> None:
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}", name):
        raise KeyStoreError(f"key name '{name}' must be letters, digits, '.', '_' or '-'")


class KeyStore:
    """Own key pairs under FORGEAI_HOME/keys."""

    def __init__(self, home: Path | None = None) -> None:
        self.directory = (home or forgeai_home()) / "keys"

    def generate(self, name: str) -> tuple[str, Path]:
        _check_key_name(name)
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        private_path = self.directory / f"{name}.key"
        if private_path.exists():
            raise KeyStoreError(
                f"a key named '{name}' already exists at {private_path}",
                hint="choose another name or remove the old key first",
            )
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
        from cryptography.hazmat.primitives.serialization import (
            Encoding,
            NoEncryption,
            PrivateFormat,
        )

        private = Ed25519PrivateKey.generate()
        pem = private.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())
        fd = os.open(private_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as out:
            out.write(pem)
        (self.directory / f"{name}.pub").write_text(_raw_public(private.public_key()) + "\n")
        return key_id(private.public_key()), private_path

    def private_key(self, name: str) -> Ed25519PrivateKey:
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
        from cryptography.hazmat.primitives.serialization import load_pem_private_key

        path = self.directory / f"{name}.key"
        try:
            key = load_pem_private_key(path.read_bytes(), password=None)
        except FileNotFoundError:
            raise KeyStoreError(
                f"no signing key named '{name}' in {self.directory}",
                hint="create one with 'forgeai key generate NAME'",
            ) from None
        except (ValueError, TypeError) as exc:
            raise KeyStoreError(
                f"{path} is not an unencrypted Ed25519 private key: {exc}"
            ) from None
        if not isinstance(key, Ed25519PrivateKey):
            raise KeyStoreError(f"{path} is not an Ed25519 key")
        return key

    def names(self) -> list[str]:
        return (
            sorted(p.stem for p in self.directory.glob("*.key")) if self.directory.is_dir() else []
        )

    def key_id(self, name: str) -> str:
        """The id of own key ``name`` (what a signature and a trust entry name it by)."""
        return key_id(self.private_key(name).public_key())


def load_public_key_text(text: str) -> Ed25519PublicKey:
    """A public key as written by ``forgeai key generate`` (NAME.pub: raw base64)."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    try:
        return Ed25519PublicKey.from_public_bytes(base64.b64decode(text.strip(), validate=True))
    except ValueError as exc:
        raise KeyStoreError(
            f"not an Ed25519 public key: {exc}",
            hint="pass the NAME.pub file made by 'forgeai key generate'",
        ) from None


class TrustStore:
    """Trusted public keys under FORGEAI_HOME/trust, plus keys the package itself trusts."""

    def __init__(self, home: Path | None = None) -> None:
        self.directory = (home or forgeai_home()) / "trust"
        self._cache: dict[str, TrustedKey] | None = None

    def trust(self, public_key: Ed25519PublicKey, name: str, level: TrustLevel) -> TrustedKey:
        _check_key_name(name)
        entry = TrustedKey(
            key_id=key_id(public_key),
            name=name,
            level=level,
            public_key=_raw_public(public_key),
            added_at=time.time(),
        )
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        target = self.directory / f"{entry.key_id}.json"
        temporary = target.with_suffix(".tmp")
        temporary.write_text(entry.model_dump_json(indent=2))
        temporary.replace(target)  # atomic: never a half-written trust entry
        self._cache = None
        return entry

    def untrust(self, key_id_or_name: str) -> TrustedKey:
        entry = self.find(key_id_or_name)
        (self.directory / f"{entry.key_id}.json").unlink()
        self._cache = None
        return entry

    def entries(self) -> dict[str, TrustedKey]:
        if self._cache is None:
            found: dict[str, TrustedKey] = {}
            for path in sorted(self.directory.glob("*.json")) if self.directory.is_dir() else []:
                try:
                    entry = TrustedKey.model_validate(json.loads(path.read_text()))
                except (ValueError, OSError):
                    continue  # a malformed entry trusts nobody
                if path.stem == entry.key_id and key_id(entry.load()) == entry.key_id:
                    found[entry.key_id] = entry
            self._cache = found
        return dict(self._cache)

    def get(self, key: str) -> TrustedKey | None:
        return self.entries().get(key)

    def find(self, key_id_or_name: str) -> TrustedKey:
        entries = self.entries()
        if key_id_or_name in entries:
            return entries[key_id_or_name]
        named = [e for e in entries.values() if e.name == key_id_or_name]
        if len(named) == 1:
            return named[0]
        raise KeyStoreError(
            f"no trusted key '{key_id_or_name}'"
            + (" (several keys have that name; use the key id)" if named else ""),
            hint="see 'forgeai key list'",
        )
