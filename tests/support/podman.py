"""A private Podman API service for the tests (Podman's Docker-compatible API).

Root only; its own storage root, run root and socket under /tmp, runc as the runtime (crun
refuses hybrid cgroups) and cgroupfs (no systemd needed); stopped with SIGTERM at the end.
"""

from __future__ import annotations

import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from tests.support.dockerd import BASE, spawn_service, stop_service, wait_for_api

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
        command = [
            podman, "--root", str(root / "storage"), "--runroot", str(root / "run"),
            "system", "service", "--time=0", f"unix://{root}/p.sock",
        ]  # fmt: skip
        log = root / "podman.log"
        process = spawn_service(
            command, root, log, {"CONTAINERS_CONF": str(root / "containers.conf")}
        )
        service = cls(root=root, process=process)
        try:
            wait_for_api(process, service.host, root / "p.sock", log, PodmanStartError)
        except PodmanStartError:
            service.stop()
            raise
        return service

    def stop(self) -> None:
        stop_service(self.process, self.root)
