"""SQLite implementation of :class:`certstatus.store.base.StatusStore`.

The embedded default: one file, WAL journal so that worker processes read
while an import writes. Every write is one transaction: an import that fails
half-way leaves the previous rows serving. An import writes only the
difference to the rows it replaces, and numbers the serials it changed in
the change feed (pre-signed responses and the feed:
:mod:`certstatus.store.sqlite_precomputed`).
"""

from __future__ import annotations

import datetime as dt
import sqlite3
from collections.abc import Iterable, Sequence
from pathlib import Path

from certstatus.sources.records import RevokedEntry
from certstatus.store.base import (
    PUSH_KIND,
    REASON_CODES,
    REASONS_BY_CODE,
    CertStatusRecord,
    SourceState,
    StatusChange,
    combine_revocations,
    serial_key,
)
from certstatus.store.sqlite_precomputed import PRECOMPUTED_SCHEMA, PrecomputedSQLite

SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS issuers (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    certificate BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS revoked (
    issuer_id INTEGER NOT NULL REFERENCES issuers(id),
    serial BLOB NOT NULL,
    source TEXT NOT NULL,
    revocation_time INTEGER NOT NULL,
    reason INTEGER,
    invalidity_date INTEGER,
    PRIMARY KEY (issuer_id, serial, source)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS issued (
    issuer_id INTEGER NOT NULL REFERENCES issuers(id),
    serial BLOB NOT NULL,
    source TEXT NOT NULL,
    PRIMARY KEY (issuer_id, serial, source)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS sources (
    issuer_id INTEGER NOT NULL REFERENCES issuers(id),
    kind TEXT NOT NULL,
    origin TEXT NOT NULL,
    imported_at INTEGER NOT NULL,
    entries INTEGER NOT NULL,
    this_update INTEGER,
    next_update INTEGER,
    crl_number TEXT,
    PRIMARY KEY (issuer_id, kind)
);
CREATE TEMP TABLE IF NOT EXISTS incoming_issued (serial BLOB PRIMARY KEY) WITHOUT ROWID;
CREATE TEMP TABLE IF NOT EXISTS incoming_revoked (
    serial BLOB PRIMARY KEY,
    revocation_time INTEGER NOT NULL,
    reason INTEGER,
    invalidity_date INTEGER
) WITHOUT ROWID;
"""


_BULK_CACHE_KIB = -65536  # negative: KiB (SQLite PRAGMA cache_size)
_DEFAULT_CACHE_KIB = -2000


def _ts(value: dt.datetime | None) -> int | None:
    return None if value is None else int(value.timestamp())


def _dt(value: int | None) -> dt.datetime | None:
    return None if value is None else dt.datetime.fromtimestamp(value, dt.timezone.utc)


class SQLiteStore(PrecomputedSQLite):
    """Status store in one SQLite file (``:memory:`` works for tests).

    One instance per process and thread; worker processes open their own.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = str(path)
        self._db = sqlite3.connect(self.path, isolation_level=None, timeout=30.0)
        if self.path != ":memory:":
            self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        # Imports and the generator write in bulk: checkpoint (and fsync) every ~40 MB of WAL, not every 4 MB.
        self._db.execute("PRAGMA wal_autocheckpoint=10000")
        self._db.execute("PRAGMA temp_store=MEMORY")
        self._db.executescript(_SCHEMA + PRECOMPUTED_SCHEMA)
        self._db.execute(
            "INSERT OR IGNORE INTO meta(key, value) VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),)
        )

    def register_issuer(self, name: str, certificate_der: bytes) -> int:
        with self._transaction():
            row = self._db.execute("SELECT id, certificate FROM issuers WHERE name = ?", (name,)).fetchone()
            if row is None:
                return self._db.execute(
                    "INSERT INTO issuers(name, certificate) VALUES (?, ?)", (name, certificate_der)
                ).lastrowid
            if row[1] != certificate_der:
                # Same name, new certificate: the old rows belong to another key.
                self._db.execute("DELETE FROM revoked WHERE issuer_id = ?", (row[0],))
                self._db.execute("DELETE FROM issued WHERE issuer_id = ?", (row[0],))
                self._db.execute("DELETE FROM sources WHERE issuer_id = ?", (row[0],))
                self._db.execute("DELETE FROM precomputed WHERE issuer_id = ?", (row[0],))
                self._db.execute("UPDATE issuers SET certificate = ? WHERE id = ?", (certificate_der, row[0]))
                self._record_changes(row[0], whole_issuer=True)
            return row[0]

    def lookup(self, issuer_id: int, serial_number: int) -> CertStatusRecord | None:
        key = serial_key(serial_number)
        rows = self._db.execute(
            "SELECT source, revocation_time, reason, invalidity_date FROM revoked "
            "WHERE issuer_id = ? AND serial = ?",
            (issuer_id, key),
        ).fetchall()
        issued = (
            self._db.execute(
                "SELECT 1 FROM issued WHERE issuer_id = ? AND serial = ? LIMIT 1", (issuer_id, key)
            ).fetchone()
            is not None
        )
        if not rows and not issued:
            return None
        revoked = combine_revocations(
            serial_number,
            ((r[0], _dt(r[1]), None if r[2] is None else REASONS_BY_CODE[r[2]], _dt(r[3])) for r in rows),
        )
        if revoked is None and not issued:
            return None
        return CertStatusRecord(issued=issued, revoked=revoked)

    def replace_source(
        self,
        issuer_id: int,
        state: SourceState,
        *,
        issued: Iterable[int] = (),
        revoked: Iterable[RevokedEntry] = (),
        drop_kinds: Sequence[str] = (),
    ) -> None:
        # Rows go in in primary-key order, with a 64 MiB page cache for the duration: a B-tree
        # filled in key order touches each page once (a 1M-entry CRL: ~4x faster than CRL order).
        # They land in temporary tables first and only the difference is written, so a re-import
        # of unchanged data writes (and re-signs) nothing.
        issued_keys = sorted({serial_key(serial) for serial in issued})
        revoked_rows = sorted(
            (
                serial_key(entry.serial_number),
                _ts(entry.revocation_time),
                None if entry.reason is None else REASON_CODES[entry.reason],
                _ts(entry.invalidity_date),
            )
            for entry in revoked
        )
        self._db.execute(f"PRAGMA cache_size = {_BULK_CACHE_KIB}")
        try:
            with self._transaction():
                self._db.execute("DELETE FROM changed_serials")
                self._replace_issued(issuer_id, state.kind, issued_keys)
                self._replace_revoked(issuer_id, state.kind, revoked_rows)
                for kind in drop_kinds:
                    for table in ("revoked", "issued"):
                        self._db.execute(
                            f"INSERT OR IGNORE INTO changed_serials SELECT serial FROM {table} "
                            "WHERE issuer_id = ? AND source = ?",
                            (issuer_id, kind),
                        )
                    self._delete_source(issuer_id, kind)
                self._save_state(issuer_id, state)
                self._record_changes(issuer_id)
                for table in ("incoming_issued", "incoming_revoked", "changed_serials"):
                    self._db.execute(f"DELETE FROM {table}")
        finally:
            self._db.execute(f"PRAGMA cache_size = {_DEFAULT_CACHE_KIB}")

    def apply_changes(self, issuer_id: int, changes: Sequence[StatusChange], *, at: dt.datetime) -> None:
        with self._transaction():
            self._db.execute("DELETE FROM changed_serials")
            for change in changes:
                key = serial_key(change.serial_number)
                if change.action == "issue":
                    self._db.execute(
                        "INSERT OR IGNORE INTO issued(issuer_id, serial, source) VALUES (?, ?, ?)",
                        (issuer_id, key, PUSH_KIND),
                    )
                elif change.action == "unrevoke":
                    self._db.execute(
                        "DELETE FROM revoked WHERE issuer_id = ? AND serial = ? AND source = ?",
                        (issuer_id, key, PUSH_KIND),
                    )
                elif change.action == "revoke":
                    self._db.execute(
                        "INSERT OR REPLACE INTO revoked(issuer_id, serial, source, revocation_time, reason, "
                        "invalidity_date) VALUES (?, ?, ?, ?, ?, ?)",
                        (
                            issuer_id,
                            key,
                            PUSH_KIND,
                            _ts(change.revocation_time),
                            None if change.reason is None else REASON_CODES[change.reason],
                            _ts(change.invalidity_date),
                        ),
                    )
                else:
                    raise ValueError(f"unknown change action {change.action!r}")
                self._db.execute("INSERT OR IGNORE INTO changed_serials(serial) VALUES (?)", (key,))
            self._save_state(
                issuer_id, SourceState(kind=PUSH_KIND, origin="push", imported_at=at, entries=len(changes))
            )
            self._record_changes(issuer_id)
            self._db.execute("DELETE FROM changed_serials")

    def _replace_issued(self, issuer_id: int, kind: str, issued_keys: list[bytes]) -> None:
        """Make the source's issued rows equal ``issued_keys``; collect the serials added or removed."""
        db = self._db
        db.execute("DELETE FROM incoming_issued")
        db.executemany("INSERT OR IGNORE INTO incoming_issued(serial) VALUES (?)", ((key,) for key in issued_keys))
        mine = "issuer_id = ? AND source = ?"
        db.execute(
            f"INSERT OR IGNORE INTO changed_serials SELECT serial FROM issued WHERE {mine} "
            "AND serial NOT IN (SELECT serial FROM incoming_issued)",
            (issuer_id, kind),
        )
        db.execute(f"DELETE FROM issued WHERE {mine} AND serial IN (SELECT serial FROM changed_serials)", (issuer_id, kind))
        db.execute(
            "INSERT OR IGNORE INTO changed_serials SELECT serial FROM incoming_issued n WHERE NOT EXISTS "
            "(SELECT 1 FROM issued i WHERE i.issuer_id = ? AND i.serial = n.serial AND i.source = ?)",
            (issuer_id, kind),
        )
        db.execute(
            "INSERT OR IGNORE INTO issued(issuer_id, serial, source) SELECT ?, serial, ? FROM incoming_issued "
            "WHERE serial IN (SELECT serial FROM changed_serials)",
            (issuer_id, kind),
        )

    def _replace_revoked(self, issuer_id: int, kind: str, revoked_rows: list[tuple]) -> None:
        """Make the source's revoked rows equal ``revoked_rows``; collect the serials whose rows differ."""
        db = self._db
        db.execute("DELETE FROM incoming_revoked")
        db.executemany(
            # A serial listed twice: the last entry wins, as before.
            "INSERT OR REPLACE INTO incoming_revoked(serial, revocation_time, reason, invalidity_date) VALUES (?, ?, ?, ?)",
            revoked_rows,
        )
        same = "n.serial = r.serial AND n.revocation_time = r.revocation_time AND n.reason IS r.reason AND n.invalidity_date IS r.invalidity_date"
        db.execute(
            "INSERT OR IGNORE INTO changed_serials SELECT serial FROM revoked r WHERE r.issuer_id = ? AND r.source = ? "
            f"AND NOT EXISTS (SELECT 1 FROM incoming_revoked n WHERE {same})",
            (issuer_id, kind),
        )
        db.execute(
            "INSERT OR IGNORE INTO changed_serials SELECT serial FROM incoming_revoked n WHERE NOT EXISTS "
            f"(SELECT 1 FROM revoked r WHERE r.issuer_id = ? AND r.source = ? AND {same})",
            (issuer_id, kind),
        )
        db.execute(
            "DELETE FROM revoked WHERE issuer_id = ? AND source = ? AND serial IN (SELECT serial FROM changed_serials)",
            (issuer_id, kind),
        )
        db.execute(
            "INSERT INTO revoked(issuer_id, serial, source, revocation_time, reason, invalidity_date) "
            "SELECT ?, serial, ?, revocation_time, reason, invalidity_date FROM incoming_revoked "
            "WHERE serial IN (SELECT serial FROM changed_serials)",
            (issuer_id, kind),
        )

    def _delete_source(self, issuer_id: int, kind: str) -> None:
        for table in ("revoked", "issued", "sources"):
            column = "kind" if table == "sources" else "source"
            self._db.execute(f"DELETE FROM {table} WHERE issuer_id = ? AND {column} = ?", (issuer_id, kind))

    def _save_state(self, issuer_id: int, state: SourceState) -> None:
        self._db.execute(
            "INSERT OR REPLACE INTO sources(issuer_id, kind, origin, imported_at, entries, this_update, "
            "next_update, crl_number) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (
                issuer_id,
                state.kind,
                state.origin,
                _ts(state.imported_at),
                state.entries,
                _ts(state.this_update),
                _ts(state.next_update),
                None if state.crl_number is None else str(state.crl_number),
            ),
        )

    def source_states(self, issuer_id: int) -> dict[str, SourceState]:
        rows = self._db.execute(
            "SELECT kind, origin, imported_at, entries, this_update, next_update, crl_number "
            "FROM sources WHERE issuer_id = ?",
            (issuer_id,),
        ).fetchall()
        return {
            row[0]: SourceState(
                kind=row[0],
                origin=row[1],
                imported_at=_dt(row[2]),
                entries=row[3],
                this_update=_dt(row[4]),
                next_update=_dt(row[5]),
                crl_number=None if row[6] is None else int(row[6]),
            )
            for row in rows
        }

    def close(self) -> None:
        self._db.close()

    def _transaction(self) -> "_Transaction":
        return _Transaction(self._db)


class _Transaction:
    """BEGIN IMMEDIATE ... COMMIT, or ROLLBACK on any exception."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db

    def __enter__(self) -> sqlite3.Connection:
        self._db.execute("BEGIN IMMEDIATE")
        return self._db

    def __exit__(self, exc_type, exc, tb) -> None:
        self._db.execute("ROLLBACK" if exc_type else "COMMIT")
