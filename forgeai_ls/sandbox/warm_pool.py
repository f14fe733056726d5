"""Warm pools: sandboxes started ahead of time, each waiting for exactly one program.

Slots are grouped by a key that covers everything a sandbox is made with: the command, the
environment, every limit (network included), the seccomp program and the toolchain mounts.
A run takes a slot only from the pool of its own key, so it gets exactly the sandbox a cold
run would have had. A taken slot is never returned: its replacement is started in the
background at once.

Sizing follows use: a key gets a pool when it is first run (or pre-warmed). A pre-warmed key
keeps one slot; a key that runs keeps one more than the most of its runs that were in progress
together during the last minute (the spare is what the next run takes while the replacement
of the last one is still starting), and, when runs come faster than a slot starts (an agent or
a test loop sending them back to back), as many as start in the time between two runs
(measured: how long this key's slots take to be ready, and the recent gaps between its runs),
capped by the language's pool size. A taken slot's replacement starts when its run ends (or
at once when the run found no slot): started earlier, it would compete with the run for the
CPU. Slots start in worker threads, so the event loop only pauses for the fork itself, never
for the sandbox's start-up. A key unused for the idle timeout loses its slots. Idle slots
together stay within the memory budget (each measured through its cgroup where there is one, else
estimated per kind); when a new slot would not fit, idle slots of the least recently used
other key make room, or the slot is not started.

A slot that dies while it waits (killed from outside, out of memory) is discarded and
replaced. Everything but the start of a slot runs on the event loop the pools were first used
on; used from another loop (a new ``asyncio.run``), the old slots are discarded first, and a
slot that finishes starting after its loop or its pool has gone is discarded at once.
"""

from __future__ import annotations

import asyncio
import atexit
import concurrent.futures
import contextlib
import functools
import logging
import math
import os
import select
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from forgeai_ls.errors import ForgeAIError, SandboxCapacityError
from forgeai_ls.sandbox.cgroups import RunCgroup
from forgeai_ls.sandbox.step_process import StepProcess
from forgeai_ls.sandbox.workspace import Workspace

log = logging.getLogger(__name__)

MIB = 1024 * 1024
ESTIMATED_SLOT_BYTES = {"python": 12 * MIB, "node": 48 * MIB, "shell": 2 * MIB}
"""Memory of an idle slot where no cgroup measures it (measured here: see benchmarks)."""
USE_WINDOW_SECONDS = 60.0
LAUNCH_THREADS = 2
"""Slots starting at the same time (all keys together)."""
CAPACITY_RETRY_SECONDS = 1.0
"""After every sandbox uid was taken, the next try to start a slot."""


@dataclass(frozen=True, slots=True)
class PoolSettings:
    """How many sandboxes to keep warm, for how long, within how much memory."""

    size: int = 4
    """Most slots per key (language + limits + settings); 0 turns pools off."""
    sizes: Mapping[str, int] = field(default_factory=dict)
    """Per-language sizes, overriding ``size``."""
    idle_timeout: float = 300.0
    """Seconds without a run after which a key's slots are closed."""
    memory_budget_bytes: int = 512 * MIB
    """All idle slots together."""

    def size_for(self, language: str) -> int:
        return max(0, self.sizes.get(language, self.size))


class WarmSlot:
    """A started sandbox waiting for its program."""

    def __init__(
        self,
        kind: str,
        process: StepProcess,
        workspace: Workspace,
        cgroup: RunCgroup | None,
        ready_fd: int | None,
    ) -> None:
        self.kind = kind
        self.process = process
        self.workspace = workspace
        self.cgroup = cgroup
        self.ready_fd = ready_fd
        """Read end of the pipe the starter writes one byte to when it waits for input."""
        self.ready = ready_fd is None
        self.created = time.monotonic()

    def memory_bytes(self) -> int:
        measured = self.cgroup.memory_usage() if self.cgroup is not None else None
        return measured if measured else ESTIMATED_SLOT_BYTES.get(self.kind, 16 * MIB)

    def hand_over(self) -> int:
        """The slot becomes a run: its control pipe (where a starter may report the
        program's end) goes to the caller; -1 when there is none."""
        fd, self.ready_fd = self.ready_fd, None
        return -1 if fd is None else fd

    def discard(self) -> None:
        """Kill the slot's sandbox and release everything it holds."""
        self._close_ready_fd()
        if self.cgroup is not None:
            self.cgroup.kill_all()  # also what bwrap started before reporting its PID 1
        self.process.discard()
        if self.cgroup is not None:
            self.cgroup.remove()
        self.workspace.remove()

    def _close_ready_fd(self) -> None:
        if self.ready_fd is not None:
            os.close(self.ready_fd)
            self.ready_fd = None


@dataclass(frozen=True, slots=True)
class WarmRecipe:
    """What a pool needs to know to start a slot of one key."""

    key: str
    language: str
    kind: str
    launch: Callable[[], WarmSlot]


@dataclass(slots=True)
class _KeyPool:
    recipe: WarmRecipe
    slots: deque[WarmSlot] = field(default_factory=deque)
    active: int = 0
    peaks: deque[tuple[float, int]] = field(default_factory=deque)
    last_used: float = field(default_factory=time.monotonic)
    broken: str | None = None
    """Why starting a slot failed; the key is then left to cold runs."""
    starting: int = 0
    """Slots being started in worker threads."""
    retry: asyncio.TimerHandle | None = None
    ready_seconds: float | None = None
    """How long this key's slots take from launch to ready (a moving average)."""
    gap_seconds: float | None = None
    """The time between this key's runs (a moving average)."""
    last_take: float | None = None


_OPEN_POOLS: weakref.WeakSet[WarmPools] = weakref.WeakSet()


@atexit.register
def _close_open_pools() -> None:
    """On a normal exit, idle slots go with their work dirs and cgroups (after a SIGKILL,
    the slots die with ForgeAI and the next ForgeAI process sweeps what is left on disk)."""
    for pools in list(_OPEN_POOLS):
        with contextlib.suppress(Exception):
            pools.close()


class WarmPools:
    """Every key's pool, on one event loop."""

    def __init__(self, settings: PoolSettings) -> None:
        _OPEN_POOLS.add(self)
        self.settings = settings
        self._pools: dict[str, _KeyPool] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._sweeper: asyncio.TimerHandle | None = None
        self._changed: asyncio.Event | None = None
        self._launcher = concurrent.futures.ThreadPoolExecutor(
            LAUNCH_THREADS, thread_name_prefix="forgeai-warm"
        )
        self._starting: set[concurrent.futures.Future[WarmSlot]] = set()
        """Slots being started; whoever removes one (``_claim``) owns its slot."""
        self._claim_lock = threading.Lock()

    # -- the runs' side ----------------------------------------------------------------------

    def take(self, recipe: WarmRecipe) -> WarmSlot | None:
        """A slot for a run of ``recipe``'s key (its oldest ready one, else its oldest still
        starting), or None; either way the run is counted, and must be ended with
        ``finished``."""
        pool = self._pool(recipe)
        now = time.monotonic()
        if pool.last_take is not None:
            pool.gap_seconds = _average(pool.gap_seconds, min(now - pool.last_take, 60.0))
        pool.last_take = now
        pool.active += 1
        pool.last_used = now
        pool.peaks.append((now, pool.active))
        for dead in [candidate for candidate in pool.slots if _exited(candidate)]:
            pool.slots.remove(dead)
            self._unwatch(dead)
            dead.discard()
        slot = next((s for s in pool.slots if s.ready), pool.slots[0] if pool.slots else None)
        if slot is not None:
            pool.slots.remove(slot)
            self._unwatch(slot)
        else:
            self._fill(pool)  # nothing to run in: nothing to slow down either
        return slot

    def finished(self, recipe: WarmRecipe) -> None:
        pool = self._pools.get(recipe.key)
        if pool is not None:
            pool.active = max(0, pool.active - 1)
            self._fill(pool)

    def prewarm(self, recipe: WarmRecipe) -> None:
        """Start the key's pool (at least one slot) before its first run."""
        pool = self._pool(recipe)
        pool.last_used = time.monotonic()
        self._fill(pool)

    async def wait_ready(self, recipe: WarmRecipe, count: int = 1, timeout: float = 10.0) -> int:
        """Wait until ``count`` slots of the key are ready (for tests and benchmarks);
        returns how many are."""
        deadline = time.monotonic() + timeout
        while True:
            pool = self._pools.get(recipe.key)
            ready = sum(1 for slot in pool.slots if slot.ready) if pool else 0
            remaining = deadline - time.monotonic()
            if ready >= count or remaining <= 0 or (pool is not None and pool.broken):
                return ready
            assert self._changed is not None
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), min(remaining, 0.5))

    def idle_slots(self) -> list[WarmSlot]:
        return [slot for pool in self._pools.values() for slot in pool.slots]

    def close(self) -> None:
        """Discard every idle slot, and those still starting once they have started (runs in
        progress finish normally)."""
        with self._claim_lock:
            starting, self._starting = self._starting, set()
        concurrent.futures.wait(starting)
        for started in starting:
            if started.exception() is None:
                started.result().discard()
        for pool in self._pools.values():
            if pool.retry is not None:
                pool.retry.cancel()
            while pool.slots:
                slot = pool.slots.popleft()
                self._unwatch(slot)
                slot.discard()
        self._pools.clear()
        if self._sweeper is not None:
            self._sweeper.cancel()
            self._sweeper = None

    # -- filling -----------------------------------------------------------------------------

    def _pool(self, recipe: WarmRecipe) -> _KeyPool:
        loop = asyncio.get_running_loop()
        if self._loop is not loop:
            if self._loop is not None:
                self.close()
            self._loop = loop
            self._changed = asyncio.Event()
        pool = self._pools.get(recipe.key)
        if pool is None:
            pool = self._pools[recipe.key] = _KeyPool(recipe)
            self._ensure_sweeper()
        return pool

    def _target(self, pool: _KeyPool) -> int:
        size = self.settings.size_for(pool.recipe.language)
        cutoff = time.monotonic() - min(USE_WINDOW_SECONDS, self.settings.idle_timeout)
        while pool.peaks and pool.peaks[0][0] < cutoff:
            pool.peaks.popleft()
        if not pool.peaks:
            return min(size, 1)  # pre-warmed, or not run lately
        wanted = max(active for _, active in pool.peaks) + 1
        if pool.ready_seconds and pool.gap_seconds:
            wanted = max(wanted, math.ceil(pool.ready_seconds / pool.gap_seconds))
        return min(size, wanted)

    def _fill(self, pool: _KeyPool) -> None:
        """Start as many slots as the key is short of (in worker threads)."""
        if self._pools.get(pool.recipe.key) is not pool or pool.broken is not None:
            return
        if pool.retry is not None:
            return  # every sandbox uid was taken: wait for the retry
        while len(pool.slots) + pool.starting < self._target(pool) and self._make_room(pool):
            pool.starting += 1
            started = self._launcher.submit(pool.recipe.launch)
            with self._claim_lock:
                self._starting.add(started)
            callback = functools.partial(self._started, self._loop, pool, time.monotonic())
            started.add_done_callback(callback)

    def _started(
        self,
        loop: asyncio.AbstractEventLoop | None,
        pool: _KeyPool,
        launched: float,
        started: concurrent.futures.Future[WarmSlot],
    ) -> None:
        """A slot finished starting (in its worker thread): hand it to the loop."""
        try:
            assert loop is not None
            loop.call_soon_threadsafe(self._arrived, loop, pool, launched, started)
        except RuntimeError:  # the loop is closed: nobody will take this slot
            if self._claim(started) and started.exception() is None:
                started.result().discard()

    def _claim(self, started: concurrent.futures.Future[WarmSlot]) -> bool:
        with self._claim_lock:
            if started not in self._starting:
                return False  # close() took it
            self._starting.discard(started)
            return True

    def _arrived(
        self,
        loop: asyncio.AbstractEventLoop,
        pool: _KeyPool,
        launched: float,
        started: concurrent.futures.Future[WarmSlot],
    ) -> None:
        pool.starting -= 1
        if not self._claim(started):
            return
        error = started.exception()
        if error is not None:
            self._failed(pool, error)
            return
        slot = started.result()
        if self._loop is not loop or self._pools.get(pool.recipe.key) is not pool:
            slot.discard()  # the pools were closed or moved to another loop meanwhile
            return
        slot.created = launched
        if slot.ready:
            pool.ready_seconds = _average(pool.ready_seconds, time.monotonic() - launched)
        pool.slots.append(slot)
        self._watch(pool, slot)
        self._notify()
        self._fill(pool)

    def _failed(self, pool: _KeyPool, error: BaseException) -> None:
        if isinstance(error, SandboxCapacityError):  # passing: try again a little later
            assert self._loop is not None
            pool.retry = self._loop.call_later(CAPACITY_RETRY_SECONDS, self._retry, pool)
        elif isinstance(error, ForgeAIError | OSError):
            pool.broken = str(error)
            log.warning("warm pool for %s disabled: %s", pool.recipe.language, error)
        else:
            pool.broken = repr(error)
            log.error("warm pool for %s failed", pool.recipe.language, exc_info=error)
        self._notify()

    def _retry(self, pool: _KeyPool) -> None:
        pool.retry = None
        self._fill(pool)

    def _make_room(self, pool: _KeyPool) -> bool:
        """Whether one more slot of ``pool`` fits the memory budget, evicting idle slots of
        less recently used keys if that makes it fit."""
        estimate = self._estimate(pool)
        budget = self.settings.memory_budget_bytes
        used = sum(slot.memory_bytes() for slot in self.idle_slots()) + sum(
            self._estimate(other) * other.starting for other in self._pools.values()
        )
        others = sorted(
            (other for other in self._pools.values() if other is not pool and other.slots),
            key=lambda other: other.last_used,
        )
        for other in others:
            if used + estimate <= budget or other.last_used >= pool.last_used:
                break
            while other.slots and used + estimate > budget:
                victim = other.slots.pop()
                self._unwatch(victim)
                used -= victim.memory_bytes()
                victim.discard()
        return used + estimate <= budget

    def _estimate(self, pool: _KeyPool) -> int:
        measured = [slot.memory_bytes() for slot in pool.slots if slot.ready]
        if measured:
            return max(measured)
        return ESTIMATED_SLOT_BYTES.get(pool.recipe.kind, 16 * MIB)

    # -- watching idle slots -----------------------------------------------------------------

    def _watch(self, pool: _KeyPool, slot: WarmSlot) -> None:
        assert self._loop is not None
        self._loop.add_reader(slot.process.ended_fd, self._on_death, pool, slot)
        if slot.ready_fd is not None:
            self._loop.add_reader(slot.ready_fd, self._on_ready, pool, slot)

    def _unwatch(self, slot: WarmSlot) -> None:
        assert self._loop is not None
        self._loop.remove_reader(slot.process.ended_fd)
        if slot.ready_fd is not None:
            self._loop.remove_reader(slot.ready_fd)

    def _on_ready(self, pool: _KeyPool, slot: WarmSlot) -> None:
        assert self._loop is not None and slot.ready_fd is not None
        try:
            signal = os.read(slot.ready_fd, 1)
        except BlockingIOError:
            return
        self._loop.remove_reader(slot.ready_fd)
        if signal:
            slot.ready = True
            pool.ready_seconds = _average(pool.ready_seconds, time.monotonic() - slot.created)
            self._notify()
        else:  # closed without the byte: the starter died
            self._on_death(pool, slot)

    def _on_death(self, pool: _KeyPool, slot: WarmSlot) -> None:
        if slot in pool.slots:
            pool.slots.remove(slot)
            self._unwatch(slot)
            slot.discard()
            log.info("a warm %s slot died while idle; replacing it", pool.recipe.language)
            self._fill(pool)
            self._notify()

    def _notify(self) -> None:
        if self._changed is not None:
            self._changed.set()

    # -- idle timeout ------------------------------------------------------------------------

    def _ensure_sweeper(self) -> None:
        if self._sweeper is None and self._loop is not None:
            interval = max(1.0, min(30.0, self.settings.idle_timeout / 4))
            self._sweeper = self._loop.call_later(interval, self._sweep)

    def _sweep(self) -> None:
        self._sweeper = None
        now = time.monotonic()
        for key, pool in list(self._pools.items()):
            if pool.active == 0 and now - pool.last_used >= self.settings.idle_timeout:
                while pool.slots:
                    slot = pool.slots.popleft()
                    self._unwatch(slot)
                    slot.discard()
                del self._pools[key]
        if self._pools:
            self._ensure_sweeper()


def _average(current: float | None, sample: float) -> float:
    """An exponentially weighted moving average (recent samples count most)."""
    return sample if current is None else 0.7 * current + 0.3 * sample


def _exited(slot: WarmSlot) -> bool:
    readable, _, _ = select.select([slot.process.ended_fd], [], [], 0)
    return bool(readable)
