"""The requests ``certstatus check`` sends, and what came back (RFC 6960 Appendix A, RFC 5019 §5).

Every request asks about one serial number of one CA with one CertID, built
by ``cryptography``'s :class:`~cryptography.x509.ocsp.OCSPRequestBuilder`. A
:class:`Probe` says how it was asked (method, CertID hash, nonce); a
:class:`Reply` holds the HTTP answer as received, bytes untouched.
"""

from __future__ import annotations

import base64
import datetime as dt
import itertools
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from urllib.parse import quote

import httpx
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509 import ocsp

from certstatus.clock import Clock
from certstatus.protocol.certid import issuer_hashes

#: CertID hash algorithms asked with (RFC 5019 clients use SHA-1, RFC 9919 §3.1.1 allows SHA-256).
HASHES: dict[str, hashes.HashAlgorithm] = {"sha1": hashes.SHA1(), "sha256": hashes.SHA256()}
#: Methods asked with: GET (RFC 5019 §5, CA/B BR §4.9.10) and POST (RFC 6960 Appendix A.1).
METHODS = ("GET", "POST")
#: Octets of the nonces sent (RFC 9654 §2.1: at least 1 and at most 32 recommended).
NONCE_OCTETS = 32
OCSP_REQUEST_TYPE = "application/ocsp-request"


@dataclass(frozen=True, slots=True)
class Probe:
    """One request: ``serial_number`` of the CA asked by ``method`` with a ``hash_algorithm``
    CertID (a key of :data:`HASHES`), ``nonce`` (its octets) or none. ``unassigned`` marks a
    serial the operator says the CA never issued; ``conditional`` a GET repeated with
    ``If-None-Match`` set to the ETag of ``der``'s earlier answer."""

    serial_number: int
    unassigned: bool
    method: str
    hash_algorithm: str
    nonce: bytes | None
    der: bytes
    conditional: str | None = None

    @property
    def label(self) -> str:
        """A short name for reports: ``GET sha1 nonce 1a2b``."""
        parts = [self.method, self.hash_algorithm, "nonce" if self.nonce else "no nonce", f"{self.serial_number:x}"]
        if self.conditional is not None:
            parts.append("If-None-Match")
        return " ".join(parts)


@dataclass(frozen=True, slots=True)
class Reply:
    """What came back for ``probe``: the HTTP status, headers (names lower case) and body, or
    ``error`` (why no HTTP answer came: connection refused, timeout). ``received_at`` is
    aware UTC."""

    probe: Probe
    received_at: dt.datetime
    status: int | None = None
    headers: dict[str, str] | None = None
    body: bytes = b""
    error: str | None = None

    def header(self, name: str) -> str | None:
        """The value of header ``name`` (lower case), or None."""
        return (self.headers or {}).get(name)


def request_der(issuer: x509.Certificate, serial_number: int, hash_algorithm: str, nonce: bytes | None) -> bytes:
    """An OCSPRequest (DER) with one CertID of ``issuer``/``serial_number`` and, when given, a nonce.

    Built by ``cryptography`` (RFC 6960 §4.1.1); ``ValueError`` for a hash algorithm not in :data:`HASHES`.
    """
    if hash_algorithm not in HASHES:
        raise ValueError(f"CertID hash algorithm must be one of {', '.join(HASHES)}, not {hash_algorithm!r}")
    name_hash, key_hash = issuer_hashes(issuer, hash_algorithm)
    builder = ocsp.OCSPRequestBuilder().add_certificate_by_hash(name_hash, key_hash, serial_number, HASHES[hash_algorithm])
    if nonce is not None:
        builder = builder.add_extension(x509.OCSPNonce(nonce), critical=False)
    return builder.build().public_bytes(serialization.Encoding.DER)


def plan(issuer: x509.Certificate, serials: Iterable[int], unassigned: Iterable[int]) -> list[Probe]:
    """Every probe for ``serials`` and ``unassigned`` serials: each method × CertID hash × with and
    without a fresh random nonce (8 per serial)."""
    probes = []
    for serial, is_unassigned in itertools.chain(((s, False) for s in serials), ((s, True) for s in unassigned)):
        for method, hash_algorithm, with_nonce in itertools.product(METHODS, HASHES, (False, True)):
            nonce = os.urandom(NONCE_OCTETS) if with_nonce else None
            der = request_der(issuer, serial, hash_algorithm, nonce)
            probes.append(Probe(serial, is_unassigned, method, hash_algorithm, nonce, der))
    return probes


def get_url(url: str, der: bytes) -> str:
    """The GET URL of ``der`` at responder ``url``: the URL-encoded base64 appended after a '/'
    (RFC 6960 Appendix A.1, RFC 5019 §5)."""
    return url.rstrip("/") + "/" + quote(base64.b64encode(der).decode(), safe="")


def ask(client: httpx.Client, url: str, probe: Probe, clock: Clock) -> Reply:
    """Send ``probe`` to ``url`` with ``client``; a transport failure becomes ``Reply.error``.
    ``received_at`` is read from ``clock`` when the answer (or the failure) came."""
    try:
        if probe.method == "GET":
            headers = {"if-none-match": probe.conditional} if probe.conditional is not None else {}
            answer = client.get(get_url(url, probe.der), headers=headers)
        else:
            answer = client.post(url, content=probe.der, headers={"content-type": OCSP_REQUEST_TYPE})
    except httpx.HTTPError as exc:
        return Reply(probe, clock.now(), error=f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__)
    headers = {name.lower(): value for name, value in answer.headers.items()}
    return Reply(probe, clock.now(), answer.status_code, headers, answer.content)


def ask_all(client: httpx.Client, url: str, probes: Iterable[Probe], clock: Clock) -> Iterator[Reply]:
    """:func:`ask` each probe in turn; after each successful GET without a nonce, ask again with
    ``If-None-Match`` set to its ETag (RFC 9110 §13.1.2), once per serial and hash algorithm."""
    revalidated: set[tuple[int, str]] = set()
    for probe in probes:
        reply = ask(client, url, probe, clock)
        yield reply
        etag = reply.header("etag")
        key = (probe.serial_number, probe.hash_algorithm)
        if probe.method == "GET" and probe.nonce is None and reply.status == 200 and etag and key not in revalidated:
            revalidated.add(key)
            again = Probe(probe.serial_number, probe.unassigned, "GET", probe.hash_algorithm, None, probe.der, conditional=etag)
            yield ask(client, url, again, clock)
