"""Which package index dependencies come from: the user's own configuration, else PyPI.

Read like uv and pip read it, first found wins: ``UV_INDEX_URL`` / ``UV_DEFAULT_INDEX``,
``PIP_INDEX_URL``, uv's ``uv.toml`` (``index-url``, or the ``[[index]]`` marked ``default``),
pip's ``pip.conf`` (``[global] index-url``). The install sandbox may reach that index's host
and nothing else (PyPI: ``pypi.org`` and ``files.pythonhosted.org``, where its files are).
"""

from __future__ import annotations

import configparser
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from forgeai_ls.errors import DependencySpecError
from forgeai_ls.sandbox.egress_policy import EgressPolicy

PYPI = "https://pypi.org/simple"
PYPI_FILES = "files.pythonhosted.org"


@dataclass(frozen=True, slots=True)
class PackageIndex:
    url: str
    source: str
    """Where the URL was configured, for messages ("PyPI (default)", "UV_INDEX_URL"...)."""

    @property
    def display_url(self) -> str:
        """The URL without a password."""
        parts = urlsplit(self.url)
        host = parts.hostname or ""
        netloc = f"{host}:{parts.port}" if parts.port else host
        return parts._replace(netloc=netloc).geturl()

    def egress(self) -> EgressPolicy:
        """The hosts the install step may reach."""
        parts = urlsplit(self.url)
        host = parts.hostname or ""
        port = parts.port or (443 if parts.scheme == "https" else 80)
        entries = [f"[{host}]:{port}" if ":" in host else f"{host}:{port}"]
        if host == "pypi.org":
            entries.append(f"{PYPI_FILES}:443")
        return EgressPolicy.parse(entries, source=f"the package index ({self.source})")


def python_index(environ: Mapping[str, str] | None = None) -> PackageIndex:
    environ = os.environ if environ is None else environ
    for name in ("UV_INDEX_URL", "UV_DEFAULT_INDEX", "PIP_INDEX_URL"):
        if environ.get(name):
            return _checked(environ[name], name)
    home = Path(environ.get("HOME") or Path.home())
    config_home = Path(environ.get("XDG_CONFIG_HOME") or home / ".config")
    for path in (config_home / "uv" / "uv.toml", Path("/etc/uv/uv.toml")):
        url = _uv_toml_index(path)
        if url:
            return _checked(url, str(path))
    pip_files = [config_home / "pip" / "pip.conf", home / ".pip" / "pip.conf"]
    if environ.get("PIP_CONFIG_FILE"):
        pip_files.insert(0, Path(environ["PIP_CONFIG_FILE"]))
    for path in (*pip_files, Path("/etc/pip.conf")):
        url = _pip_conf_index(path)
        if url:
            return _checked(url, str(path))
    return PackageIndex(PYPI, "PyPI (default)")


def _checked(url: str, source: str) -> PackageIndex:
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise DependencySpecError(
            f"the package index {url!r} (from {source}) is not an http(s) URL",
            hint="set UV_INDEX_URL to the index's simple API, e.g. https://pypi.org/simple",
        )
    return PackageIndex(url.strip(), source)


def _uv_toml_index(path: Path) -> str | None:
    try:
        table = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError):
        return None
    if isinstance(table.get("index-url"), str):
        return str(table["index-url"])
    for index in table.get("index", []) if isinstance(table.get("index"), list) else []:
        if isinstance(index, dict) and index.get("default") and isinstance(index.get("url"), str):
            return str(index["url"])
    return None


def _pip_conf_index(path: Path) -> str | None:
    parser = configparser.ConfigParser()
    try:
        parser.read(path)
    except (configparser.Error, UnicodeDecodeError):
        return None
    value = parser.get("global", "index-url", fallback=None)
    return value.strip() if value else None
