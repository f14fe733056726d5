"""A download checked against its signed TUF target: the error names the check that failed."""

from __future__ import annotations

import hashlib

import pytest
from tuf.api.metadata import TargetFile  # type: ignore[attr-defined]

from forgeai_ls.errors import RegistryIntegrityError
from forgeai_ls.registry.client import _check_target

SIGNED = b"the archive as its publisher signed it"


def _target() -> TargetFile:
    return TargetFile(len(SIGNED), {"sha256": hashlib.sha256(SIGNED).hexdigest()}, "p/a.fpkg")


@pytest.mark.parametrize(
    ("received", "check"),
    [
        (SIGNED[:-3], "failed the length check (35 bytes received, 38 signed)"),
        (SIGNED + b"+++", "failed the length check (41 bytes received, 38 signed)"),
        (SIGNED[:-3] + b"XYZ", "failed the sha256 check"),
    ],
    ids=["shorter", "longer", "same-length"],
)
def test_each_failed_check_is_named(received: bytes, check: str) -> None:
    with pytest.raises(RegistryIntegrityError) as caught:
        _check_target("http://registry", _target(), received, "the archive of p 1.0.0")
    assert caught.value.code == "FORGEAI-E305"
    assert check in caught.value.message


def test_the_signed_bytes_pass() -> None:
    _check_target("http://registry", _target(), SIGNED, "the archive of p 1.0.0")
