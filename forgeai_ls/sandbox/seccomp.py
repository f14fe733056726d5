"""A seccomp filter for sandboxed programs, compiled with libseccomp when it is installed.

The filter allows ordinary programs everything they need and refuses (EPERM) the system calls
that only serve to attack the kernel or escape: kernel modules and keyrings, mounting, tracing
other processes' memory, BPF, perf, io_uring, userfaultfd, clock and reboot control.
bubblewrap already forbids new user namespaces (``--disable-userns``).
"""

from __future__ import annotations

import errno
import logging
import os
import tempfile
from functools import cache

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


@cache
def seccomp_program() -> bytes | None:
    """The filter as BPF bytes for ``bwrap --seccomp``, or ``None`` without libseccomp."""
    try:
        import pyseccomp
    except (ImportError, OSError) as exc:
        log.warning("seccomp filter disabled: libseccomp is not available (%s)", exc)
        return None
    try:
        syscall_filter = pyseccomp.SyscallFilter(pyseccomp.ALLOW)
        for name in DENIED_SYSCALLS:
            try:
                syscall_filter.add_rule(pyseccomp.ERRNO(errno.EPERM), name)
            except (ValueError, RuntimeError, OSError):
                continue  # not a system call on this architecture
        with tempfile.TemporaryFile() as out:
            syscall_filter.export_bpf(out)
            out.seek(0)
            return out.read()
    except (RuntimeError, OSError) as exc:
        log.warning("seccomp filter disabled: libseccomp failed to build it (%s)", exc)
        return None


def seccomp_fd(program: bytes) -> int:
    """A readable file descriptor holding ``program``, for bwrap to load."""
    fd = os.memfd_create("forgeai-seccomp", os.MFD_CLOEXEC)
    os.write(fd, program)
    os.lseek(fd, 0, os.SEEK_SET)
    return fd
