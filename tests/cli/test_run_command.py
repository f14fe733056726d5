"""`forgeai run` as a user types it: exit statuses, JSON, streaming, and refusals."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.sandbox

FORGEAI = [sys.executable, "-m", "forgeai_ls.cli.main"]
REPO = Path(__file__).resolve().parents[2]


def forgeai(
    *args: str,
    stdin: bytes | None = None,
    cwd: Path | None = None,
) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [*FORGEAI, *args],
        input=stdin if stdin is not None else b"",
        capture_output=True,
        cwd=cwd or REPO,
        timeout=120,
        check=False,
    )


def test_runs_the_example_file() -> None:
    """The README's first command works."""
    done = forgeai("run", "examples/hello.py")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(b"Hello from the ForgeAI sandbox!\n")


def test_json_has_the_documented_fields(tmp_path: Path) -> None:
    """--json prints one object with the fields of design.md section 3.2."""
    program = tmp_path / "fail.py"
    program.write_text("import sys\nprint('out')\nprint('err', file=sys.stderr)\nsys.exit(3)\n")
    done = forgeai("run", str(program), "--json")
    assert done.returncode == 3
    document = json.loads(done.stdout)
    assert {
        "language",
        "plugin",
        "backend",
        "exit_code",
        "signal",
        "stdout",
        "stderr",
        "timed_out",
        "limit",
        "truncated",
        "duration_ms",
    } <= document.keys()
    assert document["language"] == "python"
    assert document["backend"] == "native"
    assert (document["exit_code"], document["stdout"], document["stderr"]) == (3, "out\n", "err\n")
    assert document["limit"] is None and document["timed_out"] is False


def test_wall_timeout_exits_124() -> None:
    """The wall-clock limit gives GNU timeout's 124 and a closing line naming the limit."""
    done = forgeai("run", "-l", "python", "-c", "import time\ntime.sleep(60)", "--timeout", "0.5")
    assert done.returncode == 124
    assert b"timeout limit" in done.stderr


def test_code_and_language_flags() -> None:
    """-l LANG -c CODE runs a snippet; aliases work."""
    done = forgeai("run", "-l", "js", "-c", "console.log(6*7)")
    assert (done.returncode, done.stdout) == (0, b"42\n")


def test_stdin_file_and_piped_stdin(tmp_path: Path) -> None:
    """--stdin FILE and piped input both reach the program."""
    data = tmp_path / "input.txt"
    data.write_bytes(b"from a file\n")
    code = "import sys\nprint(sys.stdin.read().strip()[::-1])"
    assert (
        forgeai("run", "-l", "python", "-c", code, "--stdin", str(data)).stdout == b"elif a morf\n"
    )
    assert forgeai("run", "-l", "python", "-c", code, stdin=b"piped").stdout == b"depip\n"


def test_memory_flag_sets_the_limit() -> None:
    """--memory MB is the memory limit: a 200 MiB allocation fails under --memory 64."""
    code = "x = bytearray(200 * 1024 * 1024)\nprint('allocated')"
    done = forgeai("run", "-l", "python", "-c", code, "--memory", "64", "--json")
    assert json.loads(done.stdout)["limit"] == "memory"
    assert forgeai("run", "-l", "python", "-c", code, "--memory", "512").stdout == b"allocated\n"


def test_output_streams_while_the_program_runs() -> None:
    """The first line is on the terminal while the program is still running."""
    code = "import time\nprint('first', flush=True)\ntime.sleep(3)\nprint('second')"
    proc = subprocess.Popen(
        [*FORGEAI, "run", "-l", "python", "-c", code],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
    )
    assert proc.stdout is not None
    first = proc.stdout.readline()
    still_running = proc.poll() is None
    rest, _ = proc.communicate(timeout=60)
    assert first == b"first\n"
    assert still_running
    assert rest == b"second\n"


@pytest.mark.parametrize(
    ("args", "code", "fragment"),
    [
        (["run", "-l", "cobol", "-c", "x"], "FORGEAI-E102", b"unknown language 'cobol'"),
        (["run", "missing.py"], "FORGEAI-E103", b"missing.py: no such file"),
        (["run", "examples"], "FORGEAI-E103", b"is a directory"),
        (["run", "--definitely-not-a-flag", "x.py"], "FORGEAI-E101", b"No such option"),
        (["run", "--timeout", "abc", "x.py"], "FORGEAI-E101", b"--timeout"),
        (["run", "-c", "print(1)"], "FORGEAI-E101", b"needs -l LANG"),
        (["run"], "FORGEAI-E101", b"nothing to run"),
        (["run", "README.md"], "FORGEAI-E102", b"extension '.md'"),
        (
            ["run", "-l", "python", "-c", "1", "--stdin", "nope.txt"],
            "FORGEAI-E104",
            b"no such file",
        ),
    ],
)
def test_bad_input_is_one_clear_line_and_exit_125(
    args: list[str], code: str, fragment: bytes
) -> None:
    """Each refusal: exit 125, one stderr line with the stable code and what failed."""
    done = forgeai(*args)
    assert done.returncode == 125
    lines = done.stderr.decode().strip().splitlines()
    assert len(lines) == 1, lines
    assert code in lines[0]
    assert fragment in done.stderr
    assert done.stdout == b""


def test_binary_garbage_is_refused(tmp_path: Path) -> None:
    """A binary file named like a source file is refused before anything runs."""
    garbage = tmp_path / "garbage.py"
    garbage.write_bytes(os.urandom(4096) + b"\x00\xff\xfe")
    done = forgeai("run", str(garbage))
    assert done.returncode == 125
    assert b"FORGEAI-E103" in done.stderr and b"binary" in done.stderr


def test_missing_bubblewrap_is_a_clear_error(tmp_path: Path) -> None:
    """Without bwrap, the run is refused with how to install it, never run unsandboxed."""
    env = {**os.environ, "FORGEAI_BWRAP": str(tmp_path / "no-bwrap")}
    marker = tmp_path / "ran"
    done = subprocess.run(
        [*FORGEAI, "run", "-l", "python", "-c", f"open({str(marker)!r}, 'w').write('x')"],
        capture_output=True,
        env=env,
        cwd=REPO,
        timeout=60,
        check=False,
    )
    assert done.returncode == 125
    assert b"FORGEAI-E110" in done.stderr and b"bubblewrap" in done.stderr
    assert not marker.exists()


def test_cancellation_by_interrupt_leaves_nothing_running() -> None:
    """Ctrl-C on the CLI stops the program and everything it started."""
    marker = f"{int(time.time() * 1000) % 1000000 + 3000000}"
    proc = subprocess.Popen(
        [*FORGEAI, "run", "-l", "bash", "-c", f"echo up; sleep {marker} & sleep {marker}.5"],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
    )
    assert proc.stdout is not None
    assert proc.stdout.readline() == b"up\n"
    proc.send_signal(2)
    assert proc.wait(timeout=10) == 130
    leftover = subprocess.run(["pgrep", "-f", f"sleep {marker}"], capture_output=True, check=False)
    assert leftover.stdout == b""


def test_terminal_input_is_forwarded_interactively() -> None:
    """On a terminal, the program's prompt appears first and the typed answer reaches it."""
    import pty
    import select

    primary, secondary = pty.openpty()
    code = "name = input('name? ')\nprint(f'hello {name}')"
    proc = subprocess.Popen(
        [*FORGEAI, "run", "-l", "python", "-c", code],
        cwd=REPO,
        stdin=secondary,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    os.close(secondary)
    assert proc.stdout is not None
    prompt = b""
    while not prompt.endswith(b"name? "):
        ready, _, _ = select.select([proc.stdout], [], [], 30)
        assert ready, f"no prompt; got {prompt!r}"
        prompt += os.read(proc.stdout.fileno(), 100)
    os.write(primary, b"Ada\n")
    rest, _ = proc.communicate(timeout=60)
    os.close(primary)
    assert proc.returncode == 0
    assert rest == b"hello Ada\n"


def test_a_killed_cli_leaves_nothing_the_next_run_does_not_clean() -> None:
    """kill -9 of the CLI kills its sandbox; its directories and cgroups go at the next run."""
    from forgeai_ls.sandbox.host import detect_native_host

    marker = f"{int(time.time() * 1000) % 1000000 + 5000000}"
    proc = subprocess.Popen(
        [
            *FORGEAI,
            "run",
            "-l",
            "bash",
            "-c",
            f"echo up; sleep {marker} & setsid sleep {marker}.5 & wait",
        ],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
    )
    assert proc.stdout is not None
    assert proc.stdout.readline() == b"up\n"
    proc.kill()
    proc.wait(timeout=10)
    for _ in range(100):  # the sandbox dies with its parent, asynchronously
        if (
            subprocess.run(
                ["pgrep", "-f", f"sleep {marker}"], capture_output=True, check=False
            ).stdout
            == b""
        ):
            break
        time.sleep(0.05)
    assert (
        subprocess.run(["pgrep", "-f", f"sleep {marker}"], capture_output=True, check=False).stdout
        == b""
    )
    assert forgeai("run", "-l", "python", "-c", "print(1)").returncode == 0
    host = detect_native_host()
    owned = f"-{proc.pid}-"
    assert [p for p in host.runtime_dir.iterdir() if owned in p.name] == []
    if host.cgroups is not None:
        assert [p for p in host.cgroups.pids_base.iterdir() if owned in p.name] == []


def test_json_mode_reports_forgeai_errors_as_json_too() -> None:
    """With --json, a refusal is also one JSON object on stdout, with the same code."""
    done = forgeai("run", "-l", "cobol", "-c", "x", "--json")
    assert done.returncode == 125
    assert b"FORGEAI-E102" in done.stderr
    error = json.loads(done.stdout)["error"]
    assert error["code"] == "FORGEAI-E102"
    assert "cobol" in error["message"]
