"""Several signers per CA: which one signs now, rollover, expiry warnings.

The current signer is chosen at request time from the injected clock:
among the signers valid now (notBefore ≤ now ≤ notAfter) and not revoked by
the CA's own data, the one with the latest notBefore. A successor is used
the moment it becomes valid; an expired signer is never used. The choice is
cached until the next instant it can change (a notBefore or notAfter, the
expiry-warning threshold) or until the revocation state changes, so a
request pays one comparison.

Revocation state is handed in, never read on the request path: whoever owns
a store connection in its thread calls :meth:`SignerSet.check_revocations`
with a lookup bound to it (:mod:`certstatus.signing.revocation` does so when
the store changes). A newly revoked signer is logged once per process: at
warning (a successor signs) or error (none is left: tryLater) where the
SignerSet has ``announce`` set (the server's supervisor), at debug elsewhere.

RFC 6960 §4.4.7.2: when a request carries preferred signature algorithms,
the responder picks (1) the first of them a usable signer's key can produce,
else (2) the algorithm of the CA's CRL, else (3) that of the request's own
signature, when a usable signer can produce it; otherwise the default
signer and algorithm (4/5). Without the extension, the default is used.

Hybrid rollout: a post-quantum (ML-DSA) signer is the default only when the
CA has no usable signer of another algorithm. Beside an ECDSA or RSA signer
it answers the clients that list ML-DSA in their preferred signature
algorithms, and every other client gets the classical signature it can
verify (most clients cannot verify ML-DSA yet).
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from certstatus.clock import Clock, SystemClock
from certstatus.errors import SignerUnavailable
from certstatus.signing.algorithms import BY_OID
from certstatus.signing.signer import ResponseSigner

log = logging.getLogger("certstatus.signing")

_TICK = dt.timedelta(microseconds=1)
_NEVER = dt.datetime.max.replace(tzinfo=dt.timezone.utc)
#: The revoked set of almost every CA: one object (an empty frozenset built from a generator is a new 216-byte
#: object, twice per CA; 4 MB of a worker's memory with 10 000 CAs).
_NONE_REVOKED: frozenset[int] = frozenset()
#: Repeat an expiry warning at most this often (per signer).
WARNING_REPEAT = dt.timedelta(hours=1)


@dataclass(frozen=True)
class RefusedSigner:
    """A configured signer that failed validation: ``reason`` is the operator message."""

    name: str
    reason: str


@dataclass(frozen=True)
class SignerState:
    """One signer as an operator sees it (``certstatus signers``, metrics).

    ``state`` is ``active`` (signs now: the default signer, and beside a
    classical one the post-quantum signer that answers clients asking for
    ML-DSA), ``standby`` (valid, not chosen),
    ``next`` (not yet valid, will take over), ``expired`` or ``revoked``.
    ``seconds_left`` is notAfter - now in seconds (negative once expired).
    ``has_successor`` says whether a non-revoked signer outlives it;
    ``warning`` whether it is active, expires within the warning time and has none.
    """

    ca: str
    name: str
    subject: str
    serial_number: int
    algorithm: str
    not_before: dt.datetime
    not_after: dt.datetime
    state: str
    locally_trusted: bool
    seconds_left: float
    has_successor: bool
    warning: bool


#: ``is_revoked(signer) -> bool``: does the CA's own data revoke this delegated responder certificate?
RevocationLookup = Callable[[ResponseSigner], bool]


def checks_revocation(signer: ResponseSigner) -> bool:
    """Whether the CA's own data can revoke ``signer``: a delegated responder certificate issued by the CA
    (the CA's own key and a locally trusted responder are not in its data)."""
    return signer.is_delegated and not signer.locally_trusted


@dataclass(frozen=True)
class _Revocations:
    """What one revocation check changed: signers newly revoked or no longer revoked, and who signs now."""

    revoked: tuple[ResponseSigner, ...]
    cleared: tuple[ResponseSigner, ...]
    active: ResponseSigner | None
    changed: bool


class SignerSet:
    """The signers of one CA and the rule that picks the one signing now.

    ``expiry_warning`` is in seconds. ``crl_signature_oid`` is the CA's CRL
    signature algorithm (RFC 6960 §4.4.7.2 step 2), when known. Which
    delegated signers the CA's own data revokes is learnt from
    :meth:`check_revocations` (and :meth:`replace`); ``announce`` makes this
    set log what changed at warning/error level (one process per server
    does: the supervisor), the others log it at debug.
    """

    __slots__ = ("_cache", "_last_warned", "_lock", "_revoked", "_signers", "_told", "_unusable_logged", "announce", "ca_name", "clock", "crl_signature_oid", "expiry_warning", "refused", "revoked_certificates", "warnings_total")

    def __init__(
        self,
        ca_name: str,
        signers: Iterable[ResponseSigner],
        clock: Clock,
        *,
        expiry_warning: int = 14 * 86400,
        crl_signature_oid: str | None = None,
        refused: Sequence[RefusedSigner] = (),
        announce: bool = False,
    ) -> None:
        self.ca_name = ca_name
        self.clock = clock
        self.expiry_warning = dt.timedelta(seconds=expiry_warning)
        self.crl_signature_oid = crl_signature_oid
        self.announce = announce
        #: Expiry warnings logged so far (a counter for metrics exporters).
        self.warnings_total = 0
        #: DER of the responder certificates the CA's own data revokes (empty almost always): a stored
        #: response carrying one is not served (:class:`certstatus.pipeline.precomputed.PrecomputedLookup`).
        self.revoked_certificates: tuple[bytes, ...] = ()
        self._lock = threading.Lock()
        self._last_warned: dict[int, dt.datetime] = {}
        self._unusable_logged = False
        self._signers: tuple[ResponseSigner, ...] = ()
        self._revoked: frozenset[int] = _NONE_REVOKED  # serial numbers of loaded signers the CA's data revokes
        self._told: frozenset[int] = _NONE_REVOKED  # the revocations logged so far
        self.refused: tuple[RefusedSigner, ...] = ()
        self.replace(signers, refused)

    @classmethod
    def single(cls, signer: ResponseSigner, clock: Clock | None = None) -> "SignerSet":
        """A set of one signer (for callers that build a ResponseSigner themselves)."""
        return cls(signer.ca_certificate.subject.rfc4514_string(), [signer], clock or SystemClock())

    @property
    def signers(self) -> tuple[ResponseSigner, ...]:
        """Every loaded signer, expired and future ones included."""
        return self._signers

    def replace(
        self,
        signers: Iterable[ResponseSigner],
        refused: Sequence[RefusedSigner] = (),
        is_revoked: RevocationLookup | None = None,
    ) -> None:
        """Swap in a new list of signers (reload); the next request chooses among them.

        With ``is_revoked`` (a lookup bound to a store of the calling
        thread) the new signers' revocation is asked first, so a revoked one
        is never chosen; without it, a signer keeps the state last learnt
        for its serial number (unknown ones count as not revoked).
        """
        signers = tuple(signers)
        answers = self._ask(signers, is_revoked) if is_revoked is not None else {}
        with self._lock:
            self._signers = signers
            self.refused = tuple(refused)
            self._cache: tuple[dt.datetime, dt.datetime, tuple[ResponseSigner, ...]] | None = None
            report = self._apply(answers, force=True)
        self._tell(report)

    def check_revocations(self, is_revoked: RevocationLookup) -> bool:
        """Ask ``is_revoked`` about every delegated signer and use the answers from the next request on.

        ``is_revoked(signer) -> bool`` reads the CA's own data (the store)
        in the calling thread. A signer it fails for (the store is down)
        keeps its last known state. Newly revoked signers are logged (see
        the class). Returns True when the set of revoked signers changed.
        """
        answers = self._ask(self._signers, is_revoked)
        with self._lock:
            report = self._apply(answers)
        self._tell(report)
        return report.changed

    def _ask(self, signers: Sequence[ResponseSigner], is_revoked: RevocationLookup) -> dict[int, bool]:
        """Serial number → revoked, for each signer the CA's data can revoke and ``is_revoked`` answered for."""
        answers: dict[int, bool] = {}
        for signer in signers:
            if not checks_revocation(signer):
                continue
            try:
                answers[signer.certificate.serial_number] = bool(is_revoked(signer))
            except Exception as exc:  # the store is down: keep what was known, say so
                log.log(
                    logging.WARNING if self.announce else logging.DEBUG,
                    "CA %s: cannot check whether signer %s is revoked (%s: %s); it keeps its last known state",
                    self.ca_name, signer.name, type(exc).__name__, exc,
                )  # fmt: skip
        return answers

    def _apply(self, answers: dict[int, bool], *, force: bool = False) -> _Revocations:
        """Take ``answers`` (under the lock): the new revoked set, what changed, the signer now active."""
        serials = {s.certificate.serial_number for s in self._signers if checks_revocation(s)}
        revoked = frozenset(
            serial for serial in serials if answers.get(serial, serial in self._revoked)
        ) or _NONE_REVOKED  # fmt: skip
        changed = revoked != self._revoked
        if changed or force:
            self._revoked = revoked
            self._cache = None
            self.revoked_certificates = tuple(
                s.certificates_der[0] for s in self._signers if checks_revocation(s) and s.certificate.serial_number in revoked
            )  # fmt: skip
        newly = revoked - self._told
        cleared = (self._told & serials) - revoked
        self._told = revoked
        if not (newly or cleared):
            return _Revocations((), (), None, changed)
        now = self.clock.now()
        cache = self._cache
        if cache is not None and cache[0] <= now < cache[1]:
            usable = cache[2]
        else:  # what revocations change is logged once, by _tell: not a second time by _refresh
            usable = self._refresh(now, quiet=True)
        by_serial = {s.certificate.serial_number: s for s in self._signers}
        return _Revocations(
            tuple(by_serial[serial] for serial in sorted(newly)),
            tuple(by_serial[serial] for serial in sorted(cleared)),
            usable[0] if usable else None,
            changed,
        )

    def _tell(self, report: _Revocations) -> None:
        """Log what a revocation check changed: warning/error where ``announce``, debug elsewhere."""
        for signer in report.revoked:
            what = (
                f"CA {self.ca_name}: the responder certificate of signer {signer.name} "
                f"(serial {signer.certificate.serial_number:X}, {signer.certificate.subject.rfc4514_string()}) "
                "is revoked by the CA's own data; it signs no more"
            )
            if report.active is None:
                level = logging.ERROR
                message = (f"{what}, and no other signer is valid now: answering tryLater until one is installed "
                           "(certstatus signer new / signer add)")
            else:
                level = logging.WARNING
                message = (f"{what}; signer {report.active.name} signs from now on. Remove the revoked one "
                           "from the configuration or signers_dir")
            log.log(level if self.announce else logging.DEBUG, "%s", message)
        for signer in report.cleared:
            log.log(
                logging.INFO if self.announce else logging.DEBUG,
                "CA %s: signer %s (serial %X) is no longer revoked by the CA's own data; it may sign again",
                self.ca_name, signer.name, signer.certificate.serial_number,
            )  # fmt: skip

    # -- request path ----------------------------------------------------------

    def usable(self, now: dt.datetime | None = None) -> tuple[ResponseSigner, ...]:
        """The signers that may sign at ``now``, the default one first (latest notBefore)."""
        now = now or self.clock.now()
        cache = self._cache
        if cache is not None and cache[0] <= now < cache[1]:
            return cache[2]
        with self._lock:
            return self._refresh(now)

    def select(
        self,
        preferred: Sequence[str] = (),
        request_signature_oid: str | None = None,
        now: dt.datetime | None = None,
    ) -> ResponseSigner:
        """Return the signer (with the algorithm) for one response (RFC 6960 §4.4.7.2).

        ``preferred`` are the request's preferred sigIdentifier OIDs in the
        client's order; ``request_signature_oid`` the algorithm of the
        request's signature. Raises :class:`SignerUnavailable` when no signer
        is valid at ``now``.
        """
        usable = self.usable(now)
        if not usable:
            raise SignerUnavailable(f"CA {self.ca_name} has no signer valid now")
        if preferred:
            for oid in (*preferred, self.crl_signature_oid, request_signature_oid):
                algorithm = BY_OID.get(oid) if oid else None
                if algorithm is None:
                    continue
                for signer in usable:
                    if signer.algorithm is algorithm:
                        return signer
                for signer in usable:
                    if signer.can_sign_with(algorithm):
                        return signer.with_algorithm(algorithm)
        return usable[0]

    def current(self) -> ResponseSigner:
        """The default signer at the clock's now; raises :class:`SignerUnavailable` if none."""
        return self.select()

    # -- choice and warnings -------------------------------------------------

    def _revoked_now(self, signer: ResponseSigner) -> bool:
        return signer.certificate.serial_number in self._revoked and checks_revocation(signer)

    def _refresh(self, now: dt.datetime, *, quiet: bool = False) -> tuple[ResponseSigner, ...]:
        """Choose anew (under the lock). ``quiet``: having no signer is logged by the caller."""
        usable = sorted(  # classical signers before post-quantum ones (module docstring), then latest notBefore
            (s for s in self._signers if s.valid_at(now) and not self._revoked_now(s)),
            key=lambda s: (not s.algorithm.post_quantum, s.not_before),
            reverse=True,
        )
        until = _NEVER
        for signer in self._signers:
            for edge in (signer.not_before, signer.not_after + _TICK, signer.not_after - self.expiry_warning):
                if now < edge < until:
                    until = edge
        self._cache = (now, until, tuple(usable))
        if usable:
            if self._unusable_logged and not quiet:
                log.warning("CA %s: signer %s is valid again; signing resumed", self.ca_name, usable[0].name)
            self._unusable_logged = False
            for signer in active_signers(usable):
                self._warn_expiry(signer, now)
        elif not self._unusable_logged:
            self._unusable_logged = True
            if not quiet:
                log.error(
                    "CA %s has no signer valid now (%d configured: expired, not yet valid or revoked); answering "
                    "tryLater until one is installed (certstatus signer new / signer add)",
                    self.ca_name, len(self._signers),
                )
        return self._cache[2]

    def _has_successor(self, signer: ResponseSigner, now: dt.datetime) -> bool:
        """Whether a non-revoked signer of the same kind (post-quantum or not) outlives ``signer``: an ML-DSA
        signer does not relieve an ECDSA one, since it would then answer clients that cannot verify it."""
        return any(
            other is not signer and other.not_after > signer.not_after and not self._revoked_now(other)
            and other.algorithm.post_quantum == signer.algorithm.post_quantum
            for other in self._signers
        )  # fmt: skip

    def _warn_expiry(self, active: ResponseSigner, now: dt.datetime) -> None:
        if active.not_after - now > self.expiry_warning or self._has_successor(active, now):
            return
        last = self._last_warned.get(id(active))
        if last is not None and now - last < WARNING_REPEAT:
            return
        self._last_warned[id(active)] = now
        self.warnings_total += 1
        log.warning(
            "CA %s: the active signer %s expires at %s (in %s) and no successor is installed; "
            "make one with `certstatus signer new` and install it with `certstatus signer add`",
            self.ca_name, active.name, f"{active.not_after:%Y-%m-%d %H:%M:%SZ}", active.not_after - now,
        )

    # -- reporting -------------------------------------------------------------

    def states(self, now: dt.datetime | None = None) -> list[SignerState]:
        """Every signer with its state at ``now`` (for ``certstatus signers`` and metrics)."""
        now = now or self.clock.now()
        active = active_signers(self.usable(now))
        states = []
        for signer in sorted(self._signers, key=lambda s: s.not_before):
            if signer in active:
                state = "active"
            elif self._revoked_now(signer):
                state = "revoked"
            elif now > signer.not_after:
                state = "expired"
            elif now < signer.not_before:
                state = "next"
            else:
                state = "standby"
            has_successor = self._has_successor(signer, now)
            states.append(
                SignerState(
                    ca=self.ca_name,
                    name=signer.name,
                    subject=signer.certificate.subject.rfc4514_string(),
                    serial_number=signer.certificate.serial_number,
                    algorithm=signer.algorithm.name,
                    not_before=signer.not_before,
                    not_after=signer.not_after,
                    state=state,
                    locally_trusted=signer.locally_trusted,
                    seconds_left=(signer.not_after - now).total_seconds(),
                    has_successor=has_successor,
                    warning=state == "active" and signer.not_after - now <= self.expiry_warning and not has_successor,
                )
            )
        return states


def active_signers(usable: Sequence[ResponseSigner]) -> tuple[ResponseSigner, ...]:
    """The signers of :meth:`SignerSet.usable` that sign now: the default one (first) and, beside a
    classical default, the first post-quantum one (for clients that prefer ML-DSA)."""
    first = {}
    for signer in usable:
        first.setdefault(signer.algorithm.post_quantum, signer)
    return tuple(first.values())


def signer_expiry(signer_sets: Iterable[SignerSet], now: dt.datetime | None = None) -> list[SignerState]:
    """Expiry data of every signer of every CA, for a Prometheus exporter.

    Exported (:mod:`certstatus.metrics`) as ``certstatus_signer_not_after_timestamp_seconds{ca,signer}``,
    ``certstatus_signer_state{ca,signer,state}`` and ``certstatus_signer_expiry_warning{ca,signer}``.
    """
    found = []
    for signer_set in signer_sets:
        found.extend(signer_set.states(now))
    return found
