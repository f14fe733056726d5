"""Publishing to a real registry over HTTP, then finding, describing and downloading."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest

from tests.registry.conftest import ArchiveFactory, RunningRegistry

ALPHA_VERSIONS = ("1.0.0", "1.10.0", "1.9.0")
"""Published out of order; 1.10.0 is the latest (a string sort would say 1.9.0)."""


@dataclass
class Catalog:
    """A registry with alpha-runner (three versions) and beta-tool published by alice."""

    registry: RunningRegistry
    http: httpx.Client
    archives: dict[tuple[str, str], bytes]
    key_id: str
    publish_answers: list[httpx.Response]

    def get(self, path: str, **params: str | int) -> httpx.Response:
        return self.http.get(self.registry.url + path, params=params)


@pytest.fixture(scope="module")
def catalog(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Catalog]:
    root = tmp_path_factory.mktemp("catalog")
    factory = ArchiveFactory(root / "publisher-home", root / "plugins")
    key = factory.key("alice")
    registry = RunningRegistry(root / "data", root / "home")
    try:
        token = registry.token("alice", key)
        archives: dict[tuple[str, str], bytes] = {}
        for version in ALPHA_VERSIONS:
            archives["alpha-runner", version] = factory.archive(
                "alpha-runner",
                key="alice",
                version=version,
                language="alphalang",
                description="Runs Alpha scripts quickly",
            )
        archives["beta-tool", "0.3.0"] = factory.archive(
            "beta-tool", key="alice", version="0.3.0", language="betacode"
        )
        answers = [registry.publish(data, token) for data in archives.values()]
        with httpx.Client(trust_env=False, timeout=60) as http:
            yield Catalog(registry, http, archives, factory.key_ids["alice"], answers)
    finally:
        registry.stop()


def test_publish_answers_201_with_what_was_stored(catalog: Catalog) -> None:
    """Each upload is answered 201 with name, version, sha256, size, key id and publisher."""
    assert [answer.status_code for answer in catalog.publish_answers] == [201] * 4
    first = catalog.publish_answers[0].json()
    data = catalog.archives["alpha-runner", "1.0.0"]
    assert first == {
        "name": "alpha-runner",
        "version": "1.0.0",
        "sha256": hashlib.sha256(data).hexdigest(),
        "size": len(data),
        "key_id": catalog.key_id,
        "publisher": "alice",
    }


def test_list_without_query_has_every_plugin_sorted_by_name(catalog: Catalog) -> None:
    """GET /v1/plugins lists every plugin by name, described by its latest version."""
    body = catalog.get("/v1/plugins").json()
    assert body["total"] == 2
    assert [p["name"] for p in body["plugins"]] == ["alpha-runner", "beta-tool"]
    alpha = body["plugins"][0]
    assert alpha["latest_version"] == "1.10.0"
    assert alpha["languages"] == ["alphalang"]
    assert alpha["description"] == "Runs Alpha scripts quickly"
    assert alpha["author"] == "Tests"
    assert alpha["updated_at"].endswith("Z")


@pytest.mark.parametrize(
    ("query", "found"),
    [
        ("ALPHA-R", ["alpha-runner"]),  # name, any case
        ("scripts QUICK", ["alpha-runner"]),  # description
        ("betac", ["beta-tool"]),  # a language name
        ("test executor", ["beta-tool"]),
        ("no-such-thing", []),
    ],
)
def test_search_matches_name_description_and_language(
    catalog: Catalog, query: str, found: list[str]
) -> None:
    """?q= is a case-insensitive substring of the name, description or a language."""
    body = catalog.get("/v1/plugins", q=query).json()
    assert [p["name"] for p in body["plugins"]] == found
    assert body["total"] == len(found)


def test_list_pages_with_limit_and_offset(catalog: Catalog) -> None:
    """limit and offset page through the sorted list; total counts every match."""
    body = catalog.get("/v1/plugins", limit=1, offset=1).json()
    assert [p["name"] for p in body["plugins"]] == ["beta-tool"]
    assert body["total"] == 2


def test_metadata_describes_the_highest_version(catalog: Catalog) -> None:
    """GET /v1/plugins/NAME: the highest version by version number, and every version."""
    body = catalog.get("/v1/plugins/alpha-runner").json()
    data = catalog.archives["alpha-runner", "1.10.0"]
    assert body["version"] == "1.10.0"
    assert body["versions"] == ["1.0.0", "1.9.0", "1.10.0"]
    assert body["sha256"] == hashlib.sha256(data).hexdigest()
    assert body["size"] == len(data)
    assert body["publisher"] == "alice"
    assert body["key_id"] == catalog.key_id
    assert body["license"] == "MIT"
    assert (body["homepage"], body["repository"]) == (None, None)
    assert (body["minimum_forgeai_version"], body["maximum_forgeai_version"]) == (
        "0.1.0",
        "0.99.0",
    )
    assert body["published_at"].endswith("Z")


def test_versions_is_canonical_json_ascending(catalog: Catalog) -> None:
    """GET .../versions: canonical JSON (sorted keys, no spaces), versions ascending."""
    response = catalog.get("/v1/plugins/alpha-runner/versions")
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert response.content == json.dumps(body, sort_keys=True, separators=(",", ":")).encode()
    assert body["name"] == "alpha-runner"
    assert [v["version"] for v in body["versions"]] == ["1.0.0", "1.9.0", "1.10.0"]
    for entry in body["versions"]:
        data = catalog.archives["alpha-runner", entry["version"]]
        assert entry["sha256"] == hashlib.sha256(data).hexdigest()
        assert entry["size"] == len(data)
        assert entry["key_id"] == catalog.key_id
        assert entry["languages"] == ["alphalang"]
        assert set(entry) == {
            "version",
            "sha256",
            "size",
            "key_id",
            "minimum_forgeai_version",
            "maximum_forgeai_version",
            "published_at",
            "description",
            "languages",
            "yanked",
        }


def test_download_returns_the_published_bytes(catalog: Catalog) -> None:
    """The download is the uploaded archive, with its sha256 as ETag and its file name."""
    response = catalog.get("/v1/plugins/beta-tool/versions/0.3.0/download")
    data = catalog.archives["beta-tool", "0.3.0"]
    assert response.status_code == 200
    assert response.content == data
    digest = hashlib.sha256(response.content).hexdigest()
    assert response.headers["etag"] == f'"{digest}"'
    assert response.headers["content-length"] == str(len(data))
    assert response.headers["content-type"] == "application/octet-stream"
    assert 'filename="beta-tool-0.3.0.fpkg"' in response.headers["content-disposition"]


@pytest.mark.parametrize(
    "path",
    [
        "/v1/plugins/no-such-plugin",
        "/v1/plugins/no-such-plugin/versions",
        "/v1/plugins/no-such-plugin/versions/1.0.0/download",
        "/v1/plugins/beta-tool/versions/9.9.9/download",
        "/v1/tuf/99.root.json",
        "/v1/tuf/root.json",
    ],
)
def test_unknown_plugin_version_or_metadata_is_404_e303(catalog: Catalog, path: str) -> None:
    """What the registry does not have is 404 with FORGEAI-E303 and a message."""
    response = catalog.get(path)
    assert response.status_code == 404
    error = response.json()["error"]
    assert error["code"] == "FORGEAI-E303"
    assert error["message"]


def test_unknown_route_has_the_error_body(catalog: Catalog) -> None:
    """An unknown endpoint answers 404 with the same error body shape."""
    response = catalog.get("/v2/anything")
    assert response.status_code == 404
    assert set(response.json()["error"]) == {"code", "message", "hint"}


def test_invalid_query_parameter_is_400_with_the_error_body(catalog: Catalog) -> None:
    """limit over 1000 is refused with 400 and a message naming the parameter."""
    response = catalog.get("/v1/plugins", limit=1001)
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "FORGEAI-E300"
    assert "limit" in error["message"]


def test_health(catalog: Catalog) -> None:
    assert catalog.get("/healthz").json() == {"status": "ok"}


@pytest.mark.parametrize(
    "params",
    [
        {"offset": "9223372036854775808"},
        {"offset": "99999999999999999999999999"},
        {"offset": "-1"},
        {"offset": "1e3"},
        {"limit": "0"},
        {"limit": "9223372036854775807"},
        {"q": "x" * 10_000},
        {"offset": "1000000000"},
    ],
    ids=["int64-overflow", "huge", "negative", "float", "limit-0", "limit-huge", "long-q", "max"],
)
def test_no_query_parameter_gives_a_500(catalog: Catalog, params: dict[str, str]) -> None:
    """Out-of-range and malformed query parameters are a 400 (FORGEAI-E300) naming the
    parameter (the largest allowed offset is simply an empty page), never a server error."""
    answer = catalog.get("/v1/plugins", **params)
    if params == {"offset": "1000000000"}:
        assert answer.status_code == 200 and answer.json()["plugins"] == []
        return
    assert answer.status_code == 400, answer.text
    assert f"query.{next(iter(params))}" in answer.json()["error"]["message"]
