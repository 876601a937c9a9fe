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

from certstatus.sources.records import RevokedEntry
from certstatus.store.base import REASON_CODES

_ISSUED_TYPES = ["int4", "bytea", "text"]
_REVOKED_TYPES = ["int4", "bytea", "text", "timestamptz", "int2", "timestamptz"]
_REVOKED_COLUMNS = "issuer_id, serial, source, revocation_time, reason, invalidity_date"

_TEMP_TABLES = """
CREATE TEMP TABLE IF NOT EXISTS incoming_issued (issuer_id integer, serial bytea, source text) ON COMMIT DELETE ROWS;
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
_DIFF = {
    "issued": (
        f"DELETE FROM issued r WHERE {_MINE_R} AND NOT EXISTS (SELECT 1 FROM incoming_issued n WHERE n.serial = r.serial)",
        "INSERT INTO issued (issuer_id, serial, source) SELECT issuer_id, serial, source FROM incoming_issued n "
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
    issued: Mapping[bytes, None],
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
        "issued": ((issuer_id, key, kind) for key in issued),
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
    tables = (("issued", _ISSUED_TYPES, "issuer_id, serial, source"), ("revoked", _REVOKED_TYPES, _REVOKED_COLUMNS))
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


def _copy(cur: psycopg.Cursor, target: str, types: list[str], rows) -> None:
    with cur.copy(f"COPY {target} FROM STDIN (FORMAT BINARY)") as copy:
        copy.set_types(types)
        for row in rows:
            copy.write_row(row)
