"""The status store interface: certificate status rows keyed on (issuer, serial).

Importers write whole sources (a CRL, an index file, a list of issued
serials) with :meth:`StatusStore.replace_source`, in one transaction; the
request path reads with :meth:`StatusStore.lookup`. Rows are keyed on the
issuer *and* the serial, never on the serial alone: two CAs may issue the
same serial.

Pre-signed responses (precomputed and cached modes) live beside the status
rows, keyed on (issuer, serial, CertID hash algorithm): the generator
(:mod:`certstatus.generator`) writes them with
:meth:`StatusStore.store_precomputed`, the request path reads them with
:meth:`StatusStore.precomputed`. An import or push that changes serials'
statuses marks their stored responses changed in its own transaction: they
stop being served at once (until re-signed), and the issuer's change
counter tells caches in every process (:mod:`certstatus.store.changes`).
An import that changes no status (a CRL re-issued with the same entries)
writes only its source state and leaves the counter alone.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence, Set
from dataclasses import dataclass
from typing import Any, Protocol

from cryptography import x509

from certstatus.model import REASON_CODES, REASONS_BY_CODE, CertStatusRecord, IssuedCertificate, RevokedEntry, serial_key


@dataclass(frozen=True, slots=True)
class SourceState:
    """The last successful import of one source of one issuer.

    ``kind`` is ``"crl"`` (complete CRL), ``"delta"`` (delta CRL, RFC 5280
    §5.2.4), ``"index"``, ``"issued"`` or ``"push"``; ``origin`` the path or
    URL; times are aware UTC (``this_update``/``next_update`` from a CRL,
    None for other kinds); ``entries`` the number of rows imported;
    ``fingerprint`` the hex SHA-256 of the bytes imported and what they were
    read with (:func:`certstatus.sources.importer.source_fingerprint`), None
    when unknown (another kind, or a row written before schema version 5).
    """

    kind: str
    origin: str
    imported_at: dt.datetime
    entries: int
    this_update: dt.datetime | None = None
    next_update: dt.datetime | None = None
    crl_number: int | None = None
    fingerprint: str | None = None


@dataclass(frozen=True, slots=True)
class PrecomputedResponse:
    """A pre-signed OCSPResponse as the request path serves it.

    ``der`` is the complete OCSPResponse (one SingleResponse, no nonce) for
    the canonical CertID of its hash algorithm; ``this_update`` and
    ``next_update`` (aware UTC) are those of its SingleResponse, and
    producedAt equals ``this_update``.
    """

    der: bytes
    this_update: dt.datetime
    next_update: dt.datetime


@dataclass(frozen=True, slots=True)
class SignedResponse:
    """One response written by the generator (:meth:`StatusStore.store_precomputed`).

    ``renew_at`` (aware UTC) is when the generator signs it again
    (:func:`certstatus.response_refresh.renew_at`).
    """

    serial_number: int
    hash_algorithm: str
    response: PrecomputedResponse
    renew_at: dt.datetime


#: CertID hash algorithms of the pre-signed responses (RFC 9919 §3.1.1: SHA-1 and SHA-256),
#: in the order of :attr:`SignedBatch.rows`.
PRECOMPUTED_HASH_ALGORITHMS = ("sha1", "sha256")


@dataclass(frozen=True, slots=True)
class SignedBatch:
    """One batch of the generator in the store's compact form (:meth:`StatusStore.store_signed`).

    Every response of the batch was signed at one time by one signer, so
    they share ``this_update`` (= producedAt), ``next_update`` and
    ``renew_at`` (aware UTC) and the certificates they carry.
    ``certificates_element`` is that ``[0] EXPLICIT SEQUENCE OF
    Certificate`` DER (:func:`certstatus.der.certificates_element`;
    ``b""``: none), stored once, not in every row. ``rows`` are
    ``(serial_key(serial), body per hash algorithm of
    PRECOMPUTED_HASH_ALGORITHMS)``, a *body* being the BasicOCSPResponse
    content without the certificates (tbsResponseData, signatureAlgorithm,
    signature: :meth:`~certstatus.protocol.fast_response.ResponseWrapper.body`);
    :meth:`StatusStore.precomputed` returns the complete OCSPResponse.
    ``profile`` is the CA's :attr:`~certstatus.config.CaSettings.signing_profile`
    the responses were signed under.
    """

    certificates_element: bytes
    this_update: dt.datetime
    next_update: dt.datetime
    renew_at: dt.datetime
    rows: Sequence[tuple[bytes, bytes, bytes]]
    profile: int = 0


#: The work kinds of :meth:`StatusStore.pending_precomputed`, in the order the generator does them.
WORK_KINDS = ("changed", "missing", "due")

#: The columns of the ``sources`` table, in the order :func:`source_state_from_row` reads them.
SOURCE_COLUMNS = "kind, origin, imported_at, entries, this_update, next_update, crl_number, fingerprint"


def source_state_from_row(row: Sequence[Any], to_datetime: Callable[[Any], dt.datetime | None]) -> SourceState:
    """A :class:`SourceState` from a ``sources`` row (columns :data:`SOURCE_COLUMNS`).

    ``to_datetime`` turns the backend's stored time into an aware UTC datetime
    (None stays None); ``crl_number`` may be stored as text or numeric.
    """
    return SourceState(
        kind=row[0],
        origin=row[1],
        imported_at=to_datetime(row[2]),
        entries=row[3],
        this_update=to_datetime(row[4]),
        next_update=to_datetime(row[5]),
        crl_number=None if row[6] is None else int(row[6]),
        fingerprint=row[7],
    )


@dataclass(frozen=True, slots=True)
class ChangeCount:
    """What one import (:meth:`StatusStore.replace_source`) or push (:meth:`StatusStore.apply_changes`) changed.

    ``rows``: status rows (``issued``, ``revoked``) inserted, deleted or
    updated (a revocation whose time, reason or invalidity date changed is
    one or two rows, by backend); ``sources``: source kinds the issuer gained
    (a kind's first import: the CA now has data) or lost (``drop_kinds``).
    False when both are 0: the store then leaves the issuer's change counter
    alone (no cache drops the issuer, the generator starts no pass), and
    writes only the new source state (times, ``entries``).
    """

    rows: int = 0
    sources: int = 0

    def __bool__(self) -> bool:
        return bool(self.rows or self.sources)


def count_changes(rows: int, kinds_before: Set[str], kind: str, drop_kinds: Sequence[str] = ()) -> ChangeCount:
    """The :class:`ChangeCount` of a write of ``rows`` status rows that saved source ``kind`` and
    dropped ``drop_kinds``, to an issuer whose source kinds were ``kinds_before`` (read in the
    write's transaction)."""
    lost = {other for other in drop_kinds if other in kinds_before and other != kind}
    return ChangeCount(rows, (kind not in kinds_before) + len(lost))


def source_marks(rows: Iterable[Sequence[Any]]) -> dict[int, tuple]:
    """{issuer id: its source states} from ``sources`` rows ``(issuer_id, kind, imported_at, this_update,
    next_update)`` in any order: values to compare with those of an earlier call
    (:meth:`StatusStore.source_marks`), in the backend's own encoding."""
    marks: dict[int, list] = {}
    for row in rows:
        marks.setdefault(row[0], []).append(tuple(row[1:]))
    return {issuer_id: tuple(sorted(states)) for issuer_id, states in marks.items()}


#: Source kinds whose rows form the CRL view (RFC 5280 §5.2.4): a "delta" row
#: for a serial replaces the "crl" row, and a delta removeFromCRL row removes it.
CRL_KIND, DELTA_KIND, PUSH_KIND = "crl", "delta", "push"
#: The rows of revocations kept after a CRL dropped them (``replace_source(..., archive_removed=True)``):
#: a source kind of its own, without a source state, never replaced.
ARCHIVE_KIND = "archive"
#: CRL reason codes never archived: certificateHold (it may be released) and removeFromCRL (a release).
ARCHIVE_EXCLUDED_REASONS = (REASON_CODES[x509.ReasonFlags.certificate_hold], REASON_CODES[x509.ReasonFlags.remove_from_crl])


def issued_entries(issued: Iterable[int | IssuedCertificate]) -> dict[bytes, IssuedCertificate]:
    """``replace_source``'s ``issued`` keyed on :func:`serial_key`, serials given alone made
    :class:`IssuedCertificate` s; of a serial listed twice, the last entry wins."""
    entries: dict[bytes, IssuedCertificate] = {}
    for item in issued:
        entry = IssuedCertificate(item) if isinstance(item, int) else item
        entries[serial_key(entry.serial_number)] = entry
    return entries


def archive_kinds(kind: str, drop_kinds: Sequence[str]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """For an import of ``kind`` dropping ``drop_kinds``: (the CRL-view kinds whose removed
    revocations are archived, the CRL-view kinds that stay and still list theirs)."""
    replaced = tuple(k for k in (kind, *drop_kinds) if k in (CRL_KIND, DELTA_KIND))
    return replaced, tuple(k for k in (CRL_KIND, DELTA_KIND) if k not in replaced)


@dataclass(frozen=True, slots=True)
class StatusChange:
    """One pushed change of one serial (``certstatus revoke|unrevoke|issue``, admin API).

    ``action`` is ``"revoke"`` (needs ``revocation_time``, aware UTC),
    ``"unrevoke"`` (drops a pushed revocation) or ``"issue"`` (the serial
    was issued). ``reason`` and ``invalidity_date`` as in RFC 5280 §5.3.
    """

    action: str
    serial_number: int
    revocation_time: dt.datetime | None = None
    reason: x509.ReasonFlags | None = None
    invalidity_date: dt.datetime | None = None


def revocations_by_source(
    serial_number: int,
    rows: Iterable[tuple[str, dt.datetime, x509.ReasonFlags | None, dt.datetime | None]],
) -> dict[str, RevokedEntry]:
    """Each source's revocation of one serial: {source kind: entry}, from its rows of every source.

    ``rows`` are ``(source kind, revocation_time, reason, invalidity_date)``.
    The CRL view is base + delta (RFC 5280 §5.2.4): a ``delta`` row replaces
    the ``crl`` row of the same serial, and a delta row with reason
    removeFromCRL (a released certificateHold) leaves no CRL revocation.
    """
    by_source = {row[0]: row for row in rows}
    delta = by_source.pop(DELTA_KIND, None)
    if delta is not None:
        by_source.pop(CRL_KIND, None)
        if delta[2] is not x509.ReasonFlags.remove_from_crl:
            by_source[DELTA_KIND] = delta
    return {kind: RevokedEntry(serial_number, *row[1:]) for kind, row in by_source.items()}


def combine_revocations(
    serial_number: int,
    rows: Iterable[tuple[str, dt.datetime, x509.ReasonFlags | None, dt.datetime | None]],
) -> RevokedEntry | None:
    """The revocation the store reports for one serial, from its rows of every source.

    ``rows`` as in :func:`revocations_by_source` (the CRL view applies); across
    sources, the earliest revocation wins. Every store implementation reads its
    rows and calls this, so they answer alike.
    """
    by_source = revocations_by_source(serial_number, rows)
    if not by_source:
        return None
    return min(by_source.values(), key=lambda entry: entry.revocation_time)


def _typed_rows(
    rows: Iterable[Sequence[Any]], to_datetime: Callable[[Any], dt.datetime]
) -> Iterator[tuple[str, dt.datetime, x509.ReasonFlags | None, dt.datetime | None]]:
    for r in rows:
        yield r[0], to_datetime(r[1]), None if r[2] is None else REASONS_BY_CODE[r[2]], None if r[3] is None else to_datetime(r[3])


def revocation_from_rows(
    serial_number: int, rows: Iterable[Sequence[Any]], to_datetime: Callable[[Any], dt.datetime]
) -> RevokedEntry | None:
    """:func:`combine_revocations` over stored ``revoked`` rows ``(source, revocation_time, reason code,
    invalidity_date)``, their times converted by the backend's ``to_datetime`` (UTC)."""
    return combine_revocations(serial_number, _typed_rows(rows, to_datetime))


def revocations_from_rows(
    serial_number: int, rows: Iterable[Sequence[Any]], to_datetime: Callable[[Any], dt.datetime]
) -> dict[str, RevokedEntry]:
    """:func:`revocations_by_source` over stored ``revoked`` rows (as :func:`revocation_from_rows`)."""
    return revocations_by_source(serial_number, _typed_rows(rows, to_datetime))


def status_records(
    serial_numbers: Sequence[int],
    keys: Sequence[bytes],
    issued: Mapping[bytes, bytes | None],
    revoked: dict[bytes, list[Sequence[Any]]],
    to_datetime: Callable[[Any], dt.datetime],
) -> dict[int, CertStatusRecord]:
    """``lookup_many``'s result from the statuses a backend read: ``keys`` are the serials'
    :func:`serial_key`, ``issued`` the keys some source lists with their certificate hash (None when
    unknown: :func:`issued_hashes`), ``revoked`` the ``revoked`` rows by key (see
    :func:`revocation_from_rows`). A serial no source knows is left out."""
    records = {}
    for serial, key in zip(serial_numbers, keys, strict=True):
        rows = revoked.get(key)
        entry = None if rows is None else revocation_from_rows(serial, rows, to_datetime)
        if entry is None and key not in issued:
            continue
        records[serial] = CertStatusRecord(issued=key in issued, revoked=entry, cert_hash=issued.get(key))
    return records


def issued_hashes(rows: Iterable[Sequence[Any]]) -> dict[bytes, bytes | None]:
    """{serial key: certificate hash or None} from ``issued`` rows ``(serial, cert_hash)`` of any number of
    sources; a serial two sources list keeps the hash one of them knows."""
    found: dict[bytes, bytes | None] = {}
    for serial, cert_hash in rows:
        key = bytes(serial)
        if cert_hash is not None or key not in found:
            found[key] = None if cert_hash is None else bytes(cert_hash)
    return found


def precomputed_rows(
    responses: Iterable[SignedResponse],
) -> list[tuple[bytes, tuple[dt.datetime, dt.datetime, dt.datetime], list[bytes | None]]]:
    """``store_precomputed``'s input as one row per serial: (serial key, (thisUpdate, nextUpdate,
    renew_at), DER per :data:`PRECOMPUTED_HASH_ALGORITHMS`, None where not given).

    Raises ValueError, before anything is written, for a hash algorithm outside
    :data:`PRECOMPUTED_HASH_ALGORITHMS` or for responses of one serial whose times differ.
    """
    by_serial: dict[int, dict[str, SignedResponse]] = {}
    for item in responses:
        if item.hash_algorithm not in PRECOMPUTED_HASH_ALGORITHMS:
            raise ValueError(f"pre-signed responses are for {PRECOMPUTED_HASH_ALGORITHMS}, not {item.hash_algorithm!r}")
        by_serial.setdefault(item.serial_number, {})[item.hash_algorithm] = item
    rows = []
    for serial, items in by_serial.items():
        times = {(i.response.this_update, i.response.next_update, i.renew_at) for i in items.values()}
        if len(times) != 1:
            raise ValueError(f"the responses of serial {serial:#x} differ in thisUpdate/nextUpdate/renew_at; store them apart")
        ders = [items[a].response.der if a in items else None for a in PRECOMPUTED_HASH_ALGORITHMS]
        rows.append((serial_key(serial), times.pop(), ders))
    return rows


class StatusReader(Protocol):
    """What the request path reads (its only view of the store): statuses, pre-signed responses, source
    states, and the counters that tell other processes' writes (:mod:`certstatus.store.changes`)."""

    def lookup(self, issuer_id: int, serial_number: int) -> CertStatusRecord | None:
        """Return the status record of (issuer, serial), or None when no source lists it."""

    def precomputed(
        self, issuer_id: int, serial_number: int, hash_algorithm: str, profile: int | None = None
    ) -> PrecomputedResponse | None:
        """Return the pre-signed response of (issuer, serial, CertID hash algorithm).

        None when there is none, when the serial's status changed since it
        was signed, or (``profile`` given) when it was signed under another
        signing profile (:attr:`~certstatus.config.CaSettings.signing_profile`):
        the request path then signs live. Never keyed on the serial alone nor
        on the issuer key hash alone.
        """

    def servable_responses(
        self, issuer_id: int, hash_algorithm: str, profile: int, *, after: bytes = b"", limit: int = 200
    ) -> list[tuple[bytes, PrecomputedResponse]]:
        """Return up to ``limit`` pre-signed responses of the issuer for ``hash_algorithm``, in serial key
        order after the :func:`~certstatus.model.serial_key` ``after`` (``b""``: from the first), as
        ``(serial key, response)``: one statement per call (a slice of the edge cache's fill at a
        worker's start, :mod:`certstatus.server.preload`).

        Only what :meth:`precomputed` would return at the time of the read: the serial's status
        unchanged since it was signed, signed under ``profile``. Whether a response is before its
        refresh point is the caller's to judge. An empty list past the last. ValueError for a hash
        algorithm outside :data:`PRECOMPUTED_HASH_ALGORITHMS`; :class:`StoreUnavailable` as for a lookup.
        """

    def source_states(self, issuer_id: int) -> dict[str, SourceState]:
        """Return the last successful import of each source kind of the issuer."""

    def change_counters(self) -> dict[int, int]:
        """Return {issuer id: change counter}; every write that changes an issuer's statuses grows its counter.

        Other processes compare counters to learn what changed
        (:mod:`certstatus.store.changes`); PostgreSQL also NOTIFYs each one.
        The generator reads the issuer's counter before the statuses it
        signs (:meth:`store_precomputed`); its own writes do not grow it
        (a re-signed response changes no status).
        """

    def source_marks(self) -> dict[int, tuple]:
        """Return {issuer id: a value that changes with every import or push of the issuer}.

        Every import writes its source state (import time, a CRL's
        thisUpdate/nextUpdate) even when it changes no status and leaves the
        change counter alone; :mod:`certstatus.store.changes` compares these
        values to tell the freshness guard. Only equality is meaningful.
        """

    def close(self) -> None:
        """Release the connection."""


class IssuerRegistration(Protocol):
    """Registering an issuer (importers and the generator, when a CA is loaded)."""

    def register_issuer(self, name: str, certificate_der: bytes) -> int:
        """Insert or update the issuer ``name`` and return its numeric id."""


class StatusWriter(StatusReader, IssuerRegistration, Protocol):
    """What the importers and pushes write: whole sources, pushed changes (and what they read to report)."""

    def replace_source(
        self,
        issuer_id: int,
        state: SourceState,
        *,
        issued: Iterable[int | IssuedCertificate] = (),
        revoked: Iterable[RevokedEntry] = (),
        drop_kinds: Sequence[str] = (),
        archive_removed: bool = False,
    ) -> ChangeCount:
        """Replace every row of this issuer's source ``state.kind`` in one transaction; return what changed.

        ``issued`` are serials, or :class:`IssuedCertificate` s with the
        certificate's notAfter and hash when the source gives them. ``drop_kinds`` names
        other source kinds of the issuer whose rows and state are deleted in
        the same transaction (a complete CRL at least as new as the imported
        delta CRL drops the delta).

        ``archive_removed`` (a CA with ``archive_cutoff``; CRL kinds only):
        a revocation of the replaced or dropped CRL kinds that this write
        removes, and that no remaining CRL kind lists, is kept as an
        :data:`ARCHIVE_KIND` row — unless its reason is certificateHold or
        removeFromCRL, or a source lists the certificate as issued with a
        notAfter after ``state.this_update`` (then the CRL released a valid
        certificate, and it is followed). CAs drop expired certificates from
        their CRLs (RFC 5280 §3.3); revocation is final (§5.3.1), and
        ETSI EN 319 411-2 §6.3.10 wants it answered after expiry.

        Only the difference is written. When something changed
        (:class:`ChangeCount`), in the same transaction the issuer's change
        counter grows and the pre-signed responses of every serial whose rows
        changed (added, removed, or revoked differently, in any of the
        replaced kinds) are marked changed, which stops them from being
        served until the generator signs them again. A re-import of the same
        statuses writes only ``state`` and leaves the counter alone.
        """

    def apply_changes(self, issuer_id: int, changes: Sequence[StatusChange], *, at: dt.datetime) -> ChangeCount:
        """Apply pushed changes to the issuer's ``"push"`` source in one transaction; return what changed.

        revoke → insert or replace the pushed revocation; unrevoke → delete
        it; issue → record the serial as issued. The ``"push"`` source state
        gets ``imported_at=at`` and ``entries`` = ``len(changes)`` (the size
        of the last push). ValueError for an unknown action (nothing written).
        As in :meth:`replace_source`, only the pushed serials whose rows
        changed are marked changed, and the counter grows only when some did
        (or when this is the issuer's first push).
        """

    def certificate_not_after(self, issuer_id: int, serial_number: int) -> dt.datetime | None:
        """The certificate's notAfter (aware UTC, whole seconds) as the sources listing (issuer, serial)
        issued give it — an ``index.txt`` expiry field, a certificate in an issued list —, the latest
        when they differ; None when none gives one (a CRL, a bare serial, a push)."""

    def revocations(self, issuer_id: int, serial_number: int) -> dict[str, RevokedEntry]:
        """Return {source kind: its revocation} of (issuer, serial): which sources revoke it
        (:func:`revocations_by_source`: the CRL view applies); {} when none does."""


class GeneratorStore(StatusReader, IssuerRegistration, Protocol):
    """What the generator of pre-signed responses (precomputed and cached modes) plans, reads and writes."""

    def lookup_many(self, issuer_id: int, serial_numbers: Sequence[int]) -> dict[int, CertStatusRecord]:
        """Return the status records of several serials of one issuer (absent ones left out), as :meth:`lookup`."""

    def store_precomputed(
        self, issuer_id: int, responses: Iterable[SignedResponse], *, change_counter: int, remove: Iterable[int] = ()
    ) -> None:
        """Write pre-signed responses and drop those of serials no longer known, in one transaction.

        ``change_counter`` is the issuer's counter (:meth:`change_counters`)
        read before the statuses were looked up. Every write that changes
        serials' statuses marks their responses changed, in its own
        transaction; a response whose status was read before a change that
        committed before this write stays marked changed (unserved) until
        signed again, and a serial in ``remove`` keeps its rows then.
        """

    def store_signed(
        self, issuer_id: int, batch: SignedBatch, *, change_counter: int, remove: Iterable[int] = ()
    ) -> None:
        """:meth:`store_precomputed` for the generator: the same rules, the compact form of :class:`SignedBatch`.

        The certificates are written once per distinct value and spliced back
        by :meth:`precomputed`, so a row holds ~320 bytes per ECDSA response
        instead of ~750.
        """

    def pending_precomputed(
        self, issuer_id: int, kind: str, *, now: dt.datetime, batch_size: int = 1000
    ) -> Iterator[list[int]]:
        """Yield, in batches of at most ``batch_size`` serials, what the generator must (re)sign.

        ``kind`` is one of :data:`WORK_KINDS`: ``"changed"`` — serials whose
        status changed since their responses were signed; ``"missing"`` —
        serials with a status row (issued or revoked) but no response for
        some hash algorithm; ``"due"`` — responses whose renew time is at or
        before ``now``. Each batch is read afresh (keyset pagination), so
        writing between batches is allowed.
        """

    def count_pending(self, issuer_id: int, kind: str, *, now: dt.datetime) -> int:
        """How many serials :meth:`pending_precomputed` would yield for ``kind`` (for progress bars)."""

    def next_renewal(self, issuer_id: int) -> dt.datetime | None:
        """The earliest renew time of the issuer's pre-signed responses, or None when it has none."""

    def precomputed_certificates(self) -> dict[int, bytes]:
        """The certificates the pre-signed responses carry, stored once per signer: id → the DER of
        BasicOCSPResponse's ``certs [0] EXPLICIT SEQUENCE OF Certificate`` (RFC 6960 §4.2.1), the
        responder certificate first. A few entries: one per signer (chain) that ever signed."""

    def drop_precomputed(self, issuer_id: int, certificates_id: int) -> int:
        """Delete the issuer's pre-signed responses that carry the certificates ``certificates_id``
        (:meth:`precomputed_certificates`), in one transaction; return how many serials lost them.

        For responses signed by a responder certificate the CA has since revoked: their serials are
        pending as ``"missing"`` and the generator signs them again.
        """

    def expire_other_profiles(self, issuer_id: int, profile: int) -> int:
        """Make every pre-signed row of the issuer signed under another signing profile due now
        (``renew_at`` in 1970), so the generator's next "due" work re-signs them first; return how many.

        The request path already refuses to serve them (:meth:`precomputed` with ``profile``);
        this only brings their replacement forward. One scan of the issuer's rows.
        """

    def claim_generator(self, issuer_id: int) -> str | None:
        """Become, or stay, the one generator of ``issuer_id`` among the processes sharing the store.

        None when this store instance holds the claim (it lasts until
        :meth:`close` or the end of the process); otherwise a description
        of the holder, for the log. PostgreSQL: a session advisory lock
        (:mod:`certstatus.store.postgres_lock`); SQLite: always None
        (one host; its writers are serialised by the file lock).
        """


class SchemaAdmin(Protocol):
    """Schema migrations (``certstatus db``, and a store opened with ``upgrade``)."""

    def schema_version(self) -> int:
        """The applied schema version (:mod:`certstatus.store.migrations`); 0 for an empty database."""

    def upgrade(self) -> list:
        """Apply the pending schema migrations; return those applied (``certstatus db upgrade``)."""

    def close(self) -> None:
        """Release the connection."""


class StatusStore(StatusWriter, GeneratorStore, SchemaAdmin, Protocol):
    """Storage of issuers and certificate status (SQLite or PostgreSQL): every role, as a backend implements it.

    Callers name the role they use: :class:`StatusReader` on the request path, :class:`StatusWriter`
    for imports and pushes, :class:`GeneratorStore` for the generator, :class:`SchemaAdmin` for
    migrations.
    """
