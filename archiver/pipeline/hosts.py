"""The recording-host guard (contract: ``ARCHIVER_SOURCE__RECORDING_HOSTS``).

A recording URL may point anywhere the provider likes, so a hostile or broken
provider could make us fetch from the call center's own network or a cloud
metadata service. Public hosts are allowed; private, loopback, link-local and
other special addresses are refused unless their host is the API's own or is
listed. The rule is checked on the URL before any request, and again inside
the connector's resolver, so a DNS name that resolves to a private address
(or a redirect to one) is refused at connect time too.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterable
from urllib.parse import urlsplit

from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver


class HostNotAllowedError(Exception):
    """The URL's host is not one we may fetch recordings from."""


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


def _literal(host: str) -> str | None:
    try:
        return str(ipaddress.ip_address(host.strip("[]").split("%", 1)[0]))
    except ValueError:
        return None


class HostPolicy:
    """Which hosts recordings may come from (pure: no I/O)."""

    def __init__(self, allowed: Iterable[str], api_url: str | None) -> None:
        self._allowed = {h.strip().lower().rstrip(".") for h in allowed if h.strip()}
        api_host = urlsplit(api_url).hostname if api_url else None
        if api_host:
            self._allowed.add(api_host.lower().rstrip("."))

    def trusted(self, host: str) -> bool:
        """The API's own host, or one listed (``.example.vn`` also allows its subdomains)."""
        name = host.lower().rstrip(".")
        if name in self._allowed:
            return True
        return any(a.startswith(".") and (name.endswith(a) or name == a[1:]) for a in self._allowed)

    def check_url(self, url: str) -> None:
        """Refuse a URL whose scheme is not http(s) or whose host is a special address
        that is not trusted. Names are checked again when they resolve."""
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https"):
            raise HostNotAllowedError(
                f"recording URL scheme {parts.scheme or '(none)'!r} is not allowed"
            )
        host = parts.hostname
        if not host:
            raise HostNotAllowedError("recording URL has no host")
        if self.trusted(host):
            return
        literal = _literal(host)
        if literal is not None and is_special_address(literal):
            raise HostNotAllowedError(f"recording host {host} is a private or special address")

    def check_resolved(self, host: str, addresses: Iterable[str]) -> None:
        """Refuse an untrusted name that resolves to any special address."""
        if self.trusted(host):
            return
        for address in addresses:
            if is_special_address(address):
                raise HostNotAllowedError(
                    f"recording host {host} resolves to a private or special address"
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
