"""Keys in a PKCS#11 token (an HSM, SoftHSM2): a session pool that survives the token going away.

:class:`Pkcs11Library` is one loaded module (``libsofthsm2.so``, a vendor
library) per process and path. :class:`Pkcs11KeyConnection` holds a pool of
logged-in sessions to one private key object (RFC 7512 URI) and signs bytes
with a PKCS#11 mechanism; the adapters of :mod:`certstatus.signing.pkcs11_keys`
turn it into a ``cryptography`` private key, so one
:class:`~certstatus.signing.signer.ResponseSigner` signs for files and HSMs.

Failure policy (request path):

* a PKCS#11 error while signing (token removed, session closed, PIN locked,
  device error) marks the key unavailable: one error-level log line, the
  sessions are dropped and every request answers tryLater
  (:class:`~certstatus.errors.SignerUnavailable`) without touching the
  token until the next retry, every :attr:`Pkcs11KeyConnection.retry_seconds`;
* a retry reopens sessions, re-initialising the module when the token is not
  found (SoftHSM2 and most modules only see a returned token after
  ``C_Finalize``/``C_Initialize``); success logs at warning level that
  signing resumed;
* a PIN the token rejected (CKR_PIN_INCORRECT) is not tried again until the
  PIN source changes: retrying would lock the token;
* all sessions busy past ``acquire_timeout`` seconds: tryLater (overload).

The PIN is read when sessions are opened, from the URI's ``pin-source``, the
signer's PIN file, or ``$CERTSTATUS_PKCS11_PIN``; it is never logged.
A process that forked after using the module re-initialises it (PKCS#11
sessions do not survive ``fork``); spawn worker processes where possible.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from asn1crypto import core
from asn1crypto import keys as asn1_keys

from certstatus.errors import SignerError, SignerUnavailable
from certstatus.signing.pkcs11_library import Pkcs11Library, _pkcs11
from certstatus.signing.pkcs11_uri import Pkcs11Uri, pin_source_path

log = logging.getLogger("certstatus.signing.pkcs11")

#: Environment variable holding the token's user PIN.
PIN_ENV = "CERTSTATUS_PKCS11_PIN"


def read_pin(uri: Pkcs11Uri, pin_file: Path | None, *, where: str) -> str | None:
    """Return the user PIN: the URI's pin-source, else ``pin_file``, else ``$CERTSTATUS_PKCS11_PIN``.

    The first line of a file is the PIN. Returns None when no source is
    configured. Raises :class:`SignerError` naming the file (never the PIN)
    when it cannot be read.
    """
    path: str | Path | None = None
    if uri.pin_source is not None:
        try:
            path = pin_source_path(uri.pin_source)
        except ValueError as exc:
            raise SignerError(f"{where}: {exc}") from None
    elif pin_file is not None:
        path = pin_file
    if path is not None:
        try:
            text = Path(path).read_text(encoding="utf-8")
        except (OSError, UnicodeError) as exc:
            reason = getattr(exc, "strerror", None) or "not UTF-8 text"
            raise SignerError(f"{where}: cannot read the PKCS#11 PIN file {path}: {reason}") from None
        lines = text.splitlines()
        return lines[0] if lines else ""
    return os.environ.get(PIN_ENV) or None


@dataclass
class _PooledSession:
    session: object
    key: object
    generation: int


@dataclass(frozen=True)
class Pkcs11KeyInfo:
    """What the token says of a private key: ``key_type`` (``rsa``/``ec``/``ed25519``),
    the DER SubjectPublicKeyInfo when readable (None otherwise) and, for EC, the
    named curve's DER parameters."""

    key_type: str
    public_key_der: bytes | None
    ec_params: bytes | None = None


class Pkcs11KeyConnection:
    """A pool of sessions to one private key object, signing with PKCS#11 mechanisms.

    ``pool_size`` sessions at most (opened on demand), so that as many
    threads can sign at once; ``acquire_timeout`` seconds to wait for a free
    one. ``where`` names the signer in messages.
    """

    #: Seconds between two attempts to reach a token that went away.
    retry_seconds = 1.0

    def __init__(
        self,
        library: Pkcs11Library,
        uri: Pkcs11Uri,
        *,
        pin_file: Path | None = None,
        where: str,
        pool_size: int = 4,
        acquire_timeout: float = 5.0,
    ) -> None:
        self.library = library
        self.uri = uri
        self.pin_file = pin_file
        self.where = where
        self.pool_size = max(1, pool_size)
        self.acquire_timeout = acquire_timeout
        self._idle: list[_PooledSession] = []
        self._open = 0
        self._cond = threading.Condition(threading.RLock())
        self._available = False
        self._retry_at = 0.0
        self._rejected_pin: bytes | None = None
        self._problem = "not connected yet"
        self.info: Pkcs11KeyInfo | None = None

    def connect(self) -> Pkcs11KeyInfo:
        """Open the first session and read the key's type and public key (start-up).

        Raises :class:`SignerError` naming the module, token and object when
        the token, the key or the PIN is missing or refused.
        """
        with self._cond:
            try:
                first = self._open_session(login=True)
            except SignerUnavailable as exc:
                raise SignerError(str(exc)) from None
            self.info = self._read_info(first.key)
            self._idle.append(first)
            self._open = 1
            self._available = True
        return self.info

    def sign(self, data: bytes, mechanism, mechanism_param=None) -> bytes:
        """Sign ``data`` with ``mechanism`` (a ``pkcs11.Mechanism``) in a pooled session.

        Raises :class:`SignerUnavailable` when the token is unreachable or
        every session stayed busy for ``acquire_timeout`` seconds.
        """
        pkcs11 = _pkcs11()
        for attempt in (1, 2):
            item = self._acquire()
            try:
                if self.library.serialize:
                    with self.library.call_lock:
                        signature = item.key.sign(data, mechanism=mechanism, mechanism_param=mechanism_param)
                else:
                    signature = item.key.sign(data, mechanism=mechanism, mechanism_param=mechanism_param)
            except pkcs11.PKCS11Error as exc:
                stale = item.generation != self.library.generation
                self._drop(item)
                if stale and attempt == 1:
                    continue  # the module was re-initialised under us: reopen once, quietly
                self._mark_unavailable(f"{type(exc).__name__} {exc}".strip())
                raise SignerUnavailable(f"{self.where}: {self._problem}") from None
            self._release(item)
            return signature
        raise SignerUnavailable(f"{self.where}: {self._problem}")  # pragma: no cover - loop returns or raises

    # -- pool ---------------------------------------------------------------

    def _acquire(self) -> _PooledSession:
        deadline = time.monotonic() + self.acquire_timeout
        with self._cond:
            if not self._available:
                self._reconnect_locked()
            while True:
                while self._idle:
                    item = self._idle.pop()
                    if item.generation == self.library.generation:
                        return item
                    self._open -= 1  # stale: its session died with the old generation
                if self._open < self.pool_size:
                    try:
                        item = self._open_session(login=self._open == 0)
                    except SignerUnavailable:
                        self._mark_unavailable(self._problem.removeprefix("cannot sign with the PKCS#11 key: "))
                        raise
                    self._open += 1
                    return item
                remaining = deadline - time.monotonic()
                if remaining <= 0 or not self._cond.wait(remaining):
                    raise SignerUnavailable(
                        f"{self.where}: all {self.pool_size} PKCS#11 sessions stayed busy for "
                        f"{self.acquire_timeout:g} s (signer overloaded)"
                    )

    def _release(self, item: _PooledSession) -> None:
        with self._cond:
            self._idle.append(item)
            self._cond.notify()

    def _drop(self, item: _PooledSession) -> None:
        with self._cond:
            self._open -= 1
            self._cond.notify()
        _close_quietly(item.session)

    def _mark_unavailable(self, problem: str) -> None:
        with self._cond:
            was_available = self._available
            self._available = False
            self._problem = f"cannot sign with the PKCS#11 key: {problem}"
            self._retry_at = time.monotonic() + self.retry_seconds
            idle, self._idle = self._idle, []
            self._open -= len(idle)
        for item in idle:
            _close_quietly(item.session)
        if was_available:
            log.error(
                "%s: %s; answering tryLater and retrying every %g s until the token is back",
                self.where, self._problem, self.retry_seconds,
            )

    def _reconnect_locked(self) -> None:
        if time.monotonic() < self._retry_at:
            raise SignerUnavailable(f"{self.where}: {self._problem}")
        self._retry_at = time.monotonic() + self.retry_seconds
        generation = self.library.generation
        try:
            item = self._open_session(login=True)
        except SignerUnavailable:
            # Most modules see a returned token only after C_Finalize/C_Initialize.
            self.library.reinitialize(generation)
            item = self._open_session(login=True)
        self._idle = [item]
        self._open = 1
        self._available = True
        log.warning("%s: the PKCS#11 token is back; signing resumed", self.where)

    def _open_session(self, *, login: bool) -> _PooledSession:
        """Open (and log in) one session and find the key; SignerUnavailable on failure."""
        pkcs11 = _pkcs11()
        library = self.library
        generation = library.generation
        try:
            token = library.lib.get_token(**self.uri.token_filter)
            pin = self._pin() if login else None
            session = self._login(token, pin)
            try:
                key = session.get_key(object_class=pkcs11.ObjectClass.PRIVATE_KEY, label=self.uri.object, id=self.uri.id)
            except BaseException:
                _close_quietly(session)
                raise
        except pkcs11.NoSuchToken:
            self._problem = f"no token matching {self.uri.describe()} in {library.path}"
            raise SignerUnavailable(f"{self.where}: {self._problem}") from None
        except pkcs11.NoSuchKey:
            self._problem = f"token {self.uri.token!r} has no private key matching {self.uri.describe()}"
            raise SignerUnavailable(f"{self.where}: {self._problem}") from None
        except pkcs11.MultipleObjectsReturned:
            self._problem = f"several private keys match {self.uri.describe()}; add id= or object= to the URI"
            raise SignerUnavailable(f"{self.where}: {self._problem}") from None
        except pkcs11.PKCS11Error as exc:
            self._problem = f"cannot open a session: {type(exc).__name__} {exc}".strip()
            raise SignerUnavailable(f"{self.where}: {self._problem}") from None
        return _PooledSession(session, key, generation)

    def _pin(self) -> str:
        try:
            pin = read_pin(self.uri, self.pin_file, where=self.where)
        except SignerError as exc:
            self._problem = str(exc).removeprefix(f"{self.where}: ")
            raise SignerUnavailable(str(exc)) from None
        if pin is None:
            self._problem = (
                f"no PIN for the PKCS#11 token: set {PIN_ENV}, a PIN file "
                "(pkcs11_pin_file, --pkcs11-pin-file) or pin-source=file:/path in the URI"
            )
            raise SignerUnavailable(f"{self.where}: {self._problem}")
        return pin

    def _login(self, token, pin: str | None):
        pkcs11 = _pkcs11()
        if pin is None:
            return token.open()
        digest = hashlib.sha256(pin.encode()).digest()
        if digest == self._rejected_pin:
            raise SignerUnavailable(
                f"{self.where}: the token rejected this PIN before; not trying it again (that would lock "
                "the token): fix the PIN source"
            )
        try:
            return token.open(user_pin=pin)
        except pkcs11.UserAlreadyLoggedIn:
            # Login is per application and token: another session of this process is logged in.
            return token.open()
        except (pkcs11.PinIncorrect, pkcs11.PinInvalid, pkcs11.PinLenRange):
            self._rejected_pin = digest
            self._problem = "the token rejected the PIN (CKR_PIN_INCORRECT); not retrying the same PIN"
            raise SignerUnavailable(f"{self.where}: {self._problem}") from None
        except pkcs11.PinLocked:
            self._problem = "the token's user PIN is locked (CKR_PIN_LOCKED); unlock it with the SO PIN"
            raise SignerUnavailable(f"{self.where}: {self._problem}") from None

    def _read_info(self, key) -> Pkcs11KeyInfo:
        pkcs11 = _pkcs11()
        # deferred: python-pkcs11 only for keys on a token
        from pkcs11.util.ec import encode_ec_public_key
        from pkcs11.util.rsa import encode_rsa_public_key

        key_type = key.key_type
        if key_type == pkcs11.KeyType.RSA:
            rsa_public = encode_rsa_public_key(key)
            spki = asn1_keys.PublicKeyInfo(
                {"algorithm": {"algorithm": "rsa"}, "public_key": asn1_keys.RSAPublicKey.load(rsa_public)}
            ).dump()
            return Pkcs11KeyInfo("rsa", spki)
        if key_type in (pkcs11.KeyType.EC, getattr(pkcs11.KeyType, "EC_EDWARDS", None)):
            params = key[pkcs11.Attribute.EC_PARAMS]
            public = self._public_object(key)
            spki = None
            if public is not None and key_type == pkcs11.KeyType.EC:
                spki = encode_ec_public_key(public)
            family = "ec" if key_type == pkcs11.KeyType.EC else "ed25519"
            if family == "ed25519" and public is not None:
                spki = _ed25519_spki(public[pkcs11.Attribute.EC_POINT])
            return Pkcs11KeyInfo(family, spki, params)
        raise SignerError(f"{self.where}: the PKCS#11 key is of type {key_type!r}; use RSA, EC (P-256/P-384) or Ed25519")

    def _public_object(self, private_key):
        pkcs11 = _pkcs11()
        session = private_key.session
        try:
            return session.get_key(object_class=pkcs11.ObjectClass.PUBLIC_KEY, label=self.uri.object, id=self.uri.id)
        except (pkcs11.NoSuchKey, pkcs11.MultipleObjectsReturned):
            return None

    def close(self) -> None:
        """Close every idle session (in-flight ones close when returned... to a closed pool)."""
        with self._cond:
            idle, self._idle = self._idle, []
            self._open -= len(idle)
            self._available = False
            self._retry_at = 0.0
        for item in idle:
            _close_quietly(item.session)


def _ed25519_spki(ec_point: bytes) -> bytes:
    try:
        raw = core.OctetString.load(ec_point).native
    except ValueError:
        raw = ec_point
    return asn1_keys.PublicKeyInfo({"algorithm": {"algorithm": "ed25519"}, "public_key": raw}).dump()


def _close_quietly(session) -> None:
    try:
        session.close()
    except Exception:  # the token may be gone: nothing left to close
        pass
