"""Plugin pipeline figures: discovery + verification of 50 signed plugins, cold and cached,
and the first run after start-up against later runs."""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path

from forgeai_ls.plugins.manager import ManagerConfig, PluginManager
from forgeai_ls.plugins.signing import sign_folder
from forgeai_ls.plugins.trust import KeyStore, TrustLevel, TrustStore
from forgeai_ls.sandbox import NativeBackend

MANIFEST = """\
name: bench{index}
version: 1.0.0
description: Benchmark plugin {index}
author: Bench
license: MIT
supported_languages: [bench{index}]
dependencies: [python3]
minimum_forgeai_version: 0.1.0
security_level: high
languages:
  - name: bench{index}
    display_name: Bench {index}
    extensions: [.b{index}]
    source_file: main.py
    run: [python3, "{{source}}"]
"""


def make_plugins(root: Path, home: Path, count: int) -> None:
    keys = KeyStore(home)
    keys.generate("bench")
    private = keys.private_key("bench")
    TrustStore(home).trust(private.public_key(), "bench", TrustLevel.VERIFIED)
    for index in range(count):
        folder = root / f"bench{index}"
        folder.mkdir(parents=True)
        (folder / "plugin.yaml").write_text(MANIFEST.format(index=index))
        (folder / "README.md").write_text("# bench\n" * 50)
        (folder / "seccomp.json").write_text('{"defaultAction": "SCMP_ACT_ALLOW"}')
        sign_folder(folder, private)


def _load(home: Path, root: Path) -> tuple[float, int]:
    start = time.perf_counter()
    manager = PluginManager(
        NativeBackend(), ManagerConfig(home=home, extra_dirs=(root,), bundled_dir=None)
    )
    manager.load_all()
    return (time.perf_counter() - start) * 1000, len(manager.plugins())


def discovery(count: int = 50, rounds: int = 10) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as scratch:
        home, root = Path(scratch) / "home", Path(scratch) / "plugins"
        make_plugins(root, home, count)
        cold = []
        cache = home / "cache" / "verified-signatures.json"
        for _ in range(rounds):
            cache.unlink(missing_ok=True)
            elapsed, loaded = _load(home, root)
            assert loaded == count
            cold.append(elapsed)
        cached = [_load(home, root)[0] for _ in range(rounds)]
    return {
        "plugins": count,
        "cold_ms_per_plugin": statistics.median(cold) / count,
        "cached_ms_per_plugin": statistics.median(cached) / count,
        "cold_total_ms": statistics.median(cold),
        "cached_total_ms": statistics.median(cached),
    }


async def first_vs_later_runs(later: int = 10) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as scratch:
        start = time.perf_counter()
        manager = PluginManager(NativeBackend(), ManagerConfig(home=Path(scratch)))
        manager.load_all()
        executor, language = manager.get_executor("python")
        result = await executor.execute(language, "pass")
        first = (time.perf_counter() - start) * 1000
        assert result.exit_code == 0
        times = []
        for _ in range(later):
            start = time.perf_counter()
            await executor.execute(language, "pass")
            times.append((time.perf_counter() - start) * 1000)
    return {
        "first_run_ms": first,
        "later_run_ms": statistics.median(times),
        "ratio": first / statistics.median(times),
    }
