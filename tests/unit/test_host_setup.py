"""Host-side setup: private runtime directories, the /etc copy and cgroup v2 delegation."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from forgeai_ls.errors import SandboxUnavailableError
from forgeai_ls.sandbox.cgroups import detect_cgroups
from forgeai_ls.sandbox.etc_tree import build_etc_tree
from forgeai_ls.sandbox.host import _private_dir


def test_runtime_dir_that_is_a_link_is_refused(tmp_path: Path) -> None:
    """A pre-planted symlink in place of the runtime directory is never followed."""
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "forgeai").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(SandboxUnavailableError, match="not a directory owned by this user"):
        _private_dir(tmp_path / "forgeai", 0o700)


def test_etc_copy_skips_what_others_cannot_read(tmp_path: Path) -> None:
    """Only world-readable entries of the allow-list are copied; links stay links."""
    etc = tmp_path / "etc"
    (etc / "ssl" / "private").mkdir(parents=True)
    (etc / "ssl" / "private" / "key.pem").write_text("secret")
    (etc / "ssl" / "private").chmod(0o700)
    (etc / "ssl" / "openssl.cnf").write_text("config")
    (etc / "ssl" / "openssl.cnf").chmod(0o644)
    (etc / "shadow").write_text("root:hash")
    (etc / "localtime").symlink_to("/usr/share/zoneinfo/UTC")
    tree = build_etc_tree(tmp_path / "out", host_etc=etc)
    assert (tree / "ssl" / "openssl.cnf").read_text() == "config"
    assert not (tree / "ssl" / "private").exists()
    assert not (tree / "shadow").exists()
    assert os.readlink(tree / "localtime") == "/usr/share/zoneinfo/UTC"
    assert "sandbox:x:1000:1000" in (tree / "passwd").read_text()


def test_same_etc_content_reuses_one_copy(tmp_path: Path) -> None:
    """Building twice from the same /etc gives the same directory, not a second copy."""
    etc = tmp_path / "etc"
    etc.mkdir()
    (etc / "protocols").write_text("ip 0 IP\n")
    first = build_etc_tree(tmp_path / "out", host_etc=etc)
    second = build_etc_tree(tmp_path / "out", host_etc=etc)
    assert first == second
    assert [p.name for p in (tmp_path / "out").glob("etc-*")] == [first.name]


def _fake_v2_group(path: Path, controllers: str) -> None:
    path.mkdir(parents=True, exist_ok=True)
    (path / "cgroup.controllers").write_text(controllers)
    (path / "cgroup.subtree_control").write_text("")


def test_delegated_v2_subtree_without_memory_controller_falls_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A delegated group lacking the memory controller means rlimits, not a half setup."""
    _fake_v2_group(tmp_path, "cpu pids")
    monkeypatch.setenv("FORGEAI_CGROUP_BASE", str(tmp_path / "forgeai"))
    setup = detect_cgroups()
    assert setup.manager is None
    assert setup.reason is not None and "not memory" in setup.reason


def test_delegated_v2_subtree_gets_per_run_limits(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With memory and pids delegated, each run's group gets memory.max and pids.max."""
    _fake_v2_group(tmp_path, "cpu memory pids")
    base = tmp_path / "forgeai"
    _fake_v2_group(base, "memory pids")
    monkeypatch.setenv("FORGEAI_CGROUP_BASE", str(base))
    manager = detect_cgroups().manager
    assert manager is not None and manager.version == 2
    assert (base / "cgroup.subtree_control").read_text() == "+memory +pids"
    run = manager.create(64 * 1024 * 1024, 10)
    assert (run.memory_dir / "memory.max").read_text() == str(64 * 1024 * 1024)
    assert (run.pids_dir / "pids.max").read_text() == "10"
    assert run.attach_files == (str(run.memory_dir / "cgroup.procs"),)


def test_official_lock_matches_the_bundled_plugins() -> None:
    """The shipped lock is current: re-run 'python -m forgeai_ls.plugins.official_lock'."""
    from forgeai_ls.home import bundled_plugins_dir
    from forgeai_ls.plugins.official_lock import OfficialLock, build_lock

    assert build_lock(bundled_plugins_dir())["plugins"] == OfficialLock.load().plugins


def test_unchanged_etc_is_reused_through_its_fingerprint(tmp_path: Path) -> None:
    """A second build finds the fingerprint marker; a changed file gives a new copy."""
    etc = tmp_path / "etc"
    etc.mkdir()
    (etc / "protocols").write_text("ip 0 IP\n")
    first = build_etc_tree(tmp_path / "out", host_etc=etc)
    marker = next((tmp_path / "out").glob("fingerprint-*"))
    assert build_etc_tree(tmp_path / "out", host_etc=etc) == first
    (etc / "protocols").write_text("ip 0 IP\ntcp 6 TCP\n")
    changed = build_etc_tree(tmp_path / "out", host_etc=etc)
    assert changed != first and (changed / "protocols").read_text().endswith("TCP\n")
    assert marker.exists()


@pytest.mark.skipif(os.geteuid() != 0, reason="mounts a noexec tmpfs (needs root)")
def test_work_dirs_leave_a_noexec_runtime_directory(tmp_path: Path) -> None:
    """Debian's initramfs mounts /run noexec: compiled programs could not run from root's
    runtime directory there, so work directories go where programs can run."""
    import subprocess
    import sys

    base = tmp_path / "base"
    base.mkdir()
    script = (
        "import subprocess, sys\n"
        "from pathlib import Path\n"
        f"subprocess.run(['mount', '-t', 'tmpfs', '-o', 'noexec', 'tmpfs', '{base}'], check=True)\n"
        "from forgeai_ls.sandbox.host import _work_dir, executable_here\n"
        f"base = Path('{base}')\n"
        "work = _work_dir(base, 0o711)\n"
        "print(executable_here(base), work, executable_here(work))\n"
    )
    done = subprocess.run(
        ["unshare", "--mount", "--propagation", "private", sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert done.stdout.split() == ["False", f"/var/tmp/forgeai-{os.geteuid()}/work", "True"]
