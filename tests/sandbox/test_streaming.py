"""The streaming API: chunks while the program runs, and cancellation that kills everything."""

from __future__ import annotations

import asyncio
import uuid

import psutil
import pytest

from forgeai_ls.sandbox import ExecutionFinished, OutputChunk, StepStarted
from tests.conftest import executor_for

pytestmark = pytest.mark.sandbox


def _alive(marker: str) -> list[psutil.Process]:
    return [
        p
        for p in psutil.process_iter(["cmdline"])
        if any(marker in part for part in p.info["cmdline"] or ())
    ]


async def test_chunks_arrive_while_the_program_runs() -> None:
    """The first line is delivered while the program is still sleeping before its second."""
    code = "import time\nprint('first')\ntime.sleep(2)\nprint('second')"
    events = executor_for("python").stream(code)
    seen: list[object] = []
    loop = asyncio.get_running_loop()
    first_at = finished_at = 0.0
    stdout = b""
    async for event in events:
        seen.append(event)
        if isinstance(event, OutputChunk):
            stdout += event.data  # a line may arrive in more than one chunk
            if stdout == b"first\n":
                first_at = loop.time()
        if isinstance(event, ExecutionFinished):
            finished_at = loop.time()
    assert isinstance(seen[0], StepStarted)
    assert first_at > 0 and finished_at - first_at >= 1.0
    assert isinstance(seen[-1], ExecutionFinished)
    assert seen[-1].result.stdout == b"first\nsecond\n"


async def test_closing_the_stream_kills_the_program_and_its_children() -> None:
    """aclose() on the event stream stops the program and everything it started."""
    marker = f"{uuid.uuid4().int % 1000000 + 7000000}"
    code = f"sleep {marker} &\nsetsid sleep {marker}.5 &\necho up\nwait"
    events = executor_for("bash").stream(code)
    async for event in events:
        if isinstance(event, OutputChunk):
            assert event.data == b"up\n"
            break
    for _ in range(500):  # the children may still be between fork and exec
        if len(_alive(marker)) == 2:
            break
        await asyncio.sleep(0.01)
    assert len(_alive(marker)) == 2, "the program should be running before the stream is closed"
    await events.aclose()  # type: ignore[attr-defined]
    assert _alive(marker) == []


async def test_cancelling_the_consumer_task_kills_the_program() -> None:
    """Cancelling the task that consumes the stream stops a busy program."""
    marker = f"{uuid.uuid4().int % 1000000 + 8000000}"
    code = f"import time\nprint('up', flush=True)\nwhile True: time.sleep({marker})"
    started = asyncio.Event()

    async def consume() -> None:
        async for event in executor_for("python").stream(code):
            if isinstance(event, OutputChunk):
                started.set()

    task = asyncio.create_task(consume())
    await asyncio.wait_for(started.wait(), timeout=30)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert _alive(marker) == []


async def test_concurrent_runs_are_isolated_from_each_other() -> None:
    """Runs at the same time each see only their own files and succeed independently."""
    code = (
        "import os, time\ntag = '{tag}'\nopen(f'/tmp/{{tag}}', 'w').write(tag)\n"
        "open(f'/work/{{tag}}', 'w').write(tag)\ntime.sleep(0.3)\n"
        "print(sorted(os.listdir('/tmp')), sorted(f for f in os.listdir('/work') "
        "if f not in ('main.py', 'out')))"
    )
    tags = [f"run{i}" for i in range(6)]
    results = await asyncio.gather(
        *(executor_for("python").execute("python", code.format(tag=tag)) for tag in tags)
    )
    for tag, result in zip(tags, results, strict=True):
        assert result.exit_code == 0, result.stderr
        assert result.stdout.decode().strip() == f"['{tag}'] ['{tag}']"
