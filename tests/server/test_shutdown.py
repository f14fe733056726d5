"""`shutdown` while runs are in flight and warm slots wait: every run is stopped and reported,
every sandbox is gone, and the request is answered normally (then `exit` ends the server)."""

from __future__ import annotations

import time
from pathlib import Path

import psutil
import pytest

from tests.support.raw_lsp import RawLspServer

pytestmark = pytest.mark.sandbox

SLEEPER = "import time; print('up', flush=True); time.sleep(120)\n"


def _sandboxes(pid: int) -> list[psutil.Process]:
    return [p for p in psutil.Process(pid).children(recursive=True) if p.name() == "bwrap"]


@pytest.mark.parametrize("attempt", range(3))
def test_shutdown_with_runs_in_flight(tmp_path: Path, attempt: int) -> None:
    server = RawLspServer(tmp_path / "home")
    try:
        ident = server.send("initialize", {"processId": None, "rootUri": None, "capabilities": {}})
        server.wait_for(lambda m: m.get("id") == ident)
        server.send("initialized", {}, request=False)
        quick = server.run_file(tmp_path / "quick.py", "print('done')\n")
        server.wait_for(lambda m: m.get("id") == quick)
        running = [server.run_file(tmp_path / f"sleeper{i}.py", SLEEPER) for i in range(2)]
        for index in range(2):
            server.wait_for(
                lambda m, i=index: (
                    m.get("method") == "forgeai/output"
                    and m["params"]["uri"].endswith(f"sleeper{i}.py")
                )
            )
        sandboxes = _sandboxes(server.proc.pid)
        assert sandboxes
        done = server.send("shutdown", None)
        answer = server.wait_for(lambda m: m.get("id") == done)
        assert "error" not in answer and answer["result"] is None, answer
        for ident in running:  # each run answered, as cancelled
            reply = server.wait_for(lambda m, i=ident: m.get("id") == i)
            assert reply.get("result", {}).get("cancelled") is True, reply
        deadline = time.monotonic() + 5
        while any(p.is_running() for p in sandboxes) and time.monotonic() < deadline:
            time.sleep(0.05)
        alive = [p.pid for p in sandboxes if p.is_running() and p.status() != "zombie"]
        assert alive == []
        server.send("exit", None, request=False)
        assert server.proc.wait(timeout=10) == 0
    finally:
        if server.proc.poll() is None:
            server.proc.kill()
        server.proc.wait()
