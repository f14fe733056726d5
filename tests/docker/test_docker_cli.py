"""`forgeai run --backend docker` from the terminal, against the real engine."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.support.plugin_archives import forgeai


def test_run_file_with_the_docker_backend(
    tmp_path: Path, docker_engine: Any, plugin_image: Callable[[str], str]
) -> None:
    plugin_image("python")
    source = tmp_path / "hello.py"
    source.write_text("import sys\nprint('hi from', open('/etc/hostname').read().strip())\n")
    env = {"DOCKER_HOST": docker_engine.host}
    done = forgeai(tmp_path / "home", "run", str(source), "--backend", "docker", env=env)
    assert (done.returncode, done.stdout) == (0, "hi from sandbox\n"), done.stderr
    report = forgeai(
        tmp_path / "home", "run", str(source), "--backend", "docker", "--json", env=env
    )
    assert json.loads(report.stdout)["backend"] == "docker"
    slow = forgeai(
        tmp_path / "home", "run", "-l", "python", "-c", "while True: pass",
        "--backend", "docker", "--timeout", "1", env=env,
    )  # fmt: skip
    assert slow.returncode == 124 and "timeout limit" in slow.stderr


def test_no_engine_is_a_clear_error(tmp_path: Path) -> None:
    env = {"DOCKER_HOST": f"unix://{tmp_path}/absent.sock"}
    done = forgeai(tmp_path / "home", "run", "-l", "python", "-c", "print(1)",
                   "--backend", "docker", env=env)  # fmt: skip
    assert done.returncode == 125
    assert "FORGEAI-E120" in done.stderr and "absent.sock" in done.stderr


def test_doctor_finds_the_engine(tmp_path: Path, docker_engine: Any) -> None:
    """`forgeai doctor` pings the engine DOCKER_HOST names and says which engine answers."""
    done = forgeai(tmp_path / "home", "doctor", "--json", env={"DOCKER_HOST": docker_engine.host})
    engines = {e["name"]: e for e in json.loads(done.stdout)["engines"]}
    assert engines["docker"]["url"] == docker_engine.host
    assert engines["docker"]["reachable"] is True, engines["docker"]
    assert engines["docker"]["detail"].startswith(("Docker ", "Podman "))
    absent = forgeai(
        tmp_path / "home", "doctor", "--json", env={"DOCKER_HOST": f"unix://{tmp_path}/no.sock"}
    )
    engines = {e["name"]: e for e in json.loads(absent.stdout)["engines"]}
    assert engines["docker"] == {
        "name": "docker", "url": f"unix://{tmp_path}/no.sock", "reachable": False,
        "detail": "no socket",
    }  # fmt: skip
