"""Network allow-lists: what an entry may be, what it matches, what the program is told."""

from __future__ import annotations

import pytest

from forgeai_ls.errors import NetworkPolicyError
from forgeai_ls.sandbox.egress_policy import EgressPolicy, EgressRule
from forgeai_ls.sandbox.egress_proxy import PROXY_PORT, proxy_environment


def test_entries_hosts_wildcards_ports_and_addresses() -> None:
    policy = EgressPolicy.parse(
        ["pypi.org,*.example.com", "api.test.org:443", "127.0.0.2:8080", "[::1]:80", "LocalHost"]
    )
    assert [str(rule) for rule in policy.rules] == [
        "pypi.org",
        "*.example.com",
        "api.test.org:443",
        "127.0.0.2:8080",
        "[::1]:80",
        "localhost",
    ]
    assert policy.permits("pypi.org", 443) and policy.permits("PyPI.org.", 80)
    assert policy.permits("a.example.com", 443) and policy.permits("a.b.example.com", 1)
    assert not policy.permits("example.com", 443)  # the wildcard is for subdomains only
    assert not policy.permits("badexample.com", 443)
    assert policy.permits("api.test.org", 443) and not policy.permits("api.test.org", 80)
    assert policy.permits("127.0.0.2", 8080) and not policy.permits("127.0.0.2", 8081)
    assert policy.permits("[::1]", 80) and policy.permits("::1", 80)
    assert not policy.permits("evil.org", 443)
    assert (
        str(policy) == "pypi.org,*.example.com,api.test.org:443,127.0.0.2:8080,[::1]:80,localhost"
    )


def test_a_name_never_matches_an_address_rule_nor_the_reverse() -> None:
    assert not EgressRule(host="127.0.0.1").matches("localhost", 80)
    assert not EgressRule(host="localhost").matches("127.0.0.1", 80)


def test_this_machine_is_an_explicit_opt_in() -> None:
    assert not EgressPolicy.parse(["pypi.org", "10.0.0.5"]).local
    for entry in ("localhost", "127.0.0.1:8000", "[::1]", "127.9.9.9"):
        assert EgressPolicy.parse([entry]).local, entry


@pytest.mark.parametrize(
    ("entry", "fragment"),
    [
        ("https://pypi.org", "without a scheme"),
        ("pypi.org/simple", "without a scheme, path"),
        ("user@host", "without a scheme, path or user"),
        ("pypi.org:0", "port '0'"),
        ("pypi.org:http", "port 'http'"),
        ("exa mple.com", "without a scheme"),
        ("-bad-.com", "letters, digits and hyphens"),
        ("*.com", "needs a domain with a dot"),
        ("a.*.com", "letters, digits and hyphens"),
        ("[::1]x", "only :port may follow"),
        ("not:an:address", "in brackets"),
        ("[::1", "not closed"),
        (",", "empty"),
    ],
)
def test_an_entry_that_is_not_a_host_is_a_clear_error(entry: str, fragment: str) -> None:
    with pytest.raises(
        NetworkPolicyError,
    ) as raised:
        EgressPolicy.parse([entry])
    assert raised.value.code == "FORGEAI-E131"
    assert fragment in raised.value.message, raised.value.message


def test_the_programs_environment_points_at_the_forwarder() -> None:
    remote = proxy_environment(EgressPolicy.parse(["pypi.org"]))
    proxy = f"http://127.0.0.1:{PROXY_PORT}"
    assert remote["HTTPS_PROXY"] == remote["http_proxy"] == proxy
    assert remote["NO_PROXY"] == "localhost,127.0.0.1,::1"  # its own loopback stays direct
    local = proxy_environment(EgressPolicy.parse(["localhost:8000"]))
    assert local["NO_PROXY"] == local["no_proxy"] == ""  # nothing may go around the proxy
