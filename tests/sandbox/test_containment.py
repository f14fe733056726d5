"""Hostile programs are contained, reported as the right limit, and leave nothing behind."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from forgeai_ls.sandbox import LimitKind
from tests.conftest import close_pools, run_code

pytestmark = pytest.mark.sandbox

MIB = 1024 * 1024


def _processes_with(marker: str) -> list[psutil.Process]:
    found = []
    for proc in psutil.process_iter(["cmdline"]):
        if any(marker in part for part in proc.info["cmdline"] or ()):
            found.append(proc)
    return found


async def test_infinite_loop_stops_at_the_wall_clock_limit() -> None:
    """An endless loop that sleeps is stopped by the wall-clock limit."""
    result = await run_code("python", "import time\nwhile True: time.sleep(0.01)", wall_timeout=1)
    assert result.timed_out
    assert result.limit is LimitKind.TIMEOUT
    assert result.exit_code is None


async def test_busy_loop_stops_at_the_cpu_limit() -> None:
    """A busy loop is stopped by the CPU-time limit before the wall clock."""
    result = await run_code(
        "c", "int main(void){volatile long i=0; for(;;) i++;}", cpu_time=1, wall_timeout=20
    )
    assert result.limit is LimitKind.CPU
    assert not result.timed_out
    assert result.cpu_time_ms is not None and result.cpu_time_ms >= 900


async def test_memory_bomb_hits_the_memory_limit() -> None:
    """Allocating and touching far more than allowed is reported as the memory limit."""
    code = "chunks = []\nwhile True:\n    chunks.append(bytearray(16 * 1024 * 1024))"
    result = await run_code("python", code, memory_bytes=128 * MIB)
    assert result.limit is LimitKind.MEMORY
    assert result.exit_code != 0


async def test_fork_bomb_hits_the_process_limit() -> None:
    """A classic fork bomb is held by the process limit and stopped.

    The shell stays alive after starting the bomb (``sleep``): with a bare ``wait`` it could
    exit in a few milliseconds, before the orphaned bomb reached the limit.
    """
    result = await run_code("bash", ":(){ :|:& };: ; sleep 10", processes=32, wall_timeout=3)
    assert result.limit is LimitKind.PROCESSES
    assert LimitKind.PROCESSES in result.limits_hit


async def test_c_fork_loop_hits_the_process_limit() -> None:
    """fork() in a loop fails at the process limit, which is reported."""
    code = (
        "#include <unistd.h>\n#include <stdio.h>\n#include <stdlib.h>\n"
        "int main(void){for(int i=0;i<100000;i++){pid_t p=fork();"
        'if(p<0){perror("fork");exit(1);} if(p==0){pause();}} return 0;}'
    )
    result = await run_code("c", code, processes=16, wall_timeout=5)
    assert result.limit is LimitKind.PROCESSES


async def test_output_flood_is_capped_and_the_parent_stays_small() -> None:
    """1 GiB written to stdout is cut at the output limit; ForgeAI's memory does not grow."""
    before = psutil.Process().memory_info().rss
    code = (
        "import sys\nblock = b'x' * (1024 * 1024)\n"
        "for _ in range(1024):\n    sys.stdout.buffer.write(block)"
    )
    result = await run_code("python", code, output_bytes=2 * MIB)
    growth = psutil.Process().memory_info().rss - before
    assert result.limit is LimitKind.OUTPUT
    assert result.truncated
    assert len(result.stdout) + len(result.stderr) == 2 * MIB
    assert growth < 64 * MIB


EXACT_OUTPUT_LIMIT = 64 * 1024
EXACT_OUTPUT_CASES = pytest.mark.parametrize(("extra", "truncated"), [("", False), ("y", True)])


def exact_output_program(extra: str) -> str:
    """Python that writes exactly ``EXACT_OUTPUT_LIMIT`` bytes, pauses, writes ``extra`` and,
    when there was something extra, keeps running: the cap must stop it, not the wall clock."""
    return (
        "import sys, time\n"
        f"sys.stdout.write('x' * {EXACT_OUTPUT_LIMIT}); sys.stdout.flush(); time.sleep(0.3)\n"
        f"sys.stdout.write({extra!r}); sys.stdout.flush()\n"
        f"time.sleep({30 if extra else 0})"
    )


@EXACT_OUTPUT_CASES
async def test_output_exactly_at_the_limit(extra: str, truncated: bool) -> None:
    """Output that fills the limit exactly is whole; one byte more is over it."""
    result = await run_code(
        "python", exact_output_program(extra), output_bytes=EXACT_OUTPUT_LIMIT, wall_timeout=10
    )
    assert len(result.stdout) == EXACT_OUTPUT_LIMIT
    assert result.truncated is truncated, result
    assert (result.limit is LimitKind.OUTPUT) is truncated, result


async def test_filling_the_work_dir_hits_the_disk_limit() -> None:
    """Writing files until the disk is full stops at the work dir's size, not the host's."""
    code = (
        "i = 0\nwhile True:\n    with open(f'fill{i}', 'wb') as f:\n"
        "        f.write(b'x' * (1024 * 1024))\n    i += 1"
    )
    result = await run_code("python", code, disk_bytes=8 * MIB, file_size_bytes=4 * MIB)
    assert result.limit is LimitKind.FILE_SIZE
    assert b"No space left on device" in result.stderr


async def test_one_huge_file_hits_the_file_size_limit() -> None:
    """A single file larger than allowed is stopped by RLIMIT_FSIZE (SIGXFSZ)."""
    code = "with open('big', 'wb') as f:\n    f.write(b'x' * (8 * 1024 * 1024))"
    result = await run_code("python", code, file_size_bytes=1 * MIB, disk_bytes=32 * MIB)
    assert result.limit is LimitKind.FILE_SIZE


async def test_background_processes_do_not_outlive_the_run() -> None:
    """setsid and nohup children are killed with the program."""
    marker = f"{uuid.uuid4().int % 100000 + 500000}"
    code = (
        f"setsid sleep {marker} >/dev/null 2>&1 < /dev/null &\n"
        f"nohup sleep {marker}.5 >/dev/null 2>&1 &\n"
        f"(sleep {marker}.25 &)\necho started"
    )
    result = await run_code("bash", code)
    assert result.stdout == b"started\n"
    assert _processes_with(marker) == []


async def test_host_secrets_are_invisible(tmp_path: Path) -> None:
    """Home, /etc/shadow, the checkout and files ForgeAI's user can read stay unreadable."""
    secret = tmp_path / "secret.txt"
    secret.write_text("top secret")
    files = ["/etc/shadow", str(secret), str(Path(__file__).resolve()), "/etc/ssh/ssh_host_rsa_key"]
    dirs = [
        str(Path.home()),
        str(Path(__file__).resolve().parents[2]),
        "/root",
        "/home",
        "/var/log",
        str(tmp_path),
    ]
    code = (
        "import json, os\nseen = {}\n"
        f"for path in {files + dirs!r}:\n"
        "    try:\n        seen[path] = sorted(os.listdir(path)) if os.path.isdir(path) "
        "else open(path).read()\n"
        "    except OSError as exc:\n        seen[path] = type(exc).__name__\n"
        "print(json.dumps(seen))"
    )
    result = await run_code("python", code)
    seen = json.loads(result.stdout)
    for path in files:
        assert seen[path] in ("FileNotFoundError", "PermissionError"), (path, seen[path])
    toolchain_parents = {".pyenv", ".rustup", ".cargo"}  # empty mount points of toolchains
    for path in dirs:
        if isinstance(seen[path], str):
            assert seen[path] in ("FileNotFoundError", "PermissionError"), (path, seen[path])
            continue
        try:
            on_host = set(os.listdir(path))
        except OSError:
            on_host = set()
        assert not (set(seen[path]) & on_host) - toolchain_parents, (path, seen[path])


async def test_writes_outside_the_work_dir_fail() -> None:
    """Only /work and /tmp are writable; system trees, /dev and /proc/sys are not."""
    code = (
        "import os\nfor path in ['/usr/x', '/etc/x', '/x', '/dev/x', '/build-x', "
        "'/proc/sys/kernel/hostname', '/work/ok', '/tmp/ok']:\n"
        "    try:\n        open(path, 'w').write('1')\n        print(path, 'written')\n"
        "    except OSError as exc:\n        print(path, type(exc).__name__)"
    )
    result = await run_code("python", code)
    lines = dict(line.split(" ", 1) for line in result.stdout.decode().splitlines())
    assert lines.pop("/work/ok") == "written"
    assert lines.pop("/tmp/ok") == "written"
    assert "written" not in lines.values(), lines


@pytest.fixture
def host_server() -> Iterator[int]:
    """A TCP server on the host's 127.0.0.1 that answers every connection."""
    server = socket.create_server(("127.0.0.1", 0))
    port = server.getsockname()[1]
    stop = threading.Event()

    def serve() -> None:
        server.settimeout(0.1)
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except TimeoutError:
                continue
            conn.sendall(b"host says hi\n")
            conn.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield port
    stop.set()
    thread.join()
    server.close()


NET_PROBE = (
    "import socket, sys\nport = int({port})\nfor host in ['127.0.0.1', '10.0.0.1', "
    "'1.1.1.1']:\n    try:\n        s = socket.create_connection((host, port), "
    "timeout=1)\n        print(host, s.recv(100).decode().strip())\n"
    "    except OSError as exc:\n        print(host, 'blocked', type(exc).__name__)"
)


async def test_network_is_off_including_the_hosts_loopback(host_server: int) -> None:
    """No connection leaves the sandbox, not even to a server on the host's 127.0.0.1."""
    result = await run_code("python", NET_PROBE.format(port=host_server))
    lines = result.stdout.decode().splitlines()
    assert len(lines) == 3
    assert all(" blocked " in line for line in lines), lines


async def test_network_flag_reaches_the_host(host_server: int) -> None:
    """With network allowed, the host's loopback server answers (the flag really works)."""
    result = await run_code("python", NET_PROBE.format(port=host_server), network=True)
    assert "127.0.0.1 host says hi" in result.stdout.decode()


async def test_parent_environment_is_not_visible(monkeypatch: pytest.MonkeyPatch) -> None:
    """Neither the program's environment nor any /proc/*/environ shows ForgeAI's variables."""
    secret = f"s3cret-{uuid.uuid4()}"
    monkeypatch.setenv("FORGEAI_TEST_SECRET", secret)
    code = (
        "import os, glob\nprint(repr(dict(os.environ)))\n"
        "for path in glob.glob('/proc/*/environ'):\n"
        "    try:\n        print(path, open(path, 'rb').read())\n"
        "    except OSError as exc:\n        print(path, exc)"
    )
    result = await run_code("python", code)
    assert result.exit_code == 0
    assert secret.encode() not in result.stdout
    assert b"FORGEAI_TEST_SECRET" not in result.stdout


_LEAK_PROBE = """
import asyncio, json, psutil
from tests.conftest import close_pools, run_code

async def main():
    me = psutil.Process()
    await run_code("python", "print(1)")
    close_pools()  # with FORGEAI_TEST_POOLS=1: idle warm slots are not leftovers
    before = (me.num_fds(), len(me.children(recursive=True)))
    for _ in range(5):
        await run_code("python", "print(1)")
        await run_code("python", "while True: pass", wall_timeout=0.3)
    close_pools()
    after = (me.num_fds(), len(me.children(recursive=True)))
    zombies = [p.pid for p in me.children() if p.status() == psutil.STATUS_ZOMBIE]
    print(json.dumps({"before": before, "after": after, "zombies": zombies}))

asyncio.run(main())
"""


def test_runs_leave_no_process_or_descriptor_behind() -> None:
    """After a batch of runs (including killed ones), ForgeAI has no extra children or fds.

    The batch runs in a fresh interpreter: the backend makes its process a child subreaper, so
    in the test process orphans of other tests (an editor's server outliving the editor) could
    be reparented here at any moment; in the probe every descendant is ForgeAI's.
    """
    root = Path(__file__).resolve().parents[2]
    probe = subprocess.run(
        [sys.executable, "-c", _LEAK_PROBE], cwd=root, capture_output=True, timeout=120
    )
    assert probe.returncode == 0, probe.stderr.decode()
    report = json.loads(probe.stdout.decode().splitlines()[-1])
    assert report["after"] == report["before"]
    assert report["zombies"] == []


async def test_program_has_no_privileges_and_a_seccomp_filter() -> None:
    """No capabilities, no_new_privs set, seccomp active, new user namespaces refused."""
    code = (
        "import os\nstatus = dict(line.split(':\\t', 1) for line in "
        "open('/proc/self/status').read().splitlines() if ':\\t' in line)\n"
        "for key in ('CapEff', 'CapPrm', 'NoNewPrivs', 'Seccomp'):\n"
        "    print(key, status[key].strip())\n"
        "try:\n    os.unshare(os.CLONE_NEWUSER) if hasattr(os, 'unshare') else None\n"
        "    print('unshare', 'allowed' if hasattr(os, 'unshare') else 'n/a')\n"
        "except OSError as exc:\n    print('unshare', exc.errno)\n"
    )
    result = await run_code("python", code)
    lines = dict(line.split(" ", 1) for line in result.stdout.decode().splitlines())
    assert lines["CapEff"] == "0000000000000000"
    assert lines["CapPrm"] == "0000000000000000"
    assert lines["NoNewPrivs"] == "1"
    assert lines["Seccomp"] == "2"
    assert lines["unshare"] != "allowed"


async def test_hostile_runs_leave_no_state_on_the_host() -> None:
    """After hostile runs: no per-run cgroup or work directory remains, and runs still work."""
    from forgeai_ls.sandbox.host import detect_native_host

    host = detect_native_host()
    await run_code("python", "import os\nwhile True: os.fork()", processes=8, wall_timeout=2)
    await run_code("c", "int main(void){return 0;}")
    await run_code("python", "x = bytearray(1 << 30)", memory_bytes=64 * MIB)
    close_pools()  # with FORGEAI_TEST_POOLS=1: idle warm slots hold a work dir and a cgroup
    # Other ForgeAI processes (language servers of other tests, with their warm slots) may
    # have work dirs too: the names carry the owner's pid.
    mine = f"exec-{os.getpid()}-"
    assert [p for p in host.runtime_dir.iterdir() if p.name.startswith(mine)] == []
    if host.cgroups is not None:
        mine = f"run-{os.getpid()}-"

        def leftover() -> list[Path]:
            bases = (host.cgroups.memory_base, host.cgroups.pids_base)  # type: ignore[union-attr]
            return [p for base in bases for p in base.iterdir() if p.name.startswith(mine)]

        for _ in range(100):  # a busy group is removed in the background, within moments
            if not leftover():
                break
            await asyncio.sleep(0.02)
        assert leftover() == []
    again = await run_code("python", "print('still fine')")
    assert again.stdout == b"still fine\n"


_SOCKET_PROBE = """
import ctypes, errno
libc = ctypes.CDLL(None, use_errno=True)
for name, family, kind, protocol in [
    ("unix", 1, 1, 0), ("inet", 2, 1, 0), ("inet6", 10, 2, 0), ("netlink-route", 16, 3, 0),
    ("netlink-audit", 16, 3, 9), ("vsock", 40, 1, 0), ("packet", 17, 3, 0), ("alg", 38, 5, 0),
    ("bluetooth", 31, 1, 0), ("unspec", 0, 1, 0), ("unix-with-high-bits", (1 << 32) | 1, 1, 0),
]:
    fd = libc.socket(ctypes.c_long(family), kind, protocol)
    print(name, "ok" if fd >= 0 else errno.errorcode[ctypes.get_errno()])
pair = (ctypes.c_int * 2)()
print("socketpair-vsock", libc.socketpair(40, 1, 0, pair), errno.errorcode[ctypes.get_errno()])
"""


@pytest.mark.parametrize("network", [False, True], ids=["network-off", "network-on"])
async def test_only_the_socket_families_a_program_needs(network: bool) -> None:
    """vsock (a path to the hypervisor), packet, crypto API, Bluetooth... are refused with
    EAFNOSUPPORT; Unix, IPv4, IPv6 and netlink's route protocol work."""
    result = await run_code("python", _SOCKET_PROBE, network=network)
    assert result.exit_code == 0, result.stderr
    seen = dict(line.split(" ", 1) for line in result.stdout.decode().splitlines())
    assert seen == {
        "unix": "ok",
        "inet": "ok",
        "inet6": "ok",
        "netlink-route": "ok",
        "netlink-audit": "EAFNOSUPPORT",
        "vsock": "EAFNOSUPPORT",
        "packet": "EAFNOSUPPORT",
        "alg": "EAFNOSUPPORT",
        "bluetooth": "EAFNOSUPPORT",
        "unspec": "EAFNOSUPPORT",
        "unix-with-high-bits": "EAFNOSUPPORT",
        "socketpair-vsock": "-1 EAFNOSUPPORT",
    }


async def test_a_program_cannot_trace_its_sandbox() -> None:
    """ptrace is refused: attaching to PID 1 (bwrap's init) would let a program disarm it."""
    code = (
        "import ctypes, errno\nlibc = ctypes.CDLL(None, use_errno=True)\n"
        "print(libc.ptrace(16, 1, 0, 0), errno.errorcode[ctypes.get_errno()])\n"  # ATTACH
        "print(libc.ptrace(0, 0, 0, 0), errno.errorcode[ctypes.get_errno()])\n"  # TRACEME
    )
    result = await run_code("python", code)
    assert result.stdout == b"-1 EPERM\n-1 EPERM\n", result.stderr


async def test_a_toolchain_in_dot_local_exposes_nothing_beside_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A real tool installed as ~/.local/bin/<tool> runs, and the keyring and editor history
    under the same ~/.local stay invisible to the program."""
    import shutil

    from forgeai_ls.sandbox import NativeBackend
    from forgeai_ls.sandbox.limits import ResourceLimits
    from forgeai_ls.sandbox.request import SandboxRequest, StepSpec
    from forgeai_ls.sandbox.toolchain import ToolchainResolver

    home = tmp_path / "home"
    secrets = [
        home / ".local" / "share" / "keyrings" / "login.keyring",
        home / ".local" / "state" / "nvim" / "shada" / "main.shada",
    ]
    for secret in secrets:
        secret.parent.mkdir(parents=True)
        secret.write_text("TOP-SECRET\n")
    tool = home / ".local" / "bin" / "peek"
    tool.parent.mkdir(parents=True)
    shutil.copy("/bin/cat", tool)
    home.chmod(0o755)
    tmp_path.chmod(0o755)
    monkeypatch.setenv("HOME", str(home))
    backend = NativeBackend(ToolchainResolver({"PATH": f"{tool.parent}:/usr/bin:/bin"}))
    request = SandboxRequest(
        files={"here.txt": b"visible\n"},
        run=StepSpec(argv=("peek", "here.txt", *map(str, secrets)), limits=ResourceLimits()),
    )
    result = await backend.run(request)
    assert result.stdout == b"visible\n"
    assert result.stderr.count(b"No such file or directory") == len(secrets), result.stderr
