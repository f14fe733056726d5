"""The bubblewrap command line for one sandboxed step.

Layout inside the sandbox:
- ``/usr`` (and the ``/bin``, ``/lib*`` links or trees) and a short allow-list of ``/etc``,
  read-only; toolchains from elsewhere (a home directory) read-only at their own path;
- ``/work`` (the program's files, working directory) and ``/tmp``: memory-backed, size-capped;
- ``/build``: the compile step's output directory (writable while compiling, read-only after);
- fresh ``/proc`` and ``/dev`` (with a size-capped ``/dev/shm``); everything else absent;
- root remounted read-only, so nothing else is writable.
"""

from __future__ import annotations

import glob
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from forgeai_ls.sandbox.request import BUILD_DIR, WORK_DIR

SANDBOX_UID = 1000
SANDBOX_GID = 1000
SANDBOX_USER = "sandbox"
HOSTNAME = "forgeai-sandbox"
SHM_BYTES = 16 * 1024 * 1024

_SYSTEM_TREES = ("/bin", "/sbin", "/lib", "/lib64", "/lib32", "/libx32")
_ETC_ALLOWED = (
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
    "fonts",
)
_ETC_GLOBS = ("java-*-openjdk",)
_ETC_WITH_NETWORK = ("resolv.conf",)


@dataclass(frozen=True, slots=True)
class Mount:
    source: str
    target: str


@dataclass(slots=True)
class BwrapCommand:
    """argv for bwrap plus the descriptors it must inherit (owned by the caller)."""

    argv: list[str]
    pass_fds: list[int] = field(default_factory=list)


def _memfd(name: str, content: bytes) -> int:
    fd = os.memfd_create(name, os.MFD_CLOEXEC)
    view = memoryview(content)
    while view:
        written = os.write(fd, view)
        view = view[written:]
    os.lseek(fd, 0, os.SEEK_SET)
    return fd


def _synthetic_etc() -> dict[str, bytes]:
    return {
        "/etc/passwd": (
            f"root:x:0:0:root:/nonexistent:/usr/sbin/nologin\n"
            f"{SANDBOX_USER}:x:{SANDBOX_UID}:{SANDBOX_GID}:ForgeAI sandbox:/tmp:/bin/sh\n"
            "nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n"
        ).encode(),
        "/etc/group": f"root:x:0:\n{SANDBOX_USER}:x:{SANDBOX_GID}:\nnogroup:x:65534:\n".encode(),
        "/etc/hostname": f"{HOSTNAME}\n".encode(),
        "/etc/hosts": f"127.0.0.1 localhost {HOSTNAME}\n::1 localhost ip6-localhost\n".encode(),
    }


def _system_tree_args() -> list[str]:
    args = ["--ro-bind", "/usr", "/usr"]
    for tree in _SYSTEM_TREES:
        if os.path.islink(tree):
            args += ["--symlink", os.readlink(tree), tree]
        elif os.path.isdir(tree):
            args += ["--ro-bind", tree, tree]
    return args


def _etc_entries(network: bool) -> list[str]:
    names = list(_ETC_ALLOWED)
    for pattern in _ETC_GLOBS:
        names += [os.path.basename(p) for p in glob.glob(f"/etc/{pattern}")]
    if network:
        names += _ETC_WITH_NETWORK
    return [f"/etc/{name}" for name in names if os.path.lexists(f"/etc/{name}")]


def _parent_dirs(relative: str) -> list[str]:
    parts = Path(relative).parts[:-1]
    return [f"{WORK_DIR}/{'/'.join(parts[: i + 1])}" for i in range(len(parts))]


def build_command(
    *,
    bwrap: str,
    argv: Sequence[str],
    env: Mapping[str, str],
    files: Mapping[str, bytes],
    toolchain_mounts: Sequence[Mount],
    build_dir: str | None,
    build_writable: bool,
    network: bool,
    disk_bytes: int,
    status_fd: int,
    seccomp_fd: int | None,
) -> BwrapCommand:
    """Assemble the bwrap invocation; memfds it creates are listed in ``pass_fds``."""
    command = BwrapCommand(argv=[bwrap])
    args = command.argv
    args += [
        "--unshare-user",
        "--unshare-pid",
        "--unshare-ipc",
        "--unshare-uts",
        "--unshare-cgroup-try",
    ]
    if not network:
        args.append("--unshare-net")
    args += [
        "--disable-userns",
        "--die-with-parent",
        "--new-session",
        "--cap-drop",
        "ALL",
        "--hostname",
        HOSTNAME,
        "--uid",
        str(SANDBOX_UID),
        "--gid",
        str(SANDBOX_GID),
    ]
    args += _system_tree_args()
    args += ["--proc", "/proc", "--dev", "/dev", "--size", str(SHM_BYTES), "--tmpfs", "/dev/shm"]
    for entry in _etc_entries(network):
        real = os.path.realpath(entry)
        args += ["--ro-bind-try", real, entry]
    for path, content in _synthetic_etc().items():
        fd = _memfd(Path(path).name, content)
        command.pass_fds.append(fd)
        args += ["--perms", "0644", "--ro-bind-data", str(fd), path]
    for mount in toolchain_mounts:
        args += ["--ro-bind", mount.source, mount.target]
    args += ["--size", str(disk_bytes), "--tmpfs", "/tmp"]
    args += ["--size", str(disk_bytes), "--tmpfs", WORK_DIR]
    for name, content in files.items():
        for parent in _parent_dirs(name):
            args += ["--dir", parent]
        fd = _memfd("source", content)
        command.pass_fds.append(fd)
        args += ["--perms", "0644", "--file", str(fd), f"{WORK_DIR}/{name}"]
    if build_dir is not None:
        args += ["--bind" if build_writable else "--ro-bind", build_dir, BUILD_DIR]
    args += ["--remount-ro", "/dev", "--remount-ro", "/", "--chdir", WORK_DIR]
    for key, value in env.items():
        args += ["--setenv", key, value]
    args += ["--json-status-fd", str(status_fd)]
    if seccomp_fd is not None:
        args += ["--seccomp", str(seccomp_fd)]
    args.append("--")
    args += argv
    return command
