"""Many clients at once: downloads all complete and correct, publishes all land and are signed."""

from __future__ import annotations

import asyncio
import hashlib
import json
from pathlib import Path

import httpx
from tuf.ngclient import Updater

from tests.registry.conftest import ArchiveFactory, RunningRegistry

DOWNLOADS = 50
PUBLISHES = 8


async def test_fifty_concurrent_downloads_are_all_correct(
    registry: RunningRegistry, archives: ArchiveFactory
) -> None:
    token = registry.token("alice", archives.key("alice"))
    data = archives.archive("demo-plugin", key="alice")
    assert registry.publish(data, token).status_code == 201
    url = f"{registry.url}/v1/plugins/demo-plugin/versions/1.0.0/download"
    limits = httpx.Limits(max_connections=DOWNLOADS)
    async with httpx.AsyncClient(trust_env=False, timeout=120, limits=limits) as client:
        responses = await asyncio.gather(*(client.get(url) for _ in range(DOWNLOADS)))
    expected = hashlib.sha256(data).hexdigest()
    assert [r.status_code for r in responses] == [200] * DOWNLOADS
    assert all(r.content == data for r in responses)
    assert {hashlib.sha256(r.content).hexdigest() for r in responses} == {expected}
    assert {r.headers["etag"] for r in responses} == {f'"{expected}"'}


async def test_concurrent_publishes_all_land_in_the_signed_version_list(
    registry: RunningRegistry, archives: ArchiveFactory, tmp_path: Path
) -> None:
    """Publishes racing each other are serialized: every version is listed and signed."""
    token = registry.token("alice", archives.key("alice"))
    versions = [f"1.{minor}.0" for minor in range(PUBLISHES)]
    uploads = [archives.archive("demo-plugin", key="alice", version=v) for v in versions]
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/octet-stream"}
    async with httpx.AsyncClient(trust_env=False, timeout=120) as client:
        answers = await asyncio.gather(
            *(
                client.post(f"{registry.url}/v1/plugins", content=data, headers=headers)
                for data in uploads
            )
        )
        listed = (await client.get(f"{registry.url}/v1/plugins/demo-plugin/versions")).content
        root = (await client.get(f"{registry.url}/v1/tuf/1.root.json")).content
    assert [answer.status_code for answer in answers] == [201] * PUBLISHES
    assert [v["version"] for v in json.loads(listed)["versions"]] == versions
    updater = Updater(str(tmp_path), f"{registry.url}/v1/tuf/", bootstrap=root)
    info = updater.get_targetinfo("demo-plugin/versions.json")
    assert info is not None
    info.verify_length_and_hashes(listed)
