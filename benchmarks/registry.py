"""Registry figures against a real ``forgeai registry serve`` on 127.0.0.1.

- install of a plugin from the loopback registry: TUF refresh + signed version list +
  download + length/hash check + safe extraction + the loader's verification, and the whole
  atomic install (lock, staging, swap, validation), against a bare download + extraction
  (``httpx`` GET and ``tarfile`` with the ``data`` filter) of the same archive;
- list and search latency with 1,000 published plugins, against ``GET /healthz`` on the
  same server (HTTP + framework cost alone).
"""

from __future__ import annotations

import io
import os
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from forgeai_ls.home import bundled_plugins_dir
from forgeai_ls.plugins.archive import build_archive, read_archive, write_contents
from forgeai_ls.plugins.lifecycle import PluginLifecycle
from forgeai_ls.plugins.loader import PluginSource
from forgeai_ls.plugins.manager import ManagerConfig, PluginManager
from forgeai_ls.plugins.signing import sign_folder
from forgeai_ls.plugins.trust import KeyStore, TrustLevel, TrustStore
from forgeai_ls.registry.client import RegistryClient
from forgeai_ls.sandbox import NativeBackend

READY = "forgeai registry: serving "


@contextmanager
def _server(data: Path, home: Path) -> Iterator[str]:
    env = {**os.environ, "FORGEAI_HOME": str(home)}
    command = [sys.executable, "-m", "forgeai_ls.cli.main", "registry", "serve"]
    process = subprocess.Popen(
        [*command, "--port", "0", "--data", str(data)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    assert process.stderr is not None
    url = None
    for line in process.stderr:
        if line.startswith(READY):
            url = line.removeprefix(READY).split()[0]
            break
    if url is None:
        raise RuntimeError(f"registry did not start (exit {process.wait()})")
    try:
        yield url
    finally:
        process.terminate()
        process.wait(timeout=30)


def _token(data: Path, home: Path, publisher: str, public_key: Path) -> str:
    command = [sys.executable, "-m", "forgeai_ls.cli.main", "registry", "token", "create"]
    done = subprocess.run(
        [*command, publisher, "--key", str(public_key), "--data", str(data)],
        capture_output=True,
        text=True,
        env={**os.environ, "FORGEAI_HOME": str(home)},
        check=True,
    )
    return done.stdout.strip().split()[-1]


def _publisher(home: Path) -> tuple[Path, KeyStore]:
    keys = KeyStore(home)
    keys.generate("bench")
    return keys.directory / "bench.pub", keys


def install_from_registry(runs: int = 15) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch)
        public, keys = _publisher(root / "author")
        folder = root / "src" / "python-bench"
        shutil.copytree(bundled_plugins_dir() / "python", folder)
        manifest = folder / "plugin.yaml"
        manifest.write_text(manifest.read_text().replace("name: python", "name: python-bench", 1))
        sign_folder(folder, keys.private_key("bench"))
        archive, plugin = build_archive(folder)
        user = root / "user"
        TrustStore(user).trust(keys.private_key("bench").public_key(), "bench", TrustLevel.VERIFIED)
        config = ManagerConfig(home=user, bundled_dir=None)
        with _server(root / "data", root / "server-home") as url:
            token = _token(root / "data", root / "server-home", "bench", public)
            with RegistryClient(url, user) as client:
                client.publish(archive, token)
            bare, verified, full = [], [], []
            download = f"{url}/v1/plugins/{plugin.name}/versions/{plugin.version}/download"
            with httpx.Client(trust_env=False) as http:
                for index in range(runs + 1):
                    target = root / f"bare{index}"
                    start = time.perf_counter()
                    data = http.get(download).content
                    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
                        tar.extractall(target, filter="data")
                    bare_ms = (time.perf_counter() - start) * 1000

                    start = time.perf_counter()
                    with RegistryClient(url, user) as client:
                        chosen = client.versions(plugin.name)[-1]
                        data = client.download(plugin.name, chosen.version)
                    contents = read_archive(data, "bench")
                    extracted = root / f"verified{index}" / plugin.name
                    extracted.parent.mkdir()
                    write_contents(contents, extracted)
                    PluginManager(NativeBackend(), config).loader.verify(
                        extracted, PluginSource.INSTALLED
                    )
                    verified_ms = (time.perf_counter() - start) * 1000

                    start = time.perf_counter()
                    with RegistryClient(url, user) as client:
                        data = client.download(
                            plugin.name, client.versions(plugin.name)[-1].version
                        )
                    PluginLifecycle(config).install(
                        read_archive(data, "bench"), "registry", url, reinstall=True
                    )
                    full_ms = (time.perf_counter() - start) * 1000
                    if index:  # the first round warms caches and the TUF pin
                        bare.append(bare_ms)
                        verified.append(verified_ms)
                        full.append(full_ms)
    b, v, f = statistics.median(bare), statistics.median(verified), statistics.median(full)
    return {
        "archive_bytes": len(archive),
        "bare_download_extract_ms": b,
        "verified_download_extract_ms": v,
        "full_atomic_install_ms": f,
        "verified_ratio": v / b,
        "full_ratio": f / b,
    }


def list_and_search(count: int = 1000, runs: int = 50) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch)
        public, keys = _publisher(root / "author")
        archives = []
        for index in range(count):
            folder = root / "src" / f"bench{index}"
            folder.mkdir(parents=True)
            (folder / "plugin.yaml").write_text(_MANIFEST.format(index=index))
            (folder / "README.md").write_text("# bench\n")
            sign_folder(folder, keys.private_key("bench"))
            archives.append(build_archive(folder)[0])
        with _server(root / "data", root / "server-home") as url:
            token = _token(root / "data", root / "server-home", "bench", public)
            headers = {"Authorization": f"Bearer {token}"}
            with httpx.Client(trust_env=False, timeout=60) as http:
                start = time.perf_counter()
                for data in archives:
                    http.post(f"{url}/v1/plugins", content=data, headers=headers).raise_for_status()
                publish_ms = (time.perf_counter() - start) * 1000 / count
                queries = {
                    "healthz": ("/healthz", {}),
                    "list_100": ("/v1/plugins", {"limit": "100"}),
                    "search_name": ("/v1/plugins", {"q": "bench777"}),
                    "search_language": ("/v1/plugins", {"q": "lang42"}),
                    "search_description": ("/v1/plugins", {"q": "number 9"}),
                }
                samples: dict[str, list[float]] = {name: [] for name in queries}
                for _ in range(runs):
                    for name, (path, params) in queries.items():
                        start = time.perf_counter()
                        http.get(url + path, params=params).raise_for_status()
                        samples[name].append((time.perf_counter() - start) * 1000)
                total = http.get(f"{url}/v1/plugins", params={"limit": "1"}).json()["total"]
    assert total == count, total
    base = statistics.median(samples["healthz"])
    figures: dict[str, float] = {"plugins": count, "publish_ms_each": publish_ms}
    for name, values in samples.items():
        figures[f"{name}_p50_ms"] = statistics.median(values)
        if name != "healthz":
            figures[f"{name}_ratio"] = statistics.median(values) / base
    return figures


_MANIFEST = """\
name: bench{index}
version: 1.0.0
description: Benchmark plugin number {index}
author: Bench
license: MIT
supported_languages: [lang{index}]
dependencies: [python3]
minimum_forgeai_version: 0.1.0
security_level: high
languages:
  - name: lang{index}
    display_name: Lang {index}
    extensions: [.l{index}]
    source_file: main.py
    run: [python3, "{{source}}"]
"""


if __name__ == "__main__":
    for name, figures in (
        ("registry_install", install_from_registry()),
        ("registry_list_search_1000", list_and_search()),
    ):
        print(name, "  ".join(f"{k}={v:.3f}" for k, v in figures.items()))
