"""A seccomp filter for sandboxed programs, compiled with libseccomp when it is installed.

The filter allows ordinary programs everything they need and refuses (EPERM) the system calls
that only serve to attack the kernel or escape: kernel modules and keyrings, mounting, tracing
other processes (``ptrace``: a program could otherwise attach to its sandbox's PID 1 and disarm
it; no official plugin debugs), BPF, perf, io_uring, userfaultfd, clock and reboot control.
Sockets are limited to the families a program needs — Unix, IPv4, IPv6 and netlink's route
protocol (interface listing) — others (vsock, a path to the hypervisor; packet; Bluetooth; the
kernel's crypto API; ...) fail with EAFNOSUPPORT, as if the kernel lacked them.
bubblewrap already forbids new user namespaces (``--disable-userns``).
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import tempfile
from collections.abc import Mapping
from functools import cache
from typing import Any

from forgeai_ls.sandbox.linux import memfd_with

log = logging.getLogger(__name__)

DENIED_SYSCALLS: tuple[str, ...] = (
    "acct",
    "add_key",
    "adjtimex",
    "bpf",
    "clock_adjtime",
    "clock_settime",
    "create_module",
    "delete_module",
    "fanotify_init",
    "finit_module",
    "fsconfig",
    "fsmount",
    "fsopen",
    "fspick",
    "get_kernel_syms",
    "init_module",
    "io_uring_enter",
    "io_uring_register",
    "io_uring_setup",
    "ioperm",
    "iopl",
    "kcmp",
    "kexec_file_load",
    "kexec_load",
    "keyctl",
    "lookup_dcookie",
    "mount",
    "mount_setattr",
    "move_mount",
    "name_to_handle_at",
    "nfsservctl",
    "open_by_handle_at",
    "open_tree",
    "perf_event_open",
    "pivot_root",
    "process_vm_readv",
    "process_vm_writev",
    "ptrace",
    "query_module",
    "quotactl",
    "reboot",
    "request_key",
    "setns",
    "settimeofday",
    "swapoff",
    "swapon",
    "syslog",
    "umount",
    "umount2",
    "unshare",
    "uselib",
    "userfaultfd",
    "ustat",
    "vhangup",
    "vm86",
    "vm86old",
)


AF_UNIX, AF_INET, AF_INET6, AF_NETLINK = 1, 2, 10, 16
NETLINK_ROUTE = 0
_FAMILY_CEILING = 63
"""Above every address family Linux defines (AF_MAX is 46 in 6.x)."""
SOCKET_SYSCALLS = ("socket", "socketpair")
"""Their first argument is the family; ForgeAI's rules for them replace any plugin rule."""


def _family_rules(pyseccomp: Any) -> list[tuple[Any, ...]]:
    """Argument conditions (each tuple ANDed) under which a socket call is refused.

    libseccomp takes one comparison per argument and rule, so the refused families are listed
    one by one up to ``_FAMILY_CEILING``, and everything above it is refused with one rule.
    Comparisons see the whole 64-bit register: a family with high bits set (which the kernel
    would truncate to an int) is above the ceiling and so refused too.
    """
    arg = pyseccomp.Arg
    allowed = {AF_UNIX, AF_INET, AF_INET6, AF_NETLINK}
    rules: list[tuple[Any, ...]] = [
        (arg(0, pyseccomp.EQ, family),)
        for family in range(_FAMILY_CEILING + 1)
        if family not in allowed
    ]
    rules.append((arg(0, pyseccomp.GT, _FAMILY_CEILING),))
    rules.append((arg(0, pyseccomp.EQ, AF_NETLINK), arg(2, pyseccomp.NE, NETLINK_ROUTE)))
    return rules


def _action(pyseccomp: Any, name: str, errno_ret: int | None) -> Any:
    actions = {
        "SCMP_ACT_ALLOW": pyseccomp.ALLOW,
        "SCMP_ACT_KILL": pyseccomp.KILL,
        "SCMP_ACT_KILL_THREAD": pyseccomp.KILL,
        "SCMP_ACT_KILL_PROCESS": getattr(pyseccomp, "KILL_PROCESS", pyseccomp.KILL),
        "SCMP_ACT_TRAP": pyseccomp.TRAP,
        "SCMP_ACT_LOG": getattr(pyseccomp, "LOG", pyseccomp.ALLOW),
    }
    if name == "SCMP_ACT_ERRNO":
        return pyseccomp.ERRNO(errno_ret if errno_ret is not None else errno.EPERM)
    return actions.get(name, pyseccomp.ERRNO(errno.EPERM))


def _rules(profile: Mapping[str, Any]) -> list[tuple[str, str, int | None]]:
    """Unconditional (name, action, errno) rules of a Docker/OCI profile.

    Rules with argument, architecture or capability conditions are skipped: ForgeAI's
    built-in denials still apply, and the default action covers the rest.
    """
    rules = []
    for rule in profile.get("syscalls", []):
        if any(rule.get(key) for key in ("args", "includes", "excludes")):
            continue
        for name in rule.get("names", []):
            rules.append((name, rule["action"], rule.get("errnoRet")))
    return rules


def _build(profile_json: str | None) -> bytes | None:
    try:
        import pyseccomp
    except (ImportError, OSError) as exc:
        log.warning("seccomp filter disabled: libseccomp is not available (%s)", exc)
        return None
    profile: Mapping[str, Any] = json.loads(profile_json) if profile_json else {}
    default = _action(
        pyseccomp, profile.get("defaultAction", "SCMP_ACT_ALLOW"), profile.get("defaultErrnoRet")
    )
    try:
        syscall_filter = pyseccomp.SyscallFilter(default)
        denied = {*DENIED_SYSCALLS, *SOCKET_SYSCALLS}
        # The plugin's rules may restrict further; they never lift ForgeAI's own denials.
        for name, action, errno_ret in _rules(profile):
            if name in denied:
                continue
            with contextlib.suppress(ValueError, RuntimeError, OSError):
                syscall_filter.add_rule(_action(pyseccomp, action, errno_ret), name)
        for name in DENIED_SYSCALLS:
            with contextlib.suppress(ValueError, RuntimeError, OSError):
                syscall_filter.add_rule(pyseccomp.ERRNO(errno.EPERM), name)
        for name in SOCKET_SYSCALLS:
            for conditions in _family_rules(pyseccomp):
                syscall_filter.add_rule(pyseccomp.ERRNO(errno.EAFNOSUPPORT), name, *conditions)
        with tempfile.TemporaryFile() as out:
            syscall_filter.export_bpf(out)
            out.seek(0)
            return out.read()
    except (RuntimeError, OSError) as exc:
        log.warning("seccomp filter disabled: libseccomp failed to build it (%s)", exc)
        return None


@cache
def seccomp_program(profile_json: str | None = None) -> bytes | None:
    """The filter as BPF bytes for ``bwrap --seccomp``, or ``None`` without libseccomp.

    ``profile_json`` is a plugin's validated Docker/OCI profile (canonical JSON); without one,
    everything but ForgeAI's built-in denials is allowed.
    """
    return _build(profile_json)


def seccomp_fd(program: bytes) -> int:
    """A readable file descriptor holding ``program``, for bwrap to load."""
    return memfd_with("forgeai-seccomp", program)
