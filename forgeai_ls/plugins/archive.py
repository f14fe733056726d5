"""Plugin archives: one signed plugin folder in one file, built reproducibly, extracted safely.

An archive is ``NAME-VERSION.fpkg``: a gzip-compressed POSIX tar whose members are the plugin
folder's files (``plugin.yaml``, ``SIGNATURE.json``, ...) at its root, with fixed owners,
modes and times so that building the same folder twice gives the same bytes.

Extraction trusts nothing in the archive: only regular files and directories with relative
paths that stay inside the destination are accepted; absolute paths, ``..``, links, devices,
FIFOs, duplicate names and archives over the size limits are refused before anything is
written.
"""

from __future__ import annotations

import gzip
import io
import os
import stat
import tarfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from forgeai_ls.errors import ArchiveError
from forgeai_ls.plugins.manifest import MANIFEST_NAME, PluginManifest, parse_manifest
from forgeai_ls.plugins.signing import (
    MAX_PLUGIN_BYTES,
    MAX_PLUGIN_FILES,
    SIGNATURE_NAME,
    read_plugin_files,
)

ARCHIVE_SUFFIX = ".fpkg"
MAX_ARCHIVE_BYTES = 32 * 1024 * 1024
"""Largest compressed archive accepted (download, upload and extraction)."""


def archive_name(name: str, version: str) -> str:
    return f"{name}-{version}{ARCHIVE_SUFFIX}"


@dataclass(frozen=True, slots=True)
class ArchiveContents:
    """The verified-safe members of an archive, in memory."""

    files: dict[str, bytes]
    executable: frozenset[str]

    def manifest(self, what: str) -> PluginManifest:
        data = self.files.get(MANIFEST_NAME)
        if data is None:
            raise ArchiveError(f"{what} has no {MANIFEST_NAME} at its root")
        return parse_manifest(data, f"{what}:{MANIFEST_NAME}")


def build_archive(folder: Path) -> tuple[bytes, PluginManifest]:
    """The archive bytes of a signed plugin folder (reproducible: same folder, same bytes)."""
    data = (folder / MANIFEST_NAME).read_bytes() if (folder / MANIFEST_NAME).is_file() else None
    if data is None:
        raise ArchiveError(f"{folder} has no {MANIFEST_NAME}", hint="pass a plugin folder")
    manifest = parse_manifest(data, str(folder / MANIFEST_NAME))
    files = read_plugin_files(folder, manifest.name)
    if SIGNATURE_NAME not in files.contents:
        raise ArchiveError(
            f"{folder} is not signed (no {SIGNATURE_NAME})",
            hint="build with '--sign-key NAME' (see 'forgeai key generate')",
        )
    buffer = io.BytesIO()
    # mtime=0 in the gzip header and in every member: reproducible bytes.
    with (
        gzip.GzipFile(fileobj=buffer, mode="wb", mtime=0, compresslevel=9) as compressed,
        tarfile.open(fileobj=compressed, mode="w", format=tarfile.PAX_FORMAT) as tar,
    ):
        directories = sorted(
            {str(parent) for name in files.contents for parent in PurePosixPath(name).parents}
            - {"."}
        )
        for directory in directories:
            tar.addfile(_member(directory, tarfile.DIRTYPE, 0o755, 0))
        for name, content in sorted(files.contents.items()):
            executable = os.access(folder / name, os.X_OK)
            member = _member(name, tarfile.REGTYPE, 0o755 if executable else 0o644, len(content))
            tar.addfile(member, io.BytesIO(content))
    return buffer.getvalue(), manifest


def _member(name: str, kind: bytes, mode: int, size: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.mode = mode
    info.size = size
    info.mtime = 0
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info


def _check_member_name(name: str, what: str) -> str:
    if not name or "\x00" in name or "\\" in name:
        raise ArchiveError(f"{what}: member name {name!r} is not a plain relative path")
    path = PurePosixPath(name)
    if path.is_absolute():
        raise ArchiveError(f"{what}: member {name!r} has an absolute path; refused")
    if any(part == ".." for part in path.parts):
        raise ArchiveError(f"{what}: member {name!r} escapes the archive with '..'; refused")
    normal = "/".join(part for part in path.parts if part != ".")
    if not normal:
        raise ArchiveError(f"{what}: member {name!r} names no file")
    return normal


def read_archive(data: bytes, what: str, *, max_bytes: int = MAX_ARCHIVE_BYTES) -> ArchiveContents:
    """Every member of archive ``data``, checked; raises ArchiveError on the first unsafe one."""
    if len(data) > max_bytes:
        raise ArchiveError(
            f"{what} is {len(data)} bytes, over the {max_bytes}-byte archive limit",
            hint="plugins are small; keep large data out of the plugin folder",
        )
    files: dict[str, bytes] = {}
    executable: set[str] = set()
    directories: set[str] = set()
    total = 0
    try:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
            for member in tar:
                name = _check_member_name(member.name, what)
                if member.issym() or member.islnk():
                    raise ArchiveError(
                        f"{what}: member {name!r} is a link (to {member.linkname!r}); "
                        "links are refused"
                    )
                if member.isdir():
                    directories.add(name)
                    continue
                if not member.isreg():
                    raise ArchiveError(
                        f"{what}: member {name!r} is a device, FIFO or other special "
                        "file; only regular files are accepted"
                    )
                if name in files or name in directories:
                    raise ArchiveError(f"{what}: member {name!r} appears twice; refused")
                total += member.size
                if len(files) >= MAX_PLUGIN_FILES or total > MAX_PLUGIN_BYTES:
                    raise ArchiveError(
                        f"{what} unpacks to more than {MAX_PLUGIN_FILES} files or "
                        f"{MAX_PLUGIN_BYTES} bytes; refused"
                    )
                extracted = tar.extractfile(member)
                assert extracted is not None  # a regular file always has content
                content = extracted.read(member.size + 1)
                if len(content) != member.size:
                    raise ArchiveError(f"{what}: member {name!r} is truncated")
                files[name] = content
                if member.mode & 0o111:
                    executable.add(name)
    except (tarfile.TarError, EOFError, OSError, gzip.BadGzipFile) as exc:
        raise ArchiveError(
            f"{what} is not a valid plugin archive ({exc})",
            hint=f"build archives with 'forgeai plugin build' ({ARCHIVE_SUFFIX})",
        ) from None
    clashes = sorted(
        name for name in files if any(str(p) in files for p in PurePosixPath(name).parents)
    )
    if clashes:
        raise ArchiveError(f"{what}: {clashes[0]!r} is both a file and a directory")
    return ArchiveContents(files=files, executable=frozenset(executable))


def write_contents(contents: ArchiveContents, destination: Path) -> None:
    """Write checked members under the (new, empty) folder ``destination``.

    Files are created exclusively and without following links, so nothing outside
    ``destination`` can be touched even if it changes under us.
    """
    destination.mkdir(mode=0o755)
    root = destination.resolve()
    for name, content in sorted(contents.files.items()):
        target = root / name
        if root not in target.parents:
            raise ArchiveError(f"member {name!r} would be written outside {root}")
        target.parent.mkdir(parents=True, exist_ok=True, mode=0o755)
        if target.parent.resolve() != target.parent or target.parent.is_symlink():
            raise ArchiveError(f"member {name!r}: a link appeared in its path")
        mode = 0o755 if name in contents.executable else 0o644
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
        fd = os.open(target, flags, mode)
        with os.fdopen(fd, "wb") as out:
            out.write(content)
            out.flush()
            os.fsync(out.fileno())
        os.chmod(target, mode)


def copy_folder_contents(folder: Path, plugin: str) -> ArchiveContents:
    """A plugin folder read like an archive (same refusals: links, special files, size)."""
    files = read_plugin_files(folder, plugin)
    executable = frozenset(
        name
        for name in files.contents
        if stat.S_IMODE((folder / name).lstat().st_mode) & stat.S_IXUSR
    )
    return ArchiveContents(files=dict(files.contents), executable=executable)
