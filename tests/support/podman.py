"""A private Podman API service for the tests (Podman's Docker-compatible API).

Root only; its own storage root, run root and socket under /tmp, runc as the runtime (crun
refuses hybrid cgroups) and cgroupfs (no systemd needed); stopped with SIGTERM at the end.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import docker

from tests.support.dockerd import BASE, START_TIMEOUT, SYSTEM_PATH, stop_service

CONTAINERS_CONF = """\
[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
[containers]
netns = "none"
"""


class PodmanStartError(RuntimeError):
    """The Podman service did not start; the message has the reason."""


@dataclass
class PrivatePodman:
    root: Path
    process: subprocess.Popen[bytes]

    @property
    def host(self) -> str:
        return f"unix://{self.root}/p.sock"

    @classmethod
    def start(cls, podman: str = "podman") -> PrivatePodman:
        root = Path(tempfile.mkdtemp(prefix="fpm-", dir=BASE))
        (root / "containers.conf").write_text(CONTAINERS_CONF)
        env = {
            **os.environ,
            "PATH": f"{os.environ.get('PATH', '')}:{SYSTEM_PATH}",
            "CONTAINERS_CONF": str(root / "containers.conf"),
        }
        env.pop("DOCKER_HOST", None)
        command = [
            podman, "--root", str(root / "storage"), "--runroot", str(root / "run"),
            "system", "service", "--time=0", f"unix://{root}/p.sock",
        ]  # fmt: skip
        with open(root / "podman.log", "wb") as log:
            process = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                cwd=root,  # conmon leaves files (an "oom" marker) in its working directory
                start_new_session=True,
            )
        service = cls(root=root, process=process)
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if process.poll() is not None:
                log_text = (root / "podman.log").read_text(errors="replace")[-400:]
                service.stop()
                raise PodmanStartError(f"podman exited with {process.returncode}: {log_text}")
            if (root / "p.sock").exists():
                with contextlib.suppress(docker.errors.DockerException):
                    client = docker.DockerClient(base_url=service.host, version="auto")
                    client.ping()
                    client.close()
                    return service
            time.sleep(0.1)
        service.stop()
        raise PodmanStartError(f"podman did not answer within {START_TIMEOUT:.0f} s")

    def stop(self) -> None:
        stop_service(self.process, self.root)
