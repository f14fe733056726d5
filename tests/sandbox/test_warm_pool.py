"""Warm pools: a warm run is the cold run, faster. Nothing carries from one run to the next,
dead slots are replaced, limits and network settings are never mixed, pools follow use and
stay within their time and memory budgets."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import psutil
import pytest

from forgeai_ls.plugins.executor import LanguageExecutor
from forgeai_ls.sandbox import ExecutionResult, LimitKind, NativeBackend, SandboxRequest
from forgeai_ls.sandbox.warm_pool import PoolSettings
from tests.conftest import executor_for

pytestmark = pytest.mark.sandbox

MIB = 1024 * 1024


@pytest.fixture
async def backend() -> AsyncIterator[NativeBackend]:
    pooled = NativeBackend(pools=PoolSettings(size=2))
    yield pooled
    pooled.close()


def request_for(
    language: str, code: str, stdin: bytes | None = None, **limits: object
) -> SandboxRequest:
    executor: LanguageExecutor = executor_for(language)
    run_limits = executor.run_limits().with_overrides(**limits) if limits else None
    return executor.build_request(code, limits=run_limits, stdin=stdin)


async def warm_run(backend: NativeBackend, request: SandboxRequest) -> ExecutionResult:
    """Run ``request`` in a slot that was ready before the run began."""
    backend.prewarm(request)
    assert await backend.wait_warm(request) >= 1
    assert backend.pools is not None
    before = set(backend.pools.idle_slots())
    result = await backend.run(request)
    assert before - set(backend.pools.idle_slots()), "a cold run: no slot was taken"
    return result


@pytest.mark.parametrize(
    ("language", "code"),
    [
        (
            "python",
            "import sys\nprint('out', sys.argv, __name__, __file__)\n"
            "print('err', file=sys.stderr)\nprint(input())\nraise SystemExit(3)",
        ),
        ("python", "def f():\n    return 1 / 0\n\nf()"),
        ("python", "x = (\n"),
        (
            "python",
            "import atexit, threading, time\natexit.register(print, 'at exit')\n"
            "threading.Thread(target=lambda: (time.sleep(0.2), print('thread'))).start()",
        ),
        (
            "javascript",
            "console.log(require.main === module, process.argv.length);"
            "process.stdin.on('data', d => console.log(String(d).trim())); process.exitCode = 4",
        ),
        ("bash", 'echo "$0 $#"; read line; echo "got $line" >&2; exit 5'),
    ],
    ids=["python-io", "python-traceback", "python-syntax", "python-exit-work", "node", "bash"],
)
async def test_warm_runs_match_cold_runs(backend: NativeBackend, language: str, code: str) -> None:
    """Output, stderr (tracebacks included), exit status and argv are the cold run's."""
    request = request_for(language, code, stdin=b"hello\n")
    cold = await NativeBackend().run(request)
    warm = await warm_run(backend, request)
    assert (warm.exit_code, warm.signal, warm.limit) == (cold.exit_code, cold.signal, cold.limit)
    assert warm.stdout == cold.stdout
    assert warm.stderr == cold.stderr


async def test_nothing_carries_from_one_run_to_the_next(backend: NativeBackend) -> None:
    """Files, environment, modules and processes of an earlier run are gone."""
    first = (
        "import os, subprocess, sys, json\n"
        "open('/work/left.txt', 'w').write('x'); open('/tmp/left.txt', 'w').write('x')\n"
        "os.environ['LEFT'] = '1'; json.LEFT = 1; sys.path.append('/left')\n"
        "subprocess.Popen(['sleep', '30'], start_new_session=True)\n"
        "print(os.getpid())"
    )
    second = (
        "import os, sys, json\n"
        "print(sorted(os.listdir('/work')), sorted(os.listdir('/tmp')))\n"
        "print(os.environ.get('LEFT'), hasattr(json, 'LEFT'), '/left' in sys.path)\n"
        "print(sorted(int(p) for p in os.listdir('/proc') if p.isdigit()))"
    )
    result = await warm_run(backend, request_for("python", first))
    assert result.exit_code == 0, result
    result = await warm_run(backend, request_for("python", second))
    lines = result.stdout.decode().splitlines()
    assert lines[0] == "['main.py', 'out'] []"  # out/: the empty output directory
    assert lines[1] == "None False False"
    assert len(eval(lines[2])) <= 2  # bwrap's init and the program: no sleep from before


async def test_a_dead_slot_is_replaced(backend: NativeBackend) -> None:
    request = request_for("python", "print('fine')")
    backend.prewarm(request)
    assert await backend.wait_warm(request) == 1
    assert backend.pools is not None
    (slot,) = backend.pools.idle_slots()
    for pid in (slot.process.inner_pid, slot.process.pid):
        if pid is not None:
            os.kill(pid, signal.SIGKILL)
    for _ in range(100):  # the pool notices the death on the event loop
        await asyncio.sleep(0.02)
        if slot not in backend.pools.idle_slots():
            break
    assert slot not in backend.pools.idle_slots()
    assert await backend.wait_warm(request) == 1  # a replacement
    result = await warm_run(backend, request)
    assert result.exit_code == 0 and result.stdout == b"fine\n"


async def test_pools_never_mix_limits_or_network(backend: NativeBackend) -> None:
    """A slot made for one set of limits never serves another: each run gets exactly its own
    limits, network setting included."""
    roomy = request_for("python", "print('roomy')")
    backend.prewarm(roomy)
    assert await backend.wait_warm(roomy) == 1
    assert backend.pools is not None
    roomy_slot = backend.pools.idle_slots()[0]

    bomb = "chunks = []\nwhile True:\n    chunks.append(bytearray(16 * 1024 * 1024))"
    tight = request_for("python", bomb, memory_bytes=96 * MIB)
    result = await warm_run(backend, tight)
    assert result.limit is LimitKind.MEMORY
    assert roomy_slot in backend.pools.idle_slots()  # untouched by the other limits

    probe = (
        "import socket\ns = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
        "try:\n    s.connect(('192.0.2.1', 9)); print('net on')\n"
        "except OSError:\n    print('net off')"
    )
    online = await warm_run(backend, request_for("python", probe, network=True))
    offline = await warm_run(backend, request_for("python", probe))
    assert (online.stdout, offline.stdout) == (b"net on\n", b"net off\n")


async def test_the_wall_clock_starts_when_the_program_arrives(backend: NativeBackend) -> None:
    """A slot that waited longer than the run's timeout still gives the run its whole time,
    and the timeout still stops a warm run."""
    patient = request_for("python", "import time\ntime.sleep(0.5)\nprint('done')", wall_timeout=1)
    backend.prewarm(patient)
    assert await backend.wait_warm(patient) == 1
    await asyncio.sleep(1.2)
    result = await warm_run(backend, patient)
    assert result.exit_code == 0 and result.stdout == b"done\n"
    endless = request_for("python", "while True:\n    pass", wall_timeout=1, cpu_time=5)
    result = await warm_run(backend, endless)
    assert result.limit is LimitKind.TIMEOUT


async def test_pools_follow_use_and_budgets() -> None:
    """Concurrent use grows a pool to its size; the memory budget caps idle slots; the idle
    timeout closes them."""
    request = request_for("python", "import time\ntime.sleep(0.3)")
    sized = NativeBackend(pools=PoolSettings(size=3, idle_timeout=2))
    try:
        sized.prewarm(request)
        assert await sized.wait_warm(request) == 1
        await asyncio.sleep(0.2)
        assert sized.pools is not None and len(sized.pools.idle_slots()) == 1  # unused: one
        await asyncio.gather(*(sized.run(request) for _ in range(3)))
        assert await sized.wait_warm(request, 3) == 3  # three ran together: three slots
        await asyncio.sleep(3.5)  # idle past the timeout (checked every second)
        assert sized.pools.idle_slots() == []
    finally:
        sized.close()

    budget = NativeBackend(pools=PoolSettings(size=4, memory_budget_bytes=1 * MIB))
    try:
        budget.prewarm(request)
        await asyncio.sleep(0.5)
        assert budget.pools is not None and budget.pools.idle_slots() == []
        assert (await budget.run(request)).exit_code == 0  # cold, still correct
    finally:
        budget.close()


async def test_closing_the_pools_leaves_no_process_or_descriptor() -> None:
    me = psutil.Process()
    fds_before = me.num_fds()
    children_before = {child.pid for child in me.children(recursive=True)}
    pooled = NativeBackend(pools=PoolSettings(size=2))
    request = request_for("python", "print(1)")
    for _ in range(5):
        await warm_run(pooled, request)
    assert await pooled.wait_warm(request) >= 1
    pooled.close()
    await asyncio.sleep(0.1)
    assert me.num_fds() == fds_before
    assert {child.pid for child in me.children(recursive=True)} <= children_before


_EXIT_PROBE = """
import asyncio, os
from forgeai_ls.sandbox import NativeBackend
from forgeai_ls.sandbox.warm_pool import PoolSettings
from tests.sandbox.test_warm_pool import request_for

async def main():
    backend = NativeBackend(pools=PoolSettings(size=1))
    request = request_for("python", "print(1)")
    backend.prewarm(request)
    assert await backend.wait_warm(request) == 1
    print(os.getpid(), flush=True)

asyncio.run(main())
"""


def test_a_normal_exit_leaves_no_warm_slot_behind() -> None:
    """A process that exits without closing its pools still takes its slots' work dirs and
    cgroups with it."""
    from forgeai_ls.sandbox.host import detect_native_host

    host = detect_native_host()
    root = Path(__file__).resolve().parents[2]
    probe = subprocess.run(
        [sys.executable, "-c", _EXIT_PROBE], cwd=root, capture_output=True, timeout=60
    )
    assert probe.returncode == 0, probe.stderr.decode()
    pid = probe.stdout.decode().split()[-1]
    left = [p.name for p in host.runtime_dir.iterdir() if p.name.startswith(f"exec-{pid}-")]
    if host.cgroups is not None:
        bases = (host.cgroups.memory_base, host.cgroups.pids_base)
        left += [p.name for b in bases for p in b.iterdir() if p.name.startswith(f"run-{pid}-")]
    assert left == []
