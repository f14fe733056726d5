"""The registry's signed TUF metadata (https://theupdateframework.io), made with python-tuf.

What the registry serves must be verifiable by clients that do not trust the server's
answers. Every plugin NAME has two kinds of targets in the top-level ``targets`` role:

- ``NAME/versions.json``: the exact bytes served by ``GET /v1/plugins/NAME/versions``;
- ``NAME/NAME-VERSION.fpkg``: every published archive;

each with its length and sha256. ``snapshot`` pins the ``targets`` version and ``timestamp``
pins the ``snapshot`` version, so a client that checks them cannot be given old (rollback),
stale (freeze) or altered files.

Keys: ``DATA/keys/root.pem`` signs ``root``; ``DATA/keys/online.pem`` signs ``targets``,
``snapshot`` and ``timestamp`` (Ed25519, PKCS#8 PEM, mode 0600), created on first start.
Metadata versions are rows of the metadata store; every root version is kept (clients walk
the chain from the root they pinned), the other roles keep their last 20 versions
(consistent snapshots: a client mid-refresh still finds the versions it was pointed to).
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    load_pem_private_key,
)
from securesystemslib.signer import CryptoSigner  # type: ignore[attr-defined]
from tuf.api.metadata import (  # type: ignore[attr-defined]
    Metadata,
    MetaFile,
    Root,
    Signed,
    Snapshot,
    TargetFile,
    Targets,
    Timestamp,
)
from tuf.repository import Repository  # type: ignore[attr-defined]

from forgeai_ls.errors import RegistryServerError
from forgeai_ls.registry.storage import MetadataStore, MetadataTransaction

ROOT, TARGETS, SNAPSHOT, TIMESTAMP = Root.type, Targets.type, Snapshot.type, Timestamp.type

EXPIRY: Mapping[str, timedelta] = {
    ROOT: timedelta(days=365),
    TARGETS: timedelta(days=365),
    SNAPSHOT: timedelta(days=7),
    TIMESTAMP: timedelta(days=1),
}
"""How long each role's metadata is valid after it is signed."""

RENEW_WITHIN: Mapping[str, timedelta] = {
    ROOT: timedelta(days=30),
    TARGETS: timedelta(days=30),
    SNAPSHOT: timedelta(days=2),
    TIMESTAMP: timedelta(hours=12),
}
"""Metadata closer than this to its expiry is re-signed when the timestamp is served."""

KEEP_VERSIONS = 20
"""Versions kept of targets, snapshot and timestamp (root keeps every version)."""

ROOT_KEY_FILE = "root.pem"
ONLINE_KEY_FILE = "online.pem"

_NEW_SIGNED: Mapping[str, Callable[[], Signed]] = {
    ROOT: Root,
    TARGETS: Targets,
    SNAPSHOT: Snapshot,
    TIMESTAMP: Timestamp,
}
_VERSIONED_FILE = re.compile(r"([1-9][0-9]{0,9})\.(root|snapshot|targets)\.json")

Clock = Callable[[], datetime]


def _utc_now() -> datetime:
    return datetime.now(UTC)


def target_paths(name: str, archive_file: str) -> tuple[str, str]:
    """The TUF target paths of a plugin's version list and of one of its archives."""
    return f"{name}/versions.json", f"{name}/{archive_file}"


def _create_key(path: Path) -> None:
    """A new Ed25519 key in ``path`` (mode 0600), which appears whole or not at all."""
    key = Ed25519PrivateKey.generate()
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()))
            out.flush()
            os.fsync(out.fileno())
        os.link(temporary, path)  # fails if another process created the key first
    except FileExistsError:
        pass
    finally:
        temporary.unlink(missing_ok=True)


def _load_signer(path: Path, *, create: bool) -> CryptoSigner:
    """The Ed25519 key in ``path`` as a signer; created first if missing and ``create``."""
    try:
        if create and not path.exists():
            _create_key(path)
        mode = path.stat().st_mode
        data = path.read_bytes()
    except FileNotFoundError:
        raise RegistryServerError(
            f"the TUF key {path} is missing, but the registry's root metadata exists",
            hint="restore DATA/keys from the backup made with the database",
        ) from None
    except OSError as exc:
        raise RegistryServerError(f"cannot read or create the TUF key {path}: {exc}") from None
    if mode & 0o077:
        raise RegistryServerError(
            f"the TUF key {path} is readable by other users", hint=f"chmod 600 {path}"
        )
    try:
        loaded = load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as exc:
        raise RegistryServerError(f"cannot load the TUF key {path}: {exc}") from None
    if not isinstance(loaded, Ed25519PrivateKey):
        raise RegistryServerError(f"the TUF key {path} is not an Ed25519 key")
    return CryptoSigner(loaded)


class _StoredRepository(Repository):
    """python-tuf's Repository over one metadata-store transaction: ``open`` reads the newest
    version of a role, ``close`` bumps version and expiry, signs and stores it."""

    def __init__(
        self,
        transaction: MetadataTransaction,
        signers: Mapping[str, CryptoSigner],
        now: datetime,
    ) -> None:
        self._transaction = transaction
        self._signers = signers
        self._now = now

    def open(self, role: str) -> Metadata[Any]:
        stored = self._transaction.latest_tuf_metadata(role)
        if stored is None:
            metadata: Metadata[Any] = Metadata(_NEW_SIGNED[role]())
            metadata.signed.version = 0  # close() makes it 1
            return metadata
        return Metadata.from_bytes(stored[1])

    def close(self, role: str, md: Metadata[Any]) -> None:
        md.signed.version += 1
        md.signed.expires = self._now + EXPIRY[role]
        md.signatures.clear()
        md.sign(self._signers[role], append=True)
        self._transaction.put_tuf_metadata(role, md.signed.version, md.to_bytes())
        if role != ROOT:
            self._transaction.prune_tuf_metadata(role, KEEP_VERSIONS)

    def _version(self, role: str) -> int:
        stored = self._transaction.latest_tuf_metadata(role)
        return 0 if stored is None else stored[0]

    @property
    def targets_infos(self) -> dict[str, MetaFile]:
        return {f"{TARGETS}.json": MetaFile(self._version(TARGETS))}

    @property
    def snapshot_info(self) -> MetaFile:
        return MetaFile(self._version(SNAPSHOT))

    def expires_soon(self, role: str) -> bool:
        return bool(self.open(role).signed.expires - self._now < RENEW_WITHIN[role])


class TufRepository:
    """The registry's TUF roles: created on first start, updated by every publish, renewed
    before they expire."""

    def __init__(self, keys_directory: Path, *, clock: Clock = _utc_now) -> None:
        self.keys_directory = keys_directory
        self._clock = clock
        self._signers: dict[str, CryptoSigner] = {}

    def _repository(self, transaction: MetadataTransaction) -> _StoredRepository:
        if not self._signers:
            raise RuntimeError("TufRepository.initialize() was not called")
        return _StoredRepository(transaction, self._signers, self._clock())

    def _load_signers(self, *, create: bool) -> dict[str, CryptoSigner]:
        try:
            self.keys_directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        except OSError as exc:
            raise RegistryServerError(
                f"cannot create {self.keys_directory}: {exc.strerror}"
            ) from None
        root = _load_signer(self.keys_directory / ROOT_KEY_FILE, create=create)
        online = _load_signer(self.keys_directory / ONLINE_KEY_FILE, create=create)
        return {ROOT: root, TARGETS: online, SNAPSHOT: online, TIMESTAMP: online}

    def initialize(self, store: MetadataStore) -> None:
        """Load the keys; in an empty store create them (if need be) and version 1 of every
        role; in an existing one check that the keys are the root's. Then renew what is
        about to expire. Call once, before anything else."""
        with store.transaction() as transaction:
            new = transaction.latest_tuf_metadata(ROOT) is None
            self._signers = self._load_signers(create=new)
            repository = self._repository(transaction)
            if new:
                with repository.edit_root() as root:
                    for role, signer in self._signers.items():
                        root.add_key(signer.public_key, role)
                with repository.edit_targets():
                    pass
                repository.do_snapshot()
                repository.do_timestamp()
                return
            root = repository.root()
            for role, signer in self._signers.items():
                if signer.public_key.keyid not in root.roles[role].keyids:
                    raise RegistryServerError(
                        f"the key in {self.keys_directory} for the TUF role '{role}' is not "
                        "the one the registry's root metadata names",
                        hint="restore DATA/keys from the backup made with the database",
                    )
        self.renew_expiring(store)

    def add_targets(self, transaction: MetadataTransaction, targets: Mapping[str, bytes]) -> None:
        """Sign ``targets`` (path -> content) into a new targets, snapshot and timestamp, as
        part of ``transaction``."""
        repository = self._repository(transaction)
        with repository.edit_targets() as signed:
            for path, data in targets.items():
                signed.targets[path] = TargetFile.from_data(path, data, ["sha256"])
        repository.do_snapshot()
        repository.do_timestamp()

    def renew_expiring(self, store: MetadataStore) -> bool:
        """Re-sign the timestamp when it expires within 12 hours, and first whatever else is
        close to expiry. Returns whether anything was re-signed."""
        stored = store.latest_tuf_metadata(TIMESTAMP)
        if stored is not None:
            expires = Metadata.from_bytes(stored[1]).signed.expires
            if expires - self._clock() >= RENEW_WITHIN[TIMESTAMP]:
                return False  # the common case: no lock, no write
        with store.transaction() as transaction:
            repository = self._repository(transaction)
            if not repository.expires_soon(TIMESTAMP):
                return False  # another thread renewed it first
            if repository.expires_soon(ROOT):
                with repository.edit_root():
                    pass
            if repository.expires_soon(TARGETS):
                with repository.edit_targets():
                    pass
            repository.do_snapshot(force=repository.expires_soon(SNAPSHOT))
            repository.do_timestamp(force=True)
        return True

    def metadata_file(self, store: MetadataStore, filename: str) -> bytes | None:
        """The bytes of ``timestamp.json`` or ``N.root.json``, ``N.snapshot.json``,
        ``N.targets.json`` (consistent snapshots); None if there is no such file."""
        if filename == f"{TIMESTAMP}.json":
            self.renew_expiring(store)
            stored = store.latest_tuf_metadata(TIMESTAMP)
            return None if stored is None else stored[1]
        match = _VERSIONED_FILE.fullmatch(filename)
        if match is None:
            return None
        return store.tuf_metadata(match.group(2), int(match.group(1)))
