"""``forgeai doctor``: what the machine gives ForgeAI, found by asking it, and what to do."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

FORGEAI = [sys.executable, "-m", "forgeai_ls.cli.main"]


def _doctor(tmp_path: Path, *args: str, **env: str) -> tuple[int, Any]:
    done = subprocess.run(
        [*FORGEAI, "doctor", "--json", "--no-engines", *args],
        env={**os.environ, "FORGEAI_DAEMON": "0", "FORGEAI_HOME": str(tmp_path), **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    return done.returncode, json.loads(done.stdout)


@pytest.mark.sandbox
def test_doctor_reports_a_working_sandbox_and_where_limits_come_from(tmp_path: Path) -> None:
    status, report = _doctor(tmp_path)
    bubblewrap = report["bubblewrap"]
    assert bubblewrap["path"] and bubblewrap["version"]
    assert bubblewrap["user_namespaces"] is True, bubblewrap["error"]
    assert report["sandbox"]["ran"] is True, report["sandbox"]
    assert report["seccomp"]["available"] is True
    cgroups = report["cgroups"]
    expected = os.environ.get("FORGEAI_EXPECT_LIMITS")
    limits = {fact["limit"]: fact["enforced_by"] for fact in report["limits"]}
    if expected in ("cgroup-v1", "cgroup-v2"):
        assert cgroups["hierarchy"] == expected[-2:]
        assert cgroups["reason"] is None and {"memory", "pids"} <= set(cgroups["controllers"])
        assert limits["memory"].startswith(f"cgroup {expected[-2:]} ")
        assert status == 0, report["problems"]
    elif expected == "rlimits":
        assert cgroups["reason"] and cgroups["controllers"] == []
        assert limits["memory"].startswith("RLIMIT_DATA")
        assert status == 1 and any("rlimits" in p for p in report["problems"])
    languages = {tool["language"] for tool in report["toolchains"] if tool["executable"]}
    assert "python" in languages


def test_doctor_names_a_degraded_limit_and_exits_1(tmp_path: Path) -> None:
    status, report = _doctor(tmp_path, FORGEAI_CGROUP_BASE=str(tmp_path / "missing"))
    assert status == 1
    assert report["cgroups"]["reason"].startswith("FORGEAI_CGROUP_BASE is not usable")
    assert any("rlimits, not cgroups" in problem for problem in report["problems"])
    assert report["sandbox"]["ran"] is True  # degraded, still working


def test_doctor_without_bubblewrap_says_how_to_install_it_and_exits_2(tmp_path: Path) -> None:
    status, report = _doctor(tmp_path, FORGEAI_BWRAP=str(tmp_path / "no-bwrap"))
    assert status == 2
    assert report["bubblewrap"]["path"] is None
    assert report["sandbox"] is None
    assert any("apt-get install bubblewrap" in problem for problem in report["problems"])


def test_doctor_prints_a_readable_report(tmp_path: Path) -> None:
    done = subprocess.run(
        [*FORGEAI, "doctor", "--no-engines"],
        env={**os.environ, "FORGEAI_DAEMON": "0", "FORGEAI_HOME": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    for heading in ("bubblewrap", "cgroups", "seccomp", "Limits", "Toolchains"):
        assert heading in done.stdout


def test_doctor_gives_the_apparmor_fix_where_apparmor_blocks_user_namespaces(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Ubuntu 24.04+: bwrap fails to set up its uid map while AppArmor restricts unprivileged
    user namespaces; the fix is a profile that lets that bwrap (only) create them."""
    import tempfile

    from forgeai_ls import doctor

    folder = Path(tempfile.mkdtemp(prefix="forgeai-fake-bwrap-"))
    try:
        folder.chmod(0o755)  # as root the probe runs bwrap as uid 65534
        bwrap = folder / "bwrap"
        bwrap.write_text(
            "#!/bin/sh\n"
            '[ "$1" = --version ] && { echo "bubblewrap 0.9.0"; exit 0; }\n'
            'echo "bwrap: setting up uid map: Permission denied" >&2; exit 1\n'
        )
        bwrap.chmod(0o755)
        knob = folder / "apparmor_restrict_unprivileged_userns"
        knob.write_text("1\n")
        monkeypatch.setenv("FORGEAI_BWRAP", str(bwrap))
        monkeypatch.setattr(doctor, "_APPARMOR_KNOB", knob)
        facts = doctor.bubblewrap_facts()
    finally:
        for child in folder.iterdir():
            child.unlink()
        folder.rmdir()
    assert facts.version == "0.9.0"
    assert facts.user_namespaces is False and facts.apparmor_restricts_userns is True
    assert facts.error == "bwrap: setting up uid map: Permission denied"
    assert facts.fix is not None
    assert f"profile bwrap {bwrap} flags=(unconfined)" in facts.fix
    assert "userns," in facts.fix and "apparmor_parser -r /etc/apparmor.d/bwrap" in facts.fix
