"""Publisher tokens: who may upload, and with which signing keys.

A publisher has one or more registered Ed25519 public keys (the ``NAME.pub`` files of
``forgeai key generate``) and any number of tokens. A token is ``fgr_`` plus 32 random bytes
(URL-safe base64); the registry keeps only its sha256, so a leaked database does not leak
tokens. An upload is accepted only when signed by one of its publisher's keys.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
from collections.abc import Sequence

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from forgeai_ls.errors import RegistryServerError
from forgeai_ls.plugins.signing import key_id
from forgeai_ls.registry.storage import (
    MetadataReader,
    MetadataStore,
    PublisherRecord,
    utc_now_text,
)

TOKEN_PREFIX = "fgr_"  # noqa: S105 (a marker that makes leaked tokens greppable)
_PUBLISHER_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


def token_sha256(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def create_token(
    store: MetadataStore, publisher: str, public_keys: Sequence[Ed25519PublicKey]
) -> str:
    """A new token for ``publisher`` (created if new), registering ``public_keys`` for it.

    Returns the token; it is not stored and cannot be shown again. A new publisher needs at
    least one key; a key already registered for another publisher is refused.
    """
    if not _PUBLISHER_NAME.fullmatch(publisher):
        raise RegistryServerError(
            f"publisher name {publisher!r} must be 1-64 letters, digits, '.', '_' or '-'"
        )
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    now = utc_now_text()
    with store.transaction() as transaction:
        existing = transaction.publisher(publisher)
        if existing is None and not public_keys:
            raise RegistryServerError(
                f"publisher '{publisher}' is new and needs at least one signing key",
                hint="pass --key NAME.pub (made by 'forgeai key generate NAME')",
            )
        transaction.add_publisher(publisher, now)
        for public_key in public_keys:
            identifier = key_id(public_key)
            owner = transaction.key_publisher(identifier)
            if owner is not None and owner != publisher:
                raise RegistryServerError(
                    f"key {identifier} is already registered for publisher '{owner}'",
                    hint="each signing key belongs to one publisher; generate another key",
                )
            raw = public_key.public_bytes(Encoding.Raw, PublicFormat.Raw)
            transaction.add_publisher_key(
                publisher, identifier, base64.b64encode(raw).decode(), now
            )
        transaction.add_token(token_sha256(token), publisher, now)
    return token


def authenticate(store: MetadataReader, token: str) -> PublisherRecord | None:
    """The publisher ``token`` belongs to, or None for an unknown or malformed token."""
    if not token.startswith(TOKEN_PREFIX) or len(token) > 256:
        return None
    digest = token_sha256(token)
    record = store.token(digest)
    if record is None or not hmac.compare_digest(record.token_sha256, digest):
        return None
    return store.publisher(record.publisher)


def registered_key(publisher: PublisherRecord, identifier: str) -> Ed25519PublicKey | None:
    """The publisher's registered public key with id ``identifier``, if it has one."""
    encoded = publisher.keys.get(identifier)
    if encoded is None:
        return None
    return Ed25519PublicKey.from_public_bytes(base64.b64decode(encoded))
