"""Linux helpers that Python 3.11 does not offer directly."""

from __future__ import annotations

import os


def memfd_with(name: str, content: bytes) -> int:
    """A close-on-exec memory file holding ``content``, positioned at its start."""
    fd = os.memfd_create(name, os.MFD_CLOEXEC)
    view = memoryview(content)
    while view:
        view = view[os.write(fd, view) :]
    os.lseek(fd, 0, os.SEEK_SET)
    return fd
