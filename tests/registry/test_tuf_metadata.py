"""The registry's TUF roles over time: renewal before expiry, pruning, key checks.

These drive TufRepository directly with a clock the test moves (no waiting).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from tuf.api.metadata import Metadata

from forgeai_ls.errors import RegistryServerError
from forgeai_ls.registry.storage import SQLiteMetadataStore
from forgeai_ls.registry.tuf_repository import KEEP_VERSIONS, TufRepository

START = datetime(2030, 1, 1, tzinfo=UTC)


class Clock:
    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SQLiteMetadataStore]:
    opened = SQLiteMetadataStore(tmp_path / "registry.sqlite3")
    yield opened
    opened.close()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def tuf(tmp_path: Path, store: SQLiteMetadataStore, clock: Clock) -> TufRepository:
    repository = TufRepository(tmp_path / "keys", clock=clock)
    repository.initialize(store)
    return repository


def _served(tuf: TufRepository, store: SQLiteMetadataStore, filename: str) -> Any:
    data = tuf.metadata_file(store, filename)
    assert data is not None
    return Metadata.from_bytes(data).signed


def test_first_start_creates_version_one_of_every_role(
    tuf: TufRepository, store: SQLiteMetadataStore
) -> None:
    timestamp = _served(tuf, store, "timestamp.json")
    assert timestamp.version == 1 and timestamp.snapshot_meta.version == 1
    assert timestamp.expires == START + timedelta(days=1)
    assert _served(tuf, store, "1.snapshot.json").expires == START + timedelta(days=7)
    assert _served(tuf, store, "1.targets.json").expires == START + timedelta(days=365)
    assert _served(tuf, store, "1.root.json").expires == START + timedelta(days=365)


def test_timestamp_is_resigned_when_it_expires_within_12_hours(
    tuf: TufRepository, store: SQLiteMetadataStore, clock: Clock
) -> None:
    clock.now = START + timedelta(hours=11)
    assert _served(tuf, store, "timestamp.json").version == 1
    clock.now = START + timedelta(hours=13)
    renewed = _served(tuf, store, "timestamp.json")
    assert renewed.version == 2
    assert renewed.expires == clock.now + timedelta(days=1)
    assert renewed.snapshot_meta.version == 1  # the snapshot still had days to go


def test_snapshot_is_resigned_first_when_it_expires_within_2_days(
    tuf: TufRepository, store: SQLiteMetadataStore, clock: Clock
) -> None:
    clock.now = START + timedelta(days=5, hours=1)
    timestamp = _served(tuf, store, "timestamp.json")
    assert timestamp.snapshot_meta.version == 2
    snapshot = _served(tuf, store, "2.snapshot.json")
    assert snapshot.expires == clock.now + timedelta(days=7)


def test_targets_and_snapshot_keep_their_last_versions_root_keeps_all(
    tuf: TufRepository, store: SQLiteMetadataStore
) -> None:
    for index in range(KEEP_VERSIONS + 5):
        with store.transaction() as transaction:
            tuf.add_targets(transaction, {f"p{index}/versions.json": b"{}"})
    latest = 1 + KEEP_VERSIONS + 5
    assert store.tuf_metadata("targets", latest) is not None
    assert store.tuf_metadata("targets", latest - KEEP_VERSIONS + 1) is not None
    assert store.tuf_metadata("targets", latest - KEEP_VERSIONS) is None
    assert store.tuf_metadata("snapshot", latest - KEEP_VERSIONS) is None
    assert store.tuf_metadata("root", 1) is not None
    targets = _served(tuf, store, f"{latest}.targets.json")
    assert len(targets.targets) == KEEP_VERSIONS + 5  # every target is still listed


def test_a_failed_transaction_leaves_the_metadata_unchanged(
    tuf: TufRepository, store: SQLiteMetadataStore
) -> None:
    with pytest.raises(RuntimeError), store.transaction() as transaction:
        tuf.add_targets(transaction, {"p/versions.json": b"{}"})
        raise RuntimeError("the publish failed after signing")
    assert store.latest_tuf_metadata("targets") is not None
    assert store.tuf_metadata("targets", 2) is None
    assert _served(tuf, store, "timestamp.json").version == 1


def test_other_keys_than_the_roots_are_refused(
    tuf: TufRepository, store: SQLiteMetadataStore, tmp_path: Path
) -> None:
    with SQLiteMetadataStore(tmp_path / "other.sqlite3") as other:
        TufRepository(tmp_path / "other-keys").initialize(other)
    with pytest.raises(RegistryServerError, match="not the one the registry's root"):
        TufRepository(tmp_path / "other-keys").initialize(store)


def test_missing_keys_of_an_existing_registry_are_not_replaced(
    tuf: TufRepository, store: SQLiteMetadataStore, tmp_path: Path
) -> None:
    """Keys lost but metadata kept: refused, and no new keys are made in their place."""
    with pytest.raises(RegistryServerError, match="missing") as refused:
        TufRepository(tmp_path / "lost-keys").initialize(store)
    assert refused.value.hint is not None and "backup" in refused.value.hint
    assert not (tmp_path / "lost-keys" / "root.pem").exists()


def test_a_key_file_readable_by_others_is_refused(
    tuf: TufRepository, store: SQLiteMetadataStore, tmp_path: Path
) -> None:
    (tmp_path / "keys" / "online.pem").chmod(0o644)
    with pytest.raises(RegistryServerError, match="readable by other users") as refused:
        TufRepository(tmp_path / "keys").initialize(store)
    assert refused.value.hint is not None and "chmod 600" in refused.value.hint
