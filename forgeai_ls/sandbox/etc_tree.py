"""The sandbox's /etc: a read-only copy of an allow-list of the host's /etc, made once.

Mounting one prepared directory costs one bind mount instead of one per entry (about a
millisecond per run saved). Only world-readable entries are copied, so nothing a normal user
could not read (``/etc/ssl/private``, ``/etc/shadow``) can end up inside. Symbolic links are kept
as links: their targets (``/usr/share/zoneinfo/...``, ``/usr/lib/jvm/...``) exist in the sandbox.
The copy is named by a digest of its content, so an updated host /etc gives a new copy.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import stat
import tempfile
from pathlib import Path

SANDBOX_UID = 1000
SANDBOX_GID = 1000
SANDBOX_USER = "sandbox"
HOSTNAME = "forgeai-sandbox"

ETC_ALLOWED = (
    "alternatives",
    "ld.so.cache",
    "ld.so.conf",
    "ld.so.conf.d",
    "localtime",
    "timezone",
    "ssl",
    "ca-certificates",
    "ca-certificates.conf",
    "perl",
    "mime.types",
    "protocols",
    "services",
    "nsswitch.conf",
    "gai.conf",
    "host.conf",
    "os-release",
    "java-17-openjdk",
    "java-21-openjdk",
    "java-11-openjdk",
    "bash.bashrc",
    "inputrc",
    "environment",
)


def _synthetic() -> dict[str, bytes]:
    return {
        "passwd": (
            "root:x:0:0:root:/nonexistent:/usr/sbin/nologin\n"
            f"{SANDBOX_USER}:x:{SANDBOX_UID}:{SANDBOX_GID}:ForgeAI sandbox:/tmp:/bin/sh\n"
            "nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n"
        ).encode(),
        "group": f"root:x:0:\n{SANDBOX_USER}:x:{SANDBOX_GID}:\nnogroup:x:65534:\n".encode(),
        "hostname": f"{HOSTNAME}\n".encode(),
        "hosts": f"127.0.0.1 localhost {HOSTNAME}\n::1 localhost ip6-localhost\n".encode(),
        # Empty without network; the host's is mounted over it when network is allowed.
        "resolv.conf": b"",
    }


def _world_readable(info: os.stat_result) -> bool:
    needed = stat.S_IROTH | (stat.S_IXOTH if stat.S_ISDIR(info.st_mode) else 0)
    return info.st_mode & needed == needed


def _copy(source: Path, target: Path, digest: hashlib._Hash) -> None:
    info = source.lstat()
    digest.update(str(target.name).encode())
    if stat.S_ISLNK(info.st_mode):
        link = os.readlink(source)
        digest.update(b"L" + link.encode())
        target.symlink_to(link)
    elif stat.S_ISDIR(info.st_mode) and _world_readable(info):
        target.mkdir(mode=0o755)
        for child in sorted(source.iterdir()):
            _copy(child, target / child.name, digest)
    elif stat.S_ISREG(info.st_mode) and _world_readable(info):
        data = source.read_bytes()
        digest.update(b"F" + data)
        target.write_bytes(data)
        target.chmod(0o644)


_LAYOUT_VERSION = "1"
"""Bump when the synthetic files or the copy rules change."""


def _fingerprint(host_etc: Path) -> str:
    """Names, types, sizes, times and inodes of the allow-listed entries: cheap to compute,
    and any change to them (an updated certificate bundle, a new alternative) changes it."""
    digest = hashlib.sha256(_LAYOUT_VERSION.encode())
    for name in ETC_ALLOWED:
        root = host_etc / name
        if not (root.is_symlink() or root.exists()):
            continue
        for directory, dirnames, filenames in (
            os.walk(root)
            if root.is_dir() and not root.is_symlink()
            else [(str(root.parent), [], [root.name])]
        ):
            dirnames.sort()
            for entry in sorted([*dirnames, *filenames]):
                info = os.lstat(os.path.join(directory, entry))
                digest.update(
                    f"{directory}/{entry}:{info.st_mode}:{info.st_size}:"
                    f"{info.st_mtime_ns}:{info.st_ino}\n".encode()
                )
    return digest.hexdigest()[:24]


def build_etc_tree(base: Path, host_etc: Path = Path("/etc")) -> Path:
    """Create (or reuse) the sandbox /etc under ``base``; returns its path.

    A marker named after the host's fingerprint points at the copy made from it, so later
    processes reuse the copy without reading or writing anything but the marker.
    """
    base.mkdir(parents=True, exist_ok=True)
    marker = base / f"fingerprint-{_fingerprint(host_etc)}"
    with contextlib.suppress(OSError):
        known = base / marker.read_text().strip()
        if known.name.startswith("etc-") and known.is_dir():
            return known
    tree = _build(base, host_etc)
    temporary = base / f".{marker.name}.{os.getpid()}"
    temporary.write_text(tree.name)
    temporary.replace(marker)
    return tree


def _build(base: Path, host_etc: Path) -> Path:
    staging = Path(tempfile.mkdtemp(prefix=".etc-", dir=base))
    try:
        staging.chmod(0o755)
        digest = hashlib.sha256()
        for name in ETC_ALLOWED:
            source = host_etc / name
            if source.is_symlink() or source.exists():
                _copy(source, staging / name, digest)
        for name, content in _synthetic().items():
            digest.update(name.encode() + content)
            (staging / name).write_bytes(content)
            (staging / name).chmod(0o644)
        final = base / f"etc-{digest.hexdigest()[:16]}"
        try:
            staging.rename(final)
        except OSError:  # made by another ForgeAI process: identical content, use theirs
            shutil.rmtree(staging, ignore_errors=True)
        return final
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
