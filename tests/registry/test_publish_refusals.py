"""Uploads the registry must refuse, each with its status and error code, storing nothing."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import subprocess
import tarfile
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from tests.registry.conftest import FORGEAI, ArchiveFactory, RunningRegistry, forgeai_environment


def _tar_gz(*members: tuple[tarfile.TarInfo, bytes]) -> bytes:
    buffer = io.BytesIO()
    with (
        gzip.GzipFile(fileobj=buffer, mode="wb") as compressed,
        tarfile.open(fileobj=compressed, mode="w") as tar,
    ):
        for info, content in members:
            info.size = len(content)
            tar.addfile(info, io.BytesIO(content) if info.isreg() else None)
    return buffer.getvalue()


def _file(name: str, content: bytes = b"x\n") -> tuple[tarfile.TarInfo, bytes]:
    return tarfile.TarInfo(name), content


def _symlink(name: str, target: str) -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.type = tarfile.SYMTYPE
    info.linkname = target
    return info, b""


def _with_extra_member(archive: bytes, member: tuple[tarfile.TarInfo, bytes]) -> bytes:
    """``archive``'s members plus ``member``."""
    members = []
    with tarfile.open(fileobj=io.BytesIO(archive), mode="r:gz") as tar:
        for info in tar:
            extracted = tar.extractfile(info) if info.isreg() else None
            members.append((info, extracted.read() if extracted else b""))
    return _tar_gz(*members, member)


def _error(response: httpx.Response, status: int, code: str) -> str:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["code"] == code
    message: str = error["message"]
    return message


@pytest.fixture
def alice(registry: RunningRegistry, archives: ArchiveFactory) -> str:
    """A token for publisher alice, whose key is 'alice'."""
    return registry.token("alice", archives.key("alice"))


def test_upload_without_token_is_401_with_www_authenticate(
    registry: RunningRegistry, archives: ArchiveFactory
) -> None:
    archives.key("alice")
    response = registry.publish(archives.archive("demo-plugin", key="alice"), None)
    _error(response, 401, "FORGEAI-E306")
    assert response.headers["www-authenticate"].startswith("Bearer")


def test_upload_with_unknown_token_is_401(
    registry: RunningRegistry, archives: ArchiveFactory, alice: str
) -> None:
    forged = alice[:-4] + ("AAAA" if not alice.endswith("AAAA") else "BBBB")
    response = registry.publish(archives.archive("demo-plugin", key="alice"), forged)
    _error(response, 401, "FORGEAI-E306")
    assert response.headers["www-authenticate"].startswith("Bearer")


def test_same_version_again_is_409(
    registry: RunningRegistry, archives: ArchiveFactory, alice: str
) -> None:
    assert registry.publish(archives.archive("demo-plugin", key="alice"), alice).status_code == 201
    again = archives.archive("demo-plugin", key="alice", description="Changed")
    message = _error(registry.publish(again, alice), 409, "FORGEAI-E306")
    assert "1.0.0" in message and "immutable" in message


def test_same_version_number_spelled_differently_is_409(
    registry: RunningRegistry, archives: ArchiveFactory, alice: str
) -> None:
    """1.0 and 1.0.0 are the same version: the second is a duplicate."""
    first = archives.archive("demo-plugin", key="alice", version="1.0.0")
    assert registry.publish(first, alice).status_code == 201
    second = archives.archive("demo-plugin", key="alice", version="1.0")
    _error(registry.publish(second, alice), 409, "FORGEAI-E306")


def test_empty_upload_is_400(registry: RunningRegistry, alice: str) -> None:
    _error(registry.publish(b"", alice), 400, "FORGEAI-E306")


def test_garbage_bytes_are_422(registry: RunningRegistry, alice: str) -> None:
    message = _error(
        registry.publish(b"this is not a gzip archive" * 10, alice), 422, "FORGEAI-E230"
    )
    assert "not a valid plugin archive" in message


def test_archive_without_manifest_is_422(registry: RunningRegistry, alice: str) -> None:
    data = _tar_gz(_file("README.md"), _file("SIGNATURE.json", b"{}"))
    message = _error(registry.publish(data, alice), 422, "FORGEAI-E230")
    assert "plugin.yaml" in message


def test_archive_with_dot_dot_member_is_422(
    registry: RunningRegistry, archives: ArchiveFactory, alice: str
) -> None:
    data = _with_extra_member(archives.archive("demo-plugin", key="alice"), _file("../escape.txt"))
    message = _error(registry.publish(data, alice), 422, "FORGEAI-E230")
    assert "'..'" in message


def test_archive_with_symlink_member_is_422(
    registry: RunningRegistry, archives: ArchiveFactory, alice: str
) -> None:
    data = _with_extra_member(
        archives.archive("demo-plugin", key="alice"), _symlink("link", "/etc/passwd")
    )
    message = _error(registry.publish(data, alice), 422, "FORGEAI-E230")
    assert "link" in message


def test_unsigned_archive_is_422_e202(
    registry: RunningRegistry, archives: ArchiveFactory, alice: str
) -> None:
    folder = archives.folder("demo-plugin", key="alice")
    data = _tar_gz(
        _file("plugin.yaml", (folder / "plugin.yaml").read_bytes()),
        _file("README.md", (folder / "README.md").read_bytes()),
    )
    _error(registry.publish(data, alice), 422, "FORGEAI-E202")


def test_file_changed_after_signing_is_422_e203(
    registry: RunningRegistry, archives: ArchiveFactory, alice: str
) -> None:
    def tamper(folder: Path) -> None:
        (folder / "README.md").write_text("# changed after signing\n")

    data = archives.archive("demo-plugin", key="alice", after_signing=tamper)
    message = _error(registry.publish(data, alice), 422, "FORGEAI-E203")
    assert "README.md" in message


def test_signature_by_an_unregistered_key_is_403(
    registry: RunningRegistry, archives: ArchiveFactory, alice: str
) -> None:
    archives.key("mallory")
    data = archives.archive("demo-plugin", key="mallory")
    message = _error(registry.publish(data, alice), 403, "FORGEAI-E306")
    mallory = archives.key_ids["mallory"]
    assert f"signed by key {mallory}, which is not registered for publisher 'alice'" in message


def test_another_publisher_cannot_publish_an_owned_name(
    registry: RunningRegistry, archives: ArchiveFactory, alice: str
) -> None:
    assert registry.publish(archives.archive("demo-plugin", key="alice"), alice).status_code == 201
    bob = registry.token("bob", archives.key("bob"))
    data = archives.archive("demo-plugin", key="bob", version="2.0.0")
    message = _error(registry.publish(data, bob), 403, "FORGEAI-E306")
    assert "belongs to publisher 'alice'" in message


def test_archive_over_the_limit_is_413(
    start_registry: Callable[..., RunningRegistry], archives: ArchiveFactory
) -> None:
    small = start_registry("--max-archive-mb", "1")
    token = small.token("alice", archives.key("alice"))
    _error(small.publish(b"\x1f\x8b" + b"\0" * (1 << 20), token), 413, "FORGEAI-E306")


def test_refused_uploads_store_nothing(
    registry: RunningRegistry, archives: ArchiveFactory, alice: str
) -> None:
    """After a tampered and an unregistered-key upload, the registry is still empty."""
    archives.key("mallory")
    tampered = archives.archive(
        "demo-plugin",
        key="alice",
        after_signing=lambda folder: (folder / "README.md").write_text("changed\n"),
    )
    assert registry.publish(tampered, alice).status_code == 422
    assert (
        registry.publish(archives.archive("demo-plugin", key="mallory"), alice).status_code == 403
    )
    with httpx.Client(trust_env=False) as http:
        assert http.get(f"{registry.url}/v1/plugins").json() == {"plugins": [], "total": 0}
    assert not any(path.is_file() for path in (registry.data / "blobs").rglob("*"))


def _admin(registry: RunningRegistry, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [FORGEAI, "registry", *args, "--data", str(registry.data)],
        capture_output=True, text=True, env=forgeai_environment(registry.home),
        stdin=subprocess.DEVNULL, timeout=120, check=False,
    )  # fmt: skip


def test_tokens_are_listed_by_id_and_a_revoked_one_is_refused_at_once(
    registry: RunningRegistry, archives: ArchiveFactory, alice: str
) -> None:
    """`registry token list` shows each token by the start of its sha256 (never the token);
    `token revoke ID` (or the token itself) makes the next upload with it a 401; another
    token of the same publisher keeps working."""
    spare = registry.token("alice")
    listed = json.loads(_admin(registry, "token", "list", "--json").stdout)["tokens"]
    assert [t["publisher"] for t in listed] == ["alice", "alice"]
    assert alice not in json.dumps(listed) and all(len(t["id"]) == 12 for t in listed)
    mine = hashlib.sha256(alice.encode()).hexdigest()[:12]
    assert mine in {t["id"] for t in listed}
    assert _admin(registry, "token", "revoke", mine).returncode == 0
    refused = registry.publish(archives.archive("demo-plugin", key="alice"), alice)
    _error(refused, 401, "FORGEAI-E306")
    assert registry.publish(archives.archive("demo-plugin", key="alice"), spare).status_code == 201
    assert _admin(registry, "token", "revoke", spare).returncode == 0  # by the token itself
    assert json.loads(_admin(registry, "token", "list", "--json").stdout)["tokens"] == []
    unknown = _admin(registry, "token", "revoke", "abc")
    assert unknown.returncode == 125 and "FORGEAI-E310" in unknown.stderr


def test_a_removed_publisher_key_signs_no_more_uploads(
    registry: RunningRegistry, archives: ArchiveFactory, alice: str
) -> None:
    """`registry key remove PUBLISHER KEY_ID`: uploads signed with it are refused (403);
    versions published before stay downloadable."""
    first = archives.archive("demo-plugin", key="alice")
    assert registry.publish(first, alice).status_code == 201
    key = archives.key_ids["alice"]
    assert _admin(registry, "key", "remove", "alice", key).returncode == 0
    later = archives.archive("demo-plugin", version="1.1.0", key="alice")
    message = _error(registry.publish(later, alice), 403, "FORGEAI-E306")
    assert f"signed by key {key}, which is not registered for publisher 'alice'" in message
    again = _admin(registry, "key", "remove", "alice", key)
    assert again.returncode == 125 and "FORGEAI-E310" in again.stderr
