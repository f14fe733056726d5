"""Clear a process's parent-death signal from outside, with ptrace (x86-64).

What a sandboxed program could do to its sandbox's PID 1 if ptrace were allowed to it: the
tests do it from the host instead, to prove that containment does not rest on that signal.
The target is stopped, made to execute ``prctl(PR_SET_PDEATHSIG, 0)`` at the ``syscall``
instruction it is blocked in, and resumed where it was.
"""

from __future__ import annotations

import ctypes
import os
import platform
import time

PTRACE_PEEKTEXT = 1
PTRACE_SINGLESTEP = 9
PTRACE_GETREGS = 12
PTRACE_SETREGS = 13
PTRACE_ATTACH = 16
PTRACE_DETACH = 17
SYS_PRCTL = 157
PR_SET_PDEATHSIG = 1
SYSCALL_INSTRUCTION = 0x050F  # bytes 0f 05, little-endian
_WALL = 0x40000000

_REGISTERS = [  # struct user_regs_struct, x86-64
    *("r15", "r14", "r13", "r12", "rbp", "rbx", "r11", "r10", "r9", "r8"),
    *("rax", "rcx", "rdx", "rsi", "rdi", "orig_rax", "rip", "cs", "eflags", "rsp", "ss"),
    *("fs_base", "gs_base", "ds", "es", "fs", "gs"),
]


class Registers(ctypes.Structure):
    _fields_ = [(name, ctypes.c_ulonglong) for name in _REGISTERS]


SUPPORTED = platform.machine() == "x86_64"

_libc = ctypes.CDLL(None, use_errno=True)
_libc.ptrace.restype = ctypes.c_long
_libc.ptrace.argtypes = [ctypes.c_long, ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p]


def _ptrace(request: int, pid: int, addr: int | None = None, data: object = None) -> int:
    ctypes.set_errno(0)
    result: int = _libc.ptrace(request, pid, addr, data)
    if result == -1 and ctypes.get_errno() != 0:
        code = ctypes.get_errno()
        raise OSError(code, f"ptrace({request}, {pid}): {os.strerror(code)}")
    return result


def parent_death_signal(pid: int) -> int:
    """A process's parent-death signal is not in /proc; ask it the same way (prctl GET)."""
    return _inject(pid, 2, 0, read_back=True)


def clear_parent_death_signal(pid: int) -> None:
    _inject(pid, PR_SET_PDEATHSIG, 0, read_back=False)


def _inject(pid: int, option: int, value: int, *, read_back: bool) -> int:
    """Run prctl(option, value_or_address) in ``pid``; for PR_GET_PDEATHSIG (2) the result is
    written to the stack below the red zone and read back. Retried until the target is
    caught at a ``syscall`` instruction (blocked in one, or about to restart one)."""
    for _attempt in range(200):
        answer = _try_inject(pid, option, value, read_back=read_back)
        if answer is not None:
            return answer
        time.sleep(0.01)
    raise RuntimeError(f"process {pid} was never caught at a system call")


def _try_inject(pid: int, option: int, value: int, *, read_back: bool) -> int | None:
    _ptrace(PTRACE_ATTACH, pid)
    os.waitpid(pid, _WALL)
    saved = Registers()
    _ptrace(PTRACE_GETREGS, pid, None, ctypes.byref(saved))
    try:
        for at in (saved.rip - 2, saved.rip):
            if _ptrace(PTRACE_PEEKTEXT, pid, at) & 0xFFFF == SYSCALL_INSTRUCTION:
                break
        else:
            return None
        regs = Registers.from_buffer_copy(saved)
        scratch = saved.rsp - 256
        regs.rax = SYS_PRCTL
        regs.orig_rax = 2**64 - 1  # no system call to restart first
        regs.rdi = option
        regs.rsi = scratch if read_back else value
        regs.rip = at
        _ptrace(PTRACE_SETREGS, pid, None, ctypes.byref(regs))
        _ptrace(PTRACE_SINGLESTEP, pid)
        os.waitpid(pid, _WALL)
        after = Registers()
        _ptrace(PTRACE_GETREGS, pid, None, ctypes.byref(after))
        if after.rax != 0:
            raise RuntimeError(f"prctl in {pid} failed: {after.rax - 2**64}")
        return _ptrace(PTRACE_PEEKTEXT, pid, scratch) & 0xFFFFFFFF if read_back else 0
    finally:
        _ptrace(PTRACE_SETREGS, pid, None, ctypes.byref(saved))
        _ptrace(PTRACE_DETACH, pid)
