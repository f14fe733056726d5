"""A real PEP 503 package index on 127.0.0.x, with wheels built by the test (no internet)."""

from __future__ import annotations

import base64
import functools
import hashlib
import threading
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from packaging.utils import canonicalize_name


def build_wheel(
    index_root: Path,
    name: str,
    version: str,
    *,
    module: str,
    requires: tuple[str, ...] = (),
) -> Path:
    """A pure-Python wheel with one module ``name`` (importable as ``name.replace('-', '_')``)
    holding ``module``, listed in the index's simple API."""
    packages = index_root / "packages"
    packages.mkdir(parents=True, exist_ok=True)
    dist = name.replace("-", "_")
    wheel = packages / f"{dist}-{version}-py3-none-any.whl"
    info = f"{dist}-{version}.dist-info"
    metadata = "\n".join(
        [
            "Metadata-Version: 2.1",
            f"Name: {name}",
            f"Version: {version}",
            *(f"Requires-Dist: {requirement}" for requirement in requires),
            "",
        ]
    )
    files = {
        f"{dist}.py": module,
        f"{info}/METADATA": metadata,
        f"{info}/WHEEL": "Wheel-Version: 1.0\nGenerator: forgeai-tests\nRoot-Is-Purelib: true\n"
        "Tag: py3-none-any\n",
    }
    record = []
    with zipfile.ZipFile(wheel, "w") as archive:
        for path, text in files.items():
            data = text.encode()
            archive.writestr(path, data)
            digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=")
            record.append(f"{path},sha256={digest.decode()},{len(data)}")
        record.append(f"{info}/RECORD,,")
        archive.writestr(f"{info}/RECORD", "\n".join(record) + "\n")
    _write_simple_page(index_root, name)
    return wheel


def _write_simple_page(index_root: Path, name: str) -> None:
    project = canonicalize_name(name)
    page = index_root / "simple" / project
    page.mkdir(parents=True, exist_ok=True)
    links = []
    for wheel in sorted((index_root / "packages").glob("*.whl")):
        if canonicalize_name(wheel.name.split("-")[0]) != project:
            continue
        digest = hashlib.sha256(wheel.read_bytes()).hexdigest()
        links.append(f'<a href="../../packages/{wheel.name}#sha256={digest}">{wheel.name}</a>')
    (page / "index.html").write_text(
        "<!DOCTYPE html><html><body>\n" + "\n".join(links) + "\n</body></html>\n"
    )


class _Quiet(SimpleHTTPRequestHandler):
    def log_message(self, *_args: object) -> None:
        pass


@contextmanager
def serve_index(index_root: Path, address: str = "127.0.0.4", port: int = 0) -> Iterator[str]:
    """The index served over HTTP; yields its simple API URL."""
    (index_root / "simple").mkdir(parents=True, exist_ok=True)
    handler = functools.partial(_Quiet, directory=str(index_root))
    server = ThreadingHTTPServer((address, port), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://{address}:{server.server_address[1]}/simple"
    finally:
        server.shutdown()
        server.server_close()
