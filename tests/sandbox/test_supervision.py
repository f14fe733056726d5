"""Containment that does not depend on ForgeAI staying alive.

Real `forgeai` and `forgeai-ls` processes are killed (SIGKILL, SIGTERM, SIGHUP) in the middle
of a run and with warm slots waiting; some runs first have their sandbox's PID 1 disarmed (its
parent-death signal cleared with ptrace, from the host, as a program could do if ptrace were
open to it). Every process ForgeAI had started must be gone a few seconds later.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest

from forgeai_ls.sandbox import LimitKind
from forgeai_ls.sandbox.events import ExecutionFinished, OutputChunk
from forgeai_ls.sandbox.step_process import BACKSTOP_GRACE_SECONDS as BACKSTOP_GRACE
from tests.conftest import executor_for
from tests.support import disarm
from tests.support.raw_lsp import RawLspServer

pytestmark = pytest.mark.sandbox

FORGEAI = [sys.executable, "-m", "forgeai_ls.cli.main"]
SLEEPER = "import time; print('up', flush=True); time.sleep(120)"
GONE_WITHIN = 8.0


def _from_a_terminal() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGHUP, signal.SIG_DFL)


def _descendants(pid: int) -> list[psutil.Process]:
    return psutil.Process(pid).children(recursive=True)


def _sandbox_pid1s(processes: list[psutil.Process]) -> list[int]:
    """bwrap's PID 1 of each sandbox: a bwrap whose parent is a bwrap (the monitor)."""
    found = []
    for process in processes:
        try:
            if process.name() == "bwrap" and psutil.Process(process.ppid()).name() == "bwrap":
                found.append(process.pid)
        except psutil.NoSuchProcess:
            continue
    return found


def _disarm(processes: list[psutil.Process]) -> int:
    pid1s = _sandbox_pid1s(processes)
    for pid in pid1s:
        try:
            before = disarm.parent_death_signal(pid)
        except PermissionError:
            if os.geteuid() == 0:
                raise
            pytest.skip("this user may not trace the sandbox's PID 1 from the host")
        assert before == signal.SIGKILL
        disarm.clear_parent_death_signal(pid)
        assert disarm.parent_death_signal(pid) == 0
    return len(pid1s)


def _still_alive(processes: list[psutil.Process], seconds: float = GONE_WITHIN) -> list[str]:
    deadline = time.monotonic() + seconds
    while True:
        alive = []
        for process in processes:
            try:
                if process.is_running() and process.status() != psutil.STATUS_ZOMBIE:
                    alive.append(f"{process.pid} {' '.join(process.cmdline())[:100]}")
            except psutil.NoSuchProcess:
                continue
        if not alive or time.monotonic() > deadline:
            for process in processes:  # never leave them to the next test
                try:
                    process.kill()
                except psutil.NoSuchProcess:
                    continue
            return alive
        time.sleep(0.05)


def _start_run(
    home: Path, *options: str, stderr: int = subprocess.DEVNULL
) -> subprocess.Popen[bytes]:
    """`forgeai run OPTIONS -l python -c SLEEPER` in-process (no daemon), once it is up."""
    proc = subprocess.Popen(
        [*FORGEAI, "run", *options, "-l", "python", "-c", SLEEPER],
        stdout=subprocess.PIPE,
        stderr=stderr,
        env={**os.environ, "FORGEAI_DAEMON": "0", "FORGEAI_HOME": str(home)},
        preexec_fn=_from_a_terminal,
    )
    assert proc.stdout is not None and proc.stdout.readline() == b"up\n"
    return proc


needs_ptrace = pytest.mark.skipif(not disarm.SUPPORTED, reason="the disarming helper is x86-64")


@pytest.mark.parametrize("disarmed", [False, pytest.param(True, marks=needs_ptrace)])
@pytest.mark.parametrize(
    "signum", [signal.SIGKILL, signal.SIGTERM, signal.SIGHUP], ids=["KILL", "TERM", "HUP"]
)
def test_a_cli_that_dies_leaves_no_sandbox(signum: int, disarmed: bool, tmp_path: Path) -> None:
    proc = _start_run(tmp_path, "--timeout", "300")
    processes = _descendants(proc.pid)
    assert _sandbox_pid1s(processes)
    if disarmed:
        _disarm(processes)
    proc.send_signal(signum)
    proc.wait(timeout=20)
    assert _still_alive(processes) == []


def test_a_hung_forgeai_still_ends_the_run_at_the_wall_clock(tmp_path: Path) -> None:
    """ForgeAI stopped (SIGSTOP: as stuck as a process can be) cannot end its run; the
    supervisor's own clock ends it a little after the limit."""
    proc = _start_run(tmp_path, "--timeout", "1", stderr=subprocess.PIPE)
    processes = _descendants(proc.pid)
    sandbox = [p for p in processes if p.pid in _sandbox_pid1s(processes)]
    proc.send_signal(signal.SIGSTOP)
    try:
        assert _still_alive(sandbox, seconds=10) == []
    finally:
        proc.send_signal(signal.SIGCONT)
    assert proc.wait(timeout=20) == 124  # ForgeAI, resumed, reports the timeout


async def test_a_forgeai_too_busy_to_end_its_run_still_reports_the_timeout() -> None:
    """ForgeAI's event loop blocked past the run's wall clock: the supervisor's backstop ends
    the run, and the result says it timed out (not "killed by a signal"), whichever of the
    sandbox's end and ForgeAI's own timer it sees first once it runs again."""
    executor = executor_for("python")
    limits = executor.run_limits().with_overrides(wall_timeout=1)
    result = None
    async with contextlib.aclosing(executor.stream(SLEEPER, limits=limits)) as events:
        async for event in events:
            if isinstance(event, OutputChunk) and b"up" in event.data:
                time.sleep(1 + BACKSTOP_GRACE + 2)  # blocks the loop: nothing of ForgeAI runs
            elif isinstance(event, ExecutionFinished):
                result = event.result
    assert result is not None
    assert result.timed_out and result.limit is LimitKind.TIMEOUT, result
    assert result.exit_code is None


@pytest.fixture
def server(tmp_path: Path) -> Iterator[RawLspServer]:
    lsp = RawLspServer(tmp_path / "home")
    ident = lsp.send("initialize", {"processId": None, "rootUri": None, "capabilities": {}})
    lsp.wait_for(lambda m: m.get("id") == ident)
    lsp.send("initialized", {}, request=False)
    yield lsp
    if lsp.proc.poll() is None:
        lsp.proc.kill()
    lsp.proc.wait()


@pytest.mark.parametrize(
    ("signum", "disarmed"),
    [
        (signal.SIGKILL, False),
        pytest.param(signal.SIGKILL, True, marks=needs_ptrace),
        pytest.param(signal.SIGTERM, True, marks=needs_ptrace),
        pytest.param(signal.SIGHUP, True, marks=needs_ptrace),
    ],
    ids=["KILL", "KILL-disarmed", "TERM-disarmed", "HUP-disarmed"],
)
def test_a_killed_server_leaves_no_run_and_no_warm_slot(
    server: RawLspServer, tmp_path: Path, signum: int, disarmed: bool
) -> None:
    """forgeai-ls killed (SIGKILL, SIGTERM, SIGHUP) with one run in flight and warm slots
    waiting."""
    quick = server.run_file(tmp_path / "quick.py", "print('done')\n")
    server.wait_for(lambda m: m.get("id") == quick)
    server.run_file(tmp_path / "sleeper.py", SLEEPER + "\n")
    server.wait_for(
        lambda m: m.get("method") == "forgeai/output" and "up" in m["params"].get("text", "")
    )
    processes = _descendants(server.proc.pid)
    assert len(_sandbox_pid1s(processes)) >= 2  # the run, and at least one warm slot
    if disarmed:
        _disarm(processes)
    server.proc.send_signal(signum)
    server.proc.wait(timeout=20)
    assert _still_alive(processes) == []


@needs_ptrace
def test_the_next_start_removes_what_a_double_crash_left(tmp_path: Path) -> None:
    """ForgeAI and its supervisor SIGKILLed together, the run's PID 1 disarmed: the sandbox
    outlives both. The next `forgeai run` kills what is left in the stale cgroups and removes
    them and the work directory."""
    from forgeai_ls.sandbox.host import detect_native_host

    host = detect_native_host()
    if host.cgroups is None:
        pytest.skip("without cgroups a process that escaped both cannot be found again")
    proc = _start_run(tmp_path, "--timeout", "300")
    processes = _descendants(proc.pid)
    _disarm(processes)
    supervisor = [p for p in processes if "supervisor.py" in " ".join(p.cmdline())]
    assert len(supervisor) == 1
    # Both stopped first, so that neither sees the other die and cleans up (as each would).
    supervisor[0].suspend()
    proc.send_signal(signal.SIGSTOP)
    proc.kill()
    supervisor[0].kill()
    proc.wait()
    time.sleep(0.5)
    try:
        assert [p for p in processes if _running(p)], "the double crash left nothing"
        # The work dir and the run's groups (v1: memory and pids; v2: one)
        assert len(_leftovers(host, proc.pid)) == (3 if host.cgroups.version == 1 else 2)
        done = subprocess.run(
            [*FORGEAI, "run", "-l", "python", "-c", "print(1)"],
            env={**os.environ, "FORGEAI_DAEMON": "0", "FORGEAI_HOME": str(tmp_path)},
            capture_output=True,
            timeout=60,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        assert [p.pid for p in processes if _running(p)] == []
        assert _leftovers(host, proc.pid) == []
        for _ in range(100):  # under systemd: the dead process's scope, once empty
            if not _scopes_of(host, proc.pid):
                break
            time.sleep(0.05)
        assert _scopes_of(host, proc.pid) == []
    finally:
        _still_alive(processes, seconds=0)


def _running(process: psutil.Process) -> bool:
    try:
        return process.is_running() and process.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _scopes_of(host: Any, owner: int) -> list[Path]:
    """Under systemd (cgroup v2) each ForgeAI process has a scope of its own, beside ours."""
    return list(host.cgroups.memory_base.parent.glob(f"forgeai-{owner}-*.scope"))


def _leftovers(host: Any, owner: int) -> list[Path]:
    names = (f"exec-{owner}-", f"run-{owner}-")
    cgroups = host.cgroups
    places = dict.fromkeys(
        [host.runtime_dir, cgroups.memory_base, cgroups.pids_base, *_scopes_of(host, owner)]
    )
    return [p for place in places for p in place.iterdir() if p.name.startswith(names)]
