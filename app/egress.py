"""The egress policy: where the service may send a request on a tenant's behalf.

Every request made for a tenant follows it: to a bot's own Bot API server (app.telegram.client), to
webhooks (app.webhooks.delivery), and to an OpenID provider's discovery, keys and token endpoints
(app.auth.oidc). A URL is checked when a tenant sets it (`Policy.check`, a 422 on the field) and again
at every request (`Policy.resolve`), because what a name resolves to changes:
- http or https, a host, no credentials, and an IPv4 address only as four decimal numbers (2130706433,
  0x7f000001, 0177.0.0.1 or 127.1 mean 127.0.0.1 to some parsers and a name to others);
- the host is resolved once, and every address it resolves to must be public, unless
  EGRESS_ALLOW_PRIVATE_TARGETS (development): no loopback, private, link-local, unspecified, multicast,
  reserved, shared (carrier-grade NAT) or documentation address, nor an IPv6 form of one (IPv4-mapped,
  IPv4-compatible, 6to4, NAT64); one bad answer refuses the request;
- the connection goes to the address that was checked (no second lookup for a rebinding name to
  change), while TLS checks the certificate of the name and the Host header names it;
- redirects are not followed (every caller asks for none; a redirect followed all the same would be a
  new request, checked again).
A refusal says why in one fixed sentence. What an endpoint answers is never repeated beyond its HTTP
status: the callers keep to that. The operator's own Bot API server (TELEGRAM_API_BASE) is OPERATOR:
not a tenant's choice, so connected to as configured, and its descriptions shown (bounded).
"""

from __future__ import annotations

import ipaddress
import re
import socket
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import urlsplit

import requests
import urllib3
from requests.adapters import HTTPAdapter

NOT_HTTP = "Use an http:// or https:// URL with a host name."
CREDENTIALS = "Credentials in the URL are not allowed."
SPELLING = "Write an IPv4 address as four decimal numbers, such as 203.0.113.7."
UNRESOLVED = "The host name does not resolve."
NOT_PUBLIC = (
    "The host is not a public address: loopback, private, link-local and other reserved networks are refused."
)

DEFAULT_PORTS = {"http": 80, "https": 443}
# A host whose last label is a number is an IPv4 address to a browser (the WHATWG URL standard).
ENDS_IN_NUMBER = re.compile(r"(?:\A|\.)(?:[0-9]++|0x[0-9a-f]*+)\.?\Z")
# Networks that are not public whatever the ipaddress module of this Python version says.
NOT_PUBLIC_NETWORKS = tuple(
    ipaddress.ip_network(network)
    for network in (
        "0.0.0.0/8",  # "this network"; 0.0.0.0 reaches this machine
        "10.0.0.0/8",
        "100.64.0.0/10",  # shared address space (carrier-grade NAT)
        "127.0.0.0/8",
        "169.254.0.0/16",  # link-local, cloud metadata services
        "172.16.0.0/12",
        "192.0.0.0/24",  # IETF protocol assignments
        "192.0.2.0/24",
        "192.88.99.0/24",  # 6to4 relays
        "192.168.0.0/16",
        "198.18.0.0/15",  # benchmarking
        "198.51.100.0/24",
        "203.0.113.0/24",
        "224.0.0.0/4",  # multicast
        "240.0.0.0/4",  # reserved, and the broadcast address
        "::/96",  # unspecified, loopback and the deprecated IPv4-compatible addresses
        "64:ff9b:1::/48",  # local-use NAT64
        "100::/64",  # discard
        "2001::/23",  # IETF protocol assignments, Teredo among them
        "2001:db8::/32",
        "fc00::/7",  # unique local
        "fe80::/10",  # link-local
        "fec0::/10",  # site-local
        "ff00::/8",  # multicast
    )
)
NAT64 = ipaddress.ip_network("64:ff9b::/96")


class Refused(Exception):
    """The service may not send this request; the message is one fixed sentence saying why."""


class Unresolved(Refused):
    """The host name does not resolve (now): the same request may be allowed later."""


def _embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 one reaches through (mapped, 6to4, NAT64), if any."""
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address in NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def is_public(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    """Tell whether an address is one the service may connect to for a tenant."""
    if isinstance(address, ipaddress.IPv6Address):
        address = ipaddress.IPv6Address(int(address))  # without a zone id
        embedded = _embedded_ipv4(address)
        if embedded is not None:
            return is_public(embedded)
    return (
        address.is_global
        and not (address.is_multicast or address.is_reserved or address.is_private)
        and not any(address in network for network in NOT_PUBLIC_NETWORKS)
    )


@dataclass(frozen=True, slots=True)
class Target:
    """Where one request goes: the URL's name, and the checked address to connect to instead."""

    scheme: str
    hostname: str
    port: int
    address: str
    host_header: str

    def pool(self, manager: urllib3.PoolManager, **pool_kwargs: Any) -> urllib3.HTTPConnectionPool:
        """A connection pool of `manager` to the checked address, TLS checking the name's certificate."""
        if self.scheme == "https":
            pool_kwargs.update(server_hostname=self.hostname, assert_hostname=self.hostname)
        return manager.connection_from_host(self.address, self.port, self.scheme, pool_kwargs=pool_kwargs)


def _parts(url: str) -> tuple[str, str, int, str]:
    """Return the scheme, host name, port and Host header of a URL the service may call, or refuse it."""
    if not isinstance(url, str) or any(c.isspace() or not c.isprintable() for c in url):
        raise Refused(NOT_HTTP)
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:  # a port that is not a number, or out of range; brackets that hold no address
        raise Refused(NOT_HTTP) from None
    if parts.scheme not in DEFAULT_PORTS or not parts.hostname or port == 0:
        raise Refused(NOT_HTTP)
    if "@" in parts.netloc:
        raise Refused(CREDENTIALS)
    host = parts.hostname
    if ":" not in host and ENDS_IN_NUMBER.search(host):
        try:
            canonical = str(ipaddress.IPv4Address(host)) == host
        except ValueError:
            canonical = False
        if not canonical:
            raise Refused(SPELLING)
    return parts.scheme, host, port or DEFAULT_PORTS[parts.scheme], parts.netloc


def origin(url: str) -> tuple[str, str, int]:
    """The scheme, host and port of a URL (default ports filled in); refuse one the service may not call."""
    scheme, host, port, _ = _parts(url)
    return scheme, host, port


@dataclass(frozen=True, slots=True)
class Policy:
    """Where requests for tenants may go (`allow_private`: EGRESS_ALLOW_PRIVATE_TARGETS), and whether
    the endpoint is the operator's own (`operator`: connected to as configured, answers shown)."""

    allow_private: bool
    operator: bool = False

    @classmethod
    def for_tenants(cls, config: Mapping[str, Any]) -> Policy:
        """The policy of the URLs tenants choose, under these settings."""
        return cls(allow_private=config["EGRESS_ALLOW_PRIVATE_TARGETS"])

    def check(self, url: str) -> None:
        """Refuse a URL a tenant sets that the service may not call (every request checks it again)."""
        _parts(url)
        if not self.allow_private:
            self.resolve(url)

    def resolve(self, url: str) -> Target:
        """Resolve the URL's host once and return where to connect; refuse any non-public answer."""
        scheme, host, port, host_header = _parts(url)
        try:
            answers = socket.getaddrinfo(host, port, proto=socket.IPPROTO_TCP)
        except (OSError, UnicodeError):
            raise Unresolved(UNRESOLVED) from None
        addresses = [answer[4][0] for answer in answers if isinstance(answer[4][0], str)]
        if not addresses:
            raise Unresolved(UNRESOLVED)
        if not self.allow_private:
            for address in addresses:
                if not is_public(ipaddress.ip_address(address.split("%", 1)[0])):
                    raise Refused(NOT_PUBLIC)
        return Target(scheme, host, port, addresses[0], host_header)


OPERATOR = Policy(allow_private=True, operator=True)


class PinnedAdapter(HTTPAdapter):
    """A requests transport that sends each request to the address the policy checked for its URL."""

    def __init__(self, policy: Policy):
        super().__init__(max_retries=0)
        self.policy = policy

    def get_connection_with_tls_context(
        self, request: Any, verify: Any, proxies: Any = None, cert: Any = None
    ) -> urllib3.HTTPConnectionPool:
        target = self.policy.resolve(request.url)
        _host, pool_kwargs = self.build_connection_pool_key_attributes(request, verify, cert)
        request.headers["Host"] = target.host_header
        return target.pool(self.poolmanager, **pool_kwargs)


SessionT = TypeVar("SessionT", bound=requests.Session)


def guard(session: SessionT, policy: Policy) -> SessionT:
    """Make a requests session follow the policy: every request checked and pinned, and no proxy from
    the environment (it would connect elsewhere)."""
    adapter = PinnedAdapter(policy)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    session.trust_env = False
    return session
