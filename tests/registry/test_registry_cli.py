"""`forgeai registry serve` and `forgeai registry token create` as an operator uses them."""

from __future__ import annotations

import json
import socket
import subprocess
from pathlib import Path

import httpx

from tests.registry.conftest import (
    FORGEAI,
    ArchiveFactory,
    RunningRegistry,
    forgeai_environment,
)


def forgeai(
    home: Path, *args: str, extra_env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run forgeai with FORGEAI_HOME=home, in the folder home."""
    home.mkdir(parents=True, exist_ok=True)
    return subprocess.run(
        [FORGEAI, *args],
        capture_output=True,
        text=True,
        env={**forgeai_environment(home), **(extra_env or {})},
        stdin=subprocess.DEVNULL,
        timeout=120,
        check=False,
        cwd=home,  # relative --data paths land in the test's folder
    )


def test_token_create_prints_the_token_once_on_stdout(
    tmp_path: Path, archives: ArchiveFactory
) -> None:
    key = archives.key("alice")
    done = forgeai(
        tmp_path, "registry", "token", "create", "alice", "--key", str(key), "--data", "d"
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert len(lines) == 1 and lines[0].startswith("fgr_") and len(lines[0]) > 40
    assert archives.key_ids["alice"] in done.stderr and "only this once" in done.stderr


def test_the_database_holds_only_a_hash_of_the_token(
    registry: RunningRegistry, archives: ArchiveFactory
) -> None:
    token = registry.token("alice", archives.key("alice"))
    stored = b"".join(path.read_bytes() for path in registry.data.glob("registry.sqlite3*"))
    assert b"alice" in stored
    assert token.encode() not in stored


def test_token_create_json_names_publisher_and_keys(
    tmp_path: Path, archives: ArchiveFactory
) -> None:
    key = archives.key("alice")
    done = forgeai(
        tmp_path,
        "registry",
        "token",
        "create",
        "alice",
        "--key",
        str(key),
        "--data",
        "d",
        "--json",
    )
    body = json.loads(done.stdout)
    assert body["publisher"] == "alice" and body["token"].startswith("fgr_")
    assert body["key_ids"] == [archives.key_ids["alice"]]


def test_a_new_publisher_without_a_key_is_refused_with_e310(tmp_path: Path) -> None:
    done = forgeai(tmp_path, "registry", "token", "create", "alice", "--data", "d")
    assert done.returncode == 125
    assert done.stderr.startswith("forgeai: FORGEAI-E310:") and done.stderr.count("\n") == 1


def test_a_key_of_another_publisher_is_refused(tmp_path: Path, archives: ArchiveFactory) -> None:
    key = str(archives.key("alice"))
    forgeai(tmp_path, "registry", "token", "create", "alice", "--key", key, "--data", "d")
    done = forgeai(tmp_path, "registry", "token", "create", "bob", "--key", key, "--data", "d")
    assert done.returncode == 125
    assert "FORGEAI-E310" in done.stderr and "already registered for publisher 'alice'" in (
        done.stderr
    )


def test_a_malformed_key_file_is_refused_with_e220(tmp_path: Path) -> None:
    bad = tmp_path / "bad.pub"
    bad.write_text("not a key\n")
    done = forgeai(
        tmp_path, "registry", "token", "create", "alice", "--key", str(bad), "--data", "d"
    )
    assert done.returncode == 125 and "FORGEAI-E220" in done.stderr


def test_data_folder_defaults_to_the_environment_then_forgeai_home(
    tmp_path: Path, archives: ArchiveFactory
) -> None:
    key = str(archives.key("alice"))
    configured = tmp_path / "configured"
    forgeai(
        tmp_path,
        "registry",
        "token",
        "create",
        "alice",
        "--key",
        key,
        extra_env={"FORGEAI_REGISTRY_DATA": str(configured)},
    )
    forgeai(tmp_path, "registry", "token", "create", "bob", "--key", str(archives.key("bob")))
    assert (configured / "registry.sqlite3").is_file()
    assert (tmp_path / "registry" / "registry.sqlite3").is_file()


def test_serve_on_a_busy_port_fails_with_one_line(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        done = forgeai(
            tmp_path, "registry", "serve", "--port", str(port), "--data", str(tmp_path / "d")
        )
    assert done.returncode == 125
    assert done.stderr.startswith(f"forgeai: FORGEAI-E310: cannot listen on 127.0.0.1:{port}")


def test_serve_exits_0_on_sigterm(registry: RunningRegistry) -> None:
    assert registry.stop() == 0


def test_a_restarted_registry_keeps_plugins_and_root(
    registry: RunningRegistry, archives: ArchiveFactory
) -> None:
    token = registry.token("alice", archives.key("alice"))
    assert registry.publish(archives.archive("demo-plugin", key="alice"), token).status_code == 201
    with httpx.Client(trust_env=False) as http:
        root = http.get(f"{registry.url}/v1/tuf/1.root.json").content
        registry.stop()
        restarted = RunningRegistry(registry.data, registry.home)
        try:
            assert http.get(f"{restarted.url}/v1/tuf/1.root.json").content == root
            assert http.get(f"{restarted.url}/v1/plugins/demo-plugin").json()["version"] == "1.0.0"
            assert (
                restarted.publish(
                    archives.archive("demo-plugin", key="alice", version="1.1.0"), token
                ).status_code
                == 201
            )
        finally:
            restarted.stop()


def test_a_database_from_before_yanking_is_upgraded_in_place(tmp_path: Path) -> None:
    """Opening a registry database without the yank column adds it; nothing else changes."""
    import sqlite3

    from forgeai_ls.registry.storage import SQLiteMetadataStore

    path = tmp_path / "registry.sqlite3"
    SQLiteMetadataStore(path).close()
    with sqlite3.connect(path) as old:
        old.execute("ALTER TABLE plugin_versions DROP COLUMN yanked_at")
    store = SQLiteMetadataStore(path)
    try:
        assert store.versions("anything") == []
    finally:
        store.close()
    with sqlite3.connect(path) as upgraded:
        columns = {row[1] for row in upgraded.execute("PRAGMA table_info(plugin_versions)")}
    assert "yanked_at" in columns
