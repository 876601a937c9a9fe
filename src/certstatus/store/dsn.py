"""Telling a PostgreSQL DSN from an SQLite path, checking it, and masking its password.

``[server] database`` (and ``--db``) holds either: a ``postgresql://`` (or
``postgres://``) URI selects the PostgreSQL store, anything else is the path
of an SQLite file. Kept free of psycopg at import time: the configuration
loader uses it.
"""

from __future__ import annotations

import re
from urllib.parse import quote, unquote, urlsplit, urlunsplit

DSN_SCHEMES = ("postgresql://", "postgres://")


def is_dsn(value: object) -> bool:
    """True when ``value`` is a PostgreSQL URI, which selects the PostgreSQL store."""
    return isinstance(value, str) and value.startswith(DSN_SCHEMES)


def check_dsn(dsn: str) -> None:
    """Raise ValueError with libpq's reason (password masked) when ``dsn`` is not a valid connection URI."""
    # deferred: psycopg only for a PostgreSQL store
    import psycopg
    from psycopg.conninfo import conninfo_to_dict

    try:
        conninfo_to_dict(dsn)
    except psycopg.ProgrammingError as exc:
        raise ValueError(redact(" ".join(str(exc).split()), dsn)) from None


#: The password of a URI: ``postgresql://USER:PASSWORD@`` (up to the netloc's last ``@``); any scheme,
#: so that a misspelt one (``postgresq://``) or a CRL URL with credentials is masked as well.
_URI_PASSWORD = re.compile(r"(?P<head>\b[a-z][a-z0-9+.-]*://[^\s:/?#@]*):(?P<password>[^\s/?#]*)@", re.IGNORECASE)
#: A ``password=VALUE`` parameter: in a URI's query, or a key/value conninfo (``'quoted value'`` too).
_PARAMETER_PASSWORD = re.compile(r"(?P<head>\bpassword\s*=\s*)(?P<password>'(?:[^'\\]|\\.)*'|[^\s&#'\"]+)", re.IGNORECASE)


def redact(text: str, dsn: str | None = None) -> str:
    """``text`` with the password of every PostgreSQL DSN in it replaced by ``***``.

    A DSN alone (``postgresql://u:pw@db/x`` → ``postgresql://u:***@db/x``) or
    any message that quotes one (a libpq or psycopg error, a log line):
    passwords in the user part of a URI and ``password=`` parameters (URI
    query or key/value conninfo) are masked; the rest (user, host, database)
    stays, since it is what an operator needs to find the database. ``dsn``:
    the DSN ``text`` is about, whose password is masked wherever it appears
    (libpq quotes a bad token of it alone: ``invalid percent-encoded token``).
    Every message or log line that may name a DSN goes through this function.
    """
    if dsn is not None:
        found = [m.group("password") for pattern in (_URI_PASSWORD, _PARAMETER_PASSWORD) for m in pattern.finditer(dsn)]
        for password in sorted({p.strip("'") for p in found if len(p.strip("'")) >= 3}, key=len, reverse=True):
            text = text.replace(password, "***")  # shorter ones would mask ordinary words
    text = _URI_PASSWORD.sub(r"\g<head>:***@", text)
    return _PARAMETER_PASSWORD.sub(r"\g<head>***", text)


def split_password(dsn: str) -> tuple[str, str | None]:
    """``dsn`` without its password (user part and ``password=`` query), and that password (None: none).

    Used to hand worker processes a DSN that names a libpq ``passfile``
    instead of carrying the password (see :func:`with_passfile`).
    """
    parts = urlsplit(dsn)
    password = None
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, _, hostport = netloc.rpartition("@")
        if ":" in userinfo:
            user, _, raw = userinfo.partition(":")
            password, netloc = unquote(raw), f"{user}@{hostport}"
    query = []  # kept as written: libpq wants "=" inside values percent-encoded
    for item in parts.query.split("&") if parts.query else ():
        if item.startswith("password="):
            password = unquote(item[len("password="):])
        else:
            query.append(item)
    return urlunsplit((parts.scheme, netloc, parts.path, "&".join(query), parts.fragment)), password


def with_passfile(dsn: str, passfile: str) -> str:
    """``dsn`` with a ``passfile=`` parameter (libpq reads the password from that pgpass file)."""
    parts = urlsplit(dsn)
    query = "&".join(item for item in (parts.query, "passfile=" + quote(passfile, safe="/")) if item)
    return urlunsplit((parts.scheme, parts.netloc, parts.path, query, parts.fragment))


def pgpass_line(password: str) -> str:
    """A pgpass line matching any host, port, database and user (``:`` and ``\\`` escaped)."""
    escaped = password.replace("\\", "\\\\").replace(":", "\\:")
    return f"*:*:*:*:{escaped}\n"
