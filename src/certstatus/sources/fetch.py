"""Download revocation data: a local file, ``http(s)://`` (httpx) or ``ldap(s)://`` (ldap3).

One entry point, :func:`fetch`, turns an origin (path or URL) into bytes, or
into "not modified" when the server answers a conditional GET with 304.
Every failure is a :class:`~certstatus.errors.SourceError` naming the origin,
the cause and the fix; nothing here writes to the store.

Every attempt has one deadline, ``FetchPolicy.timeout`` seconds, for all of
it: connecting, the TLS handshake, the headers and the whole body (or the
LDAP bind and search). A server that sends one byte a second keeps each read
short but cannot stretch the attempt: at the deadline it is abandoned and
counts as a timeout (retried like one).

HTTP (RFC 9110/9111): ``If-None-Match`` / ``If-Modified-Since`` from the
previous answer's ``ETag`` / ``Last-Modified``; 5xx, timeouts and connection
errors are retried with exponential backoff; 4xx is not retried; the body is
streamed and abandoned as soon as it passes the size limit. The attempt runs
under :func:`asyncio.timeout` with ``httpx.AsyncClient``: httpx's own
timeouts bound each network operation, not the request (encode/httpx#1450).
Redirects (at most :data:`MAX_REDIRECTS`) are followed as
``FetchPolicy.redirects`` allows (``follow_redirects``:
:data:`certstatus.source_settings.REDIRECT_POLICIES`); never from
``https`` to ``http``.

LDAP (RFC 4516 URLs, RFC 4523 attributes): an anonymous base-object search
of the URL's DN for ``certificateRevocationList;binary`` (or the URL's
attribute, e.g. ``deltaRevocationList;binary``). ldap3 bounds each socket
operation; at the attempt's deadline a timer shuts the connection's socket
down, which ends the read in progress. Referrals (RFC 4511 §4.1.10) are not
chased: the error names where they lead.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from stat import S_ISDIR

import httpx
import ldap3
from ldap3.core.exceptions import LDAPException
from ldap3.utils.uri import parse_uri

from certstatus.errors import SourceError

log = logging.getLogger("certstatus.fetch")

DEFAULT_ATTRIBUTE = "certificateRevocationList;binary"

#: Most redirects one attempt follows.
MAX_REDIRECTS = 5


@dataclass(frozen=True, slots=True)
class FetchPolicy:
    """How to download: ``timeout`` (seconds for a whole attempt: connect, headers, body),
    ``retries`` (extra attempts after the first), ``backoff`` (seconds before the first retry,
    doubled each time), ``max_bytes`` (largest accepted body) and ``redirects`` (one of
    :data:`certstatus.source_settings.REDIRECT_POLICIES`)."""

    timeout: float = 10.0
    retries: int = 2
    backoff: float = 1.0
    max_bytes: int = 256 * 1024 * 1024
    redirects: str = "same-origin"


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
    a no-op). Each attempt ends within ``policy.timeout`` seconds, so the call
    returns within (``retries`` + 1) × ``timeout`` plus the backoff. Not to be
    called from a running asyncio event loop (an HTTP attempt runs one).
    Raises :class:`SourceError` when every attempt failed, the server refused,
    redirected where ``policy.redirects`` does not allow, the body is over
    ``policy.max_bytes``, or the scheme is not file, http, https, ldap or ldaps.
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
                    f"{exc} (after {policy.retries + 1} attempts): check that the server is up and reachable.",
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
    """One attempt, bounded as a whole by ``policy.timeout``."""

    async def bounded() -> Fetched:
        async with asyncio.timeout(policy.timeout):
            return await _http_attempt(url, policy, previous)

    # Not asyncio.run: at its end it waits for the loop's executor, where a name lookup that hangs
    # (getaddrinfo runs in a thread) would hold the attempt past its deadline; close() does not wait.
    loop = asyncio.new_event_loop()
    try:
        return loop.run_until_complete(bounded())
    except (TimeoutError, httpx.TimeoutException):
        raise _Retryable(
            f"timed out after {policy.timeout:g} s (fetch_timeout bounds the whole download: connect, headers and body)"
        ) from None
    except httpx.TransportError as exc:
        raise _Retryable(f"cannot connect ({exc.__class__.__name__}: {exc})") from None
    except httpx.HTTPError as exc:
        raise SourceError(url, f"HTTP error {exc}: check the URL.") from None
    finally:
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()


async def _http_attempt(url: str, policy: FetchPolicy, previous: Fetched | None) -> Fetched:
    headers = {"Accept": "application/pkix-crl, application/x-pkcs7-crl, */*"}
    if previous is not None:
        if previous.etag:
            headers["If-None-Match"] = previous.etag
        if previous.last_modified:
            headers["If-Modified-Since"] = previous.last_modified
    async with httpx.AsyncClient(timeout=policy.timeout, follow_redirects=False) as client:
        request = client.build_request("GET", url, headers=headers)
        for _ in range(MAX_REDIRECTS + 1):
            response = await client.send(request, stream=True)
            try:
                if response.next_request is None:
                    return await _read_answer(url, response, policy, previous)
                request = response.next_request
                _check_redirect(url, request.url, policy.redirects)
            finally:
                await response.aclose()
    raise SourceError(url, f"redirects more than {MAX_REDIRECTS} times: give the CRL's final URL.")


def _check_redirect(url: str, target: httpx.URL, allowed: str) -> None:
    """Refuse a redirect from the configured ``url`` to ``target`` that ``allowed`` (follow_redirects) does not allow."""
    origin = httpx.URL(url)
    if allowed == "none":
        raise SourceError(
            url, f"redirects to {target} and follow_redirects is \"none\": give that URL in crl, or set "
            'follow_redirects = "same-origin" or "any" in the CA\'s table.',
        )  # fmt: skip
    if origin.scheme == "https" and target.scheme != "https":
        raise SourceError(url, f"redirects to {target}: a redirect from https to {target.scheme} is never followed.")
    if allowed == "same-origin" and _origin(target) != _origin(origin):
        raise SourceError(
            url, f"redirects to {target}, another scheme, host or port, and follow_redirects is \"same-origin\": "
            'give that URL in crl if it is the right one, or set follow_redirects = "any" in the CA\'s table '
            "if that server is trusted to publish this CA's CRL.",
        )  # fmt: skip


def _origin(url: httpx.URL) -> tuple[str, str, int | None]:
    """(scheme, host, port) with the scheme's default port filled in."""
    return url.scheme, url.host, url.port or {"http": 80, "https": 443}.get(url.scheme)


async def _read_answer(url: str, response: httpx.Response, policy: FetchPolicy, previous: Fetched | None) -> Fetched:
    if response.status_code == 304 and previous is not None:
        return Fetched(None, previous.etag, previous.last_modified)
    if response.status_code >= 500:
        raise _Retryable(f"server answered HTTP {response.status_code}")
    if response.status_code != 200:
        raise SourceError(url, f"server answered HTTP {response.status_code}: check the URL of the CRL.")
    declared = response.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > policy.max_bytes:
        raise _too_large(url, policy.max_bytes)
    chunks, size = [], 0
    async for chunk in response.aiter_bytes():
        size += len(chunk)
        if size > policy.max_bytes:
            raise _too_large(url, policy.max_bytes)
        chunks.append(chunk)
    return Fetched(b"".join(chunks), response.headers.get("etag"), response.headers.get("last-modified"))


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
    # No referral is chased: ldap3 would follow one to any server, on a connection the deadline does not cover.
    connection = ldap3.Connection(server, receive_timeout=seconds, read_only=True, auto_referrals=False)
    with _Deadline(policy.timeout, connection) as deadline:
        try:
            step = "cannot bind to the LDAP server"
            connection.open()
            deadline.check()
            if not connection.bind():
                raise _Retryable(f"{step} ({connection.result.get('description')})")
            deadline.check()
            step = "LDAP search failed"
            found = connection.search(parts["base"], "(objectClass=*)", search_scope=ldap3.BASE, attributes=[attribute])
            deadline.check()
            entries, outcome = connection.response, connection.result  # unbind clears them
        except LDAPException as exc:
            deadline.check()
            raise _Retryable(f"{step} ({exc.__class__.__name__}: {exc})") from None
        finally:
            with contextlib.suppress(LDAPException, OSError):
                connection.unbind()
    if not found and outcome.get("referrals"):
        raise SourceError(
            url, f"the LDAP server refers to {', '.join(outcome['referrals'])}: LDAP referrals are not followed; "
            "give that URL in crl if it is the right one.",
        )  # fmt: skip
    if not found:
        raise SourceError(url, f"LDAP entry not found ({outcome.get('description')}): check the DN in the URL.")
    raw = entries[0].get("raw_attributes", {})
    values = next((v for name, v in raw.items() if name.lower() == attribute.lower()), None)
    if values is None:  # some servers return the name without ";binary"
        bare = attribute.split(";", 1)[0].lower()
        values = next((v for name, v in raw.items() if name.split(";", 1)[0].lower() == bare), None)
    if not values:
        raise SourceError(url, f"the LDAP entry has no {attribute} attribute: publish the CRL there or fix the URL.")
    if len(values[0]) > policy.max_bytes:
        raise _too_large(url, policy.max_bytes)
    return bytes(values[0])


class _Deadline:
    """Shut an ldap3 connection's socket down ``seconds`` after entering (a timer thread), which ends
    the blocking read in progress; :meth:`check` raises the timeout once that happened."""

    def __init__(self, seconds: float, connection: ldap3.Connection) -> None:
        self.seconds = seconds
        self.connection = connection
        self.expired = threading.Event()
        self._timer = threading.Timer(seconds, self._expire)
        self._timer.daemon = True

    def __enter__(self) -> "_Deadline":
        self._timer.start()
        return self

    def __exit__(self, *exc) -> None:
        self._timer.cancel()

    def _expire(self) -> None:
        self.expired.set()
        sock = getattr(self.connection, "socket", None)
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def check(self) -> None:
        if self.expired.is_set():
            raise _Retryable(
                f"timed out after {self.seconds:g} s (fetch_timeout bounds the whole download: connect, bind and search)"
            )


def file_signature(path: str) -> tuple:
    """A cheap fingerprint of a file or directory (names, sizes, mtimes) to notice changes.

    Returns ``()`` for a path that cannot be read (the import then reports why).
    """
    try:
        stat = os.stat(path)  # one system call for a file (the refresher looks at every file every few seconds)
        if S_ISDIR(stat.st_mode):
            return tuple(
                (child.name, stat.st_size, stat.st_mtime_ns)
                for child in sorted(Path(path).iterdir())
                if child.is_file() and (stat := child.stat())
            )
        return ((os.path.basename(path), stat.st_size, stat.st_mtime_ns),)
    except OSError:
        return ()
