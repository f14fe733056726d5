"""A standard TUF client (python-tuf's ngclient) verifies what the registry serves."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
from tuf.ngclient import Updater

from tests.registry.conftest import ArchiveFactory, RunningRegistry


def _updater(registry: RunningRegistry, directory: Path, root: bytes | None) -> Updater:
    """An ngclient Updater; ``root`` bootstraps trust, None reuses the one cached there."""
    directory.mkdir(exist_ok=True)
    updater = Updater(
        metadata_dir=str(directory),
        metadata_base_url=f"{registry.url}/v1/tuf/",
        bootstrap=root,
    )
    updater.refresh()
    return updater


def test_version_list_and_archive_verify_against_signed_targets(
    registry: RunningRegistry, archives: ArchiveFactory, http: httpx.Client, tmp_path: Path
) -> None:
    """Pinned on 1.root.json, the client finds both targets and their bytes match."""
    token = registry.token("alice", archives.key("alice"))
    data = archives.archive("demo-plugin", key="alice")
    assert registry.publish(data, token).status_code == 201
    root = http.get(f"{registry.url}/v1/tuf/1.root.json").content
    updater = _updater(registry, tmp_path / "tuf", root)

    versions = http.get(f"{registry.url}/v1/plugins/demo-plugin/versions").content
    info = updater.get_targetinfo("demo-plugin/versions.json")
    assert info is not None
    info.verify_length_and_hashes(versions)

    archive = updater.get_targetinfo("demo-plugin/demo-plugin-1.0.0.fpkg")
    assert archive is not None
    archive.verify_length_and_hashes(data)


def test_a_new_version_appears_after_the_next_refresh(
    registry: RunningRegistry, archives: ArchiveFactory, http: httpx.Client, tmp_path: Path
) -> None:
    """After another publish, a client with the pinned root sees the new signed list."""
    token = registry.token("alice", archives.key("alice"))
    assert registry.publish(archives.archive("demo-plugin", key="alice"), token).status_code == 201
    root = http.get(f"{registry.url}/v1/tuf/1.root.json").content
    first = _updater(registry, tmp_path / "tuf", root).get_targetinfo("demo-plugin/versions.json")
    assert first is not None

    second_version = archives.archive("demo-plugin", key="alice", version="2.0.0")
    assert registry.publish(second_version, token).status_code == 201

    updater = _updater(registry, tmp_path / "tuf", None)
    info = updater.get_targetinfo("demo-plugin/versions.json")
    versions = http.get(f"{registry.url}/v1/plugins/demo-plugin/versions").content
    assert info is not None and info.hashes != first.hashes
    info.verify_length_and_hashes(versions)
    assert [v["version"] for v in json.loads(versions)["versions"]] == ["1.0.0", "2.0.0"]
    assert updater.get_targetinfo("demo-plugin/demo-plugin-2.0.0.fpkg") is not None


def test_root_is_signed_by_the_root_key_and_delegates_to_the_online_key(
    registry: RunningRegistry, http: httpx.Client
) -> None:
    """Root: consistent snapshots, threshold 1, one key for root, one online key for the rest."""
    signed = http.get(f"{registry.url}/v1/tuf/1.root.json").json()["signed"]
    assert signed["consistent_snapshot"] is True
    roles = signed["roles"]
    assert all(role["threshold"] == 1 for role in roles.values())
    online = roles["targets"]["keyids"]
    assert roles["snapshot"]["keyids"] == online == roles["timestamp"]["keyids"]
    assert len(online) == 1 and roles["root"]["keyids"] != online
    assert (registry.data / "keys" / "root.pem").stat().st_mode & 0o777 == 0o600
    assert (registry.data / "keys" / "online.pem").stat().st_mode & 0o777 == 0o600
