"""The per-user daemon behind `forgeai run`: who it serves, what it declines, how runs end.

Each test has its own FORGEAI_HOME, hence its own daemon (the environment is part of a
daemon's identity), stopped at the end. `tests/cli/test_run_command.py` runs the whole CLI
battery through a daemon too.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from forgeai_ls.home import bundled_plugins_dir

pytestmark = pytest.mark.sandbox

FORGEAI = [sys.executable, "-m", "forgeai_ls.cli.main"]


class Cli:
    def __init__(self, home: Path) -> None:
        self.env = {**os.environ, "FORGEAI_HOME": str(home), "FORGEAI_DAEMON": "1"}
        self.cwd = home
        self.seen: dict[str, int] = {}
        """Every daemon this test saw: socket -> pid (stopped at the end)."""

    def run(self, *args: str, stdin: bytes = b"") -> subprocess.CompletedProcess[bytes]:
        return subprocess.run(
            [*FORGEAI, *args],
            input=stdin,
            capture_output=True,
            env=self.env,
            cwd=self.cwd,
            timeout=120,
            check=False,
        )

    def start(self, *args: str) -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            [*FORGEAI, *args],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=self.env,
            cwd=self.cwd,
            preexec_fn=_as_from_a_terminal,
        )

    def status(self) -> dict[str, object]:
        done = self.run("daemon", "status", "--json")
        current = [d for d in json.loads(done.stdout)["daemons"] if d["current"]]
        for daemon in current:
            self.seen[daemon["socket"]] = daemon["pid"]
        return current[0] if current else {}

    def stop_all(self) -> None:
        for socket_path, pid in self.seen.items():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
            _wait_gone(socket_path)


@pytest.fixture
def cli(tmp_path: Path) -> Iterator[Cli]:
    home = tmp_path / "home"
    home.mkdir()
    tool = Cli(home)
    started = tool.run("daemon", "start", "--json")
    assert started.returncode == 0, started.stderr
    tool.status()
    yield tool
    tool.status()
    tool.stop_all()


def _as_from_a_terminal() -> None:
    """Signal dispositions of a command typed in a terminal: whoever started the tests may
    have had SIGINT ignored (`cmd &` in a script) or SIGHUP (nohup), which a child inherits."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGHUP, signal.SIG_DFL)


def _wait_gone(path: str, seconds: float = 20) -> bool:
    deadline = time.monotonic() + seconds
    while os.path.exists(path) and time.monotonic() < deadline:
        time.sleep(0.05)
    return not os.path.exists(path)


def _alive(marker: str) -> bytes:
    return subprocess.run(["pgrep", "-f", marker], capture_output=True, check=False).stdout


def _wait_dead(marker: str, seconds: float = 10) -> bool:
    deadline = time.monotonic() + seconds
    while _alive(marker) and time.monotonic() < deadline:
        time.sleep(0.05)
    return not _alive(marker)


def _marker() -> str:
    return f"{time.time_ns() % 10**9 + 7 * 10**9}"


def test_a_run_is_served_by_the_daemon_with_the_files_beside_it(cli: Cli) -> None:
    """A file run goes to the daemon (its run count grows) and, as in-process, sees its
    sibling modules; relative paths are the client's."""
    project = cli.cwd / "project"
    project.mkdir()
    (project / "helper.py").write_text("GREETING = 'hello from a sibling'\n")
    (project / "main.py").write_text("import helper\nprint(helper.GREETING)\n")
    before = int(str(cli.status()["runs"]))
    done = cli.run("run", "project/main.py")
    assert (done.returncode, done.stdout) == (0, b"hello from a sibling\n"), done.stderr
    assert int(str(cli.status()["runs"])) == before + 1


def test_declined_runs_run_in_process(cli: Cli) -> None:
    """What the daemon would not run identically (here: --no-compile-cache) runs in the
    client itself, with the same result."""
    before = int(str(cli.status()["runs"]))
    done = cli.run("run", "-l", "python", "-c", "print('here')", "--no-compile-cache")
    assert (done.returncode, done.stdout) == (0, b"here\n"), done.stderr
    assert int(str(cli.status()["runs"])) == before


@pytest.mark.parametrize(
    ("signum", "status"), [(signal.SIGINT, 130), (signal.SIGTERM, 143), (signal.SIGHUP, 129)]
)
def test_a_signal_to_the_client_stops_the_run(cli: Cli, signum: int, status: int) -> None:
    """Ctrl-C, SIGTERM and SIGHUP of `forgeai run` reach the daemon: the program and what it
    started are gone, and the client exits as an in-process run would."""
    marker = _marker()
    proc = cli.start("run", "-l", "bash", "-c", f"echo up; sleep {marker} & sleep {marker}.5")
    assert proc.stdout is not None and proc.stdout.readline() == b"up\n"
    proc.send_signal(signum)
    assert proc.wait(timeout=10) == status
    assert _wait_dead(marker)


def test_a_killed_client_stops_its_run(cli: Cli) -> None:
    """kill -9 of `forgeai run` (it cannot forward anything) still stops the program: the
    daemon sees the client's socket close."""
    marker = _marker()
    proc = cli.start("run", "-l", "bash", "-c", f"echo up; sleep {marker}", "--timeout", "600")
    assert proc.stdout is not None and proc.stdout.readline() == b"up\n"
    proc.kill()
    proc.wait(timeout=10)
    assert _wait_dead(marker)


def test_a_killed_daemon_ends_the_run_with_a_clear_error(cli: Cli) -> None:
    """If the daemon dies during a run, its sandbox dies with it and the client says so in
    one line with a code (exit 125)."""
    marker = _marker()
    proc = cli.start("run", "-l", "bash", "-c", f"echo up; sleep {marker}", "--timeout", "600")
    assert proc.stdout is not None and proc.stdout.readline() == b"up\n"
    os.kill(int(str(cli.status()["pid"])), signal.SIGKILL)
    assert proc.wait(timeout=10) == 125
    assert proc.stderr is not None
    assert b"FORGEAI-E115" in proc.stderr.read()
    assert _wait_dead(marker)


def test_a_plugin_added_while_the_daemon_runs_is_used(cli: Cli, tmp_path: Path) -> None:
    """The daemon verifies the plugins again when they change: a plugin placed in a plugin
    directory after the daemon started runs on the next `forgeai run`."""
    extra = tmp_path / "extra"
    extra.mkdir()
    cli.env.update(FORGEAI_PLUGIN_DIRS=str(extra), FORGEAI_ALLOW_UNSIGNED="1")
    assert cli.run("daemon", "start").returncode == 0  # this environment's own daemon
    missing = cli.run("run", "-l", "snake", "-c", "print('s')")
    assert missing.returncode == 125 and b"FORGEAI-E102" in missing.stderr
    folder = extra / "snake"
    shutil.copytree(bundled_plugins_dir() / "python", folder)
    manifest = (folder / "plugin.yaml").read_text()
    (folder / "plugin.yaml").write_text(
        manifest.replace("name: python\n", "name: snake\n", 1)
        .replace("supported_languages: [python]", "supported_languages: [snake]")
        .replace("  - name: python\n", "  - name: snake\n")
        .replace('aliases: ["py", "python3"]', "aliases: []")
        .replace('extensions: [".py", ".pyw"]', 'extensions: [".snake"]')
    )
    before = int(str(cli.status()["runs"]))
    done = cli.run("run", "-l", "snake", "-c", "print('s')")
    assert (done.returncode, done.stdout) == (0, b"s\n"), done.stderr
    assert int(str(cli.status()["runs"])) == before + 1


def test_an_idle_daemon_exits_and_the_next_run_starts_one(tmp_path: Path) -> None:
    """With no daemon a run happens in-process and starts one; a daemon idle for
    FORGEAI_DAEMON_IDLE seconds exits and removes its socket."""
    home = tmp_path / "home"
    home.mkdir()
    cli = Cli(home)
    cli.env["FORGEAI_DAEMON_IDLE"] = "2"
    assert cli.status() == {}
    first = cli.run("run", "-l", "python", "-c", "print(1)")
    assert (first.returncode, first.stdout) == (0, b"1\n")
    deadline = time.monotonic() + 30
    while not cli.status() and time.monotonic() < deadline:
        time.sleep(0.05)
    status = cli.status()
    assert status, "the first run started no daemon"
    assert _wait_gone(str(status["socket"]), 30), "the idle daemon did not exit"


@pytest.mark.skipif(
    os.geteuid() != 0 or not os.access("/usr/bin/python3", os.X_OK),
    reason="needs root (to be another user) and the system's python3",
)
def test_another_user_cannot_reach_the_daemon(cli: Cli) -> None:
    """The socket is 0600 in a 0700 directory: another user cannot even connect."""
    socket_path = str(cli.status()["socket"])
    assert os.stat(socket_path).st_mode & 0o777 == 0o600
    assert os.stat(os.path.dirname(socket_path)).st_mode & 0o777 == 0o700
    probe = (
        "import socket, sys\n"
        "s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)\n"
        "try:\n    s.connect(sys.argv[1])\nexcept OSError as exc:\n    print(exc.errno)\n"
        "else:\n    print('connected')\n"
    )
    done = subprocess.run(
        ["runuser", "-u", "nobody", "--", "/usr/bin/python3", "-c", probe, socket_path],
        capture_output=True,
        check=False,
    )
    assert done.stdout.strip() == b"13", done  # EACCES
