"""Install, update and remove from archives and folders: refused input changes nothing, and
a kill -9 at any step leaves the old or the new version whole."""

from __future__ import annotations

import json
import signal
import tarfile
from pathlib import Path

import pytest

from forgeai_ls.plugins.archive import build_archive
from tests.support.plugin_archives import Author, forgeai, tar_gz

INSTALL_STEPS = ["extracted", "verified", "moved-to-store", "swapped", "validated", "cleaned"]
REMOVE_STEPS = ["unregistered", "files-removed", "data-cleaned"]


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return tmp_path / "home"


@pytest.fixture
def author(tmp_path: Path, home: Path) -> Author:
    author = Author(home, tmp_path / "work")
    author.trust_in(home)
    return author


def installed(home: Path) -> dict[str, str]:
    """Installed (non-bundled) plugins and their versions, as a fresh `forgeai` sees them."""
    listed = forgeai(home, "plugin", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    report = json.loads(listed.stdout)
    assert report["blocked"] == [], report["blocked"]
    return {p["name"]: p["version"] for p in report["plugins"] if p["source"] == "installed"}


def leftovers(home: Path) -> list[str]:
    plugins = home / "plugins"
    staging = sorted(p.name for p in (plugins / ".staging").iterdir())
    store = sorted(p.name for p in (plugins / ".store").iterdir())
    links = sorted(p.name for p in plugins.iterdir() if p.is_symlink())
    return staging + [s for s in store if s.split("@")[0] not in links]


def test_build_is_reproducible_and_verify_reports_the_archive(author: Author, home: Path) -> None:
    folder = author.folder("zed-executor", "1.0.0")
    first, _ = build_archive(folder)
    second, _ = build_archive(folder)
    assert first == second
    built = forgeai(home, "plugin", "build", str(folder), "-o", str(folder.parent), "--json")
    assert built.returncode == 0, built.stderr
    path = json.loads(built.stdout)["path"]
    assert Path(path).name == "zed-executor-1.0.0.fpkg"
    report = forgeai(home, "plugin", "verify", path, "--json")
    assert report.returncode == 0, report.stderr
    verified = json.loads(report.stdout)
    assert verified["trust"] == "community" and verified["signer"] == "author"
    assert verified["archive_sha256"] == json.loads(built.stdout)["sha256"]
    assert set(verified["files"]) == {"plugin.yaml", "README.md"}


def test_install_update_downgrade_remove_from_archives(author: Author, home: Path) -> None:
    old, new = author.archive("zed-executor", "1.0.0"), author.archive("zed-executor", "1.1.0")
    assert forgeai(home, "plugin", "install", str(old)).returncode == 0
    assert installed(home) == {"zed-executor": "1.0.0"}
    again = forgeai(home, "plugin", "install", str(old), "--json")
    assert json.loads(again.stdout)["changed"] is False
    assert forgeai(home, "plugin", "install", str(new)).returncode == 0
    assert installed(home) == {"zed-executor": "1.1.0"}
    refused = forgeai(home, "plugin", "install", str(old))
    assert refused.returncode == 125 and "FORGEAI-E232" in refused.stderr
    assert installed(home) == {"zed-executor": "1.1.0"}
    allowed = forgeai(home, "plugin", "install", str(old), "--allow-downgrade")
    assert allowed.returncode == 0, allowed.stderr
    assert installed(home) == {"zed-executor": "1.0.0"}
    run = forgeai(home, "run", "-l", "zed", "-c", "print('from zed')")
    assert run.returncode == 0 and run.stdout == "from zed\n", run.stderr
    removed = forgeai(home, "plugin", "remove", "zed-executor")
    assert removed.returncode == 0, removed.stderr
    assert installed(home) == {}
    assert leftovers(home) == []
    missing = forgeai(home, "plugin", "remove", "zed-executor")
    assert missing.returncode == 125 and "FORGEAI-E214" in missing.stderr


def test_install_from_a_folder(author: Author, home: Path) -> None:
    folder = author.folder("zed-executor", "2.0.0")
    done = forgeai(home, "plugin", "install", str(folder))
    assert done.returncode == 0, done.stderr
    assert installed(home) == {"zed-executor": "2.0.0"}


def _tampered(author: Author) -> bytes:
    folder = author.folder("zed-executor", "1.5.0")
    (folder / "README.md").write_text("changed after signing\n")
    return build_archive(folder)[0]


def _member(name: str, kind: bytes = tarfile.REGTYPE, link: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.linkname, info.mode = kind, link, 0o644
    return info


def _hostile(author: Author, extra: tarfile.TarInfo, content: bytes | None) -> bytes:
    folder = author.folder("zed-executor", "1.6.0")
    members = [(_member(p.name), p.read_bytes()) for p in sorted(folder.iterdir())]
    return tar_gz([*members, (extra, content)])


REFUSALS = {
    "tampered": (_tampered, "FORGEAI-E203"),
    "untrusted-signer": (
        lambda a: build_archive(
            Author(a.home, a.work / "other", key="mallory").folder("zed-executor", "1.7.0")
        )[0],
        "FORGEAI-E204",
    ),
    "incompatible": (
        lambda a: build_archive(
            a.folder("zed-executor", "1.8.0", minimum="9.0.0", maximum="9.9.0")
        )[0],
        "FORGEAI-E206",
    ),
    "unsigned": (
        lambda a: tar_gz(
            [
                (_member(p.name), p.read_bytes())
                for p in sorted(a.folder("zed-executor", "1.9.0", sign=False).iterdir())
            ]
        ),
        "FORGEAI-E202",
    ),
    "dotdot": (lambda a: _hostile(a, _member("../evil.py"), b"x"), "FORGEAI-E230"),
    "absolute": (lambda a: _hostile(a, _member("/tmp/evil.py"), b"x"), "FORGEAI-E230"),
    "symlink": (
        lambda a: _hostile(a, _member("link", tarfile.SYMTYPE, "/etc/passwd"), None),
        "FORGEAI-E230",
    ),
    "hardlink": (
        lambda a: _hostile(a, _member("hard", tarfile.LNKTYPE, "plugin.yaml"), None),
        "FORGEAI-E230",
    ),
    "device": (lambda a: _hostile(a, _member("dev", tarfile.CHRTYPE), None), "FORGEAI-E230"),
    "fifo": (lambda a: _hostile(a, _member("fifo", tarfile.FIFOTYPE), None), "FORGEAI-E230"),
    "bomb": (
        lambda a: _hostile(a, _member("zeros.bin"), bytes(65 * 1024 * 1024)),
        "FORGEAI-E230",
    ),
    "malformed-manifest": (
        lambda a: tar_gz([(_member("plugin.yaml"), b"name: [unclosed\n")]),
        "FORGEAI-E201",
    ),
    "garbage": (lambda a: b"this is not an archive" * 10, "FORGEAI-E230"),
}


@pytest.mark.parametrize("case", sorted(REFUSALS))
def test_refused_archives_change_nothing(author: Author, home: Path, case: str) -> None:
    good = author.archive("zed-executor", "1.0.0")
    assert forgeai(home, "plugin", "install", str(good)).returncode == 0
    make, code = REFUSALS[case]
    bad = author.work / f"{case}.fpkg"
    bad.write_bytes(make(author))
    refused = forgeai(home, "plugin", "install", str(bad))
    assert refused.returncode == 125
    assert code in refused.stderr, refused.stderr
    assert installed(home) == {"zed-executor": "1.0.0"}
    assert leftovers(home) == []
    assert not (author.work / "evil.py").exists() and not Path("/tmp/evil.py").exists()


@pytest.mark.parametrize("step", INSTALL_STEPS)
def test_kill_during_update_leaves_old_or_new(author: Author, home: Path, step: str) -> None:
    old, new = author.archive("zed-executor", "1.0.0"), author.archive("zed-executor", "1.1.0")
    assert forgeai(home, "plugin", "install", str(old)).returncode == 0
    crashed = forgeai(home, "plugin", "install", str(new), crash_at=step)
    assert crashed.returncode == -signal.SIGKILL, crashed.stderr
    expected = "1.1.0" if INSTALL_STEPS.index(step) >= INSTALL_STEPS.index("swapped") else "1.0.0"
    assert installed(home) == {"zed-executor": expected}
    # The next command sweeps what the crash left and completes the update.
    finished = forgeai(home, "plugin", "install", str(new))
    assert finished.returncode == 0, finished.stderr
    assert installed(home) == {"zed-executor": "1.1.0"}
    assert leftovers(home) == []


@pytest.mark.parametrize("step", INSTALL_STEPS)
def test_kill_during_first_install_leaves_nothing_or_all(
    author: Author, home: Path, step: str
) -> None:
    archive = author.archive("zed-executor", "1.0.0")
    crashed = forgeai(home, "plugin", "install", str(archive), crash_at=step)
    assert crashed.returncode == -signal.SIGKILL, crashed.stderr
    after_swap = INSTALL_STEPS.index(step) >= INSTALL_STEPS.index("swapped")
    assert installed(home) == ({"zed-executor": "1.0.0"} if after_swap else {})
    finished = forgeai(home, "plugin", "install", str(archive))
    assert finished.returncode == 0, finished.stderr
    assert installed(home) == {"zed-executor": "1.0.0"}
    assert leftovers(home) == []


@pytest.mark.parametrize("step", REMOVE_STEPS)
def test_kill_during_remove_leaves_it_gone(author: Author, home: Path, step: str) -> None:
    archive = author.archive("zed-executor", "1.0.0")
    assert forgeai(home, "plugin", "install", str(archive)).returncode == 0
    crashed = forgeai(home, "plugin", "remove", "zed-executor", crash_at=step)
    assert crashed.returncode == -signal.SIGKILL, crashed.stderr
    assert installed(home) == {}
    assert forgeai(home, "plugin", "install", str(archive)).returncode == 0
    assert leftovers(home) == []


def test_concurrent_installs_are_serialised(author: Author, home: Path) -> None:
    import subprocess
    import sys

    archives = [author.archive("zed-executor", f"1.{n}.0") for n in range(4)]
    processes = [
        subprocess.Popen(
            [sys.executable, "-m", "forgeai_ls.cli.main", "plugin", "install", str(a), "--json"],
            env={**__import__("os").environ, "FORGEAI_HOME": str(home)},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for a in archives
    ]
    results = [p.communicate(timeout=120) for p in processes]
    codes = [p.returncode for p in processes]
    # Each either installed its version or was refused as a downgrade: never a failure.
    for code, (_, err) in zip(codes, results, strict=True):
        assert code == 0 or "FORGEAI-E232" in err, err
    assert installed(home) == {"zed-executor": "1.3.0"}
    assert leftovers(home) == []
