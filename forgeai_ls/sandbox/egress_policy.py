"""Network allow-lists: which hosts and ports a run may reach through the egress proxy
(``egress_proxy``), and what it attempted (``NetworkReport``)."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Sequence

from pydantic import BaseModel, ConfigDict, Field

from forgeai_ls.errors import NetworkPolicyError

_LABEL = re.compile(r"(?!-)[a-z0-9_-]{1,63}(?<!-)")


def normal_host(host: str) -> str:
    return host.strip().lower().rstrip(".")


def ip_literal(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """The address ``host`` spells (``[::1]`` too), or None for a name."""
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None


def local_address(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    return address.is_loopback or address.is_link_local or address.is_unspecified


class EgressRule(BaseModel):
    """One allow-list entry: a host (``*.`` for every subdomain) or an address, and a port."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    host: str
    port: int | None = Field(None, ge=1, le=65535)
    """``None``: every port."""

    def matches(self, host: str, port: int) -> bool:
        if self.port is not None and self.port != port:
            return False
        if self.host.startswith("*."):
            return host.endswith(self.host[1:]) and len(host) > len(self.host) - 1
        wanted, given = ip_literal(self.host), ip_literal(host)
        if wanted is not None or given is not None:
            return wanted is not None and wanted == given
        return host == self.host

    @property
    def local(self) -> bool:
        """Names this machine itself (``localhost``, a loopback address)."""
        address = ip_literal(self.host)
        return self.host == "localhost" or (address is not None and local_address(address))

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return host if self.port is None else f"{host}:{self.port}"


class EgressPolicy(BaseModel):
    """Which hosts a run may reach through the proxy."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    rules: tuple[EgressRule, ...] = Field(min_length=1)

    @classmethod
    def parse(cls, entries: Sequence[str], *, source: str = "--allow-net") -> EgressPolicy:
        """Entries like ``pypi.org``, ``*.example.com``, ``api.example.com:443``,
        ``127.0.0.2:8080``, ``[::1]:80``, ``localhost`` (comma-separated in each string)."""
        rules = [
            _parse_entry(part.strip(), source)
            for entry in entries
            for part in entry.split(",")
            if part.strip()
        ]
        if not rules:
            raise NetworkPolicyError(
                f"{source}: the allow-list is empty",
                hint="name at least one host, e.g. --allow-net pypi.org",
            )
        return cls(rules=tuple(dict.fromkeys(rules)))

    def permits(self, host: str, port: int) -> bool:
        host = normal_host(host)
        return any(rule.matches(host, port) for rule in self.rules)

    @property
    def local(self) -> bool:
        """The allow-list opens this machine's own services (an explicit opt-in)."""
        return any(rule.local for rule in self.rules)

    def __str__(self) -> str:
        return ",".join(str(rule) for rule in self.rules)


def _parse_entry(entry: str, source: str) -> EgressRule:
    def refuse(why: str) -> NetworkPolicyError:
        return NetworkPolicyError(
            f"{source}: {entry!r} is not a host: {why}",
            hint="entries are host names, *.domain, IP addresses, each with an optional "
            ":port (e.g. pypi.org, *.example.com, api.example.com:443, 127.0.0.1:8080)",
        )

    if "://" in entry or "/" in entry or "@" in entry or any(c.isspace() for c in entry):
        raise refuse("give the host only, without a scheme, path or user")
    host, port_text = entry, None
    if entry.startswith("["):
        close = entry.find("]")
        if close < 0:
            raise refuse("an IPv6 address opened with [ is not closed")
        host, rest = entry[1:close], entry[close + 1 :]
        if rest:
            if not rest.startswith(":"):
                raise refuse("only :port may follow [address]")
            port_text = rest[1:]
    elif entry.count(":") == 1:
        host, port_text = entry.split(":")
    port = None
    if port_text is not None:
        if not port_text.isdigit() or not 1 <= int(port_text) <= 65535:
            raise refuse(f"port {port_text!r} is not a number from 1 to 65535")
        port = int(port_text)
    address = ip_literal(host)
    if address is not None:
        return EgressRule(host=str(address), port=port)
    if ":" in host:
        raise refuse("write an IPv6 address in brackets: [::1]:8080")
    name = normal_host(host)
    labels = name[2:].split(".") if name.startswith("*.") else name.split(".")
    if not name or not all(_LABEL.fullmatch(label) for label in labels):
        raise refuse("a host name is letters, digits and hyphens between dots ('*.' may lead)")
    if name.startswith("*.") and len(labels) < 2:
        raise refuse("a wildcard needs a domain with a dot (*.example.com)")
    return EgressRule(host=name, port=port)


class NetworkReport(BaseModel):
    """The connections a run attempted through the proxy, by verdict (``host:port``, each
    once, in the order first seen)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    allowed: tuple[str, ...] = ()
    denied: tuple[str, ...] = ()
