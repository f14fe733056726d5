"""The registry client: search and metadata over HTTP, versions and archives verified with TUF.

What a client installs must not depend on the registry being honest. The registry signs TUF
metadata (root, timestamp, snapshot, targets; design in docs/registry.md) whose targets are
every plugin's ``versions.json`` and every archive, with their lengths and hashes. The client
keeps the metadata it has seen under ``FORGEAI_HOME/registries/HOST/``, so a registry (or a
man in the middle) serving older metadata (rollback), stale metadata (freeze: expired
timestamps), or bytes that do not match the signed hashes is refused. The root of trust is
pinned on first contact, or beforehand from a file (``FORGEAI_REGISTRY_ROOT``).

Plain GETs are retried (connection failures, timeouts, 5xx, 429) with backoff; errors are
mapped to the E30x codes with what to do.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, NoReturn
from urllib.parse import quote, urlsplit

import httpx
from packaging.version import InvalidVersion, Version
from pydantic import BaseModel, ValidationError
from tuf.api import exceptions as tuf_errors
from tuf.api.metadata import TargetFile  # type: ignore[attr-defined]
from tuf.ngclient.fetcher import FetcherInterface
from tuf.ngclient.updater import Updater

from forgeai_ls import __version__
from forgeai_ls.errors import (
    PublishRefusedError,
    RegistryError,
    RegistryIntegrityError,
    RegistryNotConfiguredError,
    RegistryNotFoundError,
    RegistryResponseError,
    RegistryUnavailableError,
)
from forgeai_ls.plugins.archive import MAX_ARCHIVE_BYTES, archive_name

Progress = Callable[[int, int], None]
"""Called with (bytes received, bytes expected) while downloading."""

_RETRYABLE_STATUS = frozenset({429, 500, 502, 503, 504})


class VersionInfo(BaseModel):
    """One published version, as listed in the registry's signed ``versions.json``."""

    version: str
    sha256: str
    size: int
    key_id: str
    minimum_forgeai_version: str
    maximum_forgeai_version: str | None = None
    published_at: str
    description: str = ""
    languages: list[str] = []
    yanked: bool = False

    def parsed(self) -> Version:
        return Version(self.version)

    def compatible_with(self, forgeai: Version) -> bool:
        low = Version(self.minimum_forgeai_version)
        high = Version(self.maximum_forgeai_version) if self.maximum_forgeai_version else None
        return low <= forgeai and (high is None or forgeai <= high)


class VersionList(BaseModel):
    name: str
    versions: list[VersionInfo]


def registry_url(explicit: str | None, home: Path) -> str:
    """--registry, else FORGEAI_REGISTRY_URL, else ``registry_url`` in config.yaml."""
    url = explicit or os.environ.get("FORGEAI_REGISTRY_URL")
    if not url:
        config = home / "config.yaml"
        if config.is_file():
            import yaml

            data = yaml.safe_load(config.read_text()) or {}
            url = data.get("registry_url") if isinstance(data, dict) else None
    if not url:
        raise RegistryNotConfiguredError(
            "no plugin registry is configured",
            hint="pass --registry URL, set FORGEAI_REGISTRY_URL, or put registry_url in "
            f"{home / 'config.yaml'}",
        )
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise RegistryNotConfiguredError(
            f"registry URL {url!r} is not an http(s) URL", hint="e.g. http://127.0.0.1:8080"
        )
    return url.rstrip("/")


LISTING_CAP = 8 * 1024 * 1024
"""A search answer: up to 1,000 plugins' summaries."""
DETAILS_CAP = 2 * 1024 * 1024
ROOT_CAP = 512_000
"""python-tuf's own bound on root metadata."""
DOWNLOAD_RATE_FLOOR = 256 * 1024
"""Bytes per second an archive download may not fall below on average (beyond the timeout)."""


class _DeadlinePassed(Exception):
    pass


class RegistryClient:
    def __init__(
        self,
        url: str,
        home: Path,
        *,
        timeout: float = 15.0,
        retries: int = 3,
        backoff: float = 0.25,
        on_first_contact: Callable[[str], None] | None = None,
    ) -> None:
        self.url = url.rstrip("/")
        self.home = home
        self.timeout = timeout
        self.on_first_contact = on_first_contact
        """Told (one line) where and which root of trust was pinned at first contact."""
        self.retries = retries
        self.backoff = backoff
        self.http = httpx.Client(
            timeout=httpx.Timeout(timeout, connect=min(timeout, 5.0)),
            headers={"User-Agent": f"forgeai/{__version__}"},
            follow_redirects=False,
            trust_env=not _is_loopback(url),
            # Only https needs the system's certificate store (loading it costs ~15 ms);
            # this client never leaves self.url (no redirects followed).
            verify=urlsplit(url).scheme == "https",
        )
        self._updater: Updater | None = None

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> RegistryClient:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    # -- plain HTTP -------------------------------------------------------------------------

    def _get(self, path: str, *, cap: int, params: dict[str, str] | None = None) -> bytes:
        """GET with retries, read as it streams: at most ``cap`` bytes, and the whole request
        (retries included) within the client's timeout. Returns a 2xx answer's body or raises
        a RegistryError."""
        deadline = time.monotonic() + self.timeout
        last: str = ""
        for attempt in range(self.retries + 1):
            if attempt:
                pause = self.backoff * 2 ** (attempt - 1)
                if time.monotonic() + pause >= deadline:
                    break
                time.sleep(pause)
            try:
                with self.http.stream("GET", self.url + path, params=params) as response:
                    if response.status_code in _RETRYABLE_STATUS:
                        last = f"answered HTTP {response.status_code}"
                        continue
                    body = self._read_capped(response, cap, deadline, path)
                    if response.status_code >= 400:
                        _raise_for_error(response, path, body)
                    return body
            except _DeadlinePassed:
                last = f"did not answer within {self.timeout:g} s"
                break
            except httpx.TimeoutException:
                last = "timed out"
                continue
            except httpx.TransportError as exc:
                last = f"cannot be reached ({exc})"
                continue
        raise RegistryUnavailableError(
            f"registry {self.url} {last} (after {attempt + 1} attempt{'s' * (attempt > 0)})",
            hint="check that the registry is running and the URL is right, then retry "
            "(FORGEAI_REGISTRY_TIMEOUT bounds each request)",
        )

    def _read_capped(self, response: httpx.Response, cap: int, deadline: float, path: str) -> bytes:
        chunks: list[bytes] = []
        received = 0
        for chunk in response.iter_bytes():
            received += len(chunk)
            if received > cap:
                raise RegistryResponseError(
                    f"registry {self.url} answered {path} with more than {cap} bytes",
                    hint="the URL may not be a ForgeAI registry, or it misbehaves",
                )
            chunks.append(chunk)
            if time.monotonic() > deadline:
                raise _DeadlinePassed
        return b"".join(chunks)

    def _json(self, path: str, *, cap: int, params: dict[str, str] | None = None) -> Any:
        body = self._get(path, cap=cap, params=params)
        try:
            return json.loads(body)
        except ValueError:
            raise RegistryResponseError(
                f"registry {self.url} answered {path} with something that is not JSON",
                hint="the URL may not be a ForgeAI registry",
            ) from None

    def search(self, query: str, limit: int = 100) -> list[dict[str, Any]]:
        body = self._json("/v1/plugins", cap=LISTING_CAP, params={"q": query, "limit": str(limit)})
        plugins = body.get("plugins") if isinstance(body, dict) else None
        if not isinstance(plugins, list) or not all(isinstance(p, dict) for p in plugins):
            raise RegistryResponseError(f"registry {self.url} sent a malformed plugin list")
        return plugins

    def metadata(self, name: str) -> dict[str, Any]:
        body = self._json(f"/v1/plugins/{quote(name, safe='')}", cap=DETAILS_CAP)
        if not isinstance(body, dict) or body.get("name") != name:
            raise RegistryResponseError(f"registry {self.url} sent malformed metadata for {name}")
        return body

    # -- verified (TUF) ---------------------------------------------------------------------

    def _metadata_dir(self) -> Path:
        parts = urlsplit(self.url)
        label = re.sub(r"[^A-Za-z0-9.-]+", "_", parts.netloc)
        digest = hashlib.sha256(self.url.encode()).hexdigest()[:8]
        return self.home / "registries" / f"{label}-{digest}"

    def updater(self) -> Updater:
        """A refreshed TUF updater; the first contact pins the registry's root."""
        if self._updater is not None:
            return self._updater
        directory = self._metadata_dir()
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        bootstrap: bytes | None = None
        pinned: str | None = None
        root_keys: list[str] = []
        if not (directory / "root.json").exists():
            pinned = os.environ.get("FORGEAI_REGISTRY_ROOT")
            bootstrap = (
                Path(pinned).read_bytes()
                if pinned
                else self._get("/v1/tuf/1.root.json", cap=ROOT_CAP)
            )
            root_keys = self._root_key_ids(bootstrap, pinned)
        try:
            updater = Updater(
                metadata_dir=str(directory),
                metadata_base_url=f"{self.url}/v1/tuf/",
                fetcher=_HttpxFetcher(self),
                bootstrap=bootstrap,
            )
            updater.refresh()
        except (tuf_errors.RepositoryError, ValueError) as exc:
            _integrity(self.url, exc)
        except tuf_errors.DownloadError as exc:
            raise RegistryUnavailableError(
                f"registry {self.url}: signed metadata could not be downloaded ({exc})",
                hint="check that the registry is running, then retry",
            ) from None
        self._updater = updater
        if bootstrap is not None and self.on_first_contact is not None:
            fingerprint = hashlib.sha256(bootstrap).hexdigest()
            source = f"from {pinned}" if pinned else "as the registry sent it"
            plain = "" if pinned or urlsplit(self.url).scheme == "https" else " over plain HTTP"
            self.on_first_contact(
                f"first contact with registry {self.url}{plain}: pinned its root of trust "
                f"({source}; sha256 {fingerprint[:16]}..., root keys "
                f"{', '.join(k[:16] for k in root_keys)}) in {directory}. Compare it with what "
                "the registry's operator publishes; to pin a known root instead, remove that "
                "folder and set FORGEAI_REGISTRY_ROOT=FILE"
            )
        return updater

    def _root_key_ids(self, data: bytes, pinned: str | None) -> list[str]:
        """The root role's key ids, or E304 when this is not TUF root metadata (a URL that is
        not a ForgeAI registry)."""
        where = pinned or f"{self.url}/v1/tuf/1.root.json"
        try:
            signed = json.loads(data)["signed"]
            if signed["_type"] != "root":
                raise ValueError(signed["_type"])
            return [str(k) for k in signed["roles"]["root"]["keyids"]]
        except (ValueError, KeyError, TypeError):
            raise RegistryResponseError(
                f"{where} is not TUF root metadata: {self.url} is not a ForgeAI registry",
                hint="check the URL (FORGEAI_REGISTRY_URL or --registry)",
            ) from None

    def _target(self, path: str) -> TargetFile:
        try:
            info = self.updater().get_targetinfo(path)
        except tuf_errors.RepositoryError as exc:
            _integrity(self.url, exc)
        except tuf_errors.DownloadError as exc:
            raise RegistryUnavailableError(f"registry {self.url}: {exc}") from None
        if info is None:
            name = path.split("/", 1)[0]
            raise RegistryNotFoundError(
                f"registry {self.url} has no {path.split('/', 1)[1]} for plugin '{name}'",
                hint="see 'forgeai plugin search'",
            )
        return info

    def versions(self, name: str) -> list[VersionInfo]:
        """Every published version of ``name``, from the signed list (ascending)."""
        for attempt in (1, 2):
            info = self._target(f"{name}/versions.json")
            data = self._get(f"/v1/plugins/{quote(name, safe='')}/versions", cap=info.length)
            try:
                _check_target(self.url, info, data, f"the version list of {name}")
                break
            except RegistryIntegrityError:
                if attempt == 2:
                    raise
                self._updater = None  # a publish may have landed in between: look again
        try:
            listing = VersionList.model_validate_json(data)
            for item in listing.versions:
                item.parsed()
        except (ValidationError, InvalidVersion) as exc:
            raise RegistryResponseError(
                f"registry {self.url}: the version list of {name} is malformed ({exc})"
            ) from None
        if listing.name != name:
            raise RegistryIntegrityError(
                f"registry {self.url} answered the version list of {listing.name} for {name}"
            )
        return sorted(listing.versions, key=VersionInfo.parsed)

    def download(self, name: str, version: str, progress: Progress | None = None) -> bytes:
        """The archive of ``name`` ``version``, checked against its signed length and hash."""
        info = self._target(f"{name}/{archive_name(name, version)}")
        if info.length > MAX_ARCHIVE_BYTES:
            raise RegistryResponseError(
                f"{name} {version} is {info.length} bytes, over the {MAX_ARCHIVE_BYTES}-byte "
                "archive limit"
            )
        path = f"/v1/plugins/{quote(name, safe='')}/versions/{quote(version, safe='')}/download"
        data = self._stream(path, info.length, progress)
        _check_target(self.url, info, data, f"the archive of {name} {version}")
        return data

    def _stream(self, path: str, expected: int, progress: Progress | None) -> bytes:
        """An archive of ``expected`` signed bytes: never more, and within the timeout plus
        what the size needs at DOWNLOAD_RATE_FLOOR (retries included)."""
        budget = self.timeout + expected / DOWNLOAD_RATE_FLOOR
        deadline = time.monotonic() + budget
        last = ""
        for attempt in range(self.retries + 1):
            if attempt:
                time.sleep(self.backoff * 2 ** (attempt - 1))
            if time.monotonic() > deadline:
                break
            chunks: list[bytes] = []
            received = 0
            try:
                with self.http.stream("GET", self.url + path) as response:
                    if response.status_code in _RETRYABLE_STATUS:
                        last = f"answered HTTP {response.status_code}"
                        continue
                    if response.status_code >= 400:
                        body = self._read_capped(response, DETAILS_CAP, deadline, path)
                        _raise_for_error(response, path, body)
                    for chunk in response.iter_bytes():
                        received += len(chunk)
                        if received > expected:
                            raise RegistryIntegrityError(
                                f"registry {self.url} sent more than the {expected} signed "
                                f"bytes of {path}",
                                hint="the registry or the network altered the download",
                            )
                        chunks.append(chunk)
                        if progress is not None:
                            progress(received, expected)
                        if time.monotonic() > deadline:
                            raise _DeadlinePassed
                return b"".join(chunks)
            except _DeadlinePassed:
                last = f"was not received within {budget:.0f} s"
                break
            except httpx.TimeoutException:
                last = "timed out"
            except httpx.TransportError as exc:
                last = f"cannot be reached ({exc})"
        raise RegistryUnavailableError(
            f"registry {self.url}: downloading {path} failed: {last} "
            f"(after {self.retries + 1} attempts)",
            hint="retry later",
        )

    # -- publishing -------------------------------------------------------------------------

    def publish(self, archive: bytes, token: str) -> dict[str, Any]:
        try:
            response = self.http.post(
                self.url + "/v1/plugins",
                content=archive,
                headers={
                    "Authorization": f"Bearer {token}",
                    "Content-Type": "application/octet-stream",
                },
            )
        except httpx.TimeoutException:
            raise RegistryUnavailableError(
                f"registry {self.url} timed out receiving the upload",
                hint="retry; a version that did get published answers 'already exists'",
            ) from None
        except httpx.TransportError as exc:
            raise RegistryUnavailableError(
                f"registry {self.url} cannot be reached ({exc})", hint="retry later"
            ) from None
        if response.status_code >= 400:
            _raise_for_error(response, "/v1/plugins", refused=True)
        return self._object(response, "the upload")

    def yank(self, name: str, version: str, token: str) -> dict[str, Any]:
        """Withdraw ``name`` ``version`` from resolution (the publisher's token)."""
        path = f"/v1/plugins/{quote(name, safe='')}/versions/{quote(version, safe='')}/yank"
        try:
            response = self.http.post(self.url + path, headers={"Authorization": f"Bearer {token}"})
        except httpx.HTTPError as exc:
            raise RegistryUnavailableError(
                f"registry {self.url} cannot be reached ({exc})", hint="retry later"
            ) from None
        if response.status_code >= 400:
            _raise_for_error(response, path, refused=response.status_code in (401, 403))
        return self._object(response, "the yank")

    def _object(self, response: httpx.Response, what: str) -> dict[str, Any]:
        """A publishing answer's JSON object (E304 when it is anything else)."""
        try:
            body = response.json()
        except ValueError:
            body = None
        if not isinstance(body, dict):
            raise RegistryResponseError(f"registry {self.url} answered {what} with garbage")
        return body


class _HttpxFetcher(FetcherInterface):
    """TUF downloads through the client's own HTTP connection pool."""

    def __init__(self, client: RegistryClient) -> None:
        self.client = client

    def _fetch(self, url: str) -> Iterator[bytes]:
        """Chunks as they arrive: python-tuf stops reading past each file's length bound; the
        whole file must arrive within the client's timeout."""
        deadline = time.monotonic() + self.client.timeout
        try:
            with self.client.http.stream("GET", url) as response:
                if response.status_code != 200:
                    raise tuf_errors.DownloadHTTPError(
                        f"{url}: HTTP {response.status_code}", response.status_code
                    )
                for chunk in response.iter_bytes():
                    yield chunk
                    if time.monotonic() > deadline:
                        raise tuf_errors.SlowRetrievalError(
                            f"{url}: not received within {self.client.timeout:g} s"
                        )
        except httpx.HTTPError as exc:
            raise tuf_errors.DownloadError(f"{url}: {exc}") from None


def _is_loopback(url: str) -> bool:
    host = urlsplit(url).hostname or ""
    return host in ("localhost", "::1") or host.startswith("127.")


def _check_target(url: str, info: TargetFile, data: bytes, what: str) -> None:
    """The length first, then the hashes: the error says which check failed."""
    if len(data) != info.length:
        raise RegistryIntegrityError(
            f"registry {url}: {what} failed the length check ({len(data)} bytes received, "
            f"{info.length} signed)",
            hint="the registry or the network altered it; nothing was installed",
        )
    try:
        info.verify_length_and_hashes(data)
    except tuf_errors.LengthOrHashMismatchError:
        raise RegistryIntegrityError(
            f"registry {url}: {what} failed the sha256 check (right length, other bytes "
            f"than the {', '.join(info.hashes)} signed)",
            hint="the registry or the network altered it; nothing was installed",
        ) from None


def _integrity(url: str, exc: Exception) -> NoReturn:
    kind = type(exc).__name__
    if isinstance(exc, tuf_errors.ExpiredMetadataError):
        what = "its signed metadata has expired (a frozen or stale registry)"
    elif isinstance(exc, tuf_errors.BadVersionNumberError):
        what = "its signed metadata is older than what this machine has already seen (rollback)"
    else:
        what = f"its signed metadata failed verification ({kind}: {exc})"
    raise RegistryIntegrityError(
        f"registry {url}: {what}",
        hint="refused to trust it; if the registry was legitimately reset, remove its "
        "pinned state under FORGEAI_HOME/registries/",
    ) from None


def _raise_for_error(
    response: httpx.Response, path: str, body: bytes | None = None, *, refused: bool = False
) -> NoReturn:
    """Turn an error answer into a RegistryError carrying the server's code and message
    (``body``: the answer, when it was read as a stream)."""
    detail = ""
    server_code = None
    text_body = body.decode(errors="replace") if body is not None else None
    try:
        error = (json.loads(body) if body is not None else response.json()).get("error")
        if isinstance(error, dict):
            detail = str(error.get("message") or "")
            server_code = error.get("code")
            if error.get("hint"):
                detail += f" (server hint: {error['hint']})"
    except (ValueError, AttributeError):
        detail = (text_body if text_body is not None else response.text)[:200]
    where = f"{response.request.url.host}:{response.request.url.port}"
    status = response.status_code
    text = f"registry {where} refused {path}: HTTP {status}" + (f": {detail}" if detail else "")
    if server_code:
        text += f" [{server_code}]"
    error_class: type[RegistryError]
    if refused:
        error_class = PublishRefusedError
    elif status == 404:
        error_class = RegistryNotFoundError
    else:
        error_class = RegistryResponseError
    hint = {
        401: "pass a publisher token with --token or FORGEAI_REGISTRY_TOKEN",
        403: "this token's publisher may not publish this plugin or sign with this key",
        404: "see 'forgeai plugin search'",
        409: "published versions are immutable; bump the version in plugin.yaml",
        413: "the archive is over the registry's size limit",
    }.get(status)
    raise error_class(text, hint=hint)
