"""The forgeai CLI that kills itself (SIGKILL, like ``kill -9``) at a named lifecycle step.

Usage: ``python -m tests.support.crash_cli STEP forgeai-arguments...``
"""

from __future__ import annotations

import os
import signal
import sys

from forgeai_ls.cli.main import entry
from forgeai_ls.plugins import installed_store

STEP = sys.argv.pop(1)


def _crash_at(reached: str) -> None:
    if reached == STEP:
        os.kill(os.getpid(), signal.SIGKILL)


installed_store.set_checkpoint_hook(_crash_at)
sys.argv[0] = "forgeai"
entry()
