"""A minimal root filesystem for a plugin's image, made from the host's own Debian packages.

No registry is ever asked for anything: the toolchain a plugin needs is already installed on
the host (the native backend runs it there), so its image is made of the very same files.

1. Each command of the manifest's ``dependencies`` is found in the system PATH directories
   (never a toolchain under ``$HOME``), its symbolic links followed, and every path on the way
   is looked up with ``dpkg-query -S`` (in both usrmerge forms, ``/bin/x`` and ``/usr/bin/x``).
2. The owning packages and a base set (a shell and coreutils) are closed over their installed
   Depends and Pre-Depends; the Recommends of the packages that own the commands are added too
   (gcc needs libc6-dev, which it only recommends; python3.11-minimal recommends the full
   standard library).
3. The packages' files (``dpkg-query -L``) are stored where they physically are on the host,
   so usrmerge's ``/bin -> usr/bin`` links stay links; links stay links, ``/etc/alternatives``
   chains whose final target is present are kept (``/usr/bin/javac`` works); documentation,
   manual pages and translations are left out.
4. ``/etc/passwd`` and ``/etc/group`` with only root and nobody, the host's ``/etc/ld.so.cache``
   and the empty directories a container needs are added. The tar is deterministic (sorted,
   mtime 0, owner 0, no setuid bits) and cached under
   ``FORGEAI_HOME/cache/rootfs/<digest of the package=version list>.tar``.
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
import re
import stat
import subprocess
import tarfile
import tempfile
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import BaseModel, ConfigDict

from forgeai_ls.errors import ImageBuildError
from forgeai_ls.home import forgeai_home

log = logging.getLogger(__name__)

ROOTFS_FORMAT = "forgeai-rootfs/1"
"""Part of the cache key: a change to what goes into a root filesystem changes this."""

SYSTEM_PATH = ("/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin")
"""Where commands are looked for: the system's, never a toolchain in a home directory."""

BASE_PACKAGES = ("dash", "coreutils", "bash", "libc6")
"""Enough for ``/bin/sh -c`` with head, mkdir, dirname, cat and friends."""

SKIPPED_TREES = ("/usr/share/doc", "/usr/share/man", "/usr/share/info", "/usr/share/locale")
"""Documentation and translations: about a third of a toolchain's size, never run."""

NEVER_INCLUDED = (
    "/root",
    "/home",
    "/etc/shadow",
    "/etc/shadow-",
    "/etc/gshadow",
    "/etc/gshadow-",
    "/etc/sudoers",
    "/etc/sudoers.d",
    "/etc/ssh",
    "/etc/ssl/private",
    "/etc/machine-id",
    "/var/lib/dpkg",
    "/var/log",
)
"""Host state no image may carry, whatever a package lists."""

USRMERGE_DIRS = ("bin", "sbin", "lib", "lib32", "lib64", "libx32")

SANDBOX_UID = 65534
PASSWD = b"root:x:0:0:root:/nonexistent:/usr/sbin/nologin\n" + (
    f"nobody:x:{SANDBOX_UID}:{SANDBOX_UID}:nobody:/nonexistent:/usr/sbin/nologin\n".encode()
)
GROUP = b"root:x:0:\n" + f"nogroup:x:{SANDBOX_UID}:\n".encode()
EMPTY_DIRS: tuple[tuple[str, int, int], ...] = (
    ("/tmp", 0o1777, 0),  # noqa: S108 (the image's /tmp, not the host's)
    ("/work", 0o755, SANDBOX_UID),
    ("/build", 0o755, SANDBOX_UID),
    ("/proc", 0o555, 0),
    ("/dev", 0o755, 0),
    ("/sys", 0o555, 0),
    ("/etc", 0o755, 0),
)
"""Directories a container needs, with mode and owner (the work dirs belong to nobody)."""

_DPKG_FIELDS = (
    "${binary:Package}\t${Package}\t${Architecture}\t${Version}\t${db:Status-Abbrev}\t"
    "${Provides}\t${Pre-Depends}\t${Depends}\t${Recommends}\n"
)
_QUALIFIERS = re.compile(r"\([^)]*\)|\[[^]]*\]|<[^>]*>")
_MAX_LINK_HOPS = 40
_SET_ID = stat.S_ISUID | stat.S_ISGID
"""Never kept: nothing in an image runs with another identity than the one it starts as."""


class RootfsResult(BaseModel):
    """A root filesystem tar ready for ``ADD rootfs.tar /``."""

    model_config = ConfigDict(frozen=True)

    path: Path
    digest: str
    """sha256 of the format and the sorted ``package:arch=version`` list: the cache key."""
    commands: dict[str, str]
    """Each dependency command and where it was found on the host."""
    packages: tuple[str, ...]
    """Every package in it, as ``name:arch=version``, sorted."""
    size_bytes: int
    cached: bool
    """True when an earlier build of the same package set was reused."""
    seconds: float


@dataclass(frozen=True, slots=True)
class DebPackage:
    binary: str
    """The name dpkg-query takes (``libc6:amd64`` for multi-arch packages)."""
    name: str
    arch: str
    version: str
    provides: tuple[str, ...]
    depends: tuple[tuple[str, ...], ...]
    """Pre-Depends then Depends: each a group of alternatives."""
    recommends: tuple[tuple[str, ...], ...]

    @property
    def pinned(self) -> str:
        return f"{self.name}:{self.arch}={self.version}"


def _relations(text: str) -> tuple[tuple[str, ...], ...]:
    """``a (>= 1) | b:any, c`` -> ((a, b), (c,)): versions, arch qualifiers, profiles gone."""
    groups = []
    for group in _QUALIFIERS.sub("", text).split(","):
        names = tuple(alt.strip().split(":")[0] for alt in group.split("|") if alt.strip())
        if names:
            groups.append(names)
    return tuple(groups)


def _dpkg_query(*args: str, allow_missing: bool = False, program: str = "dpkg-query") -> str:
    try:
        done = subprocess.run(
            [program, *args], capture_output=True, text=True, check=False, timeout=120
        )
    except FileNotFoundError:
        raise ImageBuildError(
            f"building a root filesystem from host packages needs {program} "
            "(a Debian or Ubuntu host)",
            hint="build on Debian/Ubuntu, or give the plugin a Dockerfile that does not use "
            "rootfs.tar",
        ) from None
    # dpkg-query exits 1 when some pattern matched nothing; it still prints the rest.
    if done.returncode != 0 and not (allow_missing and done.returncode == 1):
        reason = " ".join(done.stderr.split())[:300]
        raise ImageBuildError(f"{program} {args[0]} failed: {reason}")
    return done.stdout


class PackageDatabase:
    """The host's installed packages, read once from dpkg."""

    def __init__(self, packages: Iterable[DebPackage], native_arch: str) -> None:
        self._by_name: dict[str, DebPackage] = {}
        self._providers: dict[str, list[DebPackage]] = {}
        for package in sorted(packages, key=lambda p: (p.name, p.arch != native_arch, p.arch)):
            # Of several architectures of one name, the native (or 'all') one is used.
            self._by_name.setdefault(package.name, package)
            for virtual in package.provides:
                self._providers.setdefault(virtual, []).append(package)

    @classmethod
    def read(cls) -> PackageDatabase:
        native = _dpkg_query("--print-architecture", program="dpkg").strip()
        packages = []
        for line in _dpkg_query("-W", "-f", _DPKG_FIELDS).splitlines():
            binary, name, arch, version, status, provides, pre, depends, recommends = (
                line.split("\t") + [""] * 9
            )[:9]
            if len(status) < 2 or status[1] != "i":  # only fully installed packages
                continue
            packages.append(
                DebPackage(
                    binary=binary,
                    name=name,
                    arch=arch,
                    version=version,
                    provides=tuple(n for group in _relations(provides) for n in group),
                    depends=_relations(pre) + _relations(depends),
                    recommends=_relations(recommends),
                )
            )
        return cls(packages, native)

    def installed(self, name: str) -> DebPackage | None:
        return self._by_name.get(name)

    def choose(self, alternatives: Sequence[str]) -> DebPackage | None:
        """The first alternative that is installed, or that an installed package provides."""
        for name in alternatives:
            package = self._by_name.get(name)
            if package is not None:
                return package
            providers = self._providers.get(name)
            if providers:
                return providers[0]
        return None

    def owners(self, paths: Iterable[str]) -> set[str]:
        """Names of the packages that own any of ``paths`` (exact paths, not patterns)."""
        wanted = sorted({p for p in paths if not any(c in p for c in "*?[]\\")})
        if not wanted:
            return set()
        found = set()
        for line in _dpkg_query("-S", *wanted, allow_missing=True).splitlines():
            if line.startswith("diversion by") or ": " not in line:
                continue
            names, _ = line.rsplit(": ", 1)
            found |= {name.strip().split(":")[0] for name in names.split(",")}
        return found

    def files(self, packages: Iterable[DebPackage]) -> list[str]:
        binaries = sorted(p.binary for p in packages)
        output = _dpkg_query("-L", *binaries) if binaries else ""
        return sorted({line for line in output.splitlines() if line.startswith("/")} - {"/."})


def package_closure(
    db: PackageDatabase, roots: Iterable[str], recommending: Iterable[str] = ()
) -> list[DebPackage]:
    """``roots`` and everything they Depend or Pre-Depend on, plus the Recommends of the
    packages named in ``recommending`` (and their dependencies); only installed packages."""
    chosen: dict[str, DebPackage] = {}
    queue: list[DebPackage] = []
    for name in roots:
        package = db.installed(name)
        if package is None:
            raise ImageBuildError(
                f"package '{name}' is not installed on this host",
                hint=f"install it (apt-get install {name})",
            )
        queue.append(package)
    for name in recommending:
        package = db.installed(name)
        for group in package.recommends if package else ():
            recommended = db.choose(group)
            if recommended is not None:
                queue.append(recommended)
    while queue:
        package = queue.pop()
        if package.name in chosen:
            continue
        chosen[package.name] = package
        for group in package.depends:
            dependency = db.choose(group)
            if dependency is None:
                log.debug("%s: no installed package satisfies %s", package.name, " | ".join(group))
            elif dependency.name not in chosen:
                queue.append(dependency)
    return sorted(chosen.values(), key=lambda p: p.name)


def _excluded(path: str) -> bool:
    return any(path == top or path.startswith(top + "/") for top in SKIPPED_TREES + NEVER_INCLUDED)


def _usrmerge_forms(path: str) -> set[str]:
    """``/usr/bin/x`` and ``/bin/x`` when the host's ``/bin`` is a link to ``usr/bin``."""
    forms = {path}
    for top in USRMERGE_DIRS:
        if os.path.islink(f"/{top}"):
            if path.startswith(f"/{top}/"):
                forms.add("/usr" + path)
            elif path.startswith(f"/usr/{top}/"):
                forms.add(path.removeprefix("/usr"))
    return forms


def _link_chain(path: str) -> list[str]:
    """``path``, each link's target in turn, and the final real path."""
    chain = [path]
    current = path
    for _ in range(_MAX_LINK_HOPS):
        if not os.path.islink(current):
            break
        target = os.readlink(current)
        current = os.path.normpath(os.path.join(os.path.dirname(current), target))
        chain.append(current)
    real = os.path.realpath(path)
    if real not in chain:
        chain.append(real)
    return chain


@dataclass(frozen=True, slots=True)
class CommandOrigin:
    command: str
    path: str
    """Where the system PATH finds it (``/usr/bin/javac``)."""
    packages: frozenset[str]
    """The packages owning it or any link on the way (``openjdk-17-jdk-headless``)."""


def resolve_command(command: str, db: PackageDatabase) -> CommandOrigin:
    """Find ``command`` in the system PATH and the packages that provide it."""
    unowned: list[str] = []
    seen: set[str] = set()
    for directory in SYSTEM_PATH:
        candidate = os.path.join(directory, command)
        real = os.path.realpath(candidate)
        if real in seen or not (os.path.isfile(candidate) and os.access(candidate, os.X_OK)):
            continue
        seen.add(real)
        forms = {form for hop in _link_chain(candidate) for form in _usrmerge_forms(hop)}
        owners = db.owners(forms)
        if owners:
            return CommandOrigin(command, candidate, frozenset(owners))
        unowned.append(candidate)
    if unowned:
        raise ImageBuildError(
            f"command '{command}' is {unowned[0]}, which no installed Debian package owns; "
            "root filesystems are made from the host's packages only",
            hint=f"install '{command}' with apt-get, or write a Dockerfile that does not use "
            "rootfs.tar",
        )
    raise ImageBuildError(
        f"command '{command}' is not installed in {':'.join(SYSTEM_PATH)} on this host",
        hint=f"install the Debian package that provides '{command}' (toolchains in a home "
        "directory, such as rustup or pyenv, cannot go into an image)",
    )


@dataclass(slots=True)
class _Entry:
    kind: str
    """'dir', 'file' or 'link'."""
    mode: int
    source: str | None = None
    """Host path of a file's content."""
    data: bytes | None = None
    """Generated content (instead of ``source``)."""
    target: str = ""
    uid: int = 0
    inode: tuple[int, int] | None = None
    """(device, inode) of a file with several hard links on the host."""


@dataclass(slots=True)
class RootfsTree:
    """The paths of a root filesystem, each as it physically is on the host."""

    entries: dict[str, _Entry] = field(default_factory=dict)
    _physical_dirs: dict[str, str] = field(default_factory=dict)

    def physical(self, path: str) -> str:
        """``path`` with its directory resolved (``/bin/ls`` -> ``/usr/bin/ls``), the last
        component kept, so that links stay links."""
        directory, name = os.path.split(os.path.normpath(path))
        real = self._physical_dirs.get(directory)
        if real is None:
            real = self._physical_dirs[directory] = os.path.realpath(directory)
        return os.path.join(real, name) if name else real

    def add_host_path(self, path: str) -> str | None:
        """Add a host path (file, directory or link) and its parent directories; returns the
        stored path, or None when it is skipped or absent."""
        stored = self.physical(path)
        if stored == "/" or _excluded(path) or _excluded(stored):
            return None
        if stored in self.entries:
            return stored
        try:
            info = os.lstat(stored)
        except OSError:
            return None  # listed by dpkg but removed since (or diverted): nothing to take
        if stat.S_ISLNK(info.st_mode):
            entry = _Entry("link", 0o777, target=os.readlink(stored))
        elif stat.S_ISDIR(info.st_mode):
            entry = _Entry("dir", stat.S_IMODE(info.st_mode) & ~_SET_ID)
        elif stat.S_ISREG(info.st_mode):
            entry = _Entry(
                "file",
                stat.S_IMODE(info.st_mode) & ~_SET_ID,
                source=stored,
                inode=(info.st_dev, info.st_ino) if info.st_nlink > 1 else None,
            )
        else:
            return None  # devices, sockets and fifos have no place in an image
        self._add_parents(stored)
        self.entries[stored] = entry
        return stored

    def add_chain(self, path: str) -> None:
        """A link and every link after it (``/usr/bin/java -> /etc/alternatives/java -> ...``),
        up to the real file."""
        current = path
        for _ in range(_MAX_LINK_HOPS):
            stored = self.add_host_path(current)
            if stored is None or self.entries[stored].kind != "link":
                return
            current = os.path.join(os.path.dirname(stored), self.entries[stored].target)

    def add_generated(self, path: str, entry: _Entry) -> None:
        self._add_parents(path)
        self.entries[path] = entry

    def _add_parents(self, path: str) -> None:
        parent = os.path.dirname(path)
        while parent != "/" and parent not in self.entries:
            try:
                mode = stat.S_IMODE(os.stat(parent).st_mode)
            except OSError:
                mode = 0o755
            self.entries[parent] = _Entry("dir", mode)
            parent = os.path.dirname(parent)

    def has_file(self, path: str) -> bool:
        entry = self.entries.get(self.physical(path))
        return entry is not None and entry.kind == "file"

    def write_tar(self, destination: Path) -> None:
        """A deterministic tar: sorted, parents first, mtime 0, numeric owners only."""
        first_of_inode: dict[tuple[int, int], str] = {}
        with tarfile.open(destination, "w", format=tarfile.PAX_FORMAT) as tar:
            for path in sorted(self.entries, key=lambda p: p.split("/")):
                entry = self.entries[path]
                info = tarfile.TarInfo(path.lstrip("/"))
                info.mtime = 0
                info.mode = entry.mode
                info.uid = info.gid = entry.uid
                info.uname = info.gname = ""
                if entry.kind == "dir":
                    info.type = tarfile.DIRTYPE
                    tar.addfile(info)
                elif entry.kind == "link":
                    info.type = tarfile.SYMTYPE
                    info.linkname = entry.target
                    tar.addfile(info)
                elif entry.inode is not None and entry.inode in first_of_inode:
                    info.type = tarfile.LNKTYPE
                    info.linkname = first_of_inode[entry.inode]
                    tar.addfile(info)
                elif entry.data is not None:
                    info.size = len(entry.data)
                    tar.addfile(info, io.BytesIO(entry.data))
                else:
                    assert entry.source is not None
                    if entry.inode is not None:
                        first_of_inode[entry.inode] = info.name
                    with open(entry.source, "rb") as content:
                        info.size = os.fstat(content.fileno()).st_size
                        tar.addfile(info, content)


def _alternatives() -> list[tuple[str, str]]:
    """(link, /etc/alternatives/NAME) of every master and slave link update-alternatives
    manages here, read from /var/lib/dpkg/alternatives."""
    pairs = []
    directory = Path("/var/lib/dpkg/alternatives")
    for admin in sorted(directory.iterdir()) if directory.is_dir() else []:
        try:
            lines = admin.read_text().splitlines()
        except (OSError, UnicodeDecodeError):
            continue
        if len(lines) < 2:
            continue
        pairs.append((lines[1], f"/etc/alternatives/{admin.name}"))
        index = 2
        while index + 1 < len(lines) and lines[index]:
            pairs.append((lines[index + 1], f"/etc/alternatives/{lines[index]}"))
            index += 2
    return pairs


@dataclass(frozen=True, slots=True)
class RootfsPlan:
    """What a root filesystem will hold, decided before any file is read."""

    commands: tuple[CommandOrigin, ...]
    packages: tuple[DebPackage, ...]

    @property
    def digest(self) -> str:
        text = "\n".join([ROOTFS_FORMAT, *sorted(p.pinned for p in self.packages)])
        return hashlib.sha256(text.encode()).hexdigest()


def plan_rootfs(commands: Sequence[str], db: PackageDatabase | None = None) -> RootfsPlan:
    """The packages a root filesystem for ``commands`` needs."""
    db = db or PackageDatabase.read()
    origins = tuple(resolve_command(command, db) for command in commands)
    owners = sorted({name for origin in origins for name in origin.packages})
    packages = package_closure(db, [*BASE_PACKAGES, *owners], recommending=owners)
    return RootfsPlan(commands=origins, packages=tuple(packages))


def assemble_tree(plan: RootfsPlan, db: PackageDatabase) -> RootfsTree:
    """Every path of the planned root filesystem (nothing read but metadata)."""
    tree = RootfsTree()
    for top in USRMERGE_DIRS:
        if os.path.islink(f"/{top}"):
            tree.add_host_path(f"/{top}")
    for path in db.files(plan.packages):
        stored = tree.add_host_path(path)
        if stored is not None and tree.entries[stored].kind == "link":
            target = os.path.join(os.path.dirname(stored), tree.entries[stored].target)
            if os.path.normpath(target).startswith("/etc/alternatives/"):
                tree.add_chain(stored)
    for origin in plan.commands:
        tree.add_chain(origin.path)
    for link, alternative in _alternatives():
        # A managed link (cc, java, lua) whose chosen target is in the image: keep the chain.
        if not _excluded(link) and tree.has_file(os.path.realpath(alternative)):
            tree.add_chain(link)
    for path, mode, owner in EMPTY_DIRS:
        tree.add_generated(path, _Entry("dir", mode, uid=owner))
    tree.add_generated("/etc/passwd", _Entry("file", 0o644, data=PASSWD))
    tree.add_generated("/etc/group", _Entry("file", 0o644, data=GROUP))
    if os.path.isfile("/etc/ld.so.cache"):
        tree.add_generated(
            "/etc/ld.so.cache", _Entry("file", 0o644, data=Path("/etc/ld.so.cache").read_bytes())
        )
    return tree


def rootfs_cache_dir() -> Path:
    return forgeai_home() / "cache" / "rootfs"


def build_rootfs(
    commands: Sequence[str], *, cache_dir: Path | None = None, force: bool = False
) -> RootfsResult:
    """A root filesystem tar with ``commands`` and what they need, from the host's packages;
    reused from the cache when the same package versions were built before."""
    started = time.perf_counter()
    db = PackageDatabase.read()
    plan = plan_rootfs(commands, db)
    directory = cache_dir or rootfs_cache_dir()
    path = directory / f"{plan.digest}.tar"
    cached = path.is_file() and not force
    if not cached:
        tree = assemble_tree(plan, db)
        directory.mkdir(parents=True, exist_ok=True)
        handle, partial = tempfile.mkstemp(dir=directory, prefix=".partial-", suffix=".tar")
        os.close(handle)
        try:
            tree.write_tar(Path(partial))
            os.replace(partial, path)
        except OSError as exc:
            raise ImageBuildError(
                f"the root filesystem could not be written to {directory}: {exc}"
            ) from None
        finally:
            if os.path.exists(partial):
                os.unlink(partial)
    return RootfsResult(
        path=path,
        digest=plan.digest,
        commands={origin.command: origin.path for origin in plan.commands},
        packages=tuple(p.pinned for p in plan.packages),
        size_bytes=path.stat().st_size,
        cached=cached,
        seconds=round(time.perf_counter() - started, 3),
    )
