"""Forwarding the terminal's standard input to the sandboxed program as it is typed."""

from __future__ import annotations

import asyncio
import os
import stat
from collections.abc import AsyncIterator

_CHUNK = 64 * 1024


def forwardable(fd: int) -> bool:
    """Input worth forwarding: a terminal, a pipe, a socket or a file (not /dev/null)."""
    try:
        mode = os.fstat(fd).st_mode
    except OSError:
        return False
    if stat.S_ISCHR(mode):
        return os.isatty(fd)
    return stat.S_ISFIFO(mode) or stat.S_ISREG(mode) or stat.S_ISSOCK(mode)


async def read_fd_chunks(fd: int) -> AsyncIterator[bytes]:
    """Chunks of ``fd`` as they become available, until end of file (Ctrl-D on a terminal).

    The descriptor's blocking mode is left alone (changing it would leak into the user's shell);
    a read only happens once the loop reports the descriptor readable.
    """
    if stat.S_ISREG(os.fstat(fd).st_mode):  # files cannot be polled; they never block anyway
        while chunk := os.read(fd, _CHUNK):
            yield chunk
        return
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[bytes] = asyncio.Queue()

    def on_readable() -> None:
        try:
            data = os.read(fd, _CHUNK)
        except OSError:
            data = b""
        if not data:
            loop.remove_reader(fd)
        queue.put_nowait(data)

    loop.add_reader(fd, on_readable)
    try:
        while chunk := await queue.get():
            yield chunk
    finally:
        loop.remove_reader(fd)
