"""Believe a TLS-terminating proxy only when it is one: client address and certificate behind it.

A request arriving from one of ``[tls] trusted_proxies`` is taken to come
from the last address the proxy appended to ``X-Forwarded-For``, and the
proxy's ``client_cert_header`` (the client certificate it verified) is passed
on for authentication. From anyone else both headers are ignored (and the
certificate header is logged at info: a client trying to pass as authenticated).
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Iterable, Mapping

log = logging.getLogger("certstatus.http")


class TrustedProxies:
    """Resolve the client behind a trusted proxy.

    ``networks`` are IP networks as text (``"10.0.0.0/8"``, ``"127.0.0.1"``);
    ``cert_header`` the header name (any case) or None.
    """

    def __init__(self, networks: Iterable[str], cert_header: str | None) -> None:
        self.networks = tuple(ipaddress.ip_network(n, strict=False) for n in networks)
        self.cert_header = cert_header.lower().encode("latin-1") if cert_header else None
        self._trusted: dict[str, bool] = {}

    def trusted(self, address: str | None) -> bool:
        """True when ``address`` is one of the trusted proxies (answers cached per address)."""
        if address is None or not self.networks:
            return False
        known = self._trusted.get(address)
        if known is None:
            try:
                ip = ipaddress.ip_address(address)
                known = any(ip in network for network in self.networks)
            except ValueError:
                known = False
            if len(self._trusted) < 4096:
                self._trusted[address] = known
        return known

    def resolve(self, peer: str | None, headers: Mapping[bytes, bytes]) -> tuple[str | None, bytes | None]:
        """Return (client address, client certificate header value or None) for a request from ``peer``."""
        if not self.trusted(peer):
            if self.cert_header is not None and self.cert_header in headers:
                log.info("ignored %s header from %s: not a trusted proxy", self.cert_header.decode(), peer)
            return peer, None
        client = peer
        forwarded = headers.get(b"x-forwarded-for")
        if forwarded:
            last = forwarded.rsplit(b",", 1)[-1].strip().decode("latin-1")
            if last:
                client = last
        value = headers.get(self.cert_header) if self.cert_header is not None else None
        return client, value or None
