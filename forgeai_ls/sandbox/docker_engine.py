"""Connecting to a Docker Engine API: Docker's dockerd, or Podman's compatible service."""

from __future__ import annotations

import os
from dataclasses import dataclass

import docker
from docker.errors import DockerException

from forgeai_ls.errors import DockerUnavailableError

START_HINT = (
    "start an engine (e.g. 'dockerd' from Debian's docker.io, or 'podman system service') and "
    "point DOCKER_HOST at its socket, or use the native backend"
)


@dataclass(frozen=True, slots=True)
class Engine:
    client: docker.DockerClient
    url: str
    podman: bool
    """Podman's Docker API differs: seccomp profiles by path, OOM seen only as exit 137."""
    version: str


def connect(base_url: str | None = None, timeout: float = 60) -> Engine:
    """A pinged client for ``base_url``, else DOCKER_HOST, else the default socket."""
    url = base_url or os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"
    try:
        client = docker.DockerClient(base_url=url, timeout=int(timeout))
        client.ping()
        version = client.version()
    except DockerException as exc:
        raise DockerUnavailableError(
            f"no container engine answers at {url} ({_short(exc)})", hint=START_HINT
        ) from None
    components = " ".join(str(c.get("Name", "")) for c in version.get("Components") or [])
    platform = str((version.get("Platform") or {}).get("Name", ""))
    podman = "podman" in (components + " " + platform).lower()
    return Engine(client=client, url=url, podman=podman, version=str(version.get("Version")))


def _short(exc: Exception) -> str:
    text = " ".join(str(exc).split())
    return text if len(text) <= 160 else text[:157] + "..."
