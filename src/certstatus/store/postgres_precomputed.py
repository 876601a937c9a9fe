"""PostgreSQL storage of pre-signed responses (precomputed and cached modes).

The tables are SQLite's (migration ``0004_precomputed_compact``, see
:mod:`certstatus.store.sqlite_precomputed` for the rules): one ``precomputed``
row per (issuer_id, serial) holding the SHA-1 and SHA-256 CertID responses
without their certificates, which are stored once in ``precomputed_certs``
and spliced back on read (:class:`~certstatus.der.ResponseAssembler`).
A row is served while ``changed_seq <= signed_seq``; an import or push that
changes a serial raises ``changed_seq`` in its own transaction
(:meth:`PrecomputedPostgres._mark_changed`).

What PostgreSQL adds (the one-generator-per-CA lock of a fleet is
:mod:`certstatus.store.postgres_lock`):

* **Writes race imports on other hosts.** SQLite's ``BEGIN IMMEDIATE``
  serialises writers; here a generator batch reads the issuer's change
  counter ``FOR SHARE``, so an import (whose first statement raises the
  counter, taking the row lock) either commits before the batch reads it —
  and the batch is stored as changed — or waits for the batch to commit and
  then marks its rows changed. Both take the issuer row first: no deadlock.
* **Plans that stay right while the generator fills the table.** The work
  queries walk an index in key order and stop after a batch, and probe the
  ``precomputed`` primary key once per serial: fine with statistics that
  know the tables' sizes, disastrous with statistics taken when a table was
  empty (the planner then scans the whole table per serial). Autovacuum may
  be off or a minute late, so before and during the walks the store runs
  ``ANALYZE`` on a table modified by more than 20 % (+1000 rows) since its
  last analysis (:meth:`PrecomputedPostgres._refresh_statistics`, at most
  every :data:`STATISTICS_INTERVAL` seconds).
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Iterable, Iterator, Sequence

import psycopg
from psycopg import sql

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
    status_records,
)

log = logging.getLogger("certstatus.store.postgres")

_UTC = dt.timezone.utc

# One statement per hash algorithm (the column is chosen here, never from the request).
_SELECT = {
    algorithm: f"SELECT {algorithm}, this_update, next_update, certs_id, profile FROM precomputed "
    "WHERE issuer_id = %(issuer)s AND serial = %(serial)s AND changed_seq <= signed_seq"
    for algorithm in PRECOMPUTED_HASH_ALGORITHMS
}
_CERTS = "SELECT der FROM precomputed_certs WHERE id = %(id)s"
# The request path's rows in serial order, a slice at a time (servable_responses: the edge cache's fill).
_SLICE = {
    algorithm: f"SELECT serial, {algorithm}, this_update, next_update, certs_id FROM precomputed "
    f"WHERE issuer_id = %(issuer)s AND serial > %(after)s AND {algorithm} IS NOT NULL AND changed_seq <= signed_seq "
    "AND profile = %(profile)s ORDER BY serial LIMIT %(limit)s"
    for algorithm in PRECOMPUTED_HASH_ALGORITHMS
}

#: The status rows of several serials in one round trip: revocations, then one row per source listing it issued.
_LOOKUP_MANY = """
SELECT serial, source, revocation_time, reason, invalidity_date, NULL::bytea FROM revoked
WHERE issuer_id = %(issuer)s AND serial = ANY(%(serials)b)
UNION ALL
SELECT serial, NULL, NULL::timestamptz, NULL::smallint, NULL::timestamptz, cert_hash
FROM issued WHERE issuer_id = %(issuer)s AND serial = ANY(%(serials)b)
"""

# One statement per batch: the rows travel as three binary bytea arrays (fewer round trips than
# COPY into a temporary table, and no temporary table).
_UPSERT = """
INSERT INTO precomputed (issuer_id, serial, sha1, sha256, certs_id, this_update, next_update, renew_at, profile,
    signed_seq, changed_seq)
SELECT %(issuer)s, serial, sha1, sha256, %(certs)s, %(this_update)s, %(next_update)s, %(renew_at)s, %(profile)s,
    %(signed)s, %(stale)s
FROM unnest(%(serials)b::bytea[], %(sha1)b::bytea[], %(sha256)b::bytea[]) AS rows (serial, sha1, sha256)
ON CONFLICT (issuer_id, serial) DO UPDATE SET sha1 = EXCLUDED.sha1, sha256 = EXCLUDED.sha256,
    certs_id = EXCLUDED.certs_id, this_update = EXCLUDED.this_update, next_update = EXCLUDED.next_update,
    renew_at = EXCLUDED.renew_at, profile = EXCLUDED.profile, signed_seq = EXCLUDED.signed_seq,
    changed_seq = GREATEST(precomputed.changed_seq, EXCLUDED.changed_seq)
WHERE EXCLUDED.signed_seq >= precomputed.signed_seq
"""

# A serial is missing while its row lacks a response of some hash algorithm.
_MISSING = (
    "NOT EXISTS (SELECT 1 FROM precomputed p WHERE p.issuer_id = s.issuer_id AND p.serial = s.serial "
    "AND p.sha1 IS NOT NULL AND p.sha256 IS NOT NULL)"
)
_MISSING_ISSUED = f"FROM issued s WHERE s.issuer_id = %(issuer)s AND s.serial > %(after)s AND {_MISSING}"
# reason 8, removeFromCRL: a delta CRL's release of a hold, not a revocation.
_MISSING_REVOKED = (
    f"FROM revoked s WHERE s.issuer_id = %(issuer)s AND s.serial > %(after)s AND s.reason IS DISTINCT FROM 8 AND {_MISSING} "
    "AND NOT EXISTS (SELECT 1 FROM issued i WHERE i.issuer_id = s.issuer_id AND i.serial = s.serial)"
)
_CHANGED = "FROM precomputed WHERE issuer_id = %(issuer)s AND changed_seq > signed_seq AND serial > %(after)s"

#: Seconds between two checks of the tables' statistics during the generator's walks.
STATISTICS_INTERVAL = 5.0
#: The tables the generator's work queries read, whose statistics must follow their size.
_WORK_TABLES = ("issued", "revoked", "precomputed")
_STALE_STATISTICS = """
SELECT c.relname FROM pg_class c JOIN pg_stat_user_tables s ON s.relid = c.oid
WHERE c.relnamespace = current_schema()::regnamespace AND c.relname = ANY(%s)
AND s.n_mod_since_analyze > 1000 + 0.2 * GREATEST(c.reltuples, 0)
"""

#: The start of time for renew_at: a row made due before every other (expire_other_profiles).
_DUE_AT_ONCE = dt.datetime(1970, 1, 1, tzinfo=_UTC)


def _utc(value: dt.datetime) -> dt.datetime:
    return value.astimezone(_UTC)


class PrecomputedPostgres:
    """The pre-signed response methods of ``PostgresStore`` (a mixin; see :class:`certstatus.store.base.StatusStore`).

    Expects ``self.dsn``, ``self.schema``, ``self._read()`` (the request
    path's prepared statements on a per-thread connection) and
    ``self._connection()`` (a pooled autocommit connection).
    """

    dsn: str
    schema: str
    _assemblers: dict[int, ResponseAssembler] | None = None  # certs_id -> assembler (rows never change)
    _certs_ids: dict[bytes, int] | None = None  # certificates element -> certs_id, once committed
    _statistics_checked: float = float("-inf")
    _statistics_refused: bool = False

    # -- read by the request path ----------------------------------------------

    def precomputed(
        self, issuer_id: int, serial_number: int, hash_algorithm: str, profile: int | None = None
    ) -> PrecomputedResponse | None:
        query = _SELECT.get(hash_algorithm)
        if query is None:
            return None
        rows = self._read(query, {"issuer": issuer_id, "serial": serial_key(serial_number)}, binary=True)
        if not rows or rows[0][0] is None or (profile is not None and rows[0][4] != profile):
            return None
        body, this_update, next_update, certs_id, _ = rows[0]
        der = bytes(body) if certs_id is None else self._assembler(certs_id).assemble(bytes(body))
        return PrecomputedResponse(der, _utc(this_update), _utc(next_update))

    def _assembler(self, certs_id: int) -> ResponseAssembler:
        if self._assemblers is None:
            self._assemblers = {}
        assembler = self._assemblers.get(certs_id)
        if assembler is None:
            der = self._read(_CERTS, {"id": certs_id})[0][0]
            assembler = self._assemblers[certs_id] = ResponseAssembler(bytes(der))
        return assembler

    def servable_responses(
        self, issuer_id: int, hash_algorithm: str, profile: int, *, after: bytes = b"", limit: int = 200
    ) -> list[tuple[bytes, PrecomputedResponse]]:
        query = _SLICE.get(hash_algorithm)
        if query is None:
            raise ValueError(f"pre-signed responses are for {PRECOMPUTED_HASH_ALGORITHMS}, not {hash_algorithm!r}")
        rows = self._read(query, {"issuer": issuer_id, "after": after, "profile": profile, "limit": limit}, binary=True)
        times: dict[dt.datetime, dt.datetime] = {}  # one object per value: the caller's caches compare by identity
        found = []
        for key, body, this_update, next_update, certs_id in rows:
            der = bytes(body) if certs_id is None else self._assembler(certs_id).assemble(bytes(body))
            this_update = times.setdefault(this_update, _utc(this_update))
            next_update = times.setdefault(next_update, _utc(next_update))
            found.append((bytes(key), PrecomputedResponse(der, this_update, next_update)))
        return found

    def stored_responses(self, issuer_id: int, hash_algorithm: str) -> Iterator[tuple[int, PrecomputedResponse]]:
        """Every stored response of the issuer for ``hash_algorithm``, servable or not, as (serial, response).

        Complete DER, as :meth:`precomputed` returns it (exports, tests).
        ValueError for a hash algorithm outside :data:`PRECOMPUTED_HASH_ALGORITHMS`.
        """
        if hash_algorithm not in _SELECT:
            raise ValueError(f"pre-signed responses are for {PRECOMPUTED_HASH_ALGORITHMS}, not {hash_algorithm!r}")
        with self._connection() as conn:
            rows = conn.execute(
                f"SELECT serial, {hash_algorithm}, this_update, next_update, certs_id FROM precomputed "
                f"WHERE issuer_id = %s AND {hash_algorithm} IS NOT NULL ORDER BY serial",
                (issuer_id,),
            ).fetchall()
        for key, body, this_update, next_update, certs_id in rows:
            der = bytes(body) if certs_id is None else self._assembler(certs_id).assemble(bytes(body))
            yield serial_from_key(bytes(key)), PrecomputedResponse(der, _utc(this_update), _utc(next_update))

    def lookup_many(self, issuer_id: int, serial_numbers: Sequence[int]) -> dict[int, CertStatusRecord]:
        """Status records of several serials in one round trip, combined as :meth:`lookup` does."""
        keys = [serial_key(serial) for serial in serial_numbers]
        with self._connection() as conn:
            rows = conn.execute(_LOOKUP_MANY, {"issuer": issuer_id, "serials": keys}).fetchall()
        issued_rows = []
        revoked: dict[bytes, list[tuple]] = {}
        for key, source, revocation_time, reason, invalidity, cert_hash in rows:
            if source is None:
                issued_rows.append((key, cert_hash))
            else:
                revoked.setdefault(bytes(key), []).append((source, revocation_time, reason, invalidity))
        return status_records(serial_numbers, keys, issued_hashes(issued_rows), revoked, _utc)

    # -- written by the generator ----------------------------------------------

    def store_precomputed(
        self, issuer_id: int, responses: Iterable[SignedResponse], *, change_counter: int, remove: Iterable[int] = (),
        profile: int = 0,
    ) -> None:
        """Write complete OCSPResponses (see :class:`StatusStore`); the generator uses :meth:`store_signed`.

        As on SQLite: one row per serial, whose responses must share
        thisUpdate, nextUpdate and renew_at (ValueError otherwise, or for a
        hash algorithm outside :data:`PRECOMPUTED_HASH_ALGORITHMS`; nothing
        written). Rows are grouped by their times, one upsert per group, all
        in one transaction. ``profile``: the signing profile they were signed under.
        """
        groups: dict[tuple[dt.datetime, dt.datetime, dt.datetime], list[tuple]] = {}
        for key, times, ders in precomputed_rows(responses):
            groups.setdefault(times, []).append((key, *ders))
        self._write_rows(issuer_id, [(None, times, rows) for times, rows in groups.items()], change_counter, remove, profile)

    def store_signed(
        self, issuer_id: int, batch: SignedBatch, *, change_counter: int, remove: Iterable[int] = ()
    ) -> None:
        times = (batch.this_update, batch.next_update, batch.renew_at)
        self._write_rows(issuer_id, [(batch.certificates_element, times, batch.rows)], change_counter, remove, batch.profile)

    def _write_rows(
        self,
        issuer_id: int,
        groups: Sequence[tuple[bytes | None, tuple[dt.datetime, dt.datetime, dt.datetime], Sequence[tuple]]],
        change_counter: int,
        remove: Iterable[int],
        profile: int,
    ) -> None:
        """Upsert each group (certificates element or None, (thisUpdate, nextUpdate, renew_at), (key, sha1, sha256) rows)
        signed under signing profile ``profile``."""
        new_certs: dict[bytes, int] = {}
        removed = [serial_key(serial) for serial in remove]
        with self._connection() as conn, conn.transaction(), conn.cursor() as cur:
            # Re-derivable rows: a database crash may lose the last batches (~0.2 s), which the next pass
            # signs again as missing; not waiting for the WAL flush makes each batch's commit cheaper.
            cur.execute("SET LOCAL synchronous_commit = off")
            row = cur.execute("SELECT change_counter FROM issuers WHERE id = %s FOR SHARE", (issuer_id,)).fetchone()
            current = 0 if row is None else row[0]
            # The issuer was written after the statuses were read: which serials changed is not kept,
            # so every response of this batch stays unserved until signed again (a few batches at most).
            stale = current if current != change_counter else 0
            for certificates, (this_update, next_update, renew), rows in groups:
                if not rows:
                    continue
                certs_id = None
                if certificates is not None:
                    certs_id = (self._certs_ids or {}).get(certificates) or new_certs.get(certificates)
                    if certs_id is None:
                        certs_id = new_certs[certificates] = _certs_id(cur, certificates)
                serials, sha1, sha256 = zip(*rows, strict=True)
                cur.execute(
                    _UPSERT,
                    {"issuer": issuer_id, "certs": certs_id, "this_update": this_update, "next_update": next_update,
                     "renew_at": renew, "profile": profile, "signed": change_counter, "stale": stale,
                     "serials": list(serials), "sha1": list(sha1), "sha256": list(sha256)},
                )  # fmt: skip
            if removed and current == change_counter:
                cur.execute("DELETE FROM precomputed WHERE issuer_id = %s AND serial = ANY(%s)", (issuer_id, removed))
        if new_certs:  # remembered once committed
            if self._certs_ids is None:
                self._certs_ids = {}
            self._certs_ids.update(new_certs)

    def pending_precomputed(
        self, issuer_id: int, kind: str, *, now: dt.datetime, batch_size: int = 1000
    ) -> Iterator[list[int]]:
        self._refresh_statistics(force=True)
        if kind == "changed":
            yield from self._keyset(f"SELECT serial {_CHANGED} ORDER BY serial LIMIT %(limit)s", issuer_id, batch_size)
        elif kind == "missing":
            # Issued serials first, then revoked serials no source lists as issued (CRL-only CAs: only these).
            yield from self._keyset(f"SELECT DISTINCT s.serial {_MISSING_ISSUED} ORDER BY s.serial LIMIT %(limit)s", issuer_id, batch_size)
            yield from self._keyset(f"SELECT DISTINCT s.serial {_MISSING_REVOKED} ORDER BY s.serial LIMIT %(limit)s", issuer_id, batch_size)
        elif kind == "due":
            yield from self._due(issuer_id, now, batch_size)
        else:
            raise ValueError(f"kind must be one of {WORK_KINDS}, not {kind!r}")

    def _keyset(self, query: str, issuer_id: int, batch_size: int) -> Iterator[list[int]]:
        after = b""  # sorts before every serial key
        while True:
            self._refresh_statistics()
            with self._connection() as conn:
                keys = [bytes(row[0]) for row in conn.execute(query, {"issuer": issuer_id, "after": after, "limit": batch_size})]
            if not keys:
                return
            after = keys[-1]
            yield [serial_from_key(key) for key in keys]

    def _due(self, issuer_id: int, now: dt.datetime, batch_size: int) -> Iterator[list[int]]:
        query = (
            "SELECT renew_at, serial FROM precomputed WHERE issuer_id = %(issuer)s AND renew_at <= %(now)s "
            "AND (renew_at, serial) > (%(renew)s, %(after)s) ORDER BY renew_at, serial LIMIT %(limit)s"
        )
        last: tuple = (dt.datetime(1, 1, 2, tzinfo=_UTC), b"")
        while True:
            self._refresh_statistics()
            params = {"issuer": issuer_id, "now": now, "renew": last[0], "after": last[1], "limit": batch_size}
            with self._connection() as conn:
                rows = conn.execute(query, params).fetchall()
            if not rows:
                return
            last = (rows[-1][0], bytes(rows[-1][1]))
            yield [serial_from_key(bytes(row[1])) for row in rows]

    def count_pending(self, issuer_id: int, kind: str, *, now: dt.datetime) -> int:
        params = {"issuer": issuer_id, "after": b"", "now": now}
        if kind == "changed":
            parts = [f"SELECT count(*) {_CHANGED}"]
        elif kind == "missing":
            parts = [f"SELECT count(DISTINCT s.serial) {part}" for part in (_MISSING_ISSUED, _MISSING_REVOKED)]
        elif kind == "due":
            parts = ["SELECT count(*) FROM precomputed WHERE issuer_id = %(issuer)s AND renew_at <= %(now)s"]
        else:
            raise ValueError(f"kind must be one of {WORK_KINDS}, not {kind!r}")
        self._refresh_statistics()
        with self._connection() as conn:
            return sum(conn.execute(part, params).fetchone()[0] for part in parts)

    def next_renewal(self, issuer_id: int) -> dt.datetime | None:
        with self._connection() as conn:
            row = conn.execute("SELECT min(renew_at) FROM precomputed WHERE issuer_id = %s", (issuer_id,)).fetchone()
        return None if row[0] is None else _utc(row[0])

    def precomputed_certificates(self) -> dict[int, bytes]:
        with self._connection() as conn:
            return {certs_id: bytes(der) for certs_id, der in conn.execute("SELECT id, der FROM precomputed_certs")}

    def drop_precomputed(self, issuer_id: int, certificates_id: int) -> int:
        with self._connection() as conn, conn.transaction():
            return conn.execute(
                "DELETE FROM precomputed WHERE issuer_id = %s AND certs_id = %s", (issuer_id, certificates_id)
            ).rowcount

    def expire_other_profiles(self, issuer_id: int, profile: int) -> int:
        with self._connection() as conn:
            return conn.execute(
                "UPDATE precomputed SET renew_at = %s WHERE issuer_id = %s AND profile <> %s AND renew_at <> %s",
                (_DUE_AT_ONCE, issuer_id, profile, _DUE_AT_ONCE),
            ).rowcount

    def _refresh_statistics(self, *, force: bool = False) -> None:
        """ANALYZE the work tables modified much since their last analysis (see the module; every few seconds at most)."""
        now = time.monotonic()
        if self._statistics_refused or (not force and now - self._statistics_checked < STATISTICS_INTERVAL):
            return
        self._statistics_checked = now
        with self._connection() as conn:
            for (table,) in conn.execute(_STALE_STATISTICS, (list(_WORK_TABLES),)).fetchall():
                try:
                    conn.execute(sql.SQL("ANALYZE {}").format(sql.Identifier(table)))
                except psycopg.errors.InsufficientPrivilege as exc:
                    self._statistics_refused = True
                    log.warning(
                        "cannot ANALYZE %s in %s (%s); the generator's queries rely on autovacuum for their plans",
                        table, self.label, " ".join(str(exc).split()),
                    )  # fmt: skip
                    return

    # -- written by imports and pushes (inside their transaction) ----------------

    @staticmethod
    def _has_precomputed(cur: psycopg.Cursor, issuer_id: int) -> bool:
        """True when the issuer has pre-signed rows (else an import need not collect its changed serials)."""
        return cur.execute("SELECT EXISTS (SELECT 1 FROM precomputed WHERE issuer_id = %s)", (issuer_id,)).fetchone()[0]

    @staticmethod
    def _mark_changed(cur: psycopg.Cursor, issuer_id: int, counter: int, serials: Sequence[bytes] | None = None) -> None:
        """Mark the responses of ``serials`` (None: those in the temporary table changed_serials) changed at ``counter``."""
        if serials is None:
            cur.execute(
                "UPDATE precomputed p SET changed_seq = %s FROM changed_serials c WHERE p.issuer_id = %s AND p.serial = c.serial",
                (counter, issuer_id),
            )
        elif serials:
            cur.execute(
                "UPDATE precomputed SET changed_seq = %s WHERE issuer_id = %s AND serial = ANY(%s)", (counter, issuer_id, list(serials))
            )

def _certs_id(cur: psycopg.Cursor, certificates: bytes) -> int:
    """The id of ``certificates`` in precomputed_certs, inserted when new (inside the caller's transaction)."""
    row = cur.execute(
        "INSERT INTO precomputed_certs(der) VALUES (%s) ON CONFLICT (der) DO NOTHING RETURNING id", (certificates,)
    ).fetchone()
    if row is None:
        row = cur.execute("SELECT id FROM precomputed_certs WHERE der = %s", (certificates,)).fetchone()
    return row[0]
