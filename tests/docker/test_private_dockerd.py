"""The private dockerd of the docker tests: start failures are reported, and what a killed
earlier session left behind neither blocks a start nor stays forever."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.support.dockerd import BASE, PREFIX, DockerdStartError, PrivateDockerd, sweep_stale


def test_a_dockerd_that_exits_is_reported_and_cleaned_up(tmp_path: Path) -> None:
    """A daemon that dies at start: the error has its exit status and log; no directory stays."""
    fake = tmp_path / "dockerd"
    fake.write_text("#!/bin/sh\necho 'failed to start daemon: no luck' >&2\nexit 3\n")
    fake.chmod(0o755)
    with pytest.raises(DockerdStartError, match="exited with status 3: failed to start daemon"):
        PrivateDockerd.start(str(fake))
    # The fresh directory of that attempt is gone again (swept or removed by stop()).
    leftovers = [p for p in BASE.glob(f"{PREFIX}*") if (p / "dockerd.log").exists()]
    assert not [p for p in leftovers if "no luck" in (p / "dockerd.log").read_text()]


def test_stale_directories_of_dead_dockerds_are_swept(tmp_path: Path) -> None:
    """A directory whose dockerd is dead goes; a running one's and a just-made one stay."""
    finished = subprocess.Popen(["true"])
    finished.wait()
    for name, pid in (("fdk-dead", str(finished.pid)), ("fdk-live", "1")):
        (tmp_path / name / "data").mkdir(parents=True)
        (tmp_path / name / "pid").write_text(pid)
    (tmp_path / "fdk-starting").mkdir()
    sweep_stale(base=tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fdk-live", "fdk-starting"]
