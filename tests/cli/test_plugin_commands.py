"""`forgeai plugin` and `forgeai key` as an author and a user type them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from forgeai_ls.home import bundled_plugins_dir

pytestmark = pytest.mark.sandbox

FORGEAI = [sys.executable, "-m", "forgeai_ls.cli.main"]
OFFICIAL = sorted(p.name for p in bundled_plugins_dir().iterdir() if (p / "plugin.yaml").exists())


def forgeai(
    home: Path,
    *args: str,
    extra_env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "FORGEAI_HOME": str(home), **(extra_env or {})}
    return subprocess.run(
        [*FORGEAI, *args],
        capture_output=True,
        text=True,
        env=env,
        stdin=subprocess.DEVNULL,
        timeout=300,
        check=False,
    )


@pytest.mark.parametrize("name", OFFICIAL)
def test_official_plugin_passes_its_own_tests(tmp_path: Path, name: str) -> None:
    """Each official plugin's test programs pass where its toolchain is installed."""
    done = forgeai(tmp_path, "plugin", "test", str(bundled_plugins_dir() / name), "--json")
    if done.returncode == 125 and "FORGEAI-E207" in done.stderr:
        pytest.skip(f"{name}: toolchain not installed here ({done.stderr.strip()})")
    report = json.loads(done.stdout)
    assert done.returncode == 0, report
    assert report["failed"] == 0 and report["passed"] >= 3


def test_author_workflow_create_test_sign_trust_run(tmp_path: Path) -> None:
    """create -> test -> key generate -> sign -> trust -> the plugin's language runs."""
    home, work = tmp_path / "home", tmp_path / "work"
    work.mkdir()
    created = forgeai(
        home,
        "plugin",
        "create",
        "snake-executor",
        "--language",
        "snake",
        "--extension",
        ".snk",
        "--dir",
        str(work),
    )
    assert created.returncode == 0, created.stderr
    folder = work / "snake-executor"
    tested = forgeai(home, "plugin", "test", str(folder))
    assert tested.returncode == 0, tested.stdout + tested.stderr
    assert "2 passed, 0 failed" in tested.stdout
    assert forgeai(home, "key", "generate", "me").returncode == 0
    signed = forgeai(home, "plugin", "sign", str(folder), "--key", "me")
    assert signed.returncode == 0, signed.stderr
    extra = {"FORGEAI_PLUGIN_DIRS": str(work)}
    refused = forgeai(home, "run", "-l", "snake", "-c", "print('hiss')", extra_env=extra)
    assert refused.returncode == 125 and "FORGEAI-E204" in refused.stderr
    trusted = forgeai(home, "key", "trust", str(home / "keys" / "me.pub"), "--level", "enterprise")
    assert trusted.returncode == 0, trusted.stderr
    keys = json.loads(forgeai(home, "key", "list", "--json").stdout)
    (own,) = keys["own"]
    assert own["name"] == "me" and len(own["key_id"]) >= 16
    assert [t["key_id"] for t in keys["trusted"]] == [own["key_id"]]
    ran = forgeai(home, "run", "-l", "snake", "-c", "print('hiss')", "--json", extra_env=extra)
    assert ran.returncode == 0, ran.stderr
    assert json.loads(ran.stdout)["plugin"] == "snake-executor"
    assert json.loads(ran.stdout)["stdout"] == "hiss\n"
    listed = json.loads(forgeai(home, "plugin", "list", "--json", extra_env=extra).stdout)
    mine = [p for p in listed["plugins"] if p["name"] == "snake-executor"]
    assert mine and mine[0]["trust"] == "enterprise"
    assert forgeai(home, "key", "untrust", "me").returncode == 0
    after = forgeai(home, "run", "-l", "snake", "-c", "print('hiss')", extra_env=extra)
    assert after.returncode == 125 and "FORGEAI-E204" in after.stderr


def test_languages_lists_official_plugins_and_unavailable_ones(tmp_path: Path) -> None:
    """`forgeai languages --json` names each language's plugin and why others are missing."""
    done = forgeai(tmp_path, "languages", "--json")
    document = json.loads(done.stdout)
    names = {entry["name"]: entry for entry in document["languages"]}
    assert {"python", "javascript", "bash", "perl", "c", "cpp", "rust", "java"} <= names.keys()
    assert names["python"]["plugin"] == "python" and names["python"]["trust"] == "official"
    for missing in document["unavailable"]:
        assert missing["code"].startswith("FORGEAI-E2")


def test_verify_reports_signer_and_digest(tmp_path: Path) -> None:
    """`plugin verify` of an official folder names its trust and content digest."""
    done = forgeai(tmp_path, "plugin", "verify", str(bundled_plugins_dir() / "python"), "--json")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["trust"] == "official" and len(report["content_digest"]) == 64


@pytest.mark.parametrize(
    ("args", "code"),
    [
        (["key", "trust", "/nonexistent.pub"], "FORGEAI-E220"),
        (["key", "untrust", "nobody"], "FORGEAI-E220"),
        (["plugin", "sign", "/tmp", "--key", "absent"], "FORGEAI-E220"),
        (["plugin", "test", "/nonexistent-plugin"], "FORGEAI-E214"),
        (["plugin", "info", "no-such-plugin"], "FORGEAI-E214"),
        (["key", "trust", "README.md", "--level", "godlike"], "FORGEAI-E220"),
    ],
)
def test_bad_plugin_and_key_input(tmp_path: Path, args: list[str], code: str) -> None:
    """Bad input to plugin and key commands: exit 125, one line with the code."""
    done = forgeai(tmp_path, *args)
    assert done.returncode == 125
    assert code in done.stderr and len(done.stderr.strip().splitlines()) == 1
