"""ForgeAI's per-user runtime directory: sandboxes' work directories, the daemon's socket.

Root uses ``/run/forgeai``; a user ``$XDG_RUNTIME_DIR/forgeai``, else
``$TMPDIR/forgeai-UID``. Every directory is checked to be ours (owner, no link) before use.
Only ``os`` is imported: the CLI's client of the daemon needs this first.
"""

from __future__ import annotations

import os
import stat


class NotPrivateError(Exception):
    """A directory ForgeAI would use exists but is not a private directory of this user."""

    def __init__(self, path: str) -> None:
        super().__init__(f"{path} is not a directory owned by this user")
        self.path = path


def private_dir(path: str, mode: int) -> str:
    """Create ``path`` or check that the existing one is ours (not another user's, no link)."""
    try:
        os.makedirs(path, mode=mode, exist_ok=True)
        info = os.lstat(path)
    except OSError:
        raise NotPrivateError(path) from None
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.geteuid():
        raise NotPrivateError(path)
    if stat.S_IMODE(info.st_mode) != mode:
        os.chmod(path, mode)
    return path


def runtime_base() -> str:
    if os.geteuid() == 0:
        return private_dir("/run/forgeai", 0o711)
    xdg = os.environ.get("XDG_RUNTIME_DIR")
    if xdg and os.access(xdg, os.W_OK):
        return private_dir(os.path.join(xdg, "forgeai"), 0o700)
    import tempfile  # only here: it imports much more than os

    return private_dir(os.path.join(tempfile.gettempdir(), f"forgeai-{os.getuid()}"), 0o700)
