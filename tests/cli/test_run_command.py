"""`forgeai run` as a user types it: exit statuses, JSON, streaming, and refusals.

Every test runs twice: in-process (no daemon), and served by the user's daemon (warm
sandboxes; the client passes its terminal to it), which must behave exactly alike.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

pytestmark = pytest.mark.sandbox

FORGEAI = [sys.executable, "-m", "forgeai_ls.cli.main"]
REPO = Path(__file__).resolve().parents[2]


def _as_from_a_terminal() -> None:
    """Signal dispositions of a command typed in a terminal: whoever started the tests may
    have had SIGINT ignored (`cmd &` in a script) or SIGHUP (nohup), which a child inherits."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGHUP, signal.SIG_DFL)


def _daemon_runs() -> int:
    done = subprocess.run(
        [*FORGEAI, "daemon", "status", "--json"], capture_output=True, cwd=REPO, check=True
    )
    return sum(d["runs"] for d in json.loads(done.stdout)["daemons"] if d["current"])


@pytest.fixture(scope="module", params=["in-process", "daemon"], autouse=True)
def cli_mode(request: pytest.FixtureRequest) -> Iterator[str]:
    """FORGEAI_DAEMON for every `forgeai` this module starts; in daemon mode the daemon is up
    before the first test, serves the runs, and is stopped at the end."""
    mode = request.param
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("FORGEAI_DAEMON", "1" if mode == "daemon" else "0")
        if mode == "daemon":
            subprocess.run([*FORGEAI, "daemon", "start"], cwd=REPO, check=True, timeout=120)
        try:
            yield mode
            if mode == "daemon":
                assert _daemon_runs() > 0, "the daemon served none of the runs"
        finally:
            subprocess.run([*FORGEAI, "daemon", "stop"], cwd=REPO, timeout=120, check=False)


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
        preexec_fn=_as_from_a_terminal,
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


def test_a_file_sees_the_modules_beside_it(tmp_path: Path) -> None:
    """`forgeai run FILE` copies FILE's sibling sources into the sandbox, as the language
    server does (the same rule: same extension, same folder, regular files only)."""
    (tmp_path / "helper.py").write_text("def answer():\n    return 42\n")
    (tmp_path / "notes.txt").write_text("not a module\n")
    (tmp_path / "main.py").write_text(
        "import os, helper\nprint(helper.answer(), sorted(os.listdir('.')))\n"
    )
    done = forgeai("run", "main.py", cwd=tmp_path)
    assert (done.returncode, done.stdout) == (0, b"42 ['helper.py', 'main.py', 'out']\n"), (
        done.stderr
    )


@pytest.mark.skipif(os.geteuid() != 0, reason="sandbox uids are leased only by root")
def test_no_free_sandbox_uid_is_one_clear_line() -> None:
    """With every sandbox uid taken by other runs, the run is refused with a code, not a
    traceback (and runs again once they are free)."""
    import fcntl

    from forgeai_ls.sandbox.host import detect_native_host

    pool = detect_native_host().uid_pool
    assert pool is not None
    held = []
    try:
        for slot in range(pool.count):  # those not taken already (a daemon's warm slots)
            fd = os.open(pool.lock_dir / f"{slot}.lock", os.O_RDWR | os.O_CREAT, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                continue
            held.append(fd)
        # --no-compile-cache: the daemon declines it (its warm slots hold uids already), so
        # this run needs a uid of its own
        done = forgeai("run", "-l", "python", "-c", "print(1)", "--no-compile-cache")
    finally:
        for fd in held:
            os.close(fd)
    assert done.returncode == 125
    lines = done.stderr.decode().strip().splitlines()
    assert len(lines) == 1 and "FORGEAI-E114" in lines[0], lines
    assert forgeai("run", "-l", "python", "-c", "print(1)").stdout == b"1\n"


_HOSTILE_OUTPUT = (
    "import sys\n"
    "sys.stdout.write('\\x1b]52;c;cm0gLXJmIH4K\\x07\\x1b]0;owned\\x07\\x1b[21t"
    "\\x1b[31mred\\x1b[0m ok\\n')\n"
    "sys.stderr.write('\\x1b]52;c;ZXZpbA==\\x1b\\\\err\\n')\n"
)


def _run_on_a_terminal(*args: str) -> bytes:
    """The run's stdout and stderr both on a pseudo-terminal, as in an interactive shell."""
    import pty
    import select

    primary, secondary = pty.openpty()
    proc = subprocess.Popen(
        [*FORGEAI, "run", *args],
        cwd=REPO,
        stdin=subprocess.DEVNULL,
        stdout=secondary,
        stderr=secondary,
    )
    os.close(secondary)
    seen = b""
    try:
        while True:
            ready, _, _ = select.select([primary], [], [], 60)
            assert ready, f"no output; got {seen!r}"
            try:
                chunk = os.read(primary, 4096)
            except OSError:  # EIO: every writer has closed the terminal
                break
            if not chunk:
                break
            seen += chunk
    finally:
        os.close(primary)
        proc.wait(timeout=60)
    assert proc.returncode == 0, seen
    return seen.replace(b"\r\n", b"\n")


def test_on_a_terminal_only_text_colours_and_movement_get_through() -> None:
    """OSC 52 (clipboard), titles and report requests never reach the user's terminal;
    colours do. --raw-output keeps everything; a pipe gets the bytes unchanged."""
    filtered = _run_on_a_terminal("-l", "python", "-c", _HOSTILE_OUTPUT)
    assert b"\x1b[31mred\x1b[0m ok\n" in filtered
    assert b"err\n" in filtered
    assert b"\x1b]" not in filtered and b"21t" not in filtered
    raw = _run_on_a_terminal("--raw-output", "-l", "python", "-c", _HOSTILE_OUTPUT)
    assert b"\x1b]52;c;cm0gLXJmIH4K\x07" in raw and b"\x1b[21t" in raw
    piped = subprocess.run(
        [*FORGEAI, "run", "-l", "python", "-c", _HOSTILE_OUTPUT],
        cwd=REPO,
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert piped.stdout.startswith(b"\x1b]52;c;cm0gLXJmIH4K\x07\x1b]0;owned\x07\x1b[21t")


def _venv_with_module(project: Path, module: str, text: str) -> Path:
    venv = project / ".venv"
    subprocess.run(
        [sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120
    )
    (next(venv.glob("lib/python3*/site-packages")) / f"{module}.py").write_text(text)
    return venv


def test_a_file_runs_in_its_projects_venv(tmp_path: Path) -> None:
    """A package installed in the project's .venv imports; the JSON result names the venv;
    --no-project-env runs without it; --env names one explicitly (folder or interpreter)."""
    venv = _venv_with_module(tmp_path, "projdep", "VALUE = 'from the venv'\n")
    (tmp_path / "app").mkdir()
    (tmp_path / "app" / "main.py").write_text(
        "import sys, projdep\nprint(projdep.VALUE, sys.prefix == sys.base_prefix)\n"
    )
    done = forgeai("run", "app/main.py", "--json", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    document = json.loads(done.stdout)
    assert document["stdout"] == "from the venv False\n"
    environment = document["environment"]
    assert (environment["kind"], environment["path"], environment["found_by"]) == (
        "python-venv",
        str(venv),
        "nearest .venv",
    )
    assert {"source": str(venv), "target": str(venv), "writable": False} in environment["mounts"]

    done = forgeai("run", "--no-project-env", "app/main.py", cwd=tmp_path)
    assert done.returncode == 1 and b"No module named 'projdep'" in done.stderr

    code = "import projdep; print(projdep.VALUE)"
    for named in (str(venv), str(venv / "bin" / "python")):
        done = forgeai("run", "--env", named, "-l", "python", "-c", code)
        assert (done.returncode, done.stdout) == (0, b"from the venv\n"), done.stderr


def test_the_venv_is_read_only_in_the_sandbox(tmp_path: Path) -> None:
    venv = _venv_with_module(tmp_path, "projdep", "VALUE = 1\n")
    (tmp_path / "main.py").write_text(
        "import projdep, pathlib\n"
        "try:\n"
        "    pathlib.Path(projdep.__file__).write_text('tampered')\n"
        "except OSError as exc:\n"
        "    print(type(exc).__name__)\n"
    )
    done = forgeai("run", "main.py", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() in (b"OSError", b"PermissionError")
    assert (next(venv.glob("lib/python3*/site-packages")) / "projdep.py").read_text() == (
        "VALUE = 1\n"
    )


def test_a_javascript_file_sees_the_nearest_node_modules(tmp_path: Path) -> None:
    package = tmp_path / "node_modules" / "shout"
    package.mkdir(parents=True)
    (package / "package.json").write_text('{"name": "shout", "main": "index.js"}')
    (package / "index.js").write_text("module.exports = (s) => s.toUpperCase() + '!';\n")
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "main.js").write_text("console.log(require('shout')('hi'));\n")
    done = forgeai("run", "src/main.js", cwd=tmp_path)
    if b"FORGEAI-E112" in done.stderr:
        pytest.skip("node is not installed")
    assert (done.returncode, done.stdout) == (0, b"HI!\n"), done.stderr


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["--env", "/nonexistent/venv"], b"FORGEAI-E130: --env /nonexistent/venv: no such file"),
        (["--env", "/etc"], b"not a Python environment"),
        (["--env", "/tmp", "--no-project-env"], b"FORGEAI-E101"),
        (["--env", "/tmp", "--backend", "docker"], b"apply to the native backend"),
    ],
    ids=["missing", "not-a-venv", "both-options", "docker"],
)
def test_an_unusable_env_option_is_one_clear_line(args: list[str], fragment: bytes) -> None:
    done = forgeai("run", *args, "-l", "python", "-c", "print(1)")
    assert done.returncode == 125 and done.stdout == b""
    lines = done.stderr.decode().strip().splitlines()
    assert len(lines) == 1 and fragment in done.stderr, lines


def test_allow_net_reaches_only_the_named_hosts(tmp_path: Path) -> None:
    """--allow-net: the named host answers; another is refused, said on stderr and in
    --json's `network`; neither the program nor the refusal reaches anything else."""
    from tests.sandbox.test_egress import FETCH, Site

    allowed, other = Site("127.0.0.2"), Site("127.0.0.3")
    try:
        code = f"URLS = [{allowed.url!r}, {other.url!r}]\n{FETCH}"
        entry = f"{allowed.address}:{allowed.port}"
        done = forgeai("run", "--allow-net", entry, "-l", "python", "-c", code)
        assert done.returncode == 0, done.stderr
        assert done.stdout.decode().splitlines()[0] == "200 hello from 127.0.0.2"
        assert f"connection to 127.0.0.3:{other.port} blocked".encode() in done.stderr
        done = forgeai("run", "--allow-net", entry, "-l", "python", "-c", code, "--json")
        network = json.loads(done.stdout)["network"]
        assert network == {"allowed": [entry], "denied": [f"127.0.0.3:{other.port}"]}
        assert len(allowed.requests) == 2 and other.requests == []
    finally:
        allowed.close()
        other.close()


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["--allow-net", "https://pypi.org"], b"FORGEAI-E131: --allow-net: 'https://pypi.org'"),
        (["--allow-net", "pypi.org:99999"], b"FORGEAI-E131"),
        (["--allow-net", "pypi.org", "--network"], b"FORGEAI-E101"),
    ],
    ids=["url", "port", "with-network"],
)
def test_an_allow_list_entry_that_is_not_a_host_is_one_clear_line(
    args: list[str], fragment: bytes
) -> None:
    done = forgeai("run", *args, "-l", "python", "-c", "print(1)")
    assert done.returncode == 125 and done.stdout == b""
    lines = done.stderr.decode().strip().splitlines()
    assert len(lines) == 1 and fragment in done.stderr, lines


WRITES_FILES = (
    "import os\nout = os.environ['FORGEAI_OUTPUT_DIR']\n"
    "open(out + '/table.csv', 'w').write('a,b\\n')\n"
    "os.makedirs(out + '/img'); open(out + '/img/p.svg', 'w').write('<svg/>')\n"
    "os.symlink('/etc/passwd', out + '/link')\n"
)


def test_files_out_come_back_to_a_folder_of_the_run(tmp_path: Path) -> None:
    """By default ./forgeai-out/RUN/ (made only when there are files); said on stderr, listed
    in --json; a link is reported, never followed."""
    done = forgeai("run", "-l", "python", "-c", "print(1)", cwd=tmp_path)
    assert done.returncode == 0 and not (tmp_path / "forgeai-out").exists()
    done = forgeai("run", "-l", "python", "-c", WRITES_FILES, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    (run_dir,) = (tmp_path / "forgeai-out").iterdir()
    assert (run_dir / "table.csv").read_text() == "a,b\n"
    assert (run_dir / "img" / "p.svg").read_text() == "<svg/>"
    assert not (run_dir / "link").exists()
    stderr = done.stderr.decode()
    assert f"forgeai: 2 files out in {run_dir}/: img/p.svg, table.csv" in stderr
    assert "forgeai: not copied: link: a symbolic link, not followed" in stderr
    done = forgeai(
        "run", "--out", "mine", "--json", "-l", "python", "-c", WRITES_FILES, cwd=tmp_path
    )
    document = json.loads(done.stdout)
    assert [a["name"] for a in document["artifacts"]] == ["img/p.svg", "table.csv"]
    assert document["artifacts"][0]["mime"] == "image/svg+xml"
    assert document["artifacts"][1]["path"] == str(tmp_path / "mine" / "table.csv")
    assert document["artifacts_skipped"] == ["link: a symbolic link, not followed"]


def test_out_never_overwrites_without_force(tmp_path: Path) -> None:
    (tmp_path / "results").mkdir()
    (tmp_path / "results" / "table.csv").write_text("precious")
    done = forgeai("run", "--out", "results", "-l", "python", "-c", WRITES_FILES, cwd=tmp_path)
    assert done.returncode == 125 and b"FORGEAI-E150" in done.stderr and done.stdout == b""
    assert (tmp_path / "results" / "table.csv").read_text() == "precious"
    done = forgeai(
        "run", "--out", "results", "--force", "-l", "python", "-c", WRITES_FILES, cwd=tmp_path
    )
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "results" / "table.csv").read_text() == "a,b\n"
