"""A private dockerd for the tests: its own socket, data root, exec root and pidfile.

Started as root with Debian's ``docker.io`` (no registry, no bridge, no iptables), stopped
with SIGTERM at the end. Paths stay short (a unix socket path is limited to 107 bytes and
containerd puts its own sockets under the exec root). Every start uses a fresh directory, so a
session killed earlier cannot leave a pidfile or socket in its way; what such a session left in
/tmp is cleaned up when its dockerd is gone.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import docker

BASE = Path("/tmp")
"""Not $TMPDIR, which may be long: containerd's sockets live under the exec root."""
PREFIX = "fdk-"
"""Directories of private dockerds: /tmp/fdk-XXXXXXXX."""
START_TIMEOUT = 60.0
STOP_TIMEOUT = 30.0
SYSTEM_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


class DockerdStartError(RuntimeError):
    """dockerd did not start; the message has the reason and the end of its log."""


def _mount_points_below(root: Path) -> list[str]:
    """Mount points at or under ``root``, deepest first."""
    found = []
    with open("/proc/self/mountinfo") as mounts:
        for line in mounts:
            point = line.split()[4].encode().decode("unicode_escape")
            if point == str(root) or point.startswith(f"{root}/"):
                found.append(point)
    return sorted(found, key=len, reverse=True)


def _unmount_below(root: Path) -> bool:
    """Lazily unmount everything under ``root``; True when nothing stays mounted there."""
    for point in _mount_points_below(root):
        subprocess.run(["umount", "-l", point], capture_output=True, check=False)
    return not _mount_points_below(root)


def log_tail(path: Path, lines: int = 6) -> str:
    try:
        text = path.read_text(errors="replace").splitlines()
    except OSError:
        return "(no log)"
    return " | ".join(text[-lines:])


def spawn_service(
    command: list[str], root: Path, log: Path, env: dict[str, str] | None = None
) -> subprocess.Popen[bytes]:
    """Start an engine daemon in its own session, logging to ``log``, without the caller's
    DOCKER_HOST, with system paths on PATH and ``root`` as its working directory (nothing a
    daemon leaves behind, such as conmon's "oom" marker, lands in the caller's directory)."""
    environment = {
        **os.environ,
        "PATH": f"{os.environ.get('PATH', '')}:{SYSTEM_PATH}",
        **(env or {}),
    }
    environment.pop("DOCKER_HOST", None)
    with open(log, "wb") as out:
        return subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=environment,
            cwd=root,
            start_new_session=True,
        )


def wait_for_api(
    process: subprocess.Popen[bytes],
    host: str,
    socket: Path,
    log: Path,
    error: type[RuntimeError],
) -> None:
    """Wait until the daemon's Docker API answers a ping; raise ``error`` (with the end of
    its log) when it exits or does not answer within START_TIMEOUT."""
    name = Path(str(process.args[0])).name  # type: ignore[index]  # args is the command list
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        try:
            process.wait(timeout=0.1)
        except subprocess.TimeoutExpired:
            pass
        else:
            raise error(f"{name} exited with status {process.returncode}: {log_tail(log)}")
        if socket.exists():
            client = docker.DockerClient(base_url=host, version="auto", timeout=10)
            try:
                with contextlib.suppress(docker.errors.DockerException):
                    if client.ping():
                        return
            finally:
                client.close()
    raise error(f"{name} did not answer within {START_TIMEOUT:.0f} s: {log_tail(log)}")


def _remove(root: Path) -> None:
    # Never delete through a mount point: it could be a container's bind mount of a host path.
    if _unmount_below(root):
        shutil.rmtree(root, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def sweep_stale(base: Path = BASE, min_age: float = 600.0) -> None:
    """Remove the directories of earlier private dockerds that are no longer running."""
    for directory in base.glob(f"{PREFIX}*"):
        pidfile = directory / "pid"
        try:
            if pidfile.is_file():
                if _alive(int(pidfile.read_text().strip() or 0)):
                    continue
            elif time.time() - directory.stat().st_mtime < min_age:
                continue  # perhaps a session starting right now
        except (OSError, ValueError):
            continue
        _remove(directory)


def stop_service(process: subprocess.Popen[bytes], root: Path) -> None:
    """SIGTERM a daemon started in its own session, wait (then SIGKILL its group), and remove
    its directory."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=STOP_TIMEOUT)
    _remove(root)


@dataclass
class PrivateDockerd:
    """One dockerd this test session started and will stop."""

    root: Path
    process: subprocess.Popen[bytes]

    @property
    def host(self) -> str:
        return f"unix://{self.root}/d.sock"

    @property
    def log_path(self) -> Path:
        return self.root / "dockerd.log"

    @classmethod
    def start(cls, dockerd: str = "dockerd") -> PrivateDockerd:
        sweep_stale()
        root = Path(tempfile.mkdtemp(prefix=PREFIX, dir=BASE))
        command = [
            dockerd,
            "--data-root",
            str(root / "data"),
            "--exec-root",
            str(root / "x"),
            "--pidfile",
            str(root / "pid"),
            "-H",
            f"unix://{root}/d.sock",
            "--iptables=false",
            "--ip6tables=false",
            "--bridge=none",
            "--storage-driver=overlay2",
        ]
        process = spawn_service(command, root, root / "dockerd.log")
        daemon = cls(root=root, process=process)
        try:
            wait_for_api(process, daemon.host, root / "d.sock", daemon.log_path, DockerdStartError)
        except DockerdStartError:
            daemon.stop()
            raise
        return daemon

    def stop(self) -> None:
        """SIGTERM (dockerd stops its containers and containerd), wait, then clean up."""
        stop_service(self.process, self.root)


@dataclass
class DockerEngine:
    """The engine the docker tests use."""

    host: str
    """Its URL, e.g. ``unix:///tmp/fdk-1a2b3c4d/d.sock``: give it as DOCKER_HOST."""
    client: docker.DockerClient
    private: bool
    """True when this session started it (and will stop it)."""
