"""SQLite storage of pre-signed responses (see :mod:`certstatus.store.base`).

The ``precomputed`` table (migration ``0003_precomputed``) has one row per
(issuer_id, serial, hash_algorithm): the OCSPResponse DER, thisUpdate,
nextUpdate, ``renew_at`` (when the generator signs it again) and two
change-counter values of the issuer (``issuers.change_counter``, which every
import and push grows): ``signed_seq``, the counter the status was read at,
and ``changed_seq``, the counter of the last write that changed the serial's
status. A row is served only while ``changed_seq <= signed_seq``; an import
that changes the serial raises ``changed_seq`` in its own transaction, so a
response with an outdated status is never served, not even for the seconds
before the generator signs it again.

Imports find the changed serials by loading the new rows into this
connection's temporary tables (:data:`SCRATCH_TABLES`) and comparing.
Times are stored as integer seconds since the epoch (UTC).
"""

from __future__ import annotations

import datetime as dt
import sqlite3
from collections.abc import Iterable, Iterator, Sequence

from certstatus.store.base import (
    REASONS_BY_CODE,
    WORK_KINDS,
    CertStatusRecord,
    PrecomputedResponse,
    SignedResponse,
    combine_revocations,
    serial_from_key,
    serial_key,
)

#: Hash algorithms the generator signs for (RFC 9919 §3.1.1: SHA-1 and SHA-256 CertIDs).
PRECOMPUTED_HASH_ALGORITHMS = ("sha1", "sha256")
_CHUNK = 500  # serials per IN (...) list

#: Per-connection temporary tables of an import: the new rows, and the serials found changed.
SCRATCH_TABLES = """
CREATE TEMP TABLE IF NOT EXISTS incoming_issued (serial BLOB PRIMARY KEY) WITHOUT ROWID;
CREATE TEMP TABLE IF NOT EXISTS incoming_revoked (
    serial BLOB PRIMARY KEY,
    revocation_time INTEGER NOT NULL,
    reason INTEGER,
    invalidity_date INTEGER
) WITHOUT ROWID;
CREATE TEMP TABLE IF NOT EXISTS changed_serials (serial BLOB PRIMARY KEY) WITHOUT ROWID;
"""


def _ts(value: dt.datetime) -> int:
    return int(value.timestamp())


def _dt(value: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(value, dt.timezone.utc)


class PrecomputedSQLite:
    """The pre-signed response and change feed methods of ``SQLiteStore`` (a mixin).

    Expects ``self._db`` (an autocommit ``sqlite3.Connection``) and
    ``self._transaction()``.
    """

    _db: sqlite3.Connection

    # -- read by the request path ----------------------------------------------

    def precomputed(self, issuer_id: int, serial_number: int, hash_algorithm: str) -> PrecomputedResponse | None:
        row = self._db.execute(
            "SELECT der, this_update, next_update FROM precomputed "
            "WHERE issuer_id = ? AND serial = ? AND hash_algorithm = ? AND changed_seq <= signed_seq",
            (issuer_id, serial_key(serial_number), hash_algorithm),
        ).fetchone()
        if row is None:
            return None
        return PrecomputedResponse(row[0], _dt(row[1]), _dt(row[2]))

    def lookup_many(self, issuer_id: int, serial_numbers: Sequence[int]) -> dict[int, CertStatusRecord]:
        """Status records of several serials: two indexed queries per chunk of 500, combined as lookup() does."""
        keys = [serial_key(serial) for serial in serial_numbers]
        issued: set[bytes] = set()
        revoked: dict[bytes, list[tuple]] = {}
        for start in range(0, len(keys), _CHUNK):
            chunk = keys[start:start + _CHUNK]
            marks = ",".join("?" * len(chunk))
            issued.update(
                row[0]
                for row in self._db.execute(
                    f"SELECT serial FROM issued WHERE issuer_id = ? AND serial IN ({marks})", (issuer_id, *chunk)
                )
            )
            for row in self._db.execute(
                "SELECT serial, source, revocation_time, reason, invalidity_date FROM revoked "
                f"WHERE issuer_id = ? AND serial IN ({marks})",
                (issuer_id, *chunk),
            ):
                revoked.setdefault(row[0], []).append(row[1:])
        records = {}
        for serial, key in zip(serial_numbers, keys, strict=True):
            rows = revoked.get(key)
            entry = None
            if rows is not None:
                entry = combine_revocations(
                    serial,
                    ((r[0], _dt(r[1]), None if r[2] is None else REASONS_BY_CODE[r[2]], None if r[3] is None else _dt(r[3])) for r in rows),
                )
            if entry is None and key not in issued:
                continue
            records[serial] = CertStatusRecord(issued=key in issued, revoked=entry)
        return records

    # -- written by the generator ----------------------------------------------

    def _change_counter(self, issuer_id: int) -> int:
        row = self._db.execute("SELECT change_counter FROM issuers WHERE id = ?", (issuer_id,)).fetchone()
        return 0 if row is None else row[0]

    def store_precomputed(
        self, issuer_id: int, responses: Iterable[SignedResponse], *, change_counter: int, remove: Iterable[int] = ()
    ) -> None:
        with self._transaction():
            current = self._change_counter(issuer_id)
            # The issuer was written after the statuses were read: which serials changed is not kept,
            # so every response of this batch stays unserved until signed again (a few batches at most).
            stale = current if current != change_counter else 0
            times: dict[dt.datetime, int] = {}  # a batch shares its three times: convert each once
            rows = []
            for item in responses:
                response = item.response
                for when in (response.this_update, response.next_update, item.renew_at):
                    if when not in times:
                        times[when] = _ts(when)
                rows.append(
                    (
                        issuer_id, serial_key(item.serial_number), item.hash_algorithm, response.der,
                        times[response.this_update], times[response.next_update], times[item.renew_at],
                        change_counter, stale,
                    )
                )  # fmt: skip
            self._db.executemany(
                "INSERT INTO precomputed(issuer_id, serial, hash_algorithm, der, this_update, next_update, "
                "renew_at, signed_seq, changed_seq) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) "
                "ON CONFLICT(issuer_id, serial, hash_algorithm) DO UPDATE SET der = excluded.der, "
                "this_update = excluded.this_update, next_update = excluded.next_update, "
                "renew_at = excluded.renew_at, signed_seq = excluded.signed_seq, "
                "changed_seq = max(changed_seq, excluded.changed_seq) "
                "WHERE excluded.signed_seq >= precomputed.signed_seq",
                rows,
            )
            if current == change_counter:
                self._db.executemany(
                    "DELETE FROM precomputed WHERE issuer_id = ? AND serial = ?",
                    ((issuer_id, serial_key(serial)) for serial in remove),
                )

    def pending_precomputed(
        self, issuer_id: int, kind: str, *, now: dt.datetime, batch_size: int = 1000
    ) -> Iterator[list[int]]:
        if kind == "changed":
            yield from self._keyset(
                "SELECT DISTINCT serial FROM precomputed WHERE issuer_id = ? AND changed_seq > signed_seq "
                "AND serial > ? ORDER BY serial LIMIT ?",
                issuer_id, batch_size,
            )  # fmt: skip
        elif kind == "missing":
            # Issued serials first, then revoked serials no source lists as issued (CRL-only CAs:
            # only these): two index-ordered scans instead of one UNION the planner would sort.
            missing = (
                "(NOT EXISTS (SELECT 1 FROM precomputed p WHERE p.issuer_id = s.issuer_id AND p.serial = s.serial "
                "AND p.hash_algorithm = 'sha1') OR NOT EXISTS (SELECT 1 FROM precomputed p WHERE "
                "p.issuer_id = s.issuer_id AND p.serial = s.serial AND p.hash_algorithm = 'sha256'))"
            )
            yield from self._keyset(
                f"SELECT DISTINCT serial FROM issued s WHERE issuer_id = ? AND serial > ? AND {missing} "
                "ORDER BY serial LIMIT ?",
                issuer_id, batch_size,
            )  # fmt: skip
            yield from self._keyset(
                # reason 8, removeFromCRL: a delta CRL's release of a hold, not a revocation.
                f"SELECT DISTINCT serial FROM revoked s WHERE issuer_id = ? AND serial > ? AND reason IS NOT 8 AND {missing} "
                "AND NOT EXISTS (SELECT 1 FROM issued i WHERE i.issuer_id = s.issuer_id AND i.serial = s.serial) "
                "ORDER BY serial LIMIT ?",
                issuer_id, batch_size,
            )  # fmt: skip
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
                (issuer_id, now, last[0], last[1], batch_size * len(PRECOMPUTED_HASH_ALGORITHMS)),
            ).fetchall()
            if not rows:
                return
            last = (rows[-1][0], rows[-1][1])
            yield [serial_from_key(key) for key in dict.fromkeys(row[1] for row in rows)]

    def count_pending(self, issuer_id: int, kind: str, *, now: dt.datetime) -> int:
        return sum(len(batch) for batch in self.pending_precomputed(issuer_id, kind, now=now, batch_size=10_000))

    def next_renewal(self, issuer_id: int) -> dt.datetime | None:
        row = self._db.execute("SELECT min(renew_at) FROM precomputed WHERE issuer_id = ?", (issuer_id,)).fetchone()
        return None if row[0] is None else _dt(row[0])

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
