"""A container never outlives the `forgeai` that started it, and leftovers are swept.

Against the real engine: `forgeai run --backend docker` is killed during a run (the supervisor
removes the container through the engine's API), and containers and volumes labelled with a
dead ForgeAI process are removed by the next run.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from forgeai_ls.sandbox.docker_backend import OWNER_LABEL, RUN_LABEL
from tests.support.dockerd import DockerEngine
from tests.support.plugin_archives import forgeai

FORGEAI = [sys.executable, "-m", "forgeai_ls.cli.main"]
SLEEPER = "import time; print('up', flush=True); time.sleep(120)"


def _default_signals() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGHUP, signal.SIG_DFL)


def _boot_id() -> str:
    return Path("/proc/sys/kernel/random/boot_id").read_text().strip()


def _containers_of(engine: DockerEngine, pid: int) -> list[str]:
    found = engine.client.api.containers(
        all=True, filters={"label": f"{OWNER_LABEL}={_boot_id()}:{pid}"}
    )
    return [str(c["Id"]) for c in found]


@pytest.mark.parametrize(
    "signum", [signal.SIGKILL, signal.SIGTERM, signal.SIGHUP], ids=["KILL", "TERM", "HUP"]
)
def test_a_killed_cli_leaves_no_container(
    tmp_path: Path,
    docker_engine: DockerEngine,
    plugin_image: Callable[[str], str],
    signum: int,
) -> None:
    plugin_image("python")
    proc = subprocess.Popen(
        [*FORGEAI, "run", "--backend", "docker", "--timeout", "300", "-l", "python", "-c", SLEEPER],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "FORGEAI_HOME": str(tmp_path), "DOCKER_HOST": docker_engine.host},
        preexec_fn=_default_signals,
    )
    assert proc.stdout is not None and proc.stdout.readline() == b"up\n"
    assert len(_containers_of(docker_engine, proc.pid)) == 1
    proc.send_signal(signum)
    proc.wait(timeout=20)
    deadline = time.monotonic() + 10
    while _containers_of(docker_engine, proc.pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _containers_of(docker_engine, proc.pid) == []


def test_the_next_run_removes_what_a_dead_forgeai_left(
    tmp_path: Path, docker_engine: DockerEngine, plugin_image: Callable[[str], str]
) -> None:
    """A container and a volume labelled with a ForgeAI process that is gone (and whose
    supervisor could not remove them) are removed when the backend next connects; those of
    live processes and unlabelled ones are left alone."""
    image = plugin_image("python")
    dead_pid = _a_dead_pid()
    api = docker_engine.client.api
    dead_labels = {OWNER_LABEL: f"{_boot_id()}:{dead_pid}", RUN_LABEL: "left"}
    live_labels = {OWNER_LABEL: f"{_boot_id()}:{os.getpid()}", RUN_LABEL: "live"}
    dead = api.create_container(image, command=["true"], labels=dead_labels)["Id"]
    live = api.create_container(image, command=["true"], labels=live_labels)["Id"]
    volume = f"forgeai-test-{dead_pid}"
    docker_engine.client.volumes.create(name=volume, labels=dead_labels)
    try:
        done = forgeai(
            tmp_path, "run", "--backend", "docker", "-l", "python", "-c", "print(1)",
            env={"DOCKER_HOST": docker_engine.host},
        )  # fmt: skip
        assert (done.returncode, done.stdout) == (0, "1\n"), done.stderr
        remaining = {c["Id"] for c in api.containers(all=True)}
        assert dead not in remaining
        assert live in remaining
        assert volume not in {v["Name"] for v in api.volumes()["Volumes"] or []}
    finally:
        api.remove_container(live, force=True)


def _a_dead_pid() -> int:
    """The pid of a process that has exited (and is not running again)."""
    child = subprocess.Popen(["true"])
    child.wait()
    assert not os.path.exists(f"/proc/{child.pid}")
    return child.pid
