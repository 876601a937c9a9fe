"""Bulk writes of the PostgreSQL store: one source's rows replaced by binary COPY and a diff.

A source that has no rows yet is written by ``COPY`` straight into its table.
A source that has rows is ``COPY``-ed into a temporary table and only the
difference is written: rows no longer listed (or listed with another
revocation time, reason or invalidity date) are deleted, new ones inserted.
A re-imported CRL that changed by a few entries then touches a few rows, not
a million, and leaves no million dead tuples behind.

With ``track``, the serials whose rows were added or removed (a revocation
whose time, reason or invalidity date changed is both) are also written to
the temporary table ``changed_serials`` (:data:`CHANGED_SERIALS`), from which
the store marks their pre-signed responses changed in the same transaction.
Either way the rows written are counted: a re-import that wrote none leaves
the issuer's change counter alone.

Runs inside the caller's transaction, on the caller's cursor.
"""

from __future__ import annotations

from collections.abc import Mapping

import psycopg

from certstatus.model import REASON_CODES, IssuedCertificate, RevokedEntry
from certstatus.store.base import ARCHIVE_EXCLUDED_REASONS, ARCHIVE_KIND, DELTA_KIND

_ISSUED_TYPES = ["int4", "bytea", "text", "timestamptz", "bytea"]
_ISSUED_COLUMNS = "issuer_id, serial, source, not_after, cert_hash"
_REVOKED_TYPES = ["int4", "bytea", "text", "timestamptz", "int2", "timestamptz"]
_REVOKED_COLUMNS = "issuer_id, serial, source, revocation_time, reason, invalidity_date"

_TEMP_TABLES = """
CREATE TEMP TABLE IF NOT EXISTS incoming_issued (
    issuer_id integer, serial bytea, source text, not_after timestamptz, cert_hash bytea
) ON COMMIT DELETE ROWS;
CREATE TEMP TABLE IF NOT EXISTS incoming_revoked (
    issuer_id integer, serial bytea, source text, revocation_time timestamptz, reason smallint, invalidity_date timestamptz
) ON COMMIT DELETE ROWS;
"""

#: The serials an import changed, collected for marking their pre-signed responses (emptied at commit).
CHANGED_SERIALS = "CREATE TEMP TABLE IF NOT EXISTS changed_serials (serial bytea PRIMARY KEY) ON COMMIT DELETE ROWS"

_MINE = "issuer_id = %(issuer)s AND source = %(kind)s"
_MINE_R = "r.issuer_id = %(issuer)s AND r.source = %(kind)s"
_SAME_REVOCATION = (
    "n.serial = r.serial AND n.revocation_time = r.revocation_time "
    "AND n.reason IS NOT DISTINCT FROM r.reason AND n.invalidity_date IS NOT DISTINCT FROM r.invalidity_date"
)
_SAME_ISSUED = (
    "n.serial = r.serial AND n.not_after IS NOT DISTINCT FROM r.not_after AND n.cert_hash IS NOT DISTINCT FROM r.cert_hash"
)
_DIFF = {
    "issued": (
        f"DELETE FROM issued r WHERE {_MINE_R} AND NOT EXISTS (SELECT 1 FROM incoming_issued n WHERE {_SAME_ISSUED})",
        f"INSERT INTO issued ({_ISSUED_COLUMNS}) SELECT {_ISSUED_COLUMNS} FROM incoming_issued n "
        f"WHERE NOT EXISTS (SELECT 1 FROM issued r WHERE {_MINE_R} AND r.serial = n.serial)",
    ),
    "revoked": (
        f"DELETE FROM revoked r WHERE {_MINE_R} AND NOT EXISTS (SELECT 1 FROM incoming_revoked n WHERE {_SAME_REVOCATION})",
        f"INSERT INTO revoked ({_REVOKED_COLUMNS}) SELECT {_REVOKED_COLUMNS} FROM incoming_revoked n "
        f"WHERE NOT EXISTS (SELECT 1 FROM revoked r WHERE {_MINE_R} AND r.serial = n.serial)",
    ),
}

#: Wraps a DELETE/INSERT ... RETURNING serial so that its serials land in changed_serials; yields its row count.
_COLLECT = (
    "WITH touched AS (",
    "), collected AS (INSERT INTO changed_serials SELECT serial FROM touched ON CONFLICT DO NOTHING) "
    "SELECT count(*) FROM touched",
)


def write_counted(cur: psycopg.Cursor, statement: str, params, *, track: bool, returning: str = "serial") -> int:
    """Run a DELETE or INSERT of status rows; return how many rows it wrote.

    With ``track``, the ``returning`` column (the serial) of every row written
    also goes to ``changed_serials``.
    """
    if not track:
        cur.execute(statement, params)
        return cur.rowcount
    return cur.execute(f"{_COLLECT[0]}{statement} RETURNING {returning}{_COLLECT[1]}", params).fetchone()[0]


def replace_rows(
    cur: psycopg.Cursor,
    issuer_id: int,
    kind: str,
    issued: Mapping[bytes, IssuedCertificate],
    revoked: Mapping[bytes, RevokedEntry],
    *,
    track: bool = False,
) -> int:
    """Make the ``issued`` and ``revoked`` rows of (issuer, source ``kind``) equal the given ones;
    return how many rows were deleted or inserted.

    ``issued`` and ``revoked`` are keyed on :func:`certstatus.store.base.serial_key`
    (duplicates already dropped). With ``track``, the serials of every row
    added or removed go to ``changed_serials`` (created by the caller with
    :data:`CHANGED_SERIALS`). Must run inside a transaction.
    """
    rows = {
        "issued": ((issuer_id, key, kind, entry.not_after, entry.cert_hash) for key, entry in issued.items()),
        "revoked": (
            (
                issuer_id,
                key,
                kind,
                entry.revocation_time,
                None if entry.reason is None else REASON_CODES[entry.reason],
                entry.invalidity_date,
            )
            for key, entry in revoked.items()
        ),
    }
    params = {"issuer": issuer_id, "kind": kind}
    written = 0
    tables = (("issued", _ISSUED_TYPES, _ISSUED_COLUMNS), ("revoked", _REVOKED_TYPES, _REVOKED_COLUMNS))
    for table, types, columns in tables:
        has_rows = cur.execute(f"SELECT EXISTS (SELECT 1 FROM {table} WHERE {_MINE})", params).fetchone()[0]
        if not has_rows:
            _copy(cur, f"{table} ({columns})", types, rows[table])
            written += len(issued if table == "issued" else revoked)
            # A first import may write millions of rows: plans over this table (the generator's index walks)
            # need statistics that know it, now rather than when autovacuum (if on) gets to it.
            cur.execute(f"ANALYZE {table}")
            if track:  # every row is new
                cur.execute(f"INSERT INTO changed_serials SELECT serial FROM {table} WHERE {_MINE} ON CONFLICT DO NOTHING", params)
            continue
        cur.execute(_TEMP_TABLES)
        _copy(cur, f"incoming_{table} ({columns})", types, rows[table])
        cur.execute(f"ANALYZE incoming_{table}")  # the planner then hashes instead of looping
        delete, insert = _DIFF[table]
        written += write_counted(cur, delete, params, track=track, returning="r.serial")
        written += write_counted(cur, insert, params, track=track)
    return written


#: The serials of an import's revocations, for keeping the ones it removes (:func:`archive_removed`).
_STILL_REVOKED = "CREATE TEMP TABLE IF NOT EXISTS still_revoked (serial bytea PRIMARY KEY) ON COMMIT DELETE ROWS"


def archive_removed(
    cur: psycopg.Cursor, issuer_id: int, state_time, replaced: tuple[str, ...], remaining: tuple[str, ...],
    revoked: Mapping[bytes, RevokedEntry],
) -> int:
    """Keep as archive rows the revocations of the ``replaced`` CRL kinds that the import (whose new
    revocations are ``revoked``) removes and that no ``remaining`` kind lists (the rule of
    :meth:`certstatus.store.base.StatusStore.replace_source`, ``state_time`` the new CRL's thisUpdate).
    Runs before the rows are replaced, in the caller's transaction; returns how many were kept."""
    had = cur.execute(
        "SELECT EXISTS (SELECT 1 FROM revoked WHERE issuer_id = %s AND source = ANY(%s))", (issuer_id, list(replaced))
    ).fetchone()[0]
    if not had:  # a first import: nothing to keep, and no copy of its serials to make
        return 0
    cur.execute(_STILL_REVOKED)
    _copy(cur, "still_revoked (serial)", ["bytea"], ((key,) for key in revoked))
    return cur.execute(
        "INSERT INTO revoked (issuer_id, serial, source, revocation_time, reason, invalidity_date) "
        "SELECT DISTINCT ON (r.serial) r.issuer_id, r.serial, %(archive)s, r.revocation_time, r.reason, r.invalidity_date "
        "FROM revoked r WHERE r.issuer_id = %(issuer)s AND r.source = ANY(%(replaced)s) "
        "AND (r.reason IS NULL OR r.reason <> ALL(%(excluded)s)) "
        "AND NOT EXISTS (SELECT 1 FROM still_revoked n WHERE n.serial = r.serial) "
        "AND NOT EXISTS (SELECT 1 FROM revoked o WHERE o.issuer_id = r.issuer_id AND o.serial = r.serial "
        "AND o.source = ANY(%(remaining)s)) "
        "AND NOT EXISTS (SELECT 1 FROM issued i WHERE i.issuer_id = r.issuer_id AND i.serial = r.serial "
        "AND i.not_after > %(released)s) "
        "ORDER BY r.serial, r.source = %(delta)s DESC ON CONFLICT DO NOTHING",
        {"archive": ARCHIVE_KIND, "issuer": issuer_id, "replaced": list(replaced), "remaining": list(remaining),
         "excluded": list(ARCHIVE_EXCLUDED_REASONS), "released": state_time, "delta": DELTA_KIND},
    ).rowcount


def _copy(cur: psycopg.Cursor, target: str, types: list[str], rows) -> None:
    with cur.copy(f"COPY {target} FROM STDIN (FORMAT BINARY)") as copy:
        copy.set_types(types)
        for row in rows:
            copy.write_row(row)
