"""Images of the official plugins: built offline from the host's packages, run in a real
engine, as the library and as `forgeai image build` / `forgeai image list`."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tarfile
from collections.abc import Callable
from pathlib import Path

import pytest

from forgeai_ls.home import bundled_plugins_dir
from forgeai_ls.images.build import ROOTFS_NAME, ContextStream, base_images
from forgeai_ls.images.rootfs import build_rootfs
from tests.support.dockerd import DockerEngine

FORGEAI = [sys.executable, "-m", "forgeai_ls.cli.main"]
NOBODY = "65534:65534"


def forgeai(home: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*FORGEAI, *args],
        capture_output=True,
        text=True,
        env={**os.environ, "FORGEAI_HOME": str(home), **env},
        stdin=subprocess.DEVNULL,
        timeout=600,
        check=False,
    )


def run_in(engine: DockerEngine, image: str, script: str) -> str:
    """Run ``sh -c script`` the way the sandbox does: no network, read-only, as nobody."""
    output = engine.client.containers.run(
        image,
        ["sh", "-c", script],
        network_mode="none",
        read_only=True,
        user=NOBODY,
        tmpfs={"/tmp": "size=64m,exec"},
        remove=True,
        stdout=True,
        stderr=True,
    )
    return bytes(output).decode()


# -- images in the engine ------------------------------------------------------------------


def test_python_image_runs_python(
    docker_engine: DockerEngine, plugin_image: Callable[[str], str]
) -> None:
    """python3 runs in the python plugin's image with no network, read-only, as nobody."""
    assert run_in(docker_engine, plugin_image("python"), "python3 -c 'print(1)'") == "1\n"


def test_c_image_compiles_and_runs_hello_world(
    docker_engine: DockerEngine, plugin_image: Callable[[str], str]
) -> None:
    """gcc (with libc6-dev, only Recommended by gcc) compiles a program that then runs."""
    script = (
        "printf '#include <stdio.h>\\nint main(void){puts(\"Hello, ForgeAI\");return 0;}\\n'"
        " > /tmp/main.c && gcc -std=gnu17 -O1 -o /tmp/main /tmp/main.c -lm"
        " && stdbuf -oL /tmp/main"
    )
    assert run_in(docker_engine, plugin_image("c"), script) == "Hello, ForgeAI\n"


def test_image_holds_no_host_secrets(
    docker_engine: DockerEngine, plugin_image: Callable[[str], str]
) -> None:
    """No home directories, password hashes or keys of the host; only root and nobody."""
    secrets = "/root /home /etc/shadow /etc/gshadow /etc/sudoers /etc/ssh /etc/ssl/private"
    script = f"for p in {secrets}; do [ -e $p ] && echo $p; done; cut -d: -f1,3 /etc/passwd; id"
    assert run_in(docker_engine, plugin_image("python"), script).splitlines() == [
        "root:0",
        "nobody:65534",
        "uid=65534(nobody) gid=65534(nogroup) groups=65534(nogroup)",
    ]


# -- the CLI -----------------------------------------------------------------------------------


def test_cli_builds_an_image(docker_engine: DockerEngine, image_home: Path) -> None:
    """`forgeai image build python --json` builds the tag its manifest names, in that engine."""
    done = forgeai(image_home, "image", "build", "python", "--json", DOCKER_HOST=docker_engine.host)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert (result["plugin"], result["tag"]) == ("python", "forgeai/python:1.0.0")
    assert docker_engine.client.images.get(result["tag"]).id == result["image_id"]
    assert result["rootfs"]["commands"] == {"python3": "/usr/bin/python3"}
    assert any(p.startswith("python3.11:") for p in result["rootfs"]["packages"])


def test_cli_lists_images(
    docker_engine: DockerEngine, plugin_image: Callable[[str], str], tmp_path: Path
) -> None:
    """`forgeai image list --json` names each plugin's image and whether the engine has it."""
    plugin_image("python")
    done = forgeai(tmp_path, "image", "list", "--docker-host", docker_engine.host, "--json")
    assert done.returncode == 0, done.stderr
    images = {entry["plugin"]: entry for entry in json.loads(done.stdout)["images"]}
    assert images["python"]["image"] == "forgeai/python:1.0.0"
    assert (images["python"]["present"], images["python"]["up_to_date"]) == (True, True)
    assert all(entry["has_dockerfile"] for entry in images.values())


def test_cli_without_an_engine_fails_with_e120(tmp_path: Path) -> None:
    """No engine at DOCKER_HOST: one line with FORGEAI-E120 and a hint, exit 125."""
    done = forgeai(tmp_path, "image", "build", "bash", DOCKER_HOST=f"unix://{tmp_path}/no.sock")
    assert done.returncode == 125
    assert done.stderr.startswith("forgeai: FORGEAI-E120: no container engine answers at unix://")
    assert "dockerd" in done.stderr and len(done.stderr.splitlines()) == 1


def test_cli_refuses_a_base_image_it_would_have_to_pull(
    docker_engine: DockerEngine, tmp_path: Path
) -> None:
    """FROM an image the engine does not have: FORGEAI-E123 naming it; nothing is pulled."""
    folder = tmp_path / "unknown-base"
    shutil.copytree(bundled_plugins_dir() / "bash", folder)
    (folder / "Dockerfile").write_text("FROM some/unknown:1\nUSER 65534:65534\n")
    done = forgeai(
        tmp_path / "home",
        "image",
        "build",
        str(folder),
        "--docker-host",
        docker_engine.host,
        FORGEAI_ALLOW_UNSIGNED="1",
    )
    assert done.returncode == 125, done.stderr
    assert "FORGEAI-E123" in done.stderr and "some/unknown:1" in done.stderr
    assert "never pulls" in done.stderr
    assert not docker_engine.client.images.list(name="some/unknown")


# -- no engine needed ----------------------------------------------------------------------------


@pytest.mark.skipif(shutil.which("dpkg-query") is None, reason="not a Debian host")
def test_rootfs_is_deterministic_and_minimal(tmp_path: Path) -> None:
    """Made twice, the base root filesystem is the same bytes: sorted, mtime 0, owner 0 (the
    work directories nobody's), no setuid, no docs, usrmerge links kept, only root and nobody."""
    first = build_rootfs((), cache_dir=tmp_path / "one")
    again = build_rootfs((), cache_dir=tmp_path / "two")
    digests = {hashlib.sha256(r.path.read_bytes()).hexdigest() for r in (first, again)}
    assert len(digests) == 1 and first.digest == again.digest and not again.cached
    with tarfile.open(first.path) as tar:
        members = {m.name: m for m in tar.getmembers()}
        passwd = tar.extractfile("etc/passwd")
        assert passwd is not None and passwd.read().count(b"\n") == 2
    assert members["bin"].issym() and members["bin"].linkname == "usr/bin"
    assert members["usr/bin/sh"].issym() and members["usr/bin/dash"].isfile()
    assert members["tmp"].mode == 0o1777 and members["work"].uid == 65534
    assert all(m.mtime == 0 for m in members.values())
    assert not [m.name for m in members.values() if m.mode & 0o6000]
    assert not [n for n in members if n.startswith(("root", "home", "usr/share/doc", "etc/sh"))]
    assert build_rootfs((), cache_dir=tmp_path / "one").cached


def test_dockerfile_base_images() -> None:
    """scratch and the Dockerfile's own stages need nothing; other images must be present."""
    dockerfile = (
        "# comment\nFROM --platform=linux/amd64 golang:1 AS builder\nRUN make \\\n  all\n"
        "FROM scratch\nCOPY --from=builder /x /x\nCOPY --from=0 /y /y\n"
        "COPY --from=busybox:1 /bin/sh /bin/sh\nADD rootfs.tar /\n"
    )
    assert base_images(dockerfile) == ["golang:1", "busybox:1"]
    assert base_images("FROM scratch\nADD rootfs.tar /\n") == []


def test_context_stream_is_a_tar_of_files_and_rootfs(tmp_path: Path) -> None:
    """The build context: the plugin's files and rootfs.tar, with its length known upfront."""
    rootfs = tmp_path / "r.tar"
    rootfs.write_bytes(os.urandom(70_000))
    stream = ContextStream({"Dockerfile": b"FROM scratch\n", "plugin.yaml": b"a: 1\n"}, rootfs)
    data = stream.read()
    stream.close()
    assert len(data) == len(stream)
    archive = tmp_path / "context.tar"
    archive.write_bytes(data)
    with tarfile.open(archive) as tar:
        assert tar.getnames() == ["Dockerfile", "plugin.yaml", ROOTFS_NAME]
        member = tar.extractfile(ROOTFS_NAME)
        assert member is not None and member.read() == rootfs.read_bytes()
