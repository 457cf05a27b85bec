"""The HTTP client of webhook senders: httpx, no redirects, and no private addresses.

The address guard sits where the connection is made (httpcore's network backend), after
the name is resolved, so a name that resolves to a private, loopback or link-local
address is refused whatever the URL said, and a DNS answer cannot change between the
check and the connection (the socket connects to the very address that was checked; TLS
still verifies the URL's host name). WEBHOOK_ALLOWED_NETWORKS lets chosen networks
through (the tests allow loopback, where their receivers listen).
"""

import ipaddress
import socket
from collections.abc import Iterable

import httpcore
import httpx
from django.conf import settings

_Address = ipaddress.IPv4Address | ipaddress.IPv6Address


class AddressRefused(httpx.ConnectError):
    """The endpoint's address is private, loopback or otherwise not on the public internet."""


def address_is_public(address: _Address) -> bool:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_global and not address.is_multicast


def address_allowed(address: _Address) -> bool:
    if address_is_public(address):
        return True
    return any(address in ipaddress.ip_network(net) for net in settings.WEBHOOK_ALLOWED_NETWORKS)


class _GuardedBackend(httpcore.SyncBackend):
    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.NetworkStream:
        try:
            infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except OSError as exc:
            raise httpcore.ConnectError(f"cannot resolve {host}: {exc}") from exc
        addresses = [ipaddress.ip_address(info[4][0]) for info in infos]
        allowed = [a for a in addresses if address_allowed(a)]
        if not allowed:
            raise httpcore.ConnectError(f"address refused: {host} is {addresses[0] if addresses else '?'}")
        return super().connect_tcp(str(allowed[0]), port, timeout, local_address, socket_options)


class GuardedTransport(httpx.HTTPTransport):
    """httpx's transport with its connection pool built on the guarded backend.

    httpx.HTTPTransport does not take a network backend, so its pool is replaced by an
    equal one (same limits) that has it.
    """

    def __init__(self, *, limits: httpx.Limits) -> None:
        super().__init__(limits=limits, retries=0)
        self._pool = httpcore.ConnectionPool(
            ssl_context=httpx.create_ssl_context(),
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            network_backend=_GuardedBackend(),
        )


def client_make(*, connections: int = 1) -> httpx.Client:
    """A client for one sender: keep-alive, no redirects, the delivery timeout per phase."""
    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
    return httpx.Client(
        transport=GuardedTransport(limits=limits),
        follow_redirects=False,
        timeout=httpx.Timeout(settings.WEBHOOK_TIMEOUT_SECONDS),
        headers={"user-agent": "Launchday-Webhooks/1", "content-type": "application/json"},
        trust_env=False,
    )
