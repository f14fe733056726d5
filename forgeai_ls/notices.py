"""Things ForgeAI tells a user once per boot, not on every run (e.g. that memory and process
limits fall back to rlimits on this machine): a marker per notice in the runtime directory,
named by the boot and the notice's text."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from forgeai_ls.runtime_dir import NotPrivateError, private_dir, runtime_base


def _boot_id() -> str:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return "unknown-boot"


def first_time(text: str) -> bool:
    """True the first time this user's ForgeAI says ``text`` since the machine booted."""
    try:
        directory = private_dir(os.path.join(runtime_base(), "notices"), 0o700)
    except NotPrivateError:
        return True  # no place to remember it: say it
    name = hashlib.sha256(f"{_boot_id()}\n{text}".encode()).hexdigest()[:24]
    try:
        os.close(
            os.open(os.path.join(directory, name), os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
        )
    except FileExistsError:
        return False
    except OSError:
        return True
    return True
