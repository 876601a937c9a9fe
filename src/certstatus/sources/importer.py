"""Import a CA's revocation data into the store, one source per transaction.

Each configured source (the CRL, the index file, the issued list) is parsed
and checked completely before anything is written; a source that fails is
reported and leaves its previous rows serving, while the other sources of
the same CA still import.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from cryptography import x509

from certstatus.clock import Clock
from certstatus.config import CaSettings
from certstatus.errors import SourceError
from certstatus.sources.crl import load_crl
from certstatus.sources.index_txt import parse_index
from certstatus.sources.issued import parse_issued
from certstatus.sources.records import CrlData
from certstatus.store.base import SourceState, StatusStore


@dataclass(frozen=True)
class ImportResult:
    """Outcome of importing one source: ``error`` is None on success."""

    ca: str
    kind: str
    origin: str
    entries: int = 0
    error: str | None = None


def _read(origin: str) -> bytes:
    if "://" in origin:
        raise SourceError(origin, "fetching CRLs over HTTP or LDAP is not supported yet; download it to a file")
    try:
        return Path(origin).read_bytes()
    except OSError as exc:
        raise SourceError(origin, f"cannot read the file: {exc.strerror}") from None


def import_crl(store: StatusStore, issuer_id: int, issuer: x509.Certificate, origin: str, clock: Clock) -> int:
    """Verify the CRL at ``origin`` against ``issuer`` and replace the CA's CRL rows.

    Refuses (SourceError) a delta CRL, and a CRL older than the one imported
    (lower cRLNumber, or older thisUpdate). Returns the number of entries.
    """
    crl: CrlData = load_crl(_read(origin), issuer, origin=origin)
    if crl.delta_base is not None:
        raise SourceError(origin, "is a delta CRL; configure the complete CRL (delta CRLs are not supported yet)")
    previous = store.source_states(issuer_id).get("crl")
    if previous is not None:
        if previous.crl_number is not None and crl.crl_number is not None and crl.crl_number < previous.crl_number:
            raise SourceError(
                origin, f"cRLNumber {crl.crl_number} is older than the imported {previous.crl_number}; keeping the newer"
            )
        if previous.this_update is not None and crl.this_update < previous.this_update:
            raise SourceError(origin, "thisUpdate is older than the imported CRL's; keeping the newer")
    # removeFromCRL only means something in a delta CRL (RFC 5280 §5.3.1).
    entries = [e for e in crl.entries if e.reason is not x509.ReasonFlags.remove_from_crl]
    store.replace_source(
        issuer_id,
        SourceState(
            kind="crl",
            origin=origin,
            imported_at=clock.now(),
            entries=len(entries),
            this_update=crl.this_update,
            next_update=crl.next_update,
            crl_number=crl.crl_number,
        ),
        revoked=entries,
    )
    return len(entries)


def import_index(store: StatusStore, issuer_id: int, origin: str, clock: Clock) -> int:
    """Replace the CA's index rows with an OpenSSL ``index.txt``; return the line count."""
    data = parse_index(_read(origin), origin=origin)
    store.replace_source(
        issuer_id,
        SourceState(kind="index", origin=origin, imported_at=clock.now(), entries=len(data.issued)),
        issued=data.issued,
        revoked=data.revoked,
    )
    return len(data.issued)


def import_issued(store: StatusStore, issuer_id: int, origin: str, clock: Clock) -> int:
    """Replace the CA's issued-list rows with the serials in ``origin``; return their count."""
    serials = parse_issued(_read(origin), origin=origin)
    store.replace_source(
        issuer_id,
        SourceState(kind="issued", origin=origin, imported_at=clock.now(), entries=len(serials)),
        issued=serials,
    )
    return len(serials)


def import_ca(
    store: StatusStore, ca: CaSettings, issuer_id: int, issuer: x509.Certificate, clock: Clock
) -> list[ImportResult]:
    """Import every source configured for ``ca``; one :class:`ImportResult` each."""
    jobs = [("crl", origin, lambda o=origin: import_crl(store, issuer_id, issuer, o, clock)) for origin in ca.crl]
    if ca.index is not None:
        jobs.append(("index", str(ca.index), lambda: import_index(store, issuer_id, str(ca.index), clock)))
    if ca.issued is not None:
        jobs.append(("issued", str(ca.issued), lambda: import_issued(store, issuer_id, str(ca.issued), clock)))
    results = []
    for kind, origin, job in jobs:
        try:
            results.append(ImportResult(ca.name, kind, origin, job()))
        except SourceError as exc:
            results.append(ImportResult(ca.name, kind, origin, error=exc.problem))
    return results
