"""Where a registry keeps what it serves: metadata in a database, archives in a blob store.

Two Protocols are the seam between the registry and its storage:

- :class:`MetadataStore`: publishers, their keys and tokens, plugins, versions, each plugin's
  ``versions.json`` document and the TUF metadata, with all writes of one publish in one
  transaction (:meth:`MetadataStore.transaction`).
- :class:`BlobStore`: archives by sha256, written durably and atomically, never changed.

The embedded defaults, :class:`SQLiteMetadataStore` (``DATA/registry.sqlite3``, WAL) and
:class:`FileBlobStore` (``DATA/blobs/sha256/ab/<hex>``), serve one registry process. A larger
deployment implements the same Protocols over PostgreSQL (one ``BEGIN ... COMMIT`` per
transaction, ``SELECT ... FOR UPDATE`` or an advisory lock in place of the threading lock) and
an object store (S3 ``PutObject`` of the sha256 key, which is atomic), and passes them to
:class:`forgeai_ls.registry.service.RegistryService`. See docs/registry.md.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import sqlite3
import threading
from collections.abc import Iterator, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO, Protocol

from packaging.version import Version

from forgeai_ls.errors import RegistryServerError

DATABASE_NAME = "registry.sqlite3"
BLOBS_DIRECTORY = "blobs"
_SHA256 = re.compile(r"[0-9a-f]{64}")


def utc_now_text() -> str:
    """Now as ISO 8601 UTC with a ``Z``, to the second: how the registry writes times."""
    return datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


@dataclass(frozen=True, slots=True)
class VersionRecord:
    """One published version of a plugin."""

    name: str
    version: str
    sha256: str
    size: int
    key_id: str
    publisher: str
    description: str
    author: str
    license: str
    homepage: str | None
    repository: str | None
    languages: tuple[str, ...]
    minimum_forgeai_version: str
    maximum_forgeai_version: str | None
    published_at: str
    """ISO 8601, UTC (``2025-01-31T12:00:00Z``)."""
    yanked_at: str | None = None
    """When its publisher yanked it: hidden from resolution, still downloadable when pinned."""


@dataclass(frozen=True, slots=True)
class PluginRecord:
    """A plugin name: who owns it and a summary of its latest (highest) version."""

    name: str
    owner: str
    latest_version: str
    description: str
    author: str
    languages: tuple[str, ...]
    updated_at: str
    """When a version of it was last published (ISO 8601, UTC)."""


@dataclass(frozen=True, slots=True)
class PublisherRecord:
    """A publisher and the Ed25519 keys it may sign with: key id -> raw public key, base64."""

    name: str
    keys: Mapping[str, str]


@dataclass(frozen=True, slots=True)
class TokenRecord:
    """A publisher token, known only by its sha256 (hex)."""

    token_sha256: str
    publisher: str
    created_at: str


class MetadataReader(Protocol):
    """Reads, inside or outside a transaction."""

    def plugin(self, name: str) -> PluginRecord | None: ...

    def versions(self, name: str) -> list[VersionRecord]:
        """Every version of ``name``, ascending by version number; empty if none."""
        ...

    def version(self, name: str, version: str) -> VersionRecord | None: ...

    def versions_document(self, name: str) -> bytes | None:
        """The exact bytes of ``NAME/versions.json`` as signed into the TUF targets."""
        ...

    def token(self, token_sha256: str) -> TokenRecord | None: ...

    def tokens(self) -> list[TokenRecord]:
        """Every token (by its sha256), oldest first."""
        ...

    def publisher(self, name: str) -> PublisherRecord | None: ...

    def key_publisher(self, key_id: str) -> str | None:
        """The publisher a signing key is registered for, if any."""
        ...

    def latest_tuf_metadata(self, role: str) -> tuple[int, bytes] | None:
        """The highest version of a top-level TUF role's metadata and its bytes."""
        ...

    def tuf_metadata(self, role: str, version: int) -> bytes | None: ...


class MetadataTransaction(MetadataReader, Protocol):
    """Writes that become visible together at commit, or not at all."""

    def add_version(
        self, record: VersionRecord, plugin: PluginRecord, versions_document: bytes
    ) -> None:
        """Store a new version with its plugin's updated summary and ``versions.json``."""
        ...

    def add_publisher(self, name: str, created_at: str) -> None:
        """Create the publisher unless it exists."""
        ...

    def add_publisher_key(
        self, publisher: str, key_id: str, public_key: str, added_at: str
    ) -> None: ...

    def add_token(self, token_sha256: str, publisher: str, created_at: str) -> None: ...

    def remove_token(self, token_sha256: str) -> bool:
        """Revoke a token; False when there was none."""
        ...

    def yank_version(
        self,
        name: str,
        version: str,
        yanked_at: str,
        plugin: PluginRecord,
        versions_document: bytes,
    ) -> None:
        """Mark a version yanked, with its plugin's updated summary and ``versions.json``."""
        ...

    def remove_publisher_key(self, publisher: str, key_id: str) -> bool:
        """Stop accepting ``key_id`` for ``publisher``'s uploads; False when not registered."""
        ...

    def put_tuf_metadata(self, role: str, version: int, data: bytes) -> None: ...

    def prune_tuf_metadata(self, role: str, keep: int) -> None:
        """Delete all but the ``keep`` highest versions of ``role``."""
        ...


class MetadataStore(MetadataReader, Protocol):
    def search_plugins(self, query: str, limit: int, offset: int) -> tuple[list[PluginRecord], int]:
        """Plugins whose name, description or a language name contains ``query``
        (case-insensitive; empty matches all), sorted by name: one page and the total."""
        ...

    def transaction(self) -> AbstractContextManager[MetadataTransaction]:
        """Exclusive: one writer at a time, committed on success, rolled back on error."""
        ...

    def close(self) -> None: ...


class BlobStore(Protocol):
    """Archives by content: the key is the sha256 of the bytes, so a blob never changes."""

    def put(self, data: bytes) -> str:
        """Store ``data`` durably (atomically: whole or not at all); return its sha256 hex."""
        ...

    def open(self, sha256: str) -> BinaryIO:
        """A readable stream of the blob; FileNotFoundError if there is none."""
        ...


_SCHEMA = """
CREATE TABLE IF NOT EXISTS publishers (
    name TEXT PRIMARY KEY,
    created_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS publisher_keys (
    key_id TEXT PRIMARY KEY,
    publisher TEXT NOT NULL REFERENCES publishers(name),
    public_key TEXT NOT NULL,
    added_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS tokens (
    token_sha256 TEXT PRIMARY KEY,
    publisher TEXT NOT NULL REFERENCES publishers(name),
    created_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS plugins (
    name TEXT PRIMARY KEY,
    owner TEXT NOT NULL REFERENCES publishers(name),
    latest_version TEXT NOT NULL,
    description TEXT NOT NULL,
    author TEXT NOT NULL,
    languages TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    versions_document BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS plugin_versions (
    name TEXT NOT NULL REFERENCES plugins(name),
    version TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    size INTEGER NOT NULL,
    key_id TEXT NOT NULL,
    publisher TEXT NOT NULL,
    description TEXT NOT NULL,
    author TEXT NOT NULL,
    license TEXT NOT NULL,
    homepage TEXT,
    repository TEXT,
    languages TEXT NOT NULL,
    minimum_forgeai_version TEXT NOT NULL,
    maximum_forgeai_version TEXT,
    published_at TEXT NOT NULL,
    PRIMARY KEY (name, version)
);
CREATE TABLE IF NOT EXISTS tuf_metadata (
    role TEXT NOT NULL,
    version INTEGER NOT NULL,
    data BLOB NOT NULL,
    PRIMARY KEY (role, version)
);
"""

_SELECT_VERSIONS = (
    "SELECT name, version, sha256, size, key_id, publisher, description, author, license, "
    "homepage, repository, languages, minimum_forgeai_version, maximum_forgeai_version, "
    "published_at, yanked_at FROM plugin_versions WHERE name = ?"
)
_SELECT_PLUGINS = (
    "SELECT name, owner, latest_version, description, author, languages, updated_at FROM plugins"
)


def _matches(query: str, name: str, description: str, languages: str) -> bool:
    """The search rule (registered as an SQL function): case-insensitive substring."""
    needle = query.casefold()
    return (
        needle in name.casefold()
        or needle in description.casefold()
        or any(needle in language.casefold() for language in json.loads(languages))
    )


def _version_record(row: sqlite3.Row) -> VersionRecord:
    values = dict(row)
    values["languages"] = tuple(json.loads(values["languages"]))
    return VersionRecord(**values)


def _plugin_record(row: sqlite3.Row) -> PluginRecord:
    values = dict(row)
    values["languages"] = tuple(json.loads(values["languages"]))
    return PluginRecord(**values)


class _SQLiteQueries:
    """The reads, over whichever connection the subclass provides."""

    def _connection(self) -> sqlite3.Connection:
        raise NotImplementedError

    def plugin(self, name: str) -> PluginRecord | None:
        row = self._connection().execute(_SELECT_PLUGINS + " WHERE name = ?", (name,)).fetchone()
        return None if row is None else _plugin_record(row)

    def versions(self, name: str) -> list[VersionRecord]:
        rows = self._connection().execute(_SELECT_VERSIONS, (name,))
        return sorted(map(_version_record, rows), key=lambda record: Version(record.version))

    def version(self, name: str, version: str) -> VersionRecord | None:
        row = (
            self._connection()
            .execute(
                _SELECT_VERSIONS + " AND version = ?",
                (name, version),
            )
            .fetchone()
        )
        return None if row is None else _version_record(row)

    def versions_document(self, name: str) -> bytes | None:
        row = (
            self._connection()
            .execute("SELECT versions_document FROM plugins WHERE name = ?", (name,))
            .fetchone()
        )
        return None if row is None else bytes(row[0])

    def token(self, token_sha256: str) -> TokenRecord | None:
        row = (
            self._connection()
            .execute(
                "SELECT token_sha256, publisher, created_at FROM tokens WHERE token_sha256 = ?",
                (token_sha256,),
            )
            .fetchone()
        )
        return None if row is None else TokenRecord(**dict(row))

    def tokens(self) -> list[TokenRecord]:
        rows = self._connection().execute(
            "SELECT token_sha256, publisher, created_at FROM tokens ORDER BY created_at, publisher"
        )
        return [TokenRecord(**dict(row)) for row in rows]

    def publisher(self, name: str) -> PublisherRecord | None:
        connection = self._connection()
        if connection.execute("SELECT 1 FROM publishers WHERE name = ?", (name,)).fetchone():
            rows = connection.execute(
                "SELECT key_id, public_key FROM publisher_keys WHERE publisher = ?", (name,)
            )
            return PublisherRecord(name=name, keys={row[0]: row[1] for row in rows})
        return None

    def key_publisher(self, key_id: str) -> str | None:
        row = (
            self._connection()
            .execute("SELECT publisher FROM publisher_keys WHERE key_id = ?", (key_id,))
            .fetchone()
        )
        return None if row is None else str(row[0])

    def latest_tuf_metadata(self, role: str) -> tuple[int, bytes] | None:
        row = (
            self._connection()
            .execute(
                "SELECT version, data FROM tuf_metadata WHERE role = ? "
                "ORDER BY version DESC LIMIT 1",
                (role,),
            )
            .fetchone()
        )
        return None if row is None else (int(row[0]), bytes(row[1]))

    def tuf_metadata(self, role: str, version: int) -> bytes | None:
        row = (
            self._connection()
            .execute(
                "SELECT data FROM tuf_metadata WHERE role = ? AND version = ?", (role, version)
            )
            .fetchone()
        )
        return None if row is None else bytes(row[0])


class SQLiteTransaction(_SQLiteQueries):
    """Reads and writes on the store's single writer connection, inside BEGIN IMMEDIATE."""

    def __init__(self, connection: sqlite3.Connection) -> None:
        self._writer = connection

    def _connection(self) -> sqlite3.Connection:
        return self._writer

    def add_version(
        self, record: VersionRecord, plugin: PluginRecord, versions_document: bytes
    ) -> None:
        self._writer.execute(
            "INSERT INTO plugins (name, owner, latest_version, description, author, languages, "
            "updated_at, versions_document) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (name) DO UPDATE SET "
            "latest_version = excluded.latest_version, description = excluded.description, "
            "author = excluded.author, languages = excluded.languages, "
            "updated_at = excluded.updated_at, versions_document = excluded.versions_document",
            (
                plugin.name,
                plugin.owner,
                plugin.latest_version,
                plugin.description,
                plugin.author,
                json.dumps(list(plugin.languages)),
                plugin.updated_at,
                versions_document,
            ),
        )
        self._writer.execute(
            "INSERT INTO plugin_versions (name, version, sha256, size, key_id, publisher, "
            "description, author, license, homepage, repository, languages, "
            "minimum_forgeai_version, maximum_forgeai_version, published_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                record.name,
                record.version,
                record.sha256,
                record.size,
                record.key_id,
                record.publisher,
                record.description,
                record.author,
                record.license,
                record.homepage,
                record.repository,
                json.dumps(list(record.languages)),
                record.minimum_forgeai_version,
                record.maximum_forgeai_version,
                record.published_at,
            ),
        )

    def add_publisher(self, name: str, created_at: str) -> None:
        self._writer.execute(
            "INSERT INTO publishers (name, created_at) VALUES (?, ?) ON CONFLICT DO NOTHING",
            (name, created_at),
        )

    def add_publisher_key(
        self, publisher: str, key_id: str, public_key: str, added_at: str
    ) -> None:
        self._writer.execute(
            "INSERT INTO publisher_keys (key_id, publisher, public_key, added_at) "
            "VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING",
            (key_id, publisher, public_key, added_at),
        )

    def add_token(self, token_sha256: str, publisher: str, created_at: str) -> None:
        self._writer.execute(
            "INSERT INTO tokens (token_sha256, publisher, created_at) VALUES (?, ?, ?)",
            (token_sha256, publisher, created_at),
        )

    def yank_version(
        self,
        name: str,
        version: str,
        yanked_at: str,
        plugin: PluginRecord,
        versions_document: bytes,
    ) -> None:
        self._writer.execute(
            "UPDATE plugin_versions SET yanked_at = ? WHERE name = ? AND version = ?",
            (yanked_at, name, version),
        )
        self._writer.execute(
            "UPDATE plugins SET latest_version = ?, description = ?, author = ?, languages = ?, "
            "updated_at = ?, versions_document = ? WHERE name = ?",
            (
                plugin.latest_version,
                plugin.description,
                plugin.author,
                json.dumps(list(plugin.languages)),
                plugin.updated_at,
                versions_document,
                name,
            ),
        )

    def remove_token(self, token_sha256: str) -> bool:
        cursor = self._writer.execute("DELETE FROM tokens WHERE token_sha256 = ?", (token_sha256,))
        return cursor.rowcount > 0

    def remove_publisher_key(self, publisher: str, key_id: str) -> bool:
        cursor = self._writer.execute(
            "DELETE FROM publisher_keys WHERE publisher = ? AND key_id = ?", (publisher, key_id)
        )
        return cursor.rowcount > 0

    def put_tuf_metadata(self, role: str, version: int, data: bytes) -> None:
        self._writer.execute(
            "INSERT INTO tuf_metadata (role, version, data) VALUES (?, ?, ?)",
            (role, version, data),
        )

    def prune_tuf_metadata(self, role: str, keep: int) -> None:
        self._writer.execute(
            "DELETE FROM tuf_metadata WHERE role = ? AND version NOT IN "
            "(SELECT version FROM tuf_metadata WHERE role = ? ORDER BY version DESC LIMIT ?)",
            (role, role, keep),
        )


class SQLiteMetadataStore(_SQLiteQueries):
    """The embedded metadata store: one SQLite file in WAL mode.

    Reads use one connection per thread and never wait for a writer (WAL). Writes go through
    one connection under a threading lock, in ``BEGIN IMMEDIATE`` transactions, so another
    process on the same file (``forgeai registry token create``) waits for its turn
    (busy timeout) instead of failing.
    """

    def __init__(self, path: Path, *, busy_timeout: float = 30.0) -> None:
        self.path = path
        self._busy_timeout = busy_timeout
        self._write_lock = threading.Lock()
        self._local = threading.local()
        self._opened: list[sqlite3.Connection] = []
        self._opened_lock = threading.Lock()
        try:
            path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            self._writer = self._connect()
            self._writer.execute("PRAGMA journal_mode=WAL")
            with self.transaction() as transaction:
                for statement in _SCHEMA.split(";"):
                    if statement.strip():
                        transaction._writer.execute(statement)
                columns = {
                    row[1]
                    for row in transaction._writer.execute("PRAGMA table_info(plugin_versions)")
                }
                if "yanked_at" not in columns:  # a database made before yanking existed
                    transaction._writer.execute(
                        "ALTER TABLE plugin_versions ADD COLUMN yanked_at TEXT"
                    )
        except (OSError, sqlite3.Error) as exc:
            self.close()
            raise RegistryServerError(
                f"cannot open the registry database {path}: {exc}",
                hint="check that the data directory is writable and not a different program's",
            ) from None

    def _connect(self) -> sqlite3.Connection:
        connection = sqlite3.connect(
            self.path, timeout=self._busy_timeout, isolation_level=None, check_same_thread=False
        )
        connection.row_factory = sqlite3.Row
        connection.create_function("forgeai_matches", 4, _matches, deterministic=True)
        with self._opened_lock:
            self._opened.append(connection)
        return connection

    def _connection(self) -> sqlite3.Connection:
        connection: sqlite3.Connection | None = getattr(self._local, "connection", None)
        if connection is None:
            connection = self._connect()
            self._local.connection = connection
        return connection

    def search_plugins(self, query: str, limit: int, offset: int) -> tuple[list[PluginRecord], int]:
        connection = self._connection()
        if query:
            matching = " WHERE forgeai_matches(?, name, description, languages)"
            total = connection.execute(
                "SELECT count(*) FROM plugins WHERE forgeai_matches(?, name, description, "
                "languages)",
                (query,),
            ).fetchone()
            rows = connection.execute(
                _SELECT_PLUGINS + matching + " ORDER BY name LIMIT ? OFFSET ?",
                (query, limit, offset),
            )
        else:
            total = connection.execute("SELECT count(*) FROM plugins").fetchone()
            rows = connection.execute(
                _SELECT_PLUGINS + " ORDER BY name LIMIT ? OFFSET ?", (limit, offset)
            )
        return [_plugin_record(row) for row in rows], int(total[0])

    @contextlib.contextmanager
    def transaction(self) -> Iterator[SQLiteTransaction]:
        with self._write_lock:
            self._writer.execute("BEGIN IMMEDIATE")
            try:
                yield SQLiteTransaction(self._writer)
            except BaseException:
                self._writer.execute("ROLLBACK")
                raise
            self._writer.execute("COMMIT")

    def __enter__(self) -> SQLiteMetadataStore:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def close(self) -> None:
        with self._opened_lock:
            opened, self._opened = self._opened, []
        for connection in opened:
            connection.close()


class FileBlobStore:
    """Blobs as files ``ROOT/sha256/ab/abcdef...``: written to a temporary file in the same
    directory, fsynced, then renamed into place, so a reader sees a whole blob or none."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def path(self, sha256: str) -> Path:
        if not _SHA256.fullmatch(sha256):
            raise ValueError(f"{sha256!r} is not a sha256 hex digest")
        return self.root / "sha256" / sha256[:2] / sha256

    def put(self, data: bytes) -> str:
        digest = hashlib.sha256(data).hexdigest()
        target = self.path(digest)
        if target.is_file() and target.stat().st_size == len(data):
            return digest  # content addressed: the same name holds the same bytes
        target.parent.mkdir(parents=True, exist_ok=True, mode=0o755)
        temporary = target.parent / f".{digest}.{os.getpid()}.{threading.get_ident()}.tmp"
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(data)
                out.flush()
                os.fsync(out.fileno())
            os.replace(temporary, target)
        except BaseException:
            temporary.unlink(missing_ok=True)
            raise
        directory = os.open(target.parent, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(directory)  # the rename itself survives a crash
        finally:
            os.close(directory)
        return digest

    def open(self, sha256: str) -> BinaryIO:
        return self.path(sha256).open("rb")
