"""Connecting to a Docker Engine API: Docker's dockerd, or Podman's compatible service."""

from __future__ import annotations

import os
from dataclasses import dataclass

import docker
from docker.errors import DockerException
from requests.exceptions import RequestException

from forgeai_ls.errors import DockerUnavailableError
from forgeai_ls.sandbox.engine_info import docker_host, is_podman

START_HINT = (
    "start an engine and point DOCKER_HOST at it, e.g. as root: 'dockerd --data-root "
    "/tmp/dk/data --exec-root /tmp/dk/exec --pidfile /tmp/dk/pid -H unix:///tmp/dk/sock "
    "--iptables=false --ip6tables=false --bridge=none --storage-driver=overlay2 &' then "
    "DOCKER_HOST=unix:///tmp/dk/sock; or Podman: 'podman system service --time=0 &' and "
    "DOCKER_HOST=unix:///run/podman/podman.sock"
)


def docker_client(base_url: str | None = None, timeout: float = 60) -> docker.DockerClient:
    """A client of the engine at ``base_url`` (else $DOCKER_HOST, else the default socket),
    pinged, speaking the engine's own API version (Debian's Docker 20.10 stops at 1.41).

    Raises DockerUnavailableError, with a hint on starting an engine, when none answers.
    """
    url = docker_host(base_url)
    socket = url.removeprefix("unix://") if url.startswith("unix://") else None
    if socket is not None and not os.path.exists(socket):
        raise DockerUnavailableError(
            f"no container engine answers at {url} (there is no socket {socket})",
            hint=START_HINT,
        )
    try:
        client = docker.DockerClient(base_url=url, version="auto", timeout=int(timeout))
        client.ping()
    except (DockerException, RequestException) as exc:
        raise DockerUnavailableError(
            f"no container engine answers at {url} ({_short(exc)})", hint=START_HINT
        ) from None
    return client


def _short(exc: BaseException) -> str:
    """The root cause (``Connection refused``), not the wrappers docker-py and requests add."""
    seen: list[BaseException] = [exc]
    while (inner := seen[-1].__cause__ or seen[-1].__context__) is not None and len(seen) < 10:
        seen.append(inner)
        for arg in inner.args:
            if isinstance(arg, BaseException):
                seen.append(arg)
    for cause in reversed(seen):
        if isinstance(cause, OSError) and cause.strerror:
            return cause.strerror
    text = " ".join(str(exc).split()).removeprefix("Error while fetching server API version: ")
    return text if len(text) <= 200 else text[:197] + "..."


@dataclass(frozen=True, slots=True)
class Engine:
    client: docker.DockerClient
    url: str
    podman: bool
    """Podman's Docker API differs: seccomp profiles by path, OOM seen only as exit 137."""
    version: str


def connect(base_url: str | None = None, timeout: float = 60) -> Engine:
    """A pinged client and what kind of engine answers (Docker or Podman)."""
    client = docker_client(base_url, timeout)
    url = docker_host(base_url)
    try:
        version = client.version()
    except (DockerException, RequestException) as exc:
        raise DockerUnavailableError(
            f"the container engine at {url} does not answer ({_short(exc)})", hint=START_HINT
        ) from None
    return Engine(
        client=client, url=url, podman=is_podman(version), version=str(version.get("Version"))
    )
