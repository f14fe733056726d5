"""Which container engine ForgeAI talks to: its address, and whether Docker or Podman answers.

Plain functions without docker-py (the ``docker`` extra), so ``forgeai doctor`` can use them too.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

DEFAULT_DOCKER_HOST = "unix:///var/run/docker.sock"


def docker_host(base_url: str | None = None) -> str:
    """The engine URL used: ``base_url``, else $DOCKER_HOST, else Docker's default socket."""
    return base_url or os.environ.get("DOCKER_HOST") or DEFAULT_DOCKER_HOST


def is_podman(version: Mapping[str, Any]) -> bool:
    """Whether the engine's ``/version`` answer comes from Podman's Docker-compatible API."""
    components = " ".join(str(c.get("Name", "")) for c in version.get("Components") or [])
    platform = str((version.get("Platform") or {}).get("Name", ""))
    return "podman" in (components + " " + platform).lower()
