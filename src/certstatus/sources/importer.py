"""Import the configured sources of one CA into the store, one transaction per source.

Every source is fetched (file, HTTP, LDAP: :mod:`certstatus.sources.fetch`),
parsed and checked completely before anything is written; a source that fails
is reported and leaves its previous rows serving, while the other sources of
the same CA still import.

CRLs (RFC 5280 §5): each origin in ``crl`` may hold a complete CRL or a delta
CRL (deltaCRLIndicator, §5.2.4); complete CRLs are applied before deltas. For
a CA with ``archive_cutoff``, a revocation a new CRL no longer lists is kept
(``StatusWriter.replace_source(..., archive_removed=True)``): CAs drop expired
certificates from their CRLs, and their status must still be answered.
A CRL older than the one imported (lower cRLNumber or older thisUpdate) is
refused; the same CRL again is "unchanged" and not rewritten. A delta needs
an imported complete CRL whose cRLNumber is at least the delta's
BaseCRLNumber and below the delta's own number; a complete CRL at least as
new as the imported delta drops that delta in the same transaction.

Every source but a directory of issued lists records a fingerprint of the
bytes it was imported from in its source state (:func:`source_fingerprint`,
same transaction as the rows). When the same bytes are read again (a
restart, SIGHUP, the refresher seeing a new mtime, an HTTP fetch whose
validators the process no longer has), the source is reported "unchanged
(same file)" and neither parsed, verified nor written: its state, import
time included, stays that of the last import. A complete CRL that names
delta CRLs in a FreshestCRL extension the CA follows gets no fingerprint:
it is parsed each time, since that is where its deltas are found.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from certstatus import __version__
from certstatus.clock import Clock
from certstatus.config import CaSettings
from certstatus.errors import SourceError, StoreError
from certstatus.sources.changes import ChangeFeed
from certstatus.sources.crl import load_crl
from certstatus.sources.fetch import Fetched, FetchPolicy, fetch, is_remote
from certstatus.sources.index_txt import parse_index
from certstatus.sources.issuance import certificates_in, load_issued_certificates
from certstatus.sources.records import CrlData
from certstatus.store.base import CRL_KIND, DELTA_KIND, SourceState, StatusWriter

log = logging.getLogger("certstatus.import")

#: CAs whose CRLs are downloaded at the same time (each CA's one after the other).
FETCH_THREADS = 8


@dataclass(frozen=True)
class ImportResult:
    """Outcome of importing one source: ``error`` is None on success.

    ``kind`` is ``crl``, ``delta``, ``index`` or ``issued``; ``unchanged``
    means nothing was written because the data was already imported (HTTP
    304, the same bytes again, or the same CRL again); ``note`` says why.
    """

    ca: str
    kind: str
    origin: str
    entries: int = 0
    error: str | None = None
    unchanged: bool = False
    note: str = ""


@dataclass
class CaTarget:
    """The CA being imported into: its settings, store id and certificate."""

    settings: CaSettings
    issuer_id: int
    certificate: x509.Certificate


def fetch_policy(ca: CaSettings) -> FetchPolicy:
    """The download policy configured for ``ca``."""
    return FetchPolicy(
        timeout=ca.fetch_timeout, retries=ca.fetch_retries, max_bytes=ca.max_crl_bytes, redirects=ca.follow_redirects
    )


def import_crl_data(
    store: StatusWriter, target: CaTarget, data: bytes, origin: str, clock: Clock, feed: ChangeFeed | None = None
) -> ImportResult:
    """Verify one CRL (complete or delta) against the CA and apply it.

    Raises :class:`SourceError` when the CRL is unreadable, mis-signed, of
    another issuer, older than the imported one, or a delta that does not fit
    the imported complete CRL.
    """
    return apply_crl(store, target, load_crl(data, target.certificate, origin=origin), origin, clock, feed)


def apply_crl(
    store: StatusWriter, target: CaTarget, crl: CrlData, origin: str, clock: Clock, feed: ChangeFeed | None = None,
    *, data_sha256: str | None = None,
) -> ImportResult:
    """Apply one verified CRL (:func:`certstatus.sources.crl.load_crl`); see :func:`import_crl_data`.

    ``data_sha256`` (hex SHA-256 of the bytes the CRL was read from) is recorded
    as the source's fingerprint (:func:`source_fingerprint`) when the CRL is
    written; None records none (the bytes are parsed again next time).
    """
    if crl.delta_base is None:
        return _apply_complete(store, target, crl, origin, clock, feed, data_sha256)
    return _apply_delta(store, target, crl, origin, clock, feed, data_sha256)


def _check_not_older(crl: CrlData, previous: SourceState | None, origin: str, what: str) -> bool:
    """Refuse a CRL older than ``previous``; return True when it is the same CRL."""
    if previous is None:
        return False
    if previous.crl_number is not None and crl.crl_number is not None and crl.crl_number < previous.crl_number:
        raise SourceError(
            origin, f"{what} cRLNumber {crl.crl_number} is older than the imported {previous.crl_number}; keeping the newer"
        )
    if previous.this_update is not None and crl.this_update < previous.this_update:
        raise SourceError(origin, f"{what} thisUpdate is older than the imported CRL's; keeping the newer")
    return crl.crl_number == previous.crl_number and crl.this_update == previous.this_update


def _state(target: CaTarget, kind: str, origin: str, crl: CrlData, entries: int, clock: Clock,
           data_sha256: str | None) -> SourceState:
    now = clock.now()
    fingerprint = None if data_sha256 is None else source_fingerprint(target, kind, origin, data_sha256, now)
    return SourceState(
        kind=kind, origin=origin, imported_at=now, entries=entries, this_update=crl.this_update,
        next_update=crl.next_update, crl_number=crl.crl_number, fingerprint=fingerprint,
    )  # fmt: skip


def _apply_complete(
    store: StatusWriter, target: CaTarget, crl: CrlData, origin: str, clock: Clock, feed: ChangeFeed | None,
    data_sha256: str | None,
) -> ImportResult:
    states = store.source_states(target.issuer_id)
    if _check_not_older(crl, states.get(CRL_KIND), origin, "complete CRL"):
        return ImportResult(target.settings.name, CRL_KIND, origin, len(crl.entries), unchanged=True, note="same CRL")
    delta = states.get(DELTA_KIND)
    drop = ()
    if delta is not None and (crl.crl_number is None or delta.crl_number is None or delta.crl_number <= crl.crl_number):
        drop = (DELTA_KIND,)  # the delta's changes are in this complete CRL, or it cannot be related to it
    # removeFromCRL only means something in a delta CRL (RFC 5280 §5.3.1).
    entries = [e for e in crl.entries if e.reason is not x509.ReasonFlags.remove_from_crl]
    store.replace_source(
        target.issuer_id, _state(target, CRL_KIND, origin, crl, len(entries), clock, data_sha256), revoked=entries,
        drop_kinds=drop, archive_removed=target.settings.archive_cutoff is not None,
    )
    if feed is not None:
        feed.publish(target.issuer_id, None)
    return ImportResult(target.settings.name, CRL_KIND, origin, len(entries))


def _apply_delta(
    store: StatusWriter, target: CaTarget, crl: CrlData, origin: str, clock: Clock, feed: ChangeFeed | None,
    data_sha256: str | None,
) -> ImportResult:
    name = target.settings.name
    states = store.source_states(target.issuer_id)
    base = states.get(CRL_KIND)
    if crl.crl_number is None:
        raise SourceError(origin, "delta CRL has no cRLNumber (RFC 5280 §5.2.4 requires one): ask the CA to fix it")
    if base is None or base.crl_number is None:
        raise SourceError(
            origin,
            f"is a delta CRL (BaseCRLNumber {crl.delta_base}) but no complete CRL with a cRLNumber is imported; "
            "list the complete CRL in crl too",
        )
    if crl.crl_number <= base.crl_number:
        return ImportResult(
            name, DELTA_KIND, origin, len(crl.entries), unchanged=True,
            note=f"delta CRL {crl.crl_number} is superseded by the imported complete CRL {base.crl_number}",
        )  # fmt: skip
    if base.crl_number < (crl.delta_base or 0):
        raise SourceError(
            origin,
            f"delta CRL is based on CRL {crl.delta_base} but the imported complete CRL is {base.crl_number}; "
            "the complete CRL must be fetched first (check its URL)",
        )
    if _check_not_older(crl, states.get(DELTA_KIND), origin, "delta CRL"):
        return ImportResult(name, DELTA_KIND, origin, len(crl.entries), unchanged=True, note="same delta CRL")
    store.replace_source(
        target.issuer_id, _state(target, DELTA_KIND, origin, crl, len(crl.entries), clock, data_sha256),
        revoked=crl.entries, archive_removed=target.settings.archive_cutoff is not None,
    )
    if feed is not None:
        feed.publish(target.issuer_id, tuple(entry.serial_number for entry in crl.entries))
    return ImportResult(name, DELTA_KIND, origin, len(crl.entries))


def import_crls(
    store: StatusWriter,
    target: CaTarget,
    origins: list[str],
    clock: Clock,
    *,
    previous: dict[str, Fetched] | None = None,
    feed: ChangeFeed | None = None,
) -> list[ImportResult]:
    """Fetch every CRL origin, then apply complete CRLs before delta CRLs.

    ``previous`` maps an origin to its last successful :class:`Fetched`
    (conditional HTTP requests); it is updated in place with each new fetch.
    One :class:`ImportResult` per origin, in ``origins`` order, followed by
    one per delta CRL URI found in a fetched complete CRL's FreshestCRL
    extension (RFC 5280 §5.2.6) and not among ``origins`` or the CA's ``crl``,
    when the CA has ``follow_freshest_crl`` (such a URI must hold a delta CRL).
    :func:`download_crls` then :func:`apply_crls`.
    """
    previous = {} if previous is None else previous
    download = download_crls(target, origins, previous=previous, states=store.source_states(target.issuer_id))
    return apply_crls(store, target, download, clock, previous=previous, feed=feed)


@dataclass
class CrlDownload:
    """What :func:`download_crls` got for one CA, to hand to :func:`apply_crls`.

    ``origins`` in result order (those asked for, then those found through
    FreshestCRL); ``results`` the outcomes already known (refused, HTTP 304,
    the same bytes as the import the store holds); ``parsed`` (origin, verified
    CRL, hex SHA-256 of its bytes or None) to apply; ``validators`` the
    :class:`Fetched` validators to keep once an origin is applied.
    """

    origins: list[str]
    results: dict[str, ImportResult] = field(default_factory=dict)
    parsed: list[tuple[str, CrlData, str | None]] = field(default_factory=list)
    validators: dict[str, Fetched] = field(default_factory=dict)


def download_crls(
    target: CaTarget, origins: list[str], *, previous: Mapping[str, Fetched], states: Mapping[str, SourceState]
) -> CrlDownload:
    """Fetch, verify and parse every CRL origin of one CA, without touching the store (any thread).

    ``previous`` as for :func:`import_crls` (read only); ``states`` the CA's
    source states (``StatusWriter.source_states``), for the "same bytes" check.
    Network time is bounded per origin by the CA's fetch policy
    (:func:`certstatus.sources.fetch.fetch`).
    """
    name = target.settings.name
    policy = fetch_policy(target.settings)
    download = CrlDownload(list(origins))
    pending = list(origins)
    discovered: list[str] = []
    results = download.results
    while pending:
        origin = pending.pop(0)
        try:
            got = fetch(origin, policy, previous.get(origin))
        except SourceError as exc:
            results[origin] = ImportResult(name, CRL_KIND, origin, error=exc.problem)
            continue
        if got.not_modified:
            results[origin] = ImportResult(name, CRL_KIND, origin, unchanged=True, note="HTTP 304 not modified")
            continue
        data = got.data or b""
        digest = hashlib.sha256(data).hexdigest()
        same = _unchanged(target, states.get(CRL_KIND), origin, digest) or _unchanged(
            target, states.get(DELTA_KIND), origin, digest
        )
        if same is not None:
            results[origin] = same
            download.validators[origin] = Fetched(None, got.etag, got.last_modified)
            continue
        try:
            crl = load_crl(data, target.certificate, origin=origin)
            if origin in discovered and crl.delta_base is None:
                raise SourceError(origin, "is named by the complete CRL's FreshestCRL extension but is not a delta CRL; "
                                          "ask the CA to fix the extension, or set follow_freshest_crl = false")
        except SourceError as exc:
            results[origin] = ImportResult(name, CRL_KIND, origin, error=exc.problem)
            continue
        follows = target.settings.follow_freshest_crl and crl.delta_base is None and bool(crl.freshest_crl)
        # A CRL whose deltas must be found is parsed each time: no fingerprint.
        download.parsed.append((origin, crl, None if follows else digest))
        download.validators[origin] = Fetched(None, got.etag, got.last_modified)
        if follows:
            for uri in crl.freshest_crl:
                if uri not in origins and uri not in discovered and uri not in target.settings.crl:
                    discovered.append(uri)
                    pending.append(uri)
    download.origins.extend(discovered)
    return download


def apply_crls(
    store: StatusWriter, target: CaTarget, download: CrlDownload, clock: Clock, *,
    previous: dict[str, Fetched] | None = None, feed: ChangeFeed | None = None,
) -> list[ImportResult]:
    """Write what :func:`download_crls` got, complete CRLs before delta CRLs; one :class:`ImportResult`
    per origin in ``download.origins`` order. ``previous`` (as for :func:`import_crls`) keeps the
    validators of every origin not refused here."""
    name = target.settings.name
    results = dict(download.results)
    for origin, crl, digest in sorted(download.parsed, key=lambda item: item[1].delta_base is not None):
        try:
            results[origin] = apply_crl(store, target, crl, origin, clock, feed, data_sha256=digest)
        except (SourceError, StoreError) as exc:  # StoreError: the write failed (disk full), rolled back
            results[origin] = ImportResult(name, DELTA_KIND if crl.delta_base is not None else CRL_KIND, origin, error=_problem(exc))
    if previous is not None:
        for origin, validators in download.validators.items():
            if results[origin].error is None:
                previous[origin] = validators
            else:
                previous.pop(origin, None)  # refetch in full next time
    return [results[origin] for origin in download.origins]


#: Bump when a parser reads the same source bytes differently, so that every store imports them
#: again once (the certstatus version is part of the fingerprint too).
#: 2: CRLs of a CA certificate without cRLSign refused; signed hex serials. 3: notAfter read. 4: certificate hashes read.
FINGERPRINT_FORMAT = 4


def source_fingerprint(target: CaTarget, kind: str, origin: str, data_sha256: str, imported_at: dt.datetime) -> str:
    """The hex SHA-256 naming what one import of ``kind`` from ``origin`` read; stored in its source state.

    ``data_sha256`` is the hex SHA-256 of the bytes read. The value covers
    them and all that decides what they mean: the parser
    (:data:`FINGERPRINT_FORMAT`, the certstatus version), the kind, the origin,
    the CA certificate (CRLs are verified with it; issued lists hold
    certificates checked against it and may be signed by it), ``issued_signed``
    and ``follow_freshest_crl`` (a complete CRL imported while it was off may
    name deltas that must now be followed). ``imported_at`` (whole seconds,
    the store's precision) ties the value to the import that wrote it: a writer
    that saves the state without the fingerprint (a responder of an older
    release still running against an upgraded PostgreSQL keeps the old value
    there) writes a new import time, so the stale value no longer matches.
    """
    ca_der = target.certificate.public_bytes(serialization.Encoding.DER)
    about = [
        f"certstatus source fingerprint {FINGERPRINT_FORMAT} {__version__}", kind, origin,
        hashlib.sha256(ca_der).hexdigest(), f"issued_signed={target.settings.issued_signed}",
        f"follow_freshest_crl={target.settings.follow_freshest_crl}",
        str(int(imported_at.timestamp())), data_sha256,
    ]  # fmt: skip
    return hashlib.sha256("\n".join(about).encode()).hexdigest()


def _unchanged(target: CaTarget, state: SourceState | None, origin: str, data_sha256: str) -> ImportResult | None:
    """The "unchanged (same file)" result when ``state`` was imported from ``origin`` and bytes whose hex
    SHA-256 is ``data_sha256`` (:func:`source_fingerprint`); None otherwise (they must be imported)."""
    if (
        state is not None and state.fingerprint is not None and state.origin == origin
        and source_fingerprint(target, state.kind, origin, data_sha256, state.imported_at) == state.fingerprint
    ):  # fmt: skip
        return ImportResult(target.settings.name, state.kind, origin, state.entries, unchanged=True, note="same file")
    return None


def _read_unless_same(
    store: StatusWriter, target: CaTarget, kind: str, origin: str, policy: FetchPolicy
) -> tuple[bytes, str] | ImportResult:
    """The bytes of ``origin`` and their hex SHA-256; or, when ``kind`` was last imported from exactly
    those bytes, the "unchanged (same file)" result."""
    raw = fetch(origin, policy).data or b""
    digest = hashlib.sha256(raw).hexdigest()
    same = _unchanged(target, store.source_states(target.issuer_id).get(kind), origin, digest)
    return (raw, digest) if same is None else same


def import_index(store: StatusWriter, target: CaTarget, origin: str, clock: Clock, feed: ChangeFeed | None = None) -> ImportResult:
    """Replace the CA's index rows with an OpenSSL ``index.txt`` (not parsed when imported from the same bytes)."""
    read = _read_unless_same(store, target, "index", origin, fetch_policy(target.settings))
    if isinstance(read, ImportResult):
        return read
    raw, digest = read
    data = parse_index(raw, origin=origin)
    now = clock.now()
    state = SourceState(
        kind="index", origin=origin, imported_at=now, entries=len(data.issued),
        fingerprint=source_fingerprint(target, "index", origin, digest, now),
    )  # fmt: skip
    store.replace_source(target.issuer_id, state, issued=data.certificates, revoked=data.revoked)
    if feed is not None:
        feed.publish(target.issuer_id, None)
    return ImportResult(target.settings.name, "index", origin, len(data.issued))


def import_issued(store: StatusWriter, target: CaTarget, origin: str, clock: Clock, feed: ChangeFeed | None = None) -> ImportResult:
    """Replace the CA's issued-list rows with the serials of ``origin`` (file or directory).

    A file or URL imported before from the same bytes is not parsed again;
    a directory is always read in full (no fingerprint).
    """
    policy = fetch_policy(target.settings)
    signed = target.settings.issued_signed
    digest = None
    if not is_remote(origin) and Path(origin).is_dir():
        certificates = load_issued_certificates(origin, target.certificate, policy=policy, signed=signed)
    else:
        read = _read_unless_same(store, target, "issued", origin, policy)
        if isinstance(read, ImportResult):
            return read
        raw, digest = read
        found = certificates_in(raw, target.certificate, origin=origin, signed=signed)
        certificates = tuple(found[serial] for serial in sorted(found))
    now = clock.now()
    fingerprint = None if digest is None else source_fingerprint(target, "issued", origin, digest, now)
    state = SourceState(kind="issued", origin=origin, imported_at=now, entries=len(certificates), fingerprint=fingerprint)
    store.replace_source(target.issuer_id, state, issued=certificates)
    if feed is not None:
        feed.publish(target.issuer_id, None)
    return ImportResult(target.settings.name, "issued", origin, len(certificates))


def import_file_source(
    store: StatusWriter, target: CaTarget, kind: str, origin: str, clock: Clock, feed: ChangeFeed | None = None
) -> ImportResult:
    """Import an ``index`` or ``issued`` source, reporting a refusal as an error result."""
    job = import_index if kind == "index" else import_issued
    try:
        return job(store, target, origin, clock, feed)
    except (SourceError, StoreError) as exc:
        return ImportResult(target.settings.name, kind, origin, error=_problem(exc))


def log_refusal(result: ImportResult, missing: Sequence[str]) -> None:
    """Log a refused source (``result.error`` set) as one error line, the same at start, on reload and on
    refresh: ``ca``, ``source`` (the kind), ``origin`` and ``reason`` as fields of the JSON line.

    ``missing`` (:func:`certstatus.sources.health.missing_sources` after the
    attempt) says what follows: the CA answers tryLater until those sources
    import, or, when empty, the data imported before keeps serving.
    """
    if missing:
        outcome = f"CA {result.ca} answers tryLater and is not ready until {'; '.join(missing)} imports"
    else:
        outcome = "the data imported before keeps serving"
    log.error(
        "CA %s: %s %s refused: %s; %s", result.ca, result.kind, result.origin, result.error, outcome,
        extra={"ca": result.ca, "source": result.kind, "origin": result.origin, "reason": result.error},
    )  # fmt: skip


def _problem(exc: SourceError | StoreError) -> str:
    """The one-paragraph text of a refused source or a failed store write."""
    if isinstance(exc, StoreError):
        return f"{exc.database}: {exc.problem} {exc.fix}".strip()
    return exc.problem


def import_ca(
    store: StatusWriter, target: CaTarget, clock: Clock, feed: ChangeFeed | None = None
) -> list[ImportResult]:
    """Import every configured source of one CA; one :class:`ImportResult` each."""
    return import_cas(store, [target], clock, feed)[0]


def import_cas(
    store: StatusWriter, targets: Sequence[CaTarget], clock: Clock, feed: ChangeFeed | None = None
) -> list[list[ImportResult]]:
    """Import every configured source of each CA (start-up, reload); one list of results per target.

    The CRLs of up to :data:`FETCH_THREADS` CAs are downloaded side by side
    (:func:`download_crls`), so slow origins cost about one ``fetch_timeout``
    together rather than one each; the writes, in ``targets`` order, are
    made in the calling thread, which owns ``store``.
    """
    with ThreadPoolExecutor(max(1, min(FETCH_THREADS, len(targets))), thread_name_prefix="certstatus-fetch") as pool:
        downloads = [
            pool.submit(download_crls, target, list(target.settings.crl), previous={},
                        states=store.source_states(target.issuer_id))
            for target in targets
        ]  # fmt: skip
        imported = []
        for target, download in zip(targets, downloads, strict=True):
            ca = target.settings
            results = apply_crls(store, target, download.result(), clock, feed=feed)
            for kind, path in (("index", ca.index), ("issued", ca.issued)):
                if path is not None:
                    results.append(import_file_source(store, target, kind, str(Path(path)), clock, feed))
            imported.append(results)
    return imported
