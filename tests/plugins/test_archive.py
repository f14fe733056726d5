"""Archive extraction never writes outside its destination, whatever the member names."""

from __future__ import annotations

import tarfile
import tempfile
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from forgeai_ls.errors import ArchiveError, InstallError
from forgeai_ls.plugins.archive import read_archive, write_contents
from forgeai_ls.plugins.lifecycle import PluginLifecycle
from forgeai_ls.plugins.manager import ManagerConfig
from tests.support.plugin_archives import Author, tar_gz

_PARTS = st.sampled_from(["a", "b.py", ".", "..", "", "x y", "plugin.yaml"])
_NAMES = st.lists(_PARTS, min_size=1, max_size=5).map("/".join) | st.lists(
    _PARTS, min_size=1, max_size=4
).map(lambda parts: "/" + "/".join(parts))


def _regular(name: str) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.mode = 0o644
    return info


@settings(max_examples=300, deadline=None)
@given(st.lists(_NAMES, min_size=1, max_size=6))
def test_no_member_name_escapes_the_destination(names: list[str]) -> None:
    data = tar_gz([(_regular(name), name.encode()) for name in names])
    hostile = any(name.startswith("/") or ".." in name.split("/") for name in names)
    with tempfile.TemporaryDirectory() as scratch:
        outside = Path(scratch)
        destination = outside / "inside" / "plugin"
        destination.parent.mkdir()
        try:
            write_contents(read_archive(data, "generated"), destination)
            refused = False
        except ArchiveError:
            refused = True
        assert refused or not hostile, names
        written = [p for p in outside.rglob("*") if p.is_file()]
        assert all(destination in p.parents for p in written), written


def test_compressed_size_limit() -> None:
    data = tar_gz([(_regular("plugin.yaml"), b"x" * 5000)])
    with pytest.raises(ArchiveError, match="over the 100-byte archive limit"):
        read_archive(data, "big", max_bytes=100)


def test_signer_other_than_the_registry_listed_is_refused(tmp_path: Path) -> None:
    author = Author(tmp_path / "home", tmp_path / "work")
    author.trust_in(tmp_path / "home")
    archive = author.archive("zed-executor", "1.0.0")
    lifecycle = PluginLifecycle(ManagerConfig(home=tmp_path / "home", bundled_dir=None))
    contents = read_archive(archive.read_bytes(), "zed")
    with pytest.raises(InstallError, match="registry lists key 0123456789abcdef"):
        lifecycle.install(contents, "registry", "http://x", expected_key_id="0123456789abcdef")
    assert lifecycle.installed() == {}
