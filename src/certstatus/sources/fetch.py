"""Download revocation data: a local file, ``http(s)://`` (httpx) or ``ldap(s)://`` (ldap3).

One entry point, :func:`fetch`, turns an origin (path or URL) into bytes, or
into "not modified" when the server answers a conditional GET with 304.
Every failure is a :class:`~certstatus.errors.SourceError` naming the origin,
the cause and the fix; nothing here writes to the store.

HTTP (RFC 9110/9111): ``If-None-Match`` / ``If-Modified-Since`` from the
previous answer's ``ETag`` / ``Last-Modified``; a timeout per attempt; 5xx,
timeouts and connection errors are retried with exponential backoff; 4xx is
not retried; the body is streamed and abandoned as soon as it passes the
size limit.

LDAP (RFC 4516 URLs, RFC 4523 attributes): an anonymous base-object search
of the URL's DN for ``certificateRevocationList;binary`` (or the URL's
attribute, e.g. ``deltaRevocationList;binary``).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import httpx
import ldap3
from ldap3.core.exceptions import LDAPException
from ldap3.utils.uri import parse_uri

from certstatus.errors import SourceError

log = logging.getLogger("certstatus.fetch")

DEFAULT_ATTRIBUTE = "certificateRevocationList;binary"


@dataclass(frozen=True, slots=True)
class FetchPolicy:
    """How to download: ``timeout`` (seconds per attempt), ``retries`` (extra
    attempts after the first), ``backoff`` (seconds before the first retry,
    doubled each time) and ``max_bytes`` (largest accepted body)."""

    timeout: float = 10.0
    retries: int = 2
    backoff: float = 1.0
    max_bytes: int = 256 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class Fetched:
    """What a fetch got: ``data`` (None when the server said 304 Not Modified)
    and the validators to send next time (``etag``, ``last_modified``, HTTP only)."""

    data: bytes | None
    etag: str | None = None
    last_modified: str | None = None

    @property
    def not_modified(self) -> bool:
        return self.data is None


def is_remote(origin: str) -> bool:
    """True for an origin that is a URL rather than a file path."""
    return "://" in origin


def fetch(
    origin: str,
    policy: FetchPolicy = FetchPolicy(),
    previous: Fetched | None = None,
    *,
    sleep: Callable[[float], None] = time.sleep,
) -> Fetched:
    """Return the bytes at ``origin`` (a file path, http(s):// or ldap(s):// URL).

    ``previous`` (the last successful :class:`Fetched` of this origin) makes
    an HTTP request conditional. ``sleep`` waits between retries (tests pass
    a no-op). Raises :class:`SourceError` when every attempt failed, the
    server refused, the body is over ``policy.max_bytes``, or the scheme is
    not file, http, https, ldap or ldaps.
    """
    scheme = origin.split("://", 1)[0].lower() if is_remote(origin) else "file"
    if scheme == "file":
        return Fetched(_read_file(origin.removeprefix("file://"), policy.max_bytes))
    if scheme in ("http", "https"):
        attempt = lambda: _http(origin, policy, previous)  # noqa: E731
    elif scheme in ("ldap", "ldaps"):
        attempt = lambda: Fetched(_ldap(origin, policy))  # noqa: E731
    else:
        raise SourceError(origin, f"scheme {scheme!r} is not supported: use a file path, http(s):// or ldap(s)://.")
    delay = policy.backoff
    for number in range(policy.retries + 1):
        try:
            return attempt()
        except _Retryable as exc:
            if number == policy.retries:
                raise SourceError(
                    origin,
                    f"{exc} (after {policy.retries + 1} attempts): check that the server is up and "
                    "reachable; the data imported before keeps serving.",
                ) from None
            log.info("fetching %s failed (%s); retrying in %.1f s", origin, exc, delay)
            sleep(delay)
            delay *= 2
    raise AssertionError("unreachable")


class _Retryable(Exception):
    """A failure that another attempt may not have (timeout, 5xx, connection)."""


def _read_file(path: str, max_bytes: int) -> bytes:
    try:
        with open(path, "rb") as handle:
            data = handle.read(max_bytes + 1)
    except OSError as exc:
        raise SourceError(path, f"cannot read the file: {exc.strerror}.") from None
    if len(data) > max_bytes:
        raise _too_large(path, max_bytes)
    return data


def _too_large(origin: str, max_bytes: int) -> SourceError:
    return SourceError(
        origin, f"is larger than the limit of {max_bytes} bytes: raise max_crl_bytes if the CRL really is that large."
    )


def _http(url: str, policy: FetchPolicy, previous: Fetched | None) -> Fetched:
    headers = {"Accept": "application/pkix-crl, application/x-pkcs7-crl, */*"}
    if previous is not None:
        if previous.etag:
            headers["If-None-Match"] = previous.etag
        if previous.last_modified:
            headers["If-Modified-Since"] = previous.last_modified
    try:
        with httpx.Client(timeout=policy.timeout, follow_redirects=True, max_redirects=5) as client:
            with client.stream("GET", url, headers=headers) as response:
                if response.status_code == 304 and previous is not None:
                    return Fetched(None, previous.etag, previous.last_modified)
                if response.status_code >= 500:
                    raise _Retryable(f"server answered HTTP {response.status_code}")
                if response.status_code != 200:
                    raise SourceError(
                        url, f"server answered HTTP {response.status_code}: check the URL of the CRL."
                    )
                declared = response.headers.get("content-length")
                if declared is not None and declared.isdigit() and int(declared) > policy.max_bytes:
                    raise _too_large(url, policy.max_bytes)
                chunks, size = [], 0
                for chunk in response.iter_bytes():
                    size += len(chunk)
                    if size > policy.max_bytes:
                        raise _too_large(url, policy.max_bytes)
                    chunks.append(chunk)
                return Fetched(b"".join(chunks), response.headers.get("etag"), response.headers.get("last-modified"))
    except httpx.TimeoutException:
        raise _Retryable(f"timed out after {policy.timeout:g} s") from None
    except httpx.TransportError as exc:
        raise _Retryable(f"cannot connect ({exc.__class__.__name__}: {exc})") from None
    except httpx.HTTPError as exc:
        raise SourceError(url, f"HTTP error {exc}: check the URL.") from None


def _ldap(url: str, policy: FetchPolicy) -> bytes:
    try:
        parts = parse_uri(url)
    except Exception as exc:  # ldap3 raises several types for a bad URL
        raise SourceError(url, f"is not an LDAP URL ({exc}): write ldap://HOST[:PORT]/DN[?ATTRIBUTE].") from None
    if not parts or not parts.get("base"):
        raise SourceError(url, "names no entry: write ldap://HOST[:PORT]/DN[?ATTRIBUTE].")
    attribute = (parts.get("attributes") or [DEFAULT_ATTRIBUTE])[0]
    if not attribute.lower().endswith(";binary"):
        attribute += ";binary"  # RFC 4523 §2: certificate and CRL values are transferred ;binary
    seconds = max(1, math.ceil(policy.timeout))  # ldap3 packs timeouts as whole seconds
    server = ldap3.Server(
        parts["host"], port=parts.get("port"), use_ssl=bool(parts.get("ssl")), connect_timeout=seconds,
        get_info=ldap3.NONE,
    )  # fmt: skip
    try:
        connection = ldap3.Connection(server, auto_bind=True, receive_timeout=seconds, read_only=True)
    except LDAPException as exc:
        raise _Retryable(f"cannot bind to the LDAP server ({exc.__class__.__name__}: {exc})") from None
    try:
        found = connection.search(parts["base"], "(objectClass=*)", search_scope=ldap3.BASE, attributes=[attribute])
        if not found:
            raise SourceError(
                url, f"LDAP entry not found ({connection.result.get('description')}): check the DN in the URL."
            )
        raw = connection.response[0].get("raw_attributes", {})
        values = next((v for name, v in raw.items() if name.lower() == attribute.lower()), None)
        if values is None:  # some servers return the name without ";binary"
            bare = attribute.split(";", 1)[0].lower()
            values = next((v for name, v in raw.items() if name.split(";", 1)[0].lower() == bare), None)
        if not values:
            raise SourceError(
                url, f"the LDAP entry has no {attribute} attribute: publish the CRL there or fix the URL."
            )
        if len(values[0]) > policy.max_bytes:
            raise _too_large(url, policy.max_bytes)
        return bytes(values[0])
    except LDAPException as exc:
        raise _Retryable(f"LDAP search failed ({exc.__class__.__name__}: {exc})") from None
    finally:
        connection.unbind()


def file_signature(path: str) -> tuple:
    """A cheap fingerprint of a file or directory (names, sizes, mtimes) to notice changes.

    Returns ``()`` for a path that cannot be read (the import then reports why).
    """
    target = Path(path)
    try:
        if target.is_dir():
            return tuple(
                (child.name, stat.st_size, stat.st_mtime_ns)
                for child in sorted(target.iterdir())
                if child.is_file() and (stat := child.stat())
            )
        stat = target.stat()
        return ((target.name, stat.st_size, stat.st_mtime_ns),)
    except OSError:
        return ()
