"""SQLite implementation of :class:`certstatus.store.base.StatusStore`.

The embedded default: one file, WAL journal so that worker processes read
while an import writes. Every write is one transaction: an import that fails
half-way leaves the previous rows serving. An import writes only the
difference to the rows it replaces, and marks the pre-signed responses of
the serials it changed (pre-signed responses:
:mod:`certstatus.store.sqlite_precomputed`); the issuer's change counter
grows only when it changed something (:class:`~certstatus.store.base.ChangeCount`).
"""

from __future__ import annotations

import datetime as dt
import os
import sqlite3
import time
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

from certstatus.errors import StoreError
from certstatus.model import REASON_CODES, REASONS_BY_CODE, CertStatusRecord, IssuedCertificate, RevokedEntry, serial_key
from certstatus.store import migrations
from certstatus.store.base import (
    ARCHIVE_EXCLUDED_REASONS,
    ARCHIVE_KIND,
    DELTA_KIND,
    PUSH_KIND,
    SOURCE_COLUMNS,
    ChangeCount,
    SourceState,
    StatusChange,
    archive_kinds,
    combine_revocations,
    count_changes,
    issued_entries,
    revocations_from_rows,
    source_marks,
    source_state_from_row,
)
from certstatus.store.sqlite_precomputed import SCRATCH_TABLES, PrecomputedSQLite

BACKEND = "sqlite"

_MIGRATIONS_TABLE = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    applied_at INTEGER NOT NULL
)
"""


_LOOKUP = (
    "SELECT source, revocation_time, reason, invalidity_date, NULL FROM revoked WHERE issuer_id = ?1 AND serial = ?2 "
    "UNION ALL SELECT NULL, NULL, NULL, NULL, cert_hash FROM issued WHERE issuer_id = ?1 AND serial = ?2"
)
#: The latest notAfter the sources listing a serial issued give (NULL: none gives one).
_NOT_AFTER = "SELECT max(not_after) FROM issued WHERE issuer_id = ?1 AND serial = ?2"
#: A pushed revocation: inserted, or updated when it differs (rowcount 0: the same revocation was pushed again).
_PUSH_REVOKE = (
    "INSERT INTO revoked(issuer_id, serial, source, revocation_time, reason, invalidity_date) VALUES (?, ?, ?, ?, ?, ?) "
    "ON CONFLICT (issuer_id, serial, source) DO UPDATE SET revocation_time = excluded.revocation_time, "
    "reason = excluded.reason, invalidity_date = excluded.invalidity_date "
    "WHERE revocation_time IS NOT excluded.revocation_time OR reason IS NOT excluded.reason "
    "OR invalidity_date IS NOT excluded.invalidity_date"
)
_SOURCE_MARKS = "SELECT issuer_id, kind, imported_at, this_update, next_update FROM sources"
_BULK_CACHE_KIB = -65536  # negative: KiB (SQLite PRAGMA cache_size)
_DEFAULT_CACHE_KIB = -2000
#: Bytes per database page of a new file. The generator writes ~700-byte rows in bulk: 16 KiB pages
#: (SQLite's default is 4 KiB) cost its workers and its checkpoints ~0.9 us less CPU per response
#: (bench/generate.py). A file keeps the page size it was made with (existing stores: 4 KiB; see docs/database.md).
PAGE_SIZE = 16384
_AUTOCHECKPOINT_BYTES = 10000 * 4096  # WAL bytes after which a writer's commit checkpoints (any page size)


#: Mode of a new store file and of its -wal and -shm files (the store says who is revoked; precomputed, it holds
#: signed responses): read and written by the service user alone.
FILE_MODE = 0o600


#: The record of a serial listed as issued and revoked by no source (immutable, shared).
_ISSUED = CertStatusRecord(issued=True, revoked=None)


def _create_private(path: str) -> None:
    """Create the store file ``path``, empty, with mode :data:`FILE_MODE` (exactly: not less the umask) unless it exists.

    SQLite would create it 0644 less the umask, and it gives the ``-wal`` and
    ``-shm`` files it makes the database file's mode: so all three are private.
    An existing file keeps its mode (an operator may have chosen 0640). A
    folder that does not exist is left to SQLite to report.
    """
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, FILE_MODE)
    except (FileExistsError, FileNotFoundError, NotADirectoryError):
        return
    try:
        os.fchmod(fd, FILE_MODE)
    finally:
        os.close(fd)


def _ts(value: dt.datetime | None) -> int | None:
    return None if value is None else int(value.timestamp())


def _dt(value: int | None) -> dt.datetime | None:
    return None if value is None else dt.datetime.fromtimestamp(value, dt.timezone.utc)


class SQLiteStore(PrecomputedSQLite):
    """Status store in one SQLite file (``:memory:`` works for tests).

    One instance per process and thread; worker processes open their own.
    With ``upgrade`` (the default) the file is created or upgraded to the
    current schema when opened (the embedded store belongs to one host);
    without it an old schema raises :class:`StoreError` (unless ``check``
    is False: ``certstatus db status`` only reads the version).
    """

    backend = BACKEND

    def __init__(self, path: str | Path, *, upgrade: bool = True, check: bool = True) -> None:
        self.path = str(path)
        if self.path != ":memory:":
            _create_private(self.path)
        self._db = sqlite3.connect(self.path, isolation_level=None, timeout=30.0)
        # Takes effect only on a new, empty file (and must come before WAL mode); a no-op on any other.
        self._db.execute(f"PRAGMA page_size={PAGE_SIZE}")
        if self.path != ":memory:":
            self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        # Imports and the generator write in bulk: checkpoint (and fsync) every ~40 MB of WAL, not every 4 MB.
        page_size = self._db.execute("PRAGMA page_size").fetchone()[0]
        self._db.execute(f"PRAGMA wal_autocheckpoint={_AUTOCHECKPOINT_BYTES // page_size}")
        self._db.execute("PRAGMA temp_store=MEMORY")
        if upgrade:
            self.upgrade()
        elif check:
            migrations.check_version(BACKEND, self.schema_version(), self.path)
        self._db.executescript(SCRATCH_TABLES)  # this connection's temporary tables (imports' diff)
        # The status lookup reuses one cursor (a new cursor object per request is measurable).
        self._lookup_cursor = self._db.cursor()

    def schema_version(self) -> int:
        """The applied schema version: 0 for an empty file, 1 for a file made before versioned migrations."""
        tables = {row[0] for row in self._db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        if "schema_migrations" in tables:
            return self._db.execute("SELECT COALESCE(MAX(version), 0) FROM schema_migrations").fetchone()[0]
        return 1 if "issuers" in tables else 0

    def upgrade(self) -> list[migrations.Migration]:
        """Apply the pending migrations, each in its own transaction; return those applied.

        Safe against several processes opening the file at once (the version
        is read again under the write lock).
        """
        applied = []
        while True:
            with self._transaction():
                current = self.schema_version()
                self._db.execute(_MIGRATIONS_TABLE)
                if current == 1 and not self._db.execute("SELECT 1 FROM schema_migrations").fetchone():
                    # A file made before versioned migrations: it has version 1's tables.
                    self._record(migrations.migrations(BACKEND)[0])
                todo = migrations.pending(BACKEND, current)
                if not todo:
                    return applied
                for statement in _statements(todo[0].sql):
                    self._db.execute(statement)
                self._record(todo[0])
            applied.append(todo[0])

    def _record(self, migration: migrations.Migration) -> None:
        self._db.execute(
            "INSERT INTO schema_migrations(version, name, applied_at) VALUES (?, ?, ?)",
            (migration.version, migration.name, int(time.time())),
        )

    def change_counters(self) -> dict[int, int]:
        """Return {issuer id: change counter}; a counter grows with every write to that issuer."""
        return dict(self._db.execute("SELECT id, change_counter FROM issuers"))

    def source_marks(self) -> dict[int, tuple]:
        return source_marks(self._db.execute(_SOURCE_MARKS))

    def data_version(self) -> int:
        """SQLite's ``PRAGMA data_version`` of this connection: it changes when another connection
        commits (any table), so a watcher compares counters and source states only after a commit."""
        return self._db.execute("PRAGMA data_version").fetchone()[0]

    def _bump(self, issuer_id: int) -> None:
        self._db.execute("UPDATE issuers SET change_counter = change_counter + 1 WHERE id = ?", (issuer_id,))

    def register_issuer(self, name: str, certificate_der: bytes) -> int:
        # Every process registers every CA at start: a read answers the usual case (known, same
        # certificate) without taking the write lock (10 000 CAs, ~0.1 ms each, from every worker).
        row = self._db.execute("SELECT id, certificate FROM issuers WHERE name = ?", (name,)).fetchone()
        if row is not None and row[1] == certificate_der:
            return row[0]
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
                self._bump(row[0])
            return row[0]

    def lookup(self, issuer_id: int, serial_number: int) -> CertStatusRecord | None:
        # One statement (one read transaction: SQLite's WAL read lock and file checks are system
        # calls per transaction) for both tables: the revoked rows of every source, then a row with
        # a NULL source (and the certificate's hash, when known) per source listing it as issued.
        rows = self._lookup_cursor.execute(_LOOKUP, (issuer_id, serial_key(serial_number))).fetchall()
        if not rows:
            return None
        if len(rows) == 1 and rows[0][0] is None:  # the usual row: listed as issued, revoked by no source
            return _ISSUED if rows[0][4] is None else CertStatusRecord(issued=True, revoked=None, cert_hash=rows[0][4])
        revoked_rows = [row for row in rows if row[0] is not None]  # no order is assumed
        issued = len(revoked_rows) < len(rows)
        cert_hash = next((row[4] for row in rows if row[4] is not None), None)
        rows = revoked_rows
        revoked = None
        if rows:
            revoked = combine_revocations(
                serial_number,
                ((r[0], _dt(r[1]), None if r[2] is None else REASONS_BY_CODE[r[2]], _dt(r[3])) for r in rows),
            )
            if revoked is None and not issued:
                return None
        return CertStatusRecord(issued=issued, revoked=revoked, cert_hash=cert_hash)

    def certificate_not_after(self, issuer_id: int, serial_number: int) -> dt.datetime | None:
        row = self._lookup_cursor.execute(_NOT_AFTER, (issuer_id, serial_key(serial_number))).fetchone()
        return _dt(row[0])

    def revocations(self, issuer_id: int, serial_number: int) -> dict[str, RevokedEntry]:
        rows = self._lookup_cursor.execute(_LOOKUP, (issuer_id, serial_key(serial_number))).fetchall()
        return revocations_from_rows(serial_number, (row for row in rows if row[0] is not None), _dt)

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
        # Rows go in in primary-key order, with a 64 MiB page cache for the duration: a B-tree
        # filled in key order touches each page once (a 1M-entry CRL: ~4x faster than CRL order).
        # A serial listed twice: the last entry wins (deduplicated before sorting). They land in
        # temporary tables first and only the difference is written, so a re-import of unchanged
        # data rewrites nothing and marks no pre-signed response changed.
        issued_rows = sorted(
            (key, _ts(entry.not_after), entry.cert_hash) for key, entry in issued_entries(issued).items()
        )
        last = {serial_key(entry.serial_number): entry for entry in revoked}
        revoked_rows = sorted(
            (
                key,
                _ts(entry.revocation_time),
                None if entry.reason is None else REASON_CODES[entry.reason],
                _ts(entry.invalidity_date),
            )
            for key, entry in last.items()
        )
        self._db.execute(f"PRAGMA cache_size = {_BULK_CACHE_KIB}")
        try:
            with self._transaction():
                kinds_before = self._source_kinds(issuer_id)
                rows = self._replace_issued(issuer_id, state.kind, issued_rows)
                self._db.executemany(
                    "INSERT INTO incoming_revoked(serial, revocation_time, reason, invalidity_date) VALUES (?, ?, ?, ?)",
                    revoked_rows,
                )
                if archive_removed:
                    rows += self._archive_removed(issuer_id, state, drop_kinds)
                rows += self._replace_revoked(issuer_id, state.kind)
                for kind in drop_kinds:
                    for table in ("revoked", "issued"):
                        self._db.execute(
                            f"INSERT OR IGNORE INTO changed_serials SELECT serial FROM {table} "
                            "WHERE issuer_id = ? AND source = ?",
                            (issuer_id, kind),
                        )
                    rows += self._delete_source(issuer_id, kind)
                self._save_state(issuer_id, state)
                changed = count_changes(rows, kinds_before, state.kind, drop_kinds)
                if changed:
                    self._bump(issuer_id)
                    self._mark_changed(issuer_id)
            return changed
        finally:
            self._db.execute(f"PRAGMA cache_size = {_DEFAULT_CACHE_KIB}")
            self._clear_scratch()

    def apply_changes(self, issuer_id: int, changes: Sequence[StatusChange], *, at: dt.datetime) -> ChangeCount:
        try:
            with self._transaction():
                kinds_before = self._source_kinds(issuer_id)
                rows = 0
                for change in changes:
                    key = serial_key(change.serial_number)
                    if change.action == "issue":
                        written = self._db.execute(
                            "INSERT OR IGNORE INTO issued(issuer_id, serial, source) VALUES (?, ?, ?)",
                            (issuer_id, key, PUSH_KIND),
                        ).rowcount
                    elif change.action == "unrevoke":
                        written = self._db.execute(
                            "DELETE FROM revoked WHERE issuer_id = ? AND serial = ? AND source = ?",
                            (issuer_id, key, PUSH_KIND),
                        ).rowcount
                    elif change.action == "revoke":
                        written = self._db.execute(_PUSH_REVOKE, (
                                issuer_id,
                                key,
                                PUSH_KIND,
                                _ts(change.revocation_time),
                                None if change.reason is None else REASON_CODES[change.reason],
                                _ts(change.invalidity_date),
                            ),
                        ).rowcount
                    else:
                        raise ValueError(f"unknown change action {change.action!r}")
                    if written:
                        rows += written
                        self._db.execute("INSERT OR IGNORE INTO changed_serials(serial) VALUES (?)", (key,))
                self._save_state(
                    issuer_id, SourceState(kind=PUSH_KIND, origin="push", imported_at=at, entries=len(changes))
                )
                changed = count_changes(rows, kinds_before, PUSH_KIND)
                if changed:
                    self._bump(issuer_id)
                    self._mark_changed(issuer_id)
            return changed
        finally:
            self._clear_scratch()

    def _replace_issued(self, issuer_id: int, kind: str, issued_rows: list[tuple[bytes, int | None, bytes | None]]) -> int:
        """Make the source's issued rows equal ``issued_rows`` ((serial key, notAfter, certificate hash)); collect
        the serials added, removed or whose certificate details changed; return how many rows were deleted or inserted."""
        db = self._db
        db.executemany("INSERT OR IGNORE INTO incoming_issued(serial, not_after, cert_hash) VALUES (?, ?, ?)", issued_rows)
        db.execute(
            "INSERT OR IGNORE INTO changed_serials SELECT serial FROM issued i WHERE i.issuer_id = ? AND i.source = ? "
            "AND NOT EXISTS (SELECT 1 FROM incoming_issued n WHERE n.serial = i.serial AND n.not_after IS i.not_after "
            "AND n.cert_hash IS i.cert_hash)",
            (issuer_id, kind),
        )
        deleted = db.execute(
            "DELETE FROM issued WHERE issuer_id = ? AND source = ? AND serial IN (SELECT serial FROM changed_serials)",
            (issuer_id, kind),
        ).rowcount
        db.execute(
            "INSERT OR IGNORE INTO changed_serials SELECT serial FROM incoming_issued n WHERE NOT EXISTS "
            "(SELECT 1 FROM issued i WHERE i.issuer_id = ? AND i.serial = n.serial AND i.source = ?)",
            (issuer_id, kind),
        )
        return deleted + db.execute(
            "INSERT OR IGNORE INTO issued(issuer_id, serial, source, not_after, cert_hash) SELECT ?, serial, ?, not_after, "
            "cert_hash FROM incoming_issued WHERE serial IN (SELECT serial FROM changed_serials)",
            (issuer_id, kind),
        ).rowcount

    def _archive_removed(self, issuer_id: int, state: SourceState, drop_kinds: Sequence[str]) -> int:
        """Keep the revocations this import removes as archive rows (see :meth:`StatusStore.replace_source`);
        ``incoming_revoked`` holds the new rows. Return how many were written. A delta row is kept rather
        than the complete CRL's when both go."""
        replaced, remaining = archive_kinds(state.kind, drop_kinds)
        if not replaced:
            return 0
        marks = ",".join("?" * len(replaced))
        still = ",".join("?" * len(remaining)) or "NULL"
        excluded = ",".join(str(code) for code in ARCHIVE_EXCLUDED_REASONS)
        released_at = _ts(state.this_update or state.imported_at)
        return self._db.execute(
            "INSERT OR IGNORE INTO revoked(issuer_id, serial, source, revocation_time, reason, invalidity_date) "
            "SELECT r.issuer_id, r.serial, ?, r.revocation_time, r.reason, r.invalidity_date FROM revoked r "
            f"WHERE r.issuer_id = ? AND r.source IN ({marks}) AND (r.reason IS NULL OR r.reason NOT IN ({excluded})) "
            "AND NOT EXISTS (SELECT 1 FROM incoming_revoked n WHERE n.serial = r.serial) "
            f"AND NOT EXISTS (SELECT 1 FROM revoked o WHERE o.issuer_id = r.issuer_id AND o.serial = r.serial AND o.source IN ({still})) "
            "AND NOT EXISTS (SELECT 1 FROM issued i WHERE i.issuer_id = r.issuer_id AND i.serial = r.serial AND i.not_after > ?) "
            "ORDER BY r.source = ? DESC",
            (ARCHIVE_KIND, issuer_id, *replaced, *remaining, released_at, DELTA_KIND),
        ).rowcount

    def _replace_revoked(self, issuer_id: int, kind: str) -> int:
        """Make the source's revoked rows equal those in ``incoming_revoked``; collect the serials whose rows
        differ; return how many rows were deleted or inserted."""
        db = self._db
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
        deleted = db.execute(
            "DELETE FROM revoked WHERE issuer_id = ? AND source = ? AND serial IN (SELECT serial FROM changed_serials)",
            (issuer_id, kind),
        ).rowcount
        return deleted + db.execute(
            "INSERT INTO revoked(issuer_id, serial, source, revocation_time, reason, invalidity_date) "
            "SELECT ?, serial, ?, revocation_time, reason, invalidity_date FROM incoming_revoked "
            "WHERE serial IN (SELECT serial FROM changed_serials)",
            (issuer_id, kind),
        ).rowcount

    def _delete_source(self, issuer_id: int, kind: str) -> int:
        """Delete the rows and state of the issuer's source ``kind``; return how many status rows went."""
        rows = 0
        for table in ("revoked", "issued"):
            rows += self._db.execute(f"DELETE FROM {table} WHERE issuer_id = ? AND source = ?", (issuer_id, kind)).rowcount
        self._db.execute("DELETE FROM sources WHERE issuer_id = ? AND kind = ?", (issuer_id, kind))
        return rows

    def _source_kinds(self, issuer_id: int) -> set[str]:
        return {row[0] for row in self._db.execute("SELECT kind FROM sources WHERE issuer_id = ?", (issuer_id,))}

    def _save_state(self, issuer_id: int, state: SourceState) -> None:
        self._db.execute(
            "INSERT OR REPLACE INTO sources(issuer_id, kind, origin, imported_at, entries, this_update, "
            "next_update, crl_number, fingerprint) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                issuer_id,
                state.kind,
                state.origin,
                _ts(state.imported_at),
                state.entries,
                _ts(state.this_update),
                _ts(state.next_update),
                None if state.crl_number is None else str(state.crl_number),
                state.fingerprint,
            ),
        )

    def source_states(self, issuer_id: int) -> dict[str, SourceState]:
        rows = self._db.execute(f"SELECT {SOURCE_COLUMNS} FROM sources WHERE issuer_id = ?", (issuer_id,)).fetchall()
        return {row[0]: source_state_from_row(row, _dt) for row in rows}

    def claim_generator(self, issuer_id: int) -> str | None:
        """Always None: an SQLite store belongs to one host (see :meth:`StatusStore.claim_generator`)."""
        return None

    def close(self) -> None:
        self._db.close()

    def _transaction(self) -> "_Transaction":
        return _Transaction(self._db, self.path)


def _statements(script: str) -> Iterator[str]:
    """Split a migration file into statements (executescript would commit our transaction)."""
    buffer = ""
    for line in script.splitlines(keepends=True):
        buffer += line
        if sqlite3.complete_statement(buffer):
            yield buffer.strip()
            buffer = ""
    if any(line.strip() and not line.strip().startswith("--") for line in buffer.splitlines()):
        raise ValueError(f"incomplete SQL statement at the end of a migration: {buffer.strip()[:60]!r}")


class _Transaction:
    """BEGIN IMMEDIATE ... COMMIT, or ROLLBACK on any exception.

    A write SQLite refuses (disk full, I/O error, read-only file) becomes a
    :class:`StoreError` naming the database, after the rollback: the previous
    data stays, and importers report the error instead of crashing.
    """

    def __init__(self, db: sqlite3.Connection, label: str = "SQLite store") -> None:
        self._db = db
        self._label = label

    def __enter__(self) -> sqlite3.Connection:
        self._db.execute("BEGIN IMMEDIATE")
        return self._db

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            try:
                self._db.execute("COMMIT")
                return
            except sqlite3.OperationalError as failed:
                exc_type, exc = type(failed), failed
        if self._db.in_transaction:
            self._db.execute("ROLLBACK")
        if exc_type is not None and issubclass(exc_type, sqlite3.OperationalError):
            raise StoreError(
                self._label, f"the write was refused and rolled back ({exc}); the previous data still serves.",
                "Free space on the disk holding the store (or fix its permissions), then import again.",
            ) from exc
