"""Files out on the host side: the collector's frames are checked again, and saving never
follows a link or overwrites without --force."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import pytest

from forgeai_ls.artifact_files import check_output_dir, prune_runs, save_artifacts
from forgeai_ls.errors import ArtifactOutputError
from forgeai_ls.sandbox.artifacts import Artifact, Artifacts, parse_collected


def frame(name: str, kind: str = "file", data: bytes = b"") -> bytes:
    header = json.dumps({"name": name, "kind": kind, "size": len(data)}).encode()
    return struct.pack(">I", len(header)) + header + data


def test_frames_with_unsafe_names_are_refused() -> None:
    stream = b"".join(
        [
            frame("ok.txt", data=b"fine"),
            frame("../escape.txt", data=b"x"),
            frame("/etc/passwd", data=b"x"),
            frame("a//b", data=b"x"),
            frame("evil", kind="link"),
            frame("cut.txt", data=b"full")[:-2],  # cut short: dropped
        ]
    )
    found = parse_collected(stream)
    assert [(a.name, a.data) for a in found.files] == [("ok.txt", b"fine")]
    assert found.skipped == (
        "'../escape.txt': not a safe relative name",
        "'/etc/passwd': not a safe relative name",
        "'a//b': not a safe relative name",
        "evil: a symbolic link, not followed",
    )


def test_the_caps_hold_even_when_the_frames_ignore_them() -> None:
    stream = b"".join(frame(f"f{i}", data=b"12345") for i in range(5))
    found = parse_collected(stream, max_files=3, max_bytes=1000)
    assert len(found.files) == 3 and len(found.skipped) == 2
    found = parse_collected(stream, max_files=100, max_bytes=12)
    assert len(found.files) == 2


def artifacts(*names: str) -> Artifacts:
    return Artifacts(
        files=tuple(Artifact(name=n, size=2, mime="text/plain", data=b"hi") for n in names)
    )


def test_saving_creates_folders_and_never_overwrites(tmp_path: Path) -> None:
    saved = save_artifacts(artifacts("a.txt", "deep/er/b.txt"), tmp_path / "out")
    assert [s.path for s in saved] == [
        str(tmp_path / "out/a.txt"),
        str(tmp_path / "out/deep/er/b.txt"),
    ]
    assert (tmp_path / "out/deep/er/b.txt").read_bytes() == b"hi"
    with pytest.raises(ArtifactOutputError, match="exists; files are never overwritten"):
        save_artifacts(artifacts("a.txt"), tmp_path / "out")
    (tmp_path / "out/a.txt").write_text("old")
    save_artifacts(artifacts("a.txt"), tmp_path / "out", force=True)
    assert (tmp_path / "out/a.txt").read_text() == "hi"


def test_saving_never_follows_a_link_in_the_destination(tmp_path: Path) -> None:
    target = tmp_path / "elsewhere"
    target.mkdir()
    out = tmp_path / "out"
    out.mkdir()
    (out / "deep").symlink_to(target)
    (out / "f.txt").symlink_to(target / "f.txt")
    for name in ("deep/x.txt", "f.txt"):
        with pytest.raises(ArtifactOutputError):
            save_artifacts(artifacts(name), out, force=True)
    assert list(target.iterdir()) == []


def test_an_out_folder_with_files_needs_force(tmp_path: Path) -> None:
    check_output_dir(tmp_path / "new", force=False)
    (tmp_path / "used").mkdir()
    (tmp_path / "used" / "x").write_text("")
    with pytest.raises(ArtifactOutputError, match="not empty") as raised:
        check_output_dir(tmp_path / "used", force=False)
    assert raised.value.code == "FORGEAI-E150"
    check_output_dir(tmp_path / "used", force=True)
    (tmp_path / "file").write_text("")
    with pytest.raises(ArtifactOutputError, match="not a folder"):
        check_output_dir(tmp_path / "file", force=True)


def test_the_store_keeps_the_newest_runs(tmp_path: Path) -> None:
    for name in ("20260101-000000-a", "20260102-000000-b", "20260103-000000-c"):
        save_artifacts(artifacts("x.txt"), tmp_path / name)
    prune_runs(tmp_path, keep_runs=2, max_bytes=1 << 20)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["20260102-000000-b", "20260103-000000-c"]
