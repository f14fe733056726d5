"""The user's side against a real registry on 127.0.0.1, through the `forgeai` CLI:
publish -> search -> install -> run -> update -> remove, and every way a registry can fail
or lie leaves the installed set as it was."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.registry.conftest import RunningRegistry
from tests.support.hostile_registry import hostile_registry
from tests.support.plugin_archives import Author, forgeai


@pytest.fixture
def author(tmp_path: Path) -> Author:
    return Author(tmp_path / "author-home", tmp_path / "author-work", key="acme")


@pytest.fixture
def user(tmp_path: Path, author: Author) -> Path:
    """A user's FORGEAI_HOME that trusts the author's key."""
    home = tmp_path / "user-home"
    author.trust_in(home)
    return home


def publish(registry: RunningRegistry, author: Author, token: str, version: str, **kw: str) -> None:
    folder = author.folder("zed-executor", version, description="Runs zed programs", **kw)
    built = forgeai(author.home, "plugin", "build", str(folder), "-o", str(folder.parent), "--json")
    assert built.returncode == 0, built.stderr
    archive = json.loads(built.stdout)["path"]
    done = forgeai(
        author.home, "plugin", "publish", archive, "--registry", registry.url, "--token", token
    )
    assert done.returncode == 0, done.stderr
    assert f"published zed-executor {version}" in done.stdout


def installed(home: Path) -> dict[str, str]:
    listed = forgeai(home, "plugin", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    report = json.loads(listed.stdout)
    assert report["blocked"] == [], report["blocked"]
    return {p["name"]: p["version"] for p in report["plugins"] if p["source"] == "installed"}


def test_publish_search_install_run_update_remove(
    registry: RunningRegistry, author: Author, user: Path
) -> None:
    token = registry.token("acme", author.public_key_path)
    publish(registry, author, token, "1.0.0")
    url = ["--registry", registry.url]

    found = forgeai(user, "plugin", "search", "zed programs", *url, "--json")
    assert [p["name"] for p in json.loads(found.stdout)["plugins"]] == ["zed-executor"]
    by_language = forgeai(user, "plugin", "search", "zed", *url, "--json")
    assert json.loads(by_language.stdout)["plugins"][0]["languages"] == ["zed"]

    done = forgeai(user, "plugin", "install", "zed-executor", *url, "--json")
    assert done.returncode == 0, done.stderr
    # The first signed-metadata contact says what it pinned, where, and that it was plain HTTP.
    assert f"first contact with registry {registry.url} over plain HTTP" in done.stderr
    assert "sha256 " in done.stderr and str(user / "registries") in done.stderr
    outcome = json.loads(done.stdout)
    assert (outcome["version"], outcome["trust"], outcome["signer"]) == (
        "1.0.0",
        "community",
        "acme",
    )
    run = forgeai(user, "run", "-l", "zed", "-c", "print(6 * 7)")
    assert (run.returncode, run.stdout) == (0, "42\n"), run.stderr

    info = forgeai(user, "plugin", "info", "zed-executor", "--json")
    assert json.loads(info.stdout)["installed_from"] == f"registry {registry.url}"
    remote = forgeai(user, "plugin", "info", "zed-executor", "--remote", *url, "--json")
    assert json.loads(remote.stdout)["versions"] == ["1.0.0"]

    up_to_date = forgeai(user, "plugin", "update", "--json")
    assert json.loads(up_to_date.stdout)["plugins"][0]["status"] == "up to date"
    publish(registry, author, token, "1.1.0")
    # `update` goes back to the registry the plugin came from (no --registry needed).
    updated = forgeai(user, "plugin", "update", "--json")
    assert updated.returncode == 0, updated.stderr
    assert json.loads(updated.stdout)["plugins"][0] == {
        "name": "zed-executor",
        "from": "1.0.0",
        "to": "1.1.0",
        "status": "updated",
    }
    assert installed(user) == {"zed-executor": "1.1.0"}

    pinned = forgeai(user, "plugin", "install", "zed-executor@1.0.0", *url)
    assert pinned.returncode == 125 and "FORGEAI-E232" in pinned.stderr
    assert forgeai(user, "plugin", "remove", "zed-executor").returncode == 0
    assert installed(user) == {}


def test_install_picks_the_newest_compatible_version(
    registry: RunningRegistry, author: Author, user: Path
) -> None:
    token = registry.token("acme", author.public_key_path)
    publish(registry, author, token, "1.0.0")
    publish(registry, author, token, "2.0.0", minimum="9.0.0", maximum="9.9.0")
    url = ["--registry", registry.url]
    done = forgeai(user, "plugin", "install", "zed-executor", *url, "--json")
    assert json.loads(done.stdout)["version"] == "1.0.0", done.stderr
    refused = forgeai(user, "plugin", "install", "zed-executor@2.0.0", *url)
    assert refused.returncode == 125 and "FORGEAI-E206" in refused.stderr
    missing = forgeai(user, "plugin", "install", "zed-executor@3.0.0", *url)
    assert missing.returncode == 125 and "FORGEAI-E303" in missing.stderr
    unknown = forgeai(user, "plugin", "install", "nope-executor", *url)
    assert unknown.returncode == 125 and "FORGEAI-E303" in unknown.stderr
    assert installed(user) == {"zed-executor": "1.0.0"}


def test_untrusted_publisher_is_refused(
    registry: RunningRegistry, author: Author, tmp_path: Path
) -> None:
    token = registry.token("acme", author.public_key_path)
    publish(registry, author, token, "1.0.0")
    stranger = tmp_path / "stranger-home"  # trusts nobody
    done = forgeai(stranger, "plugin", "install", "zed-executor", "--registry", registry.url)
    assert done.returncode == 125 and "FORGEAI-E204" in done.stderr
    assert installed(stranger) == {}


def test_tampered_blob_on_the_registry_is_refused(
    registry: RunningRegistry, author: Author, user: Path
) -> None:
    """E305, saying which check failed (same length, other bytes: the sha256 check; the
    length check is tested on its own in tests/unit/test_registry_checks.py); nothing is
    installed."""
    token = registry.token("acme", author.public_key_path)
    publish(registry, author, token, "1.0.0")
    url = ["--registry", registry.url]
    assert forgeai(user, "plugin", "install", "zed-executor", *url).returncode == 0
    publish(registry, author, token, "1.1.0")
    versions = forgeai(user, "plugin", "info", "zed-executor", "--remote", *url, "--json")
    sha = json.loads(versions.stdout)["sha256"]
    blob = next(registry.data.rglob(sha))
    blob.write_bytes(blob.read_bytes()[:-8] + b"tampered")
    done = forgeai(user, "plugin", "update", "zed-executor")
    assert done.returncode == 125 and "FORGEAI-E305" in done.stderr, done.stderr
    assert "failed the sha256 check" in done.stderr
    assert installed(user) == {"zed-executor": "1.0.0"}


def test_rolled_back_registry_is_refused(
    start_registry: object, author: Author, user: Path, tmp_path: Path
) -> None:
    """A registry restored from an old backup serves metadata older than the client saw."""
    registry = start_registry()  # type: ignore[operator]
    port = registry.url.rsplit(":", 1)[1]
    token = registry.token("acme", author.public_key_path)
    publish(registry, author, token, "1.0.0")
    assert registry.stop() == 0
    backup = tmp_path / "backup"
    shutil.copytree(registry.data, backup)
    registry = RunningRegistry(registry.data, registry.home, "--port", port)
    try:
        publish(registry, author, token, "1.1.0")
        url = ["--registry", registry.url]
        done = forgeai(user, "plugin", "install", "zed-executor", *url, "--json")
        assert json.loads(done.stdout)["version"] == "1.1.0", done.stderr
    finally:
        registry.stop()
    rolled_back = RunningRegistry(backup, registry.home, "--port", port)
    try:
        assert rolled_back.url == registry.url
        done = forgeai(
            user,
            "plugin",
            "install",
            "zed-executor@1.0.0",
            "--allow-downgrade",
            "--registry",
            rolled_back.url,
        )
        assert done.returncode == 125 and "FORGEAI-E305" in done.stderr, done.stderr
        assert "rollback" in done.stderr
    finally:
        rolled_back.stop()
    assert installed(user) == {"zed-executor": "1.1.0"}


@pytest.mark.parametrize(
    ("behaviour", "code"),
    [("garbage", "FORGEAI-E304"), ("slow", "FORGEAI-E302"), ("error", "FORGEAI-E302")],
)
def test_broken_registries_give_clear_errors(user: Path, behaviour: str, code: str) -> None:
    patience = {"FORGEAI_REGISTRY_TIMEOUT": "0.5", "FORGEAI_REGISTRY_RETRIES": "1"}
    with hostile_registry(behaviour) as url:
        for command in (["search", "zed"], ["install", "zed-executor"]):
            done = forgeai(user, "plugin", *command, "--registry", url, env=patience)
            assert done.returncode == 125, done.stdout
            assert code in done.stderr and url.split("//")[1] in done.stderr, done.stderr
            assert done.stderr.count("\n") == 1  # one clear line, no traceback
    assert installed(user) == {}


def test_registry_down(user: Path) -> None:
    patience = {"FORGEAI_REGISTRY_RETRIES": "1"}
    done = forgeai(user, "plugin", "search", "x", "--registry", "http://127.0.0.1:9", env=patience)
    assert done.returncode == 125 and "FORGEAI-E302" in done.stderr
    assert "cannot be reached" in done.stderr


@pytest.mark.parametrize("step", ["downloaded", "verified", "swapped", "validated"])
def test_kill_during_update_from_registry(
    registry: RunningRegistry, author: Author, user: Path, step: str
) -> None:
    token = registry.token("acme", author.public_key_path)
    publish(registry, author, token, "1.0.0")
    url = ["--registry", registry.url]
    assert forgeai(user, "plugin", "install", "zed-executor", *url).returncode == 0
    publish(registry, author, token, "1.1.0")
    crashed = forgeai(user, "plugin", "update", crash_at=step)
    assert crashed.returncode == -signal.SIGKILL, crashed.stderr
    assert installed(user) == {
        "zed-executor": "1.1.0" if step in ("swapped", "validated") else "1.0.0"
    }
    finished = forgeai(user, "plugin", "update", "--json")
    assert finished.returncode == 0, finished.stderr
    assert installed(user) == {"zed-executor": "1.1.0"}
    plugins = user / "plugins"
    assert list((plugins / ".staging").iterdir()) == []
    assert len(list((plugins / ".store").iterdir())) == 1


def test_frozen_registry_is_refused(registry: RunningRegistry, author: Author, user: Path) -> None:
    """A registry that stops refreshing its timestamp (a freeze) is refused once it expires."""
    token = registry.token("acme", author.public_key_path)
    publish(registry, author, token, "1.0.0")
    url = ["--registry", registry.url]
    assert forgeai(user, "plugin", "install", "zed-executor", *url).returncode == 0
    publish(registry, author, token, "1.1.0")
    two_days_later = subprocess.run(
        [sys.executable, "-m", "tests.support.later_clock_cli", "2", "plugin", "update"],
        capture_output=True,
        text=True,
        env={**os.environ, "FORGEAI_HOME": str(user)},
        cwd=Path(__file__).resolve().parents[2],
        timeout=120,
        check=False,
    )
    assert two_days_later.returncode == 125, two_days_later.stdout
    assert "FORGEAI-E305" in two_days_later.stderr and "expired" in two_days_later.stderr
    assert installed(user) == {"zed-executor": "1.0.0"}


def test_a_bare_name_means_the_registry_even_beside_a_folder_of_that_name(
    registry: RunningRegistry, author: Author, user: Path, tmp_path: Path
) -> None:
    """As in pip and npm: `plugin install NAME` asks the registry even when ./NAME exists
    (saying so); the folder is installed only as ./NAME. A path that does not exist is an
    error naming it, never a registry lookup."""
    token = registry.token("acme", author.public_key_path)
    publish(registry, author, token, "1.0.0")
    workdir = tmp_path / "cwd"
    (workdir / "zed-executor").mkdir(parents=True)  # not a plugin at all
    env = {**os.environ, "FORGEAI_HOME": str(user)}

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "forgeai_ls.cli.main", *args], cwd=workdir, env=env,
            capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip

    done = cli("plugin", "install", "zed-executor", "--registry", registry.url, "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["signer"] == "acme"
    assert "for the zed-executor here, use ./zed-executor" in done.stderr
    local = cli("plugin", "install", "./zed-executor")
    assert local.returncode == 125 and "FORGEAI-E201" in local.stderr  # it was read as a folder
    missing = cli("plugin", "install", "./no-such-folder")
    assert missing.returncode == 125 and "no plugin folder or archive at ./no-such-folder" in (
        missing.stderr
    )


def test_pre_releases_are_chosen_only_when_pinned_or_asked_for(
    registry: RunningRegistry, author: Author, user: Path
) -> None:
    """2.0.0rc1, 2.1.0.dev1 and 3.0.0-beta are newer than 1.1.0 but not "latest": install
    and update take 1.1.0, the registry's listing says 1.1.0; a pin or --pre gets them."""
    token = registry.token("acme", author.public_key_path)
    for version in ("1.0.0", "2.0.0rc1", "2.1.0.dev1", "3.0.0-beta"):
        publish(registry, author, token, version)
    url = ["--registry", registry.url]
    done = forgeai(user, "plugin", "install", "zed-executor", *url, "--json")
    assert json.loads(done.stdout)["version"] == "1.0.0", done.stderr
    publish(registry, author, token, "1.1.0")
    listed = forgeai(user, "plugin", "search", "zed", *url, "--json")
    assert json.loads(listed.stdout)["plugins"][0]["latest_version"] == "1.1.0"
    updated = forgeai(user, "plugin", "update", *url, "--json")
    assert updated.returncode == 0, updated.stderr
    assert installed(user) == {"zed-executor": "1.1.0"}
    pre = forgeai(user, "plugin", "update", "--pre", *url, "--json")
    assert pre.returncode == 0, pre.stderr
    assert installed(user) == {"zed-executor": "3.0.0-beta"}
    pinned = forgeai(user, "plugin", "install", "zed-executor@2.0.0rc1", "--allow-downgrade", *url)
    assert pinned.returncode == 0, pinned.stderr
    assert installed(user) == {"zed-executor": "2.0.0rc1"}


@pytest.mark.parametrize(
    ("behaviour", "fragment"),
    [("drip", "did not answer within 3 s"), ("huge", "with more than")],
    ids=["a-byte-a-second", "endless-body"],
)
def test_a_registry_cannot_make_a_command_hang_or_fill_memory(
    user: Path, behaviour: str, fragment: str
) -> None:
    """A body sent a byte a second (each read well within the timeout) ends at the overall
    deadline; an endless body ends at the answer's size cap. One clear line either way."""
    import time

    patience = {"FORGEAI_REGISTRY_TIMEOUT": "3", "FORGEAI_REGISTRY_RETRIES": "3"}
    with hostile_registry(behaviour) as url:
        for command in (["search", "zed"], ["install", "zed-executor"]):
            started = time.monotonic()
            done = forgeai(user, "plugin", *command, "--registry", url, env=patience)
            assert time.monotonic() - started < 20
            assert done.returncode == 125, done.stdout
            assert "FORGEAI-E30" in done.stderr and fragment in done.stderr, done.stderr
            assert done.stderr.count("\n") == 1
    assert installed(user) == {}


def test_a_yanked_version_is_skipped_unless_pinned(
    registry: RunningRegistry, author: Author, user: Path, tmp_path: Path
) -> None:
    """`plugin yank NAME@VERSION`: install and update skip it, the listing's latest moves
    back, a pin still installs it with a note; only its publisher may yank."""
    token = registry.token("acme", author.public_key_path)
    publish(registry, author, token, "1.0.0")
    publish(registry, author, token, "1.1.0")
    url = ["--registry", registry.url]
    yanked = forgeai(user, "plugin", "yank", "zed-executor@1.1.0", *url, "--token", token)
    assert yanked.returncode == 0, yanked.stderr
    listed = forgeai(user, "plugin", "search", "zed", *url, "--json")
    assert json.loads(listed.stdout)["plugins"][0]["latest_version"] == "1.0.0"
    done = forgeai(user, "plugin", "install", "zed-executor", *url, "--json")
    assert json.loads(done.stdout)["version"] == "1.0.0", done.stderr
    assert forgeai(user, "plugin", "update", *url).returncode == 0
    assert installed(user) == {"zed-executor": "1.0.0"}
    pinned = forgeai(user, "plugin", "install", "zed-executor@1.1.0", *url)
    assert pinned.returncode == 0 and "was yanked by its publisher" in pinned.stderr
    assert installed(user) == {"zed-executor": "1.1.0"}
    intruder = Author(tmp_path / "intruder", tmp_path / "intruder-work", key="intruder")
    other = registry.token("intruder", intruder.public_key_path)
    refused = forgeai(user, "plugin", "yank", "zed-executor@1.0.0", *url, "--token", other)
    assert refused.returncode == 125 and "FORGEAI-E30" in refused.stderr
    assert "belongs to publisher 'acme'" in refused.stderr
    missing = forgeai(user, "plugin", "yank", "zed-executor@9.9.9", *url, "--token", token)
    assert missing.returncode == 125 and "FORGEAI-E303" in missing.stderr
