"""The bubblewrap command line for one sandboxed step.

Layout inside the sandbox:
- ``/usr`` (and the ``/bin``, ``/lib*`` links or trees) and a prepared copy of an allow-list
  of ``/etc`` (see etc_tree), read-only; toolchains from elsewhere (a home directory)
  read-only at their own path;
- ``/work`` (the program's files, working directory) and ``/tmp``: memory-backed, size-capped;
- ``/build``: the compile step's output directory (writable while compiling, read-only after);
- ``/work/out`` in a run step: its output directory (``artifacts``);
- a request's host mounts (a project environment; ``/node_modules``), read-only, and with an
  allow-list the egress proxy's socket (``egress_proxy``);
- fresh ``/proc`` and ``/dev`` (with a size-capped ``/dev/shm``); everything else absent;
- root remounted read-only, so nothing else is writable.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from forgeai_ls.sandbox.etc_tree import HOSTNAME, SANDBOX_GID, SANDBOX_UID
from forgeai_ls.sandbox.linux import memfd_with
from forgeai_ls.sandbox.request import BUILD_DIR, WORK_DIR

SHM_BYTES = 16 * 1024 * 1024

_SYSTEM_TREES = ("/bin", "/sbin", "/lib", "/lib64", "/lib32", "/libx32")


@dataclass(frozen=True, slots=True)
class Mount:
    source: str
    target: str
    writable: bool = False


@dataclass(slots=True)
class BwrapCommand:
    """argv for bwrap plus the descriptors it must inherit (owned by the caller)."""

    argv: list[str]
    pass_fds: list[int] = field(default_factory=list)


@functools.cache
def _system_tree_args() -> tuple[str, ...]:
    args = ["--ro-bind", "/usr", "/usr"]
    for tree in _SYSTEM_TREES:
        if os.path.islink(tree):
            args += ["--symlink", os.readlink(tree), tree]
        elif os.path.isdir(tree):
            args += ["--ro-bind", tree, tree]
    return tuple(args)


def _parent_dirs(relative: str) -> list[str]:
    parts = Path(relative).parts[:-1]
    return [f"{WORK_DIR}/{'/'.join(parts[: i + 1])}" for i in range(len(parts))]


def build_command(
    *,
    bwrap: str,
    etc_dir: str,
    argv: Sequence[str],
    env: Mapping[str, str],
    files: Mapping[str, bytes],
    toolchain_mounts: Sequence[Mount],
    readonly_files: Mapping[str, bytes] | None = None,
    build_dir: str | None,
    build_writable: bool,
    network: bool,
    disk_bytes: int,
    status_fd: int,
    seccomp_fd: int | None,
    output_dir: str | None = None,
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
    args += ["--ro-bind", etc_dir, "/etc"]
    if network and os.path.exists("/etc/resolv.conf"):
        args += ["--ro-bind", os.path.realpath("/etc/resolv.conf"), "/etc/resolv.conf"]
    args += ["--size", str(disk_bytes), "--tmpfs", "/tmp"]
    args += ["--size", str(disk_bytes), "--tmpfs", WORK_DIR]
    if output_dir is not None:  # files out (see ``artifacts``), on the work dir's tmpfs
        args += ["--dir", output_dir]
    for mount in toolchain_mounts:  # after the tmpfs mounts, which would hide them
        args += ["--bind" if mount.writable else "--ro-bind", mount.source, mount.target]
    for name, content in files.items():
        for parent in _parent_dirs(name):
            args += ["--dir", parent]
        fd = memfd_with("source", content)
        command.pass_fds.append(fd)
        args += ["--perms", "0644", "--file", str(fd), f"{WORK_DIR}/{name}"]
    for name, content in (readonly_files or {}).items():
        for parent in _parent_dirs(name):
            args += ["--dir", parent]
        fd = memfd_with("readonly", content)
        command.pass_fds.append(fd)
        args += ["--perms", "0444", "--ro-bind-data", str(fd), f"{WORK_DIR}/{name}"]
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
