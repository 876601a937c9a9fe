"""Build a CA's :class:`SignerSet` from its settings, and keep it current while serving.

Validation (RFC 6960 §4.2.2.2, at start-up and on every reload): a signer
whose certificate is not issued by its CA (unless configured
``locally_trusted``), lacks id-kp-OCSPSigning, does not match its key (proven
by signing a challenge) or is expired is refused with a message naming the
file or token object.

* At start-up (``strict``), a refused signer configured in the CA's table
  stops start-up with :class:`SignerError` — except an expired one, which is
  logged at error level and skipped, so a server whose old signer ran out
  still restarts on its successor. A refused signer of ``signers_dir`` is
  logged and skipped. No signer left at all stops start-up.
* On reload, refused signers are logged at error level and skipped; an empty
  result keeps the previous signers.

Reload without restart: each worker (and the supervisor, whose signers feed
``/metrics`` and ``/ready``) re-reads ``signers_dir`` every ``signers_rescan``
seconds when a file in it changed, and asks the store whether the new
signers are revoked before it uses them; SIGHUP to the server makes its
supervisor replace the workers, which re-reads everything (a worker that
gets SIGHUP itself reloads at once). The same thread re-checks every
signer's revocation every :data:`~certstatus.signing.revocation.RECHECK_SECONDS`,
a safety net behind the check on every store change
(:mod:`certstatus.signing.revocation`).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import os
import signal
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature

from certstatus.clock import Clock
from certstatus.errors import CertstatusError, ConfigError, SignerError
from certstatus.observability import config_warning
from certstatus.signing.algorithms import algorithm_named
from certstatus.signing.keys import load_certificates
from certstatus.signing.provider import provider_for
from certstatus.signing.revocation import RECHECK_SECONDS, SignerRevocations, revocation_lookup
from certstatus.signing.settings import SignerSettings, configured_signers, read_signer_file
from certstatus.signing.signer import ResponseSigner, check_key_and_dates, prove_key, validate_signer
from certstatus.signing.signer_set import RefusedSigner, RevocationLookup, SignerSet

log = logging.getLogger("certstatus.signing")

#: Largest CRL file read to learn its signature algorithm (RFC 6960 §4.4.7.2 step 2).
_CRL_PEEK_LIMIT = 16 * 1024 * 1024


def build_signer(
    settings: SignerSettings, ca, ca_certificate: x509.Certificate, now, *, checked: bool = False
) -> ResponseSigner:
    """Load and validate one signer; return its :class:`ResponseSigner`.

    ``ca`` is the CaSettings (responder_id). ``checked``: this process's
    supervisor validated this very configuration (:func:`certstatus.app.prepare`),
    so only what is cheap is checked again — the key belongs to the
    certificate, which is not expired — not the issuer's signature, the
    extensions and a signature with the key (~0.4 ms of CPU per signer, and
    the parsed extensions kept: seconds and tens of MB per process with
    10 000 CAs). Raises :class:`SignerError` naming the certificate file and
    the key file or token object.
    """
    provider = provider_for(settings)
    loaded = provider.load()
    where = provider.where
    if checked:
        check_key_and_dates(loaded.key, loaded.certificate, now, where=where, allow_not_yet_valid=True)
    else:
        validate_signer(
            loaded.key, loaded.certificate, ca_certificate, now,
            where=where, locally_trusted=settings.locally_trusted, allow_not_yet_valid=True,
        )  # fmt: skip
        if settings.is_pkcs11:  # a key file's public key is its own (validate_signer compared it with the certificate)
            prove_key(loaded.key, loaded.certificate, where=where)
    algorithm = algorithm_named(settings.signature_algorithm) if settings.signature_algorithm else None
    try:
        signer = ResponseSigner(
            loaded.key, loaded.certificate, ca_certificate,
            responder_id=ca.responder_id, chain=response_chain(ca, ca_certificate, loaded.certificate, settings.locally_trusted),
            algorithm=algorithm, name=settings.label, locally_trusted=settings.locally_trusted,
        )  # fmt: skip
    except SignerError as exc:
        raise SignerError(f"{where}: {exc}") from None
    signer.source = settings
    if settings.locally_trusted:
        config_warning(
            "locally trusted responders (RFC 6960 §2.2), not delegated responders of their CA: clients must "
            "trust their certificates out of band, e.g. openssl ocsp -VAfile CERTIFICATE",
            f"CA {ca.name}: signer {settings.label} ({loaded.certificate.subject.rfc4514_string()}, {settings.certificate})",
        )
    return signer


def response_chain(
    ca, ca_certificate: x509.Certificate, certificate: x509.Certificate, locally_trusted: bool
) -> tuple[x509.Certificate, ...]:
    """The certificates a response of the responder ``certificate`` carries after its own (RFC 6960
    §4.2.1 ``certs``; ``ca`` is the CaSettings).

    None by default: clients have the CA certificate (they named it in the CertID) and the
    delegated responder certificate is what they need; what else the signer's PEM file or PKCS#12
    holds is not sent, the CA's own certificate in particular. With ``include_signer_chain``, a
    delegated responder's responses add the CA certificate and the certificates after it in the
    CA's ``certificate`` file, without self-signed ones (a root is the client's trust anchor, not
    something to send). A CA-signed response carries no certificate at all (golang/go#59641), and
    a locally trusted responder is trusted as it is.
    """
    if not ca.include_signer_chain or locally_trusted or certificate == ca_certificate:
        return ()

    return tuple(cert for cert in load_certificates(ca.certificate) if not _self_signed(cert))


def _self_signed(certificate: x509.Certificate) -> bool:
    if certificate.issuer != certificate.subject:
        return False
    try:
        certificate.verify_directly_issued_by(certificate)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


def scan_signers_dir(ca) -> list[SignerSettings | RefusedSigner]:
    """Read every ``*.toml`` signer file of ``ca.signers_dir`` (sorted by name).

    A file that is not a valid signer table comes back as :class:`RefusedSigner`.
    """
    folder = ca.signers_dir
    if folder is None or not Path(folder).is_dir():
        return []
    defaults = {
        "pkcs11_module": ca.pkcs11_module,
        "pin_file": ca.pkcs11_pin_file,
        "signature_algorithm": ca.signature_algorithm,
    }
    found: list[SignerSettings | RefusedSigner] = []
    for path in sorted(Path(folder).glob("*.toml")):
        try:
            found.append(read_signer_file(path, defaults=defaults))
        except ConfigError as exc:
            found.append(RefusedSigner(path.stem, str(exc)))
    return found


def load_signers(
    ca, ca_certificate: x509.Certificate, now, *, strict: bool, reuse: Iterable[ResponseSigner] = (),
    checked: bool = False,
) -> tuple[list[ResponseSigner], list[RefusedSigner]]:
    """Load the CA's configured signers and those of its ``signers_dir``.

    Returns (signers, refused). With ``strict`` (start-up), a configured
    signer refused for any reason but expiry raises :class:`SignerError`.
    A signer of ``reuse`` loaded from the same settings, whose certificate
    file is unchanged and which is not expired, is kept as it is (no new
    HSM sessions on every reload). ``checked``: the configured signers (not
    those of ``signers_dir``, which may change at any time) were validated by
    this start's :func:`certstatus.app.prepare` (see :func:`build_signer`).
    """
    previous = {getattr(s, "source", None): s for s in reuse}
    signers: list[ResponseSigner] = []
    refused: list[RefusedSigner] = []
    entries = [(s, True) for s in configured_signers(ca)] + [(s, False) for s in scan_signers_dir(ca)]
    for entry, configured in entries:
        if isinstance(entry, RefusedSigner):
            log.error("CA %s: signer file refused: %s", ca.name, entry.reason)
            refused.append(entry)
            continue
        kept = previous.get(entry)
        if kept is not None and now <= kept.not_after and _same_certificate(entry, kept):
            signers.append(kept)
            continue
        try:
            signers.append(build_signer(entry, ca, ca_certificate, now, checked=checked and configured))
        except CertstatusError as exc:
            expired = now > _not_after(entry)
            if strict and configured and not expired:
                raise
            log.error("CA %s: signer refused: %s", ca.name, exc)
            refused.append(RefusedSigner(entry.label, str(exc)))
    return signers, refused


def _same_certificate(settings: SignerSettings, signer: ResponseSigner) -> bool:
    try:
        return load_certificates(settings.certificate)[0] == signer.certificate
    except CertstatusError:
        return False


def _not_after(settings: SignerSettings):
    """The signer certificate's notAfter, or the far future when it cannot be read."""
    try:
        return load_certificates(settings.certificate)[0].not_valid_after_utc
    except CertstatusError:
        return dt.datetime.max.replace(tzinfo=dt.timezone.utc)


def crl_signature_oid(ca) -> str | None:
    """The signature algorithm OID of the CA's first local CRL file, or None."""
    for origin in ca.crl:
        if "://" in origin:
            continue
        try:
            path = Path(origin)
            if path.stat().st_size > _CRL_PEEK_LIMIT:
                continue
            data = path.read_bytes()
            crl = x509.load_pem_x509_crl(data) if b"-----BEGIN" in data else x509.load_der_x509_crl(data)
            return crl.signature_algorithm_oid.dotted_string
        except (OSError, ValueError):
            continue
    return None


def load_signer_set(
    ca,
    ca_certificate: x509.Certificate,
    clock: Clock,
    *,
    is_revoked: RevocationLookup | None = None,
    announce: bool = False,
    checked: bool = False,
) -> SignerSet:
    """Load, validate and assemble the signers of ``ca`` (a CaSettings) at start-up.

    ``is_revoked`` (see :func:`~certstatus.signing.revocation.revocation_lookup`)
    is asked about every delegated signer before the set is returned;
    ``announce``: see :class:`SignerSet`; ``checked``: see :func:`load_signers`. Raises :class:`SignerError` for a
    misconfigured signer (see the module docstring) and when no signer is
    left that is valid now or later.
    """
    now = clock.now()
    signers, refused = load_signers(ca, ca_certificate, now, strict=True, checked=checked)
    if not any(now <= s.not_after for s in signers):
        reasons = "; ".join(r.reason for r in refused) or "none is configured"
        raise SignerError(
            f"CA {ca.name}: no usable signer ({reasons}). Configure signer_certificate/signer_key, "
            "[[ca.NAME.signer]] tables, or install one in signers_dir with `certstatus signer add`"
        )
    if not any(s.valid_at(now) for s in signers):
        log.error("CA %s: no signer is valid yet; answering tryLater until %s", ca.name,
                  min(s.not_before for s in signers))
    signer_set = SignerSet(
        ca.name, signers, clock,
        expiry_warning=ca.signer_expiry_warning, crl_signature_oid=crl_signature_oid(ca), refused=refused,
        announce=announce,
    )  # fmt: skip
    if is_revoked is not None:
        signer_set.check_revocations(is_revoked)
    return signer_set


def reload_signer_set(
    signer_set: SignerSet, ca, ca_certificate: x509.Certificate, *, is_revoked: RevocationLookup | None = None
) -> bool:
    """Re-read the CA's signers into ``signer_set``; refused ones are logged and skipped.

    With ``is_revoked``, the signers' revocation is asked before they are
    swapped in (a revoked new signer never signs). Returns False (and keeps
    the previous signers) when nothing usable was loaded.
    """
    signers, refused = load_signers(
        ca, ca_certificate, signer_set.clock.now(), strict=False, reuse=signer_set.signers
    )
    if not signers:
        log.error("CA %s: reload found no usable signer; keeping the %d loaded before",
                  ca.name, len(signer_set.signers))
        return False
    before = {s.certificate for s in signer_set.signers}
    signer_set.replace(signers, refused, is_revoked=is_revoked)
    for signer in signers:
        if signer.certificate not in before:  # said once per server: by the set that announces (the supervisor)
            log.log(logging.WARNING if signer_set.announce else logging.DEBUG, "CA %s: signer %s installed (valid %s to %s)",
                    ca.name, signer.name, f"{signer.not_before:%Y-%m-%d %H:%M:%SZ}", f"{signer.not_after:%Y-%m-%d %H:%M:%SZ}")
    return True


def _fingerprint(folder: Path | None) -> tuple:
    if folder is None:
        return ()
    try:
        entries = sorted(os.scandir(folder), key=lambda e: e.name)
        return tuple((e.name, e.stat().st_mtime_ns, e.stat().st_size) for e in entries if e.is_file())
    except OSError:
        return ("unreadable",)


class SignerWatcher:
    """Keeps the signers of the served CAs current, in a daemon thread.

    Re-reads the ``signers_dir`` of a CA when a file in it changed (looks
    every ``min(signers_rescan)`` seconds); with ``revocations`` and
    ``open_store`` (returns a new StatusStore, opened and closed in this
    thread per round) it asks the store about the new signers before using
    them, and re-checks every signer's revocation every ``recheck_seconds``
    (a safety net: store changes are followed at once, see
    :mod:`certstatus.signing.revocation`). :meth:`trigger` (SIGHUP) makes it
    reload every CA and re-check at once. ``cas`` are ServedCA objects
    (``settings``, ``certificate``, ``issuer_id``, ``signers``).
    """

    def __init__(
        self,
        cas: Iterable,
        *,
        revocations: SignerRevocations | None = None,
        open_store: Callable[[], object] | None = None,
        recheck_seconds: float = RECHECK_SECONDS,
    ) -> None:
        self.cas = [ca for ca in cas if ca.signers is not None and ca.settings.signers_dir is not None]
        self.revocations = revocations if open_store is not None else None
        self.open_store = open_store
        self.recheck_seconds = recheck_seconds
        self._wake = threading.Event()
        self._forced = False
        self._stop = False
        self._seen = {ca.name: _fingerprint(ca.settings.signers_dir) for ca in self.cas}
        periods = [ca.settings.signers_rescan for ca in self.cas]
        if self.revocations is not None:
            periods.append(recheck_seconds)
        self.period = min(periods, default=60)
        self._next_recheck = time.monotonic() + recheck_seconds
        self._store = None  # opened per round (check), in this thread
        self._store_failed = False
        self._thread = threading.Thread(target=self._run, name="certstatus-signer-watcher", daemon=True)

    def start(self) -> "SignerWatcher":
        if self.cas or (self.revocations is not None and self.revocations.watched):
            self._thread.start()
        return self

    def trigger(self) -> None:
        """Reload every CA's signers now (from a signal handler: only sets a flag)."""
        self._forced = True
        self._wake.set()

    def stop(self) -> None:
        self._stop = True
        self._wake.set()

    def check(self, force: bool = False) -> None:
        """Reload the CAs whose signers_dir changed (all of them when ``force``); re-check revocations when due."""
        try:
            for ca in self.cas:
                seen = _fingerprint(ca.settings.signers_dir)
                if force or seen != self._seen.get(ca.name):
                    self._seen[ca.name] = seen
                    try:
                        store = self._round_store()
                        lookup = None if store is None else revocation_lookup(store, ca.issuer_id)
                        reload_signer_set(ca.signers, ca.settings, ca.certificate, is_revoked=lookup)
                    except Exception:  # never let the watcher die: the previous signers keep serving
                        log.exception("CA %s: reloading signers failed; keeping the previous ones", ca.name)
            if self.revocations is not None and (force or time.monotonic() >= self._next_recheck):
                self._next_recheck = time.monotonic() + self.recheck_seconds
                store = self._round_store()
                if store is not None:
                    try:
                        self.revocations.check(store)
                    except Exception:  # never let the watcher die
                        log.exception("re-checking the signers' revocation failed; next try in %.0f s", self.recheck_seconds)
        finally:
            self._close_round_store()

    def _round_store(self):
        """This round's store, opened in this thread on first use; None when there is none or it cannot be opened."""
        if self._store is None and self.open_store is not None and not self._store_failed:
            try:
                self._store = self.open_store()
            except Exception as exc:  # the store is down: the signers keep their last known state
                self._store_failed = True
                log.info("cannot open the store to check the signers' revocation (%s: %s); next try in %.0f s",
                         type(exc).__name__, exc, self.period)
        return self._store

    def _close_round_store(self) -> None:
        store, self._store, self._store_failed = self._store, None, False
        if store is not None:
            with contextlib.suppress(Exception):
                store.close()

    def _run(self) -> None:
        while not self._stop:
            self._wake.wait(self.period)
            self._wake.clear()
            if self._stop:
                return
            forced, self._forced = self._forced, False
            self.check(force=forced)


def start_signer_watcher(
    cas: Iterable, *, revocations: SignerRevocations | None = None, open_store: Callable[[], object] | None = None
) -> SignerWatcher:
    """Start a :class:`SignerWatcher` over ``cas``; SIGHUP forces a reload.

    The SIGHUP handler is installed only from a process's main thread, where
    SIGHUP has its default action or a Python handler (which is chained); the
    server's supervisor owns its own SIGHUP and replaces the workers.
    """
    watcher = SignerWatcher(cas, revocations=revocations, open_store=open_store).start()
    if watcher.cas and threading.current_thread() is threading.main_thread() and hasattr(signal, "SIGHUP"):
        previous = signal.getsignal(signal.SIGHUP)
        if previous == signal.SIG_DFL or callable(previous):

            def on_hangup(signum, frame) -> None:
                watcher.trigger()
                if callable(previous):
                    previous(signum, frame)

            signal.signal(signal.SIGHUP, on_hangup)
    return watcher
