"""SQLite storage of pre-signed responses (see :mod:`certstatus.store.base`).

The ``precomputed`` table (migration ``0004_precomputed_compact``) has one
row per (issuer_id, serial) holding both responses of the serial, for the
SHA-1 and the SHA-256 CertID (``sha1``, ``sha256``; the generator signs
both at one time), their thisUpdate and nextUpdate, ``renew_at`` (when the
generator signs them again) and two change-counter values of the issuer
(``issuers.change_counter``, which every import and push that changes a status grows):
``signed_seq``, the counter the status was read at, and ``changed_seq``,
the counter of the last write that changed the serial's status. A row is
served only while ``changed_seq <= signed_seq``; an import that changes the
serial raises ``changed_seq`` in its own transaction, so a response with an
outdated status is never served, not even for the seconds before the
generator signs it again.

Compact form: the delegated responder certificates (the same in every
response of one signer; ~430 of ~750 bytes of an ECDSA P-256 response) are
stored once in ``precomputed_certs``, and a row names them (``certs_id``);
its responses are then the BasicOCSPResponse content up to the signature,
and :meth:`PrecomputedSQLite.precomputed` appends the certificates and the
outer headers (:class:`~certstatus.der.ResponseAssembler`,
~1 µs) — the request path gets the complete DER as before. A row with
``certs_id`` NULL holds complete OCSPResponses (rows from schema version 3,
and :meth:`PrecomputedSQLite.store_precomputed`). Half the bytes written
and stored: bench/generate.py prints the figures.

Imports find the changed serials by loading the new rows into this
connection's temporary tables (:data:`SCRATCH_TABLES`) and comparing.
Times are stored as integer seconds since the epoch (UTC).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import sqlite3
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager

from certstatus.der import ResponseAssembler
from certstatus.model import CertStatusRecord, serial_from_key, serial_key
from certstatus.store.base import (
    PRECOMPUTED_HASH_ALGORITHMS,
    WORK_KINDS,
    PrecomputedResponse,
    SignedBatch,
    SignedResponse,
    issued_hashes,
    precomputed_rows,
    revocation_from_rows,
    status_records,
)
from certstatus.store.sqlite_checkpoint import WalCheckpointer

__all__ = ["PRECOMPUTED_HASH_ALGORITHMS", "SCRATCH_TABLES", "PrecomputedSQLite"]


_CHUNK = 500  # serials per IN (...) list

#: Per-connection temporary tables of an import: the new rows, and the serials found changed.
SCRATCH_TABLES = """
CREATE TEMP TABLE IF NOT EXISTS incoming_issued (serial BLOB PRIMARY KEY, not_after INTEGER, cert_hash BLOB) WITHOUT ROWID;
CREATE TEMP TABLE IF NOT EXISTS incoming_revoked (
    serial BLOB PRIMARY KEY,
    revocation_time INTEGER NOT NULL,
    reason INTEGER,
    invalidity_date INTEGER
) WITHOUT ROWID;
CREATE TEMP TABLE IF NOT EXISTS changed_serials (serial BLOB PRIMARY KEY) WITHOUT ROWID;
"""

# One statement per hash algorithm (the column is chosen here, never from the request).
_SELECT = {
    algorithm: f"SELECT {algorithm}, this_update, next_update, certs_id, profile FROM precomputed "
    "WHERE issuer_id = ? AND serial = ? AND changed_seq <= signed_seq"
    for algorithm in PRECOMPUTED_HASH_ALGORITHMS
}
# The request path's rows in serial order, a slice at a time (servable_responses: the edge cache's fill).
_SLICE = {
    algorithm: f"SELECT serial, {algorithm}, this_update, next_update, certs_id FROM precomputed "
    f"WHERE issuer_id = ? AND serial > ? AND {algorithm} IS NOT NULL AND changed_seq <= signed_seq AND profile = ? "
    "ORDER BY serial LIMIT ?"
    for algorithm in PRECOMPUTED_HASH_ALGORITHMS
}
_UPSERT = (
    "INSERT INTO precomputed(issuer_id, serial, sha1, sha256, certs_id, this_update, next_update, renew_at, "
    "profile, signed_seq, changed_seq) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
    "ON CONFLICT(issuer_id, serial) DO UPDATE SET sha1 = excluded.sha1, sha256 = excluded.sha256, "
    "certs_id = excluded.certs_id, this_update = excluded.this_update, next_update = excluded.next_update, "
    "renew_at = excluded.renew_at, profile = excluded.profile, signed_seq = excluded.signed_seq, "
    "changed_seq = max(changed_seq, excluded.changed_seq) "
    "WHERE excluded.signed_seq >= precomputed.signed_seq"
)
#: The start of time for renew_at: a row made due before every other (expire_other_profiles).
_DUE_AT_ONCE = 0
# A serial is missing while its row lacks a response of some hash algorithm.
_MISSING = (
    "NOT EXISTS (SELECT 1 FROM precomputed p WHERE p.issuer_id = s.issuer_id AND p.serial = s.serial "
    "AND p.sha1 IS NOT NULL AND p.sha256 IS NOT NULL)"
)
_MISSING_ISSUED = f"FROM issued s WHERE issuer_id = ? AND serial > ? AND {_MISSING}"
# reason 8, removeFromCRL: a delta CRL's release of a hold, not a revocation.
_MISSING_REVOKED = (
    f"FROM revoked s WHERE issuer_id = ? AND serial > ? AND reason IS NOT 8 AND {_MISSING} "
    "AND NOT EXISTS (SELECT 1 FROM issued i WHERE i.issuer_id = s.issuer_id AND i.serial = s.serial)"
)
_CHANGED = "FROM precomputed WHERE issuer_id = ? AND changed_seq > signed_seq AND serial > ?"
_DUE = "FROM precomputed WHERE issuer_id = ? AND renew_at <= ? AND (renew_at, serial) > (?, ?)"

# The generator's ranges (precomputed_ranges / precomputed_batch): per part, the query that finds the
# end of the next range (the batch_size-th index entry after its start: an index walk, no probe of
# the precomputed table), and the query a worker runs for the pending serials of its range
# (with the range's end, or none for the last range).
_RANGE_PARTS = {
    "changed": (
        f"SELECT serial {_CHANGED} ORDER BY serial LIMIT 1 OFFSET ?",
        f"SELECT serial {_CHANGED} AND serial <= ? ORDER BY serial",
        f"SELECT serial {_CHANGED} ORDER BY serial",
    ),
    "issued": (
        "SELECT serial FROM issued WHERE issuer_id = ? AND serial > ? ORDER BY serial LIMIT 1 OFFSET ?",
        f"SELECT DISTINCT serial {_MISSING_ISSUED} AND serial <= ? ORDER BY serial",
        f"SELECT DISTINCT serial {_MISSING_ISSUED} ORDER BY serial",
    ),
    "revoked": (
        "SELECT serial FROM revoked WHERE issuer_id = ? AND serial > ? ORDER BY serial LIMIT 1 OFFSET ?",
        f"SELECT DISTINCT serial {_MISSING_REVOKED} AND serial <= ? ORDER BY serial",
        f"SELECT DISTINCT serial {_MISSING_REVOKED} ORDER BY serial",
    ),
}
_RANGE_PARTS_OF_KIND = {"changed": ("changed",), "missing": ("issued", "revoked")}


def _unprobed(sql: str) -> str:
    """``sql`` without its probe of precomputed per serial (for serials of which none is signed yet)."""
    return sql.replace(f" AND {_MISSING}", "")


# The range queries for a range where precomputed has no row yet (a first pass, serials added since):
# every serial of it is missing, so they skip the probe of precomputed per serial (~0.2 us per serial).
_UNSIGNED_PARTS = {part: tuple(_unprobed(sql) for sql in _RANGE_PARTS[part]) for part in ("issued", "revoked")}
_ANY_SIGNED = "SELECT 1 FROM precomputed WHERE issuer_id = ? AND serial > ?"
_REVOKED_COLUMNS = "serial, source, revocation_time, reason, invalidity_date"


def _records(
    keys: list[bytes], revoked: dict[bytes, list[tuple]], issued: Mapping[bytes, bytes | None] | None
) -> tuple[list[bytes], dict[bytes, CertStatusRecord], list[int]]:
    """:meth:`PrecomputedSQLite.precomputed_batch`'s result from the statuses read (``issued``: the issued keys
    with their certificate hashes; None: every key is issued, hashes not read)."""
    records: dict[bytes, CertStatusRecord] = {}
    gone: list[bytes] = []
    for key in keys:
        is_issued = issued is None or key in issued
        cert_hash = None if issued is None else issued.get(key)
        rows = revoked.get(key)
        entry = None if rows is None else revocation_from_rows(serial_from_key(key), rows, _dt)
        if entry is not None or cert_hash is not None:
            records[key] = CertStatusRecord(issued=is_issued, revoked=entry, cert_hash=cert_hash)
        elif not is_issued:
            gone.append(key)  # no source knows it any more
    if gone:
        dropped = set(gone)
        keys = [key for key in keys if key not in dropped]
    return keys, records, [serial_from_key(key) for key in gone]


def _ts(value: dt.datetime) -> int:
    return int(value.timestamp())


def _dt(value: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(value, dt.timezone.utc)


#: How many distinct stored times :meth:`PrecomputedSQLite.precomputed` keeps as datetimes (then it starts over).
_TIMES_KEPT = 4096


class PrecomputedSQLite:
    """The pre-signed response and change feed methods of ``SQLiteStore`` (a mixin).

    Expects ``self._db`` (an autocommit ``sqlite3.Connection``) and
    ``self._transaction()``.
    """

    _db: sqlite3.Connection
    _lookup_cursor: sqlite3.Cursor  # the request path's reads reuse it (a new cursor per read is measurable)
    path: str
    _assemblers: dict[int, ResponseAssembler] | None = None  # certs_id -> assembler (rows never change)
    _certs_ids: dict[bytes, int] | None = None  # certificates element -> certs_id, once committed
    # Stored second -> its datetime, for the request path: the generator signs whole batches at one
    # thisUpdate and nextUpdate, so a few values recur, and one object per value spares a datetime
    # per read and lets the request path's caches of rendered dates hit (they compare by identity).
    _times: dict[int, dt.datetime] | None = None

    # -- read by the request path ----------------------------------------------

    def precomputed(
        self, issuer_id: int, serial_number: int, hash_algorithm: str, profile: int | None = None
    ) -> PrecomputedResponse | None:
        sql = _SELECT.get(hash_algorithm)
        if sql is None:
            return None
        row = self._lookup_cursor.execute(sql, (issuer_id, serial_key(serial_number))).fetchone()
        if row is None or row[0] is None or (profile is not None and row[4] != profile):
            return None
        return self._response(row[0], row[1], row[2], row[3])

    def servable_responses(
        self, issuer_id: int, hash_algorithm: str, profile: int, *, after: bytes = b"", limit: int = 200
    ) -> list[tuple[bytes, PrecomputedResponse]]:
        sql = _SLICE.get(hash_algorithm)
        if sql is None:
            raise ValueError(f"pre-signed responses are for {PRECOMPUTED_HASH_ALGORITHMS}, not {hash_algorithm!r}")
        rows = self._db.execute(sql, (issuer_id, after, profile, limit)).fetchall()
        return [(key, self._response(body, this_ts, next_ts, certs_id)) for key, body, this_ts, next_ts, certs_id in rows]

    def _response(self, body: bytes, this_ts: int, next_ts: int, certs_id: int | None) -> PrecomputedResponse:
        """A stored row as the request path serves it: the whole OCSPResponse, and one datetime per
        stored second (:attr:`_times`)."""
        der = body if certs_id is None else self._assembler(certs_id).assemble(body)
        times = self._times
        if times is None or len(times) >= _TIMES_KEPT:
            times = self._times = {}
        this_update = times.get(this_ts)
        if this_update is None:
            this_update = times[this_ts] = _dt(this_ts)
        next_update = times.get(next_ts)
        if next_update is None:
            next_update = times[next_ts] = _dt(next_ts)
        return PrecomputedResponse(der, this_update, next_update)

    def stored_responses(self, issuer_id: int, hash_algorithm: str) -> Iterator[tuple[int, PrecomputedResponse]]:
        """Every stored response of the issuer for ``hash_algorithm``, servable or not, as (serial, response).

        Complete DER, as :meth:`precomputed` returns it (for exports: bench/precomputed.py feeds CFSSL; tests).
        """
        if hash_algorithm not in _SELECT:
            raise ValueError(f"pre-signed responses are for {PRECOMPUTED_HASH_ALGORITHMS}, not {hash_algorithm!r}")
        rows = self._db.execute(
            f"SELECT serial, {hash_algorithm}, this_update, next_update, certs_id FROM precomputed "
            f"WHERE issuer_id = ? AND {hash_algorithm} IS NOT NULL ORDER BY serial",
            (issuer_id,),
        ).fetchall()
        for key, body, this_update, next_update, certs_id in rows:
            der = body if certs_id is None else self._assembler(certs_id).assemble(body)
            yield serial_from_key(key), PrecomputedResponse(der, _dt(this_update), _dt(next_update))

    def _assembler(self, certs_id: int) -> ResponseAssembler:
        if self._assemblers is None:
            self._assemblers = {}
        assembler = self._assemblers.get(certs_id)
        if assembler is None:
            row = self._db.execute("SELECT der FROM precomputed_certs WHERE id = ?", (certs_id,)).fetchone()
            assembler = self._assemblers[certs_id] = ResponseAssembler(row[0])
        return assembler

    def lookup_many(self, issuer_id: int, serial_numbers: Sequence[int]) -> dict[int, CertStatusRecord]:
        """Status records of several serials: two indexed queries per chunk of 500, combined as lookup() does."""
        keys = [serial_key(serial) for serial in serial_numbers]
        issued, revoked = self._statuses_of(issuer_id, keys)
        return status_records(serial_numbers, keys, issued, revoked, _dt)

    def _statuses_of(self, issuer_id: int, keys: Sequence[bytes]) -> tuple[dict[bytes, bytes | None], dict[bytes, list[tuple]]]:
        """(issued keys with their certificate hash, revocation rows by key) of ``keys``, by IN lists of :data:`_CHUNK` keys."""
        issued_rows: list[tuple] = []
        revoked: dict[bytes, list[tuple]] = {}
        for start in range(0, len(keys), _CHUNK):
            chunk = keys[start:start + _CHUNK]
            marks = ",".join("?" * len(chunk))
            issued_rows += self._db.execute(
                f"SELECT serial, cert_hash FROM issued WHERE issuer_id = ? AND serial IN ({marks})", (issuer_id, *chunk)
            ).fetchall()
            for row in self._db.execute(
                f"SELECT {_REVOKED_COLUMNS} FROM revoked WHERE issuer_id = ? AND serial IN ({marks})", (issuer_id, *chunk)
            ):
                revoked.setdefault(row[0], []).append(row[1:])
        return issued_hashes(issued_rows), revoked

    # -- the generator's work in ranges (SQLite fast path of certstatus.generator.work) ----

    def precomputed_ranges(self, issuer_id: int, kind: str, *, now: dt.datetime, batch_size: int) -> Iterator[tuple]:
        """Split the pending work of ``kind`` into ranges of at most ``batch_size`` serials, for :meth:`precomputed_batch`.

        A range is a small picklable tuple ``(part, after, last)``: the
        serials of ``part`` ("changed", "issued" — missing issued serials,
        "revoked" — missing serials only a CRL lists —, or "due", which also
        carries ``now``) after ``after`` up to ``last`` included (None: to the
        end). The ends are found by walking the index batch_size entries at a
        time, without reading rows, so this costs the caller (the generator's
        parent process) ~0.1 µs per serial; a range may hold fewer pending
        serials (none, when a resumed pass finds them signed). Ranges are
        read lazily (keyset): writing between them is allowed. ValueError for
        an unknown ``kind``.
        """
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        if kind == "due":
            yield from self._due_ranges(issuer_id, _ts(now), batch_size)
            return
        parts = _RANGE_PARTS_OF_KIND.get(kind)
        if parts is None:
            raise ValueError(f"kind must be one of {WORK_KINDS}, not {kind!r}")
        for part in parts:
            sql = _RANGE_PARTS[part][0]
            after = b""  # sorts before every serial key
            while True:
                row = self._db.execute(sql, (issuer_id, after, batch_size - 1)).fetchone()
                if row is None:
                    if self._db.execute(sql, (issuer_id, after, 0)).fetchone() is not None:
                        yield (part, after, None)  # the rest, fewer than batch_size
                    break
                yield (part, after, row[0])
                after = row[0]

    def _due_ranges(self, issuer_id: int, now: int, batch_size: int) -> Iterator[tuple]:
        sql = f"SELECT renew_at, serial {_DUE} ORDER BY renew_at, serial LIMIT 1 OFFSET ?"
        after = (-(2**62), b"")
        while True:
            row = self._db.execute(sql, (issuer_id, now, *after, batch_size - 1)).fetchone()
            if row is None:
                if self._db.execute(sql, (issuer_id, now, *after, 0)).fetchone() is not None:
                    yield ("due", after, None, now)
                return
            yield ("due", after, tuple(row), now)
            after = tuple(row)

    def precomputed_batch(
        self, issuer_id: int, work: tuple, *, cert_hashes: bool = False
    ) -> tuple[list[bytes], dict[bytes, CertStatusRecord], list[int]]:
        """The pending serials of one range of :meth:`precomputed_ranges`, with what the store knows of them.

        Returns ``(keys, records, gone)``: the :func:`serial_key` of every
        pending serial the store knows, in the range's order; a
        :class:`CertStatusRecord` for those of them that are not simply
        issued and unrevoked, or (``cert_hashes``: a CA answering with
        CertHash) whose certificate hash is known (keys absent from
        ``records`` are issued, unrevoked, hash unknown: the common case
        builds no object); the serials the store no longer knows (their rows
        are to be removed). Missing issued serials and their revocations are
        read by two range scans (IN lists with ``cert_hashes``); other parts by IN lists.
        """
        part, after, last = work[0], work[1], work[2]
        if part == "due":
            if last is None:
                sql, params = f"SELECT serial {_DUE} ORDER BY renew_at, serial", (issuer_id, work[3], *after)
            else:
                sql = f"SELECT serial {_DUE} AND (renew_at, serial) <= (?, ?) ORDER BY renew_at, serial"
                params = (issuer_id, work[3], *after, *last)
        else:
            queries = _RANGE_PARTS[part]
            if part in _UNSIGNED_PARTS and not self._any_signed(issuer_id, after, last):
                # A row written meanwhile (another generator) is only signed again: its UPSERT keeps the newer.
                queries = _UNSIGNED_PARTS[part]
            sql, params = (queries[2], (issuer_id, after)) if last is None else (queries[1], (issuer_id, after, last))
        keys = [row[0] for row in self._db.execute(sql, params)]
        if not keys:
            return keys, {}, []
        if part in ("changed", "due") or cert_hashes:
            issued, revoked = self._statuses_of(issuer_id, keys)
            return _records(keys, revoked, issued)
        # Missing serials: those of "issued" are all issued, those of "revoked" none; their
        # revocations come from one range scan (1 % of rows in a typical CA, none in most ranges).
        revoked = {}
        sql = f"SELECT {_REVOKED_COLUMNS} FROM revoked WHERE issuer_id = ? AND serial > ?"
        rows = self._db.execute(sql, (issuer_id, after)) if last is None else self._db.execute(f"{sql} AND serial <= ?", (issuer_id, after, last))
        for row in rows:
            revoked.setdefault(row[0], []).append(row[1:])
        if part == "issued" and not revoked:
            return keys, {}, []
        return _records(keys, revoked, None if part == "issued" else {})

    def _any_signed(self, issuer_id: int, after: bytes, last: bytes | None) -> bool:
        """Whether precomputed has a row of the issuer with a serial key in (``after``, ``last``] (None: no end)."""
        if last is None:
            return self._db.execute(f"{_ANY_SIGNED} LIMIT 1", (issuer_id, after)).fetchone() is not None
        return self._db.execute(f"{_ANY_SIGNED} AND serial <= ? LIMIT 1", (issuer_id, after, last)).fetchone() is not None

    # -- written by the generator ----------------------------------------------

    def background_checkpoints(self, write_lock) -> AbstractContextManager:
        """A :class:`WalCheckpointer` for the generator's parent while its workers write under ``write_lock``."""
        if self.path == ":memory:":
            return contextlib.nullcontext()
        return WalCheckpointer(self.path, write_lock)

    def _change_counter(self, issuer_id: int) -> int:
        row = self._db.execute("SELECT change_counter FROM issuers WHERE id = ?", (issuer_id,)).fetchone()
        return 0 if row is None else row[0]

    def store_precomputed(
        self, issuer_id: int, responses: Iterable[SignedResponse], *, change_counter: int, remove: Iterable[int] = (),
        profile: int = 0,
    ) -> None:
        """Write complete OCSPResponses (see :class:`StatusStore`); the generator uses :meth:`store_signed`.

        One row per serial: its responses must share thisUpdate, nextUpdate
        and renew_at, and a hash algorithm not given is cleared (the serial
        is then pending as "missing"). ValueError otherwise, or for a hash
        algorithm outside :data:`PRECOMPUTED_HASH_ALGORITHMS` (nothing written).
        ``profile``: the signing profile the rows were signed under.
        """
        rows = [
            (key, *ders, None, _ts(this_update), _ts(next_update), _ts(renew), profile)
            for key, (this_update, next_update, renew), ders in precomputed_rows(responses)
        ]
        self._write_rows(issuer_id, rows, change_counter, remove)

    def store_signed(
        self, issuer_id: int, batch: SignedBatch, *, change_counter: int, remove: Iterable[int] = ()
    ) -> None:
        times = (_ts(batch.this_update), _ts(batch.next_update), _ts(batch.renew_at), batch.profile)
        self._write_rows(issuer_id, batch.rows, change_counter, remove, batch.certificates_element, times)

    def _write_rows(
        self,
        issuer_id: int,
        rows: Sequence[tuple],
        change_counter: int,
        remove: Iterable[int],
        certificates: bytes | None = None,
        times: tuple[int, int, int, int] | None = None,
    ) -> None:
        """Upsert ``rows``: (key, sha1, sha256, certs_id, 3 times, profile) or, with ``times`` (3 times and the
        profile), (key, sha1, sha256) bodies."""
        new_certs = None
        with self._transaction():
            current = self._change_counter(issuer_id)
            # The issuer was written after the statuses were read: which serials changed is not kept,
            # so every response of this batch stays unserved until signed again (a few batches at most).
            stale = current if current != change_counter else 0
            if times is None:
                params = [(issuer_id, *row, change_counter, stale) for row in rows]
            else:
                certs_id = (self._certs_ids or {}).get(certificates)
                if certs_id is None:
                    certs_id = self._certs_id(certificates)
                    new_certs = (certificates, certs_id)
                tail = (certs_id, *times, change_counter, stale)
                params = [(issuer_id, *row, *tail) for row in rows]
            self._db.executemany(_UPSERT, params)
            if current == change_counter:
                self._db.executemany(
                    "DELETE FROM precomputed WHERE issuer_id = ? AND serial = ?",
                    ((issuer_id, serial_key(serial)) for serial in remove),
                )
        if new_certs is not None:  # remembered once committed
            if self._certs_ids is None:
                self._certs_ids = {}
            self._certs_ids[new_certs[0]] = new_certs[1]

    def _certs_id(self, certificates: bytes) -> int:
        """The id of ``certificates`` in precomputed_certs, inserted when new (inside the caller's transaction)."""
        self._db.execute("INSERT OR IGNORE INTO precomputed_certs(der) VALUES (?)", (certificates,))
        return self._db.execute("SELECT id FROM precomputed_certs WHERE der = ?", (certificates,)).fetchone()[0]

    def pending_precomputed(
        self, issuer_id: int, kind: str, *, now: dt.datetime, batch_size: int = 1000
    ) -> Iterator[list[int]]:
        if kind == "changed":
            yield from self._keyset(f"SELECT serial {_CHANGED} ORDER BY serial LIMIT ?", issuer_id, batch_size)
        elif kind == "missing":
            # Issued serials first, then revoked serials no source lists as issued (CRL-only CAs:
            # only these): two index-ordered scans instead of one UNION the planner would sort.
            yield from self._keyset(f"SELECT DISTINCT serial {_MISSING_ISSUED} ORDER BY serial LIMIT ?", issuer_id, batch_size)
            yield from self._keyset(f"SELECT DISTINCT serial {_MISSING_REVOKED} ORDER BY serial LIMIT ?", issuer_id, batch_size)
        elif kind == "due":
            yield from self._due(issuer_id, _ts(now), batch_size)
        else:
            raise ValueError(f"kind must be one of {WORK_KINDS}, not {kind!r}")

    def _keyset(self, sql: str, issuer_id: int, batch_size: int) -> Iterator[list[int]]:
        after = b""  # sorts before every serial key
        while True:
            keys = [row[0] for row in self._db.execute(sql, (issuer_id, after, batch_size))]
            if not keys:
                return
            after = keys[-1]
            yield [serial_from_key(key) for key in keys]

    def _due(self, issuer_id: int, now: int, batch_size: int) -> Iterator[list[int]]:
        last = (-(2**62), b"")
        while True:
            rows = self._db.execute(
                "SELECT renew_at, serial FROM precomputed WHERE issuer_id = ? AND renew_at <= ? "
                "AND (renew_at, serial) > (?, ?) ORDER BY renew_at, serial LIMIT ?",
                (issuer_id, now, last[0], last[1], batch_size),
            ).fetchall()
            if not rows:
                return
            last = rows[-1]
            yield [serial_from_key(row[1]) for row in rows]

    def count_pending(self, issuer_id: int, kind: str, *, now: dt.datetime) -> int:
        after = (issuer_id, b"")
        if kind == "changed":
            return self._db.execute(f"SELECT count(*) {_CHANGED}", after).fetchone()[0]
        if kind == "missing":
            # count(*) of a DISTINCT subquery: SQLite walks the index in serial order instead of
            # building a temporary b-tree of every serial for count(DISTINCT) (~0.4 -> ~0.25 s per million).
            parts = (_MISSING_ISSUED, _MISSING_REVOKED)
            if not self._any_signed(issuer_id, b"", None):  # nothing signed yet: no probe per serial
                parts = tuple(_unprobed(part) for part in parts)
            return sum(
                self._db.execute(f"SELECT count(*) FROM (SELECT DISTINCT serial {part})", after).fetchone()[0]
                for part in parts
            )
        if kind == "due":
            return self._db.execute(
                "SELECT count(*) FROM precomputed WHERE issuer_id = ? AND renew_at <= ?", (issuer_id, _ts(now))
            ).fetchone()[0]
        raise ValueError(f"kind must be one of {WORK_KINDS}, not {kind!r}")

    def next_renewal(self, issuer_id: int) -> dt.datetime | None:
        row = self._db.execute("SELECT min(renew_at) FROM precomputed WHERE issuer_id = ?", (issuer_id,)).fetchone()
        return None if row[0] is None else _dt(row[0])

    def precomputed_certificates(self) -> dict[int, bytes]:
        return dict(self._db.execute("SELECT id, der FROM precomputed_certs").fetchall())

    def drop_precomputed(self, issuer_id: int, certificates_id: int) -> int:
        with self._transaction():
            return self._db.execute(
                "DELETE FROM precomputed WHERE issuer_id = ? AND certs_id = ?", (issuer_id, certificates_id)
            ).rowcount

    def expire_other_profiles(self, issuer_id: int, profile: int) -> int:
        with self._transaction():
            return self._db.execute(
                "UPDATE precomputed SET renew_at = ? WHERE issuer_id = ? AND profile <> ? AND renew_at <> ?",
                (_DUE_AT_ONCE, issuer_id, profile, _DUE_AT_ONCE),
            ).rowcount

    # -- written by imports and pushes (inside their transaction) ----------------

    def _mark_changed(self, issuer_id: int) -> None:
        """Mark the pre-signed responses of the serials in temp.changed_serials changed (after the counter grew)."""
        if not self._db.execute("SELECT 1 FROM changed_serials LIMIT 1").fetchone():
            return
        if not self._db.execute("SELECT 1 FROM precomputed WHERE issuer_id = ? LIMIT 1", (issuer_id,)).fetchone():
            return
        self._db.execute(
            "UPDATE precomputed SET changed_seq = ? WHERE issuer_id = ? AND serial IN (SELECT serial FROM changed_serials)",
            (self._change_counter(issuer_id), issuer_id),
        )

    def _clear_scratch(self) -> None:
        for table in ("incoming_issued", "incoming_revoked", "changed_serials"):
            self._db.execute(f"DELETE FROM temp.{table}")
