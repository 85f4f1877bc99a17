"""The recording-host guard (contract: ``ARCHIVER_SOURCE__RECORDING_HOSTS``).

A recording URL may point anywhere the provider likes, so a hostile or broken
provider could make us fetch from the call center's own network or a cloud
metadata service. Public hosts are allowed; private, loopback, link-local and
other special addresses are refused unless their host is the API's own or is
listed.

The rule is applied three times, each time to what aiohttp will really use:
on the URL before any request (and on each redirect's Location), reading the
host as ``yarl`` normalizes it (full-width digits, the ideographic full stop)
and every numeric spelling ``inet_aton`` accepts (``0``, ``2130706433``,
``127.1``, ``0177.0.0.1``); inside the connector's resolver, so a name that
resolves to a private address is refused; and in the connector's socket
factory, on the address a socket is about to connect to, because aiohttp
skips the resolver for an IP literal.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterable
from urllib.parse import urlsplit

import aiohttp
from aiohappyeyeballs import AddrInfoType
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver
from yarl import URL

from archiver.failures import FailureKind


class UrlRefusedError(Exception):
    """A recording URL we will not request; ``kind`` says why."""

    kind = FailureKind.HOST_NOT_ALLOWED


class HostNotAllowedError(UrlRefusedError):
    """The URL's host is not one we may fetch recordings from."""


class InvalidUrlError(UrlRefusedError):
    """A URL the HTTP client cannot request (no retry can change it)."""

    kind = FailureKind.INVALID_URL


def connect_host(url: str) -> tuple[str, str]:
    """(scheme, host) as aiohttp will use them: yarl's normalized host (IDNA,
    full-width digits folded). InvalidUrlError if yarl cannot make one."""
    try:
        parsed = URL(url)
        host = parsed.host or ""
        # What getaddrinfo will do with it: an empty or overlong label is refused
        # here rather than by the resolver, mid-request.
        host.rstrip(".").encode("idna")
    except (ValueError, TypeError) as exc:  # UnicodeError is a ValueError (bad IDNA labels)
        raise InvalidUrlError(f"invalid recording URL ({type(exc).__name__})") from None
    return parsed.scheme, host


def is_special_address(address: str) -> bool:
    """Private, loopback, link-local, multicast, reserved or unspecified (IPv4 or IPv6)."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return (
        ip.is_private
        or ip.is_loopback
        or ip.is_link_local
        or ip.is_multicast
        or ip.is_reserved
        or ip.is_unspecified
        or not ip.is_global
    )


_NUMERIC = frozenset("0123456789abcdefxABCDEFX.")


def _literal(host: str) -> str | None:
    """The address a host names by number, in any spelling the C resolver accepts."""
    # A trailing dot is the root label: "127.0.0.1." connects to 127.0.0.1.
    bare = host.strip("[]").split("%", 1)[0].rstrip(".")
    try:
        ip = ipaddress.ip_address(bare)
    except ValueError:
        pass
    else:
        # ::ffff:127.0.0.1 is 127.0.0.1 to a dual-stack socket.
        mapped = ip.ipv4_mapped if isinstance(ip, ipaddress.IPv6Address) else None
        return str(mapped or ip)
    if bare and set(bare) <= _NUMERIC:
        # inet_aton reads what getaddrinfo reads: 127.1, 0177.0.0.1, 0x7f.1, 2130706433.
        try:
            return str(ipaddress.IPv4Address(socket.inet_aton(bare)))
        except OSError:
            return None
    return None


class HostPolicy:
    """Which hosts recordings may come from (pure: no I/O)."""

    def __init__(self, allowed: Iterable[str], api_url: str | None) -> None:
        self._allowed = {h.strip().lower().rstrip(".") for h in allowed if h.strip()}
        api_host = urlsplit(api_url).hostname if api_url else None
        if api_host:
            self._allowed.add(api_host.lower().rstrip("."))
        # Special addresses a socket may connect to: the trusted hosts' own, by
        # number or as the resolver found them for a trusted name.
        self._trusted_addresses = {a for h in self._allowed if (a := _literal(h)) is not None}

    def trusted(self, host: str) -> bool:
        """The API's own host, or one listed (``.example.vn`` also allows its subdomains)."""
        name = host.lower().rstrip(".")
        if name in self._allowed:
            return True
        return any(a.startswith(".") and (name.endswith(a) or name == a[1:]) for a in self._allowed)

    def check_url(self, url: str) -> None:
        """Refuse a URL whose scheme is not http(s) or whose host is a special address
        that is not trusted. Names are checked again when they resolve."""
        scheme, host = connect_host(url)
        if scheme not in ("http", "https"):
            raise HostNotAllowedError(f"recording URL scheme {scheme or '(none)'!r} is not allowed")
        if not host:
            raise HostNotAllowedError("recording URL has no host")
        literal = _literal(host)
        if self.trusted(host) or (literal is not None and literal in self._trusted_addresses):
            return
        if literal is not None and is_special_address(literal):
            raise HostNotAllowedError(f"recording host {host} is a private or special address")

    def check_resolved(self, host: str, addresses: Iterable[str]) -> None:
        """Refuse an untrusted name that resolves to any special address."""
        if self.trusted(host):
            self._trusted_addresses.update(a for a in map(_literal, addresses) if a is not None)
            return
        for address in addresses:
            if is_special_address(address):
                raise HostNotAllowedError(
                    f"recording host {host} resolves to a private or special address"
                )

    def check_connect(self, address: str) -> None:
        """Refuse a socket to a special address no trusted host has (the last line:
        it sees IP literals, which aiohttp never passes to the resolver)."""
        literal = _literal(address)
        if literal is None or literal in self._trusted_addresses:
            return
        if is_special_address(literal):
            raise HostNotAllowedError(
                f"recording connection to {literal} refused: private or special address"
            )


class HostRefusedError(OSError):
    """Raised inside the connector: aiohttp wraps it in a ClientConnectorError."""


class GuardedResolver(AbstractResolver):
    """A resolver that refuses untrusted names resolving to special addresses."""

    def __init__(self, policy: HostPolicy, inner: AbstractResolver | None = None) -> None:
        self._policy = policy
        self._inner = inner or DefaultResolver()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        """Resolve, then apply the policy to every address."""
        results = await self._inner.resolve(host, port, family)
        try:
            self._policy.check_resolved(host, [r["host"] for r in results])
        except HostNotAllowedError as exc:
            # aiohttp turns an OSError from the resolver into ClientConnectorError.
            raise HostRefusedError(str(exc)) from exc
        return results

    async def close(self) -> None:
        """Close the inner resolver."""
        await self._inner.close()


class GuardedSocketFactory:
    """The connector's socket factory: the policy on the very address connected to."""

    def __init__(self, policy: HostPolicy) -> None:
        self._policy = policy

    def __call__(self, addr_info: AddrInfoType) -> socket.socket:
        """A new socket for ``addr_info``, or HostRefusedError before any packet."""
        family, type_, proto, _, sockaddr = addr_info
        try:
            self._policy.check_connect(str(sockaddr[0]))
        except HostNotAllowedError as exc:
            raise HostRefusedError(str(exc)) from exc
        return socket.socket(family=family, type=type_, proto=proto)


def guarded_connector(
    policy: HostPolicy, *, limit: int, limit_per_host: int
) -> aiohttp.TCPConnector:
    """The recordings' connector: the policy in its resolver and its socket factory."""
    return aiohttp.TCPConnector(
        limit=limit,
        limit_per_host=limit_per_host,
        resolver=GuardedResolver(policy),
        socket_factory=GuardedSocketFactory(policy),
    )
