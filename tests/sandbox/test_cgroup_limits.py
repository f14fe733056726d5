"""Memory and process limits from the place this machine offers, and the notice where it
offers none.

``FORGEAI_EXPECT_LIMITS`` says what the machine must give (the CI scripts set it): ``cgroup-v1``
(this project's machines, as root), ``cgroup-v2`` (the virtual machine of scripts/vm-test.sh,
as root and as a user with a systemd user manager) or ``rlimits`` (a user with no cgroups).
Without it the tests that depend on the answer are skipped: detection must not be allowed to
pass by finding less than the machine offers.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path

import psutil
import pytest

from forgeai_ls.sandbox import LimitKind, NativeBackend
from forgeai_ls.sandbox.host import detect_native_host
from forgeai_ls.sandbox.warm_pool import ESTIMATED_SLOT_BYTES, PoolSettings
from tests.conftest import close_pools, executor_for, run_code

pytestmark = pytest.mark.sandbox

MIB = 1024 * 1024
EXPECTED = os.environ.get("FORGEAI_EXPECT_LIMITS")
FORGEAI = [sys.executable, "-m", "forgeai_ls.cli.main"]


def _expect(*kinds: str) -> str:
    if EXPECTED is None:
        pytest.skip("FORGEAI_EXPECT_LIMITS does not say what this machine offers")
    if EXPECTED not in kinds:
        pytest.skip(f"not for {EXPECTED}")
    return EXPECTED


def test_limits_come_from_where_the_machine_offers_them() -> None:
    """The cgroup version (and under systemd, a delegated scope) or the rlimit fallback."""
    expected = _expect("cgroup-v1", "cgroup-v2", "rlimits")
    host = detect_native_host()
    setup = host.cgroup_setup
    if expected == "rlimits":
        assert setup.manager is None
        assert host.limits_notice is not None and setup.reason in host.limits_notice
        return
    assert setup.manager is not None, setup.reason
    assert host.limits_notice is None
    assert setup.manager.version == int(expected[-1])
    if expected == "cgroup-v2" and os.environ.get("FORGEAI_TEST_WITHOUT_SYSTEMD") == "1":
        # Root where no systemd answers (a container, another init): its own subtree.
        assert setup.how == "cgroup v2, as root (/sys/fs/cgroup/forgeai)"
        assert setup.reason is None and setup.manager.memory_base.parent == Path("/sys/fs/cgroup")
    elif expected == "cgroup-v2" and Path("/run/systemd/system").is_dir():
        # Under systemd ForgeAI lives in a scope systemd delegated to it, one level down.
        own = Path("/proc/self/cgroup").read_text().strip().split("::", 1)[1]
        scope, leaf = own.rsplit("/", 2)[-2:]
        assert scope.startswith("forgeai-") and scope.endswith(".scope"), own
        assert leaf == "forgeai"
        assert setup.manager.memory_base.name == scope
        controllers = (setup.manager.memory_base / "cgroup.subtree_control").read_text().split()
        assert {"memory", "pids"} <= set(controllers)


async def test_a_memory_bomb_is_stopped_by_the_memory_limit() -> None:
    """With cgroups: an OOM kill (SIGKILL), the peak near the limit. With rlimits: the
    allocation fails inside the program (MemoryError)."""
    expected = _expect("cgroup-v1", "cgroup-v2", "rlimits")
    code = "chunks = []\nwhile True:\n    chunks.append(bytearray(8 * 1024 * 1024))"
    result = await run_code("python", code, memory_bytes=96 * MIB, wall_timeout=30)
    assert result.limit is LimitKind.MEMORY
    if expected == "rlimits":
        assert b"MemoryError" in result.stderr
        return
    assert result.signal == signal.SIGKILL, result.stderr
    assert b"MemoryError" not in result.stderr
    assert result.peak_memory_bytes is not None
    assert 64 * MIB <= result.peak_memory_bytes <= 96 * MIB


async def test_a_fork_bomb_is_stopped_by_the_process_limit() -> None:
    """The process limit holds and is reported, whatever enforces it."""
    _expect("cgroup-v1", "cgroup-v2", "rlimits")
    code = "import os, time\nwhile True:\n    os.fork()\n"
    result = await run_code("python", code, processes=12, wall_timeout=5)
    assert result.limit is LimitKind.PROCESSES
    assert LimitKind.PROCESSES in result.limits_hit


async def test_cpu_time_counts_every_process_of_the_run() -> None:
    """Two processes burning CPU: the run's CPU time is theirs together (v2: cpu.stat)."""
    _expect("cgroup-v1", "cgroup-v2", "rlimits")
    code = (
        "import os, time\n"
        "def burn(seconds):\n"
        "    end = time.process_time() + seconds\n"
        "    while time.process_time() < end: pass\n"
        "child = os.fork()\n"
        "burn(0.4)\n"
        "if child: os.waitpid(child, 0)\n"
        "else: os._exit(0)\n"
    )
    result = await run_code("python", code, wall_timeout=30)
    assert result.exit_code == 0, result.stderr
    assert result.cpu_time_ms is not None and result.cpu_time_ms >= 750


async def test_runs_leave_no_group_and_no_process() -> None:
    """After a memory bomb, a fork bomb and a background sleeper: no group of this process
    remains and nothing of the runs is alive."""
    _expect("cgroup-v1", "cgroup-v2", "rlimits")
    marker = "forgeai-leftover-probe"
    await run_code("python", "x = bytearray(1 << 30)", memory_bytes=64 * MIB)
    await run_code("python", "import os\nwhile True: os.fork()", processes=8, wall_timeout=2)
    await run_code("bash", f"(exec -a {marker} sleep 60) & disown; echo started", wall_timeout=5)
    close_pools()
    host = detect_native_host()
    mine = f"run-{os.getpid()}-"
    for _ in range(200):
        groups = (
            [p for p in host.cgroups.pids_base.iterdir() if p.name.startswith(mine)]
            if host.cgroups is not None
            else []
        )
        alive = [p for p in psutil.process_iter(["cmdline"]) if marker in (p.info["cmdline"] or [])]
        if not groups and not alive:
            break
        await asyncio.sleep(0.02)
    assert groups == [] and alive == []


async def test_a_warm_slot_counts_against_the_budget_as_its_cgroup_measures_it() -> None:
    """The warm pools' memory budget uses the slot's group (v1 memory.usage_in_bytes, v2
    memory.current); only without cgroups an estimate."""
    expected = _expect("cgroup-v1", "cgroup-v2", "rlimits")
    request = executor_for("python").build_request("print(1)")
    pooled = NativeBackend(pools=PoolSettings(size=1))
    try:
        pooled.prewarm(request)
        assert await pooled.wait_warm(request) == 1
        assert pooled.pools is not None
        (slot,) = pooled.pools.idle_slots()
        if expected == "rlimits":
            assert slot.cgroup is None
            assert slot.memory_bytes() == ESTIMATED_SLOT_BYTES["python"]
            return
        assert slot.cgroup is not None
        name = "memory.usage_in_bytes" if expected == "cgroup-v1" else "memory.current"
        charged = int((slot.cgroup.memory_dir / name).read_text())
        assert MIB < charged < 128 * MIB
        assert abs(slot.memory_bytes() - charged) < 8 * MIB  # read again: about the same
    finally:
        pooled.close()


def _cli_run(home: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*FORGEAI, "run", "-l", "python", "-c", "print(1)"],
        env={**os.environ, "FORGEAI_DAEMON": "0", "FORGEAI_HOME": str(home), **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _notice_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if "limits are rlimits here" in line]


def test_the_cli_says_once_that_limits_fall_back_to_rlimits(tmp_path: Path) -> None:
    """Where no cgroup can be had (where cgroups work, forced with an unusable
    FORGEAI_CGROUP_BASE), the first run since boot says so in one line on stderr, naming the
    reason and what to do; the next run does not."""
    runtime = tmp_path / "runtime"
    runtime.mkdir(mode=0o700)
    natural = EXPECTED == "rlimits"
    env = {} if natural else {"FORGEAI_CGROUP_BASE": str(tmp_path / "missing" / "base")}
    if os.geteuid() != 0:  # root's runtime directory is /run/forgeai: notices are kept there
        env["XDG_RUNTIME_DIR"] = str(runtime)
    else:
        for notice in Path("/run/forgeai/notices").glob("*"):
            notice.unlink()
    first, second = _cli_run(tmp_path, env), _cli_run(tmp_path, env)
    assert first.returncode == 0 and first.stdout == "1\n", first.stderr
    lines = _notice_lines(first.stderr)
    assert len(lines) == 1, first.stderr
    reason = detect_native_host().cgroup_setup.reason if natural else "FORGEAI_CGROUP_BASE is not"
    assert reason is not None and lines[0].startswith("forgeai: ") and reason in lines[0]
    assert "forgeai doctor" in lines[0]
    assert second.returncode == 0 and _notice_lines(second.stderr) == []


def test_no_notice_where_cgroups_enforce_the_limits(tmp_path: Path) -> None:
    _expect("cgroup-v1", "cgroup-v2")
    done = _cli_run(tmp_path, {})
    assert done.returncode == 0 and done.stdout == "1\n", done.stderr
    assert _notice_lines(done.stderr) == []
