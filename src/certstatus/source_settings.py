"""Settings of the revocation-data sources and of the admin listener (part of the TOML config).

Per CA (``[ca.NAME]``), next to ``crl``/``index``/``issued``::

    crl = ["http://ca.example/ca.crl", "ldap://ldap.example/cn=CA,o=Example", "http://ca.example/delta.crl"]
    refresh_interval = "1h"     # longest wait between two fetches of a CRL (sooner when nextUpdate comes)
    fetch_timeout = "10s"       # a whole attempt: connect, headers and body
    fetch_retries = 2           # extra attempts, with backoff 1 s, 2 s, ...
    max_crl_bytes = 268435456   # larger downloads are refused
    follow_redirects = "same-origin"  # or "any" (https never to http), or "none"
    stale_grace = "0s"          # how long past the newest CRL's nextUpdate the data still serves
    on_stale = "tryLater"       # or "serve": keep answering, with a warning in the log
    follow_freshest_crl = true  # also fetch the delta CRLs a complete CRL's FreshestCRL names
    issued_signed = false       # true: every issued list must be CMS SignedData by the CA
    push = true                 # accept pushed changes (CLI, admin API)
    push_issued = false         # true: pushes list every issued serial (others are not issued)

    [ca.NAME.sql]               # live status from the CA's database, instead of other sources
    dsn = "postgresql://ocsp@db.example/ca"
    query = "SELECT status, revocation_time, reason FROM certs WHERE serial_hex = %(serial_hex)s"
    timeout = "2s"
    pool_size = 4

The admin listener (off unless the table is present; never on the OCSP port)::

    [admin]
    listen = "127.0.0.1:8081"
    token_file = "admin.token"  # Authorization: Bearer <token>
    tls_certificate = "admin.pem"   # optional TLS; with client_ca clients need a certificate
    tls_key = "admin.key"
    client_ca = "admin-clients.pem"  # ... with extendedKeyUsage clientAuth, not revoked by a CA served here
    operator_names = ["CN=alice,O=Example"]  # optional: only these subjects (authorized_names syntax)
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from certstatus.config_schema import check_known_keys
from certstatus.errors import ConfigError
from certstatus.store.dsn import redact

#: ``follow_redirects``: HTTP redirects of a CRL URL followed to ``same-origin`` (its scheme, host and port),
#: ``any`` http(s) URL (https never to http), or ``none`` (certstatus.sources.fetch).
REDIRECT_POLICIES = ("same-origin", "any", "none")
DEFAULT_REFRESH_INTERVAL = 3600
DEFAULT_MAX_CRL_BYTES = 256 * 1024 * 1024
SOURCE_KEYS = {
    "refresh_interval", "fetch_timeout", "fetch_retries", "max_crl_bytes", "stale_grace", "on_stale",
    "follow_freshest_crl", "issued_signed", "push", "push_issued", "sql", "follow_redirects",
}  # fmt: skip
_SQL_KEYS = {"dsn", "query", "timeout", "pool_size"}
_ADMIN_KEYS = {"listen", "token_file", "tls_certificate", "tls_key", "client_ca", "operator_names", "metrics_dir"}
_ADMIN_PATHS = _ADMIN_KEYS - {"listen", "operator_names"}


@dataclass(frozen=True)
class SqlSettings:
    """A live SQL source: ``dsn`` (postgresql://...), ``query`` with psycopg named
    parameters ``%(issuer)s``, ``%(serial)s`` (numeric), ``%(serial_hex)s``
    (upper-case, even length, ``-`` before a negative one) and ``%(serial_dec)s``; ``timeout`` in seconds
    (pool wait + statement); ``pool_size`` connections per worker process."""

    dsn: str
    query: str
    timeout: float = 2.0
    pool_size: int = 4


@dataclass(frozen=True)
class AdminSettings:
    """The admin HTTP listener: address, bearer token file and/or TLS with client certificates."""

    host: str
    port: int
    token_file: Path | None = None
    tls_certificate: Path | None = None
    tls_key: Path | None = None
    client_ca: Path | None = None
    metrics_dir: Path | None = None  # PROMETHEUS_MULTIPROC_DIR for the workers (default: a private temporary folder)
    operator_names: tuple[str, ...] = ()  # subjects of client certificates let in (empty: any, given client_ca)


def source_options(table: dict[str, Any], *, where: str, prefix: str) -> dict[str, Any]:
    """Validate the source keys of one CA table; return keyword arguments for CaSettings."""
    from certstatus.config import parse_duration

    options: dict[str, Any] = {}
    for key in ("refresh_interval", "stale_grace"):
        if key in table:
            options[key] = parse_duration(table[key], file=where, key=f"{prefix}.{key}")
    if options.get("refresh_interval", 60) < 10:
        raise ConfigError(where, f"{prefix}.refresh_interval", "is under 10 s.", 'Write at least "10s".')
    if "fetch_timeout" in table:
        options["fetch_timeout"] = float(parse_duration(table["fetch_timeout"], file=where, key=f"{prefix}.fetch_timeout"))
        if not 1 <= options["fetch_timeout"] <= 600:
            raise ConfigError(where, f"{prefix}.fetch_timeout", "must be 1 s to 10 min.", 'Write for example "10s".')
    for key, low, high in (("fetch_retries", 0, 10), ("max_crl_bytes", 1024, 2**34)):
        if key in table:
            options[key] = _integer(table[key], low, high, where, f"{prefix}.{key}")
    if "on_stale" in table:
        if table["on_stale"] not in ("tryLater", "serve"):
            raise ConfigError(where, f"{prefix}.on_stale", f"{table['on_stale']!r} is not tryLater or serve.", 'Write "tryLater" or "serve".')
        options["on_stale"] = table["on_stale"]
    if "follow_redirects" in table:
        if table["follow_redirects"] not in REDIRECT_POLICIES:
            raise ConfigError(
                where, f"{prefix}.follow_redirects", f"{table['follow_redirects']!r} is not same-origin, any or none.",
                'Write "same-origin" (the default: the CRL URL\'s scheme, host and port), "any" or "none".',
            )  # fmt: skip
        options["follow_redirects"] = table["follow_redirects"]
    for key in ("follow_freshest_crl", "issued_signed", "push", "push_issued"):
        if key in table:
            if not isinstance(table[key], bool):
                raise ConfigError(where, f"{prefix}.{key}", "must be true or false.", "Write true or false.")
            options[key] = table[key]
    if options.get("push_issued") and not options.get("push"):
        raise ConfigError(where, f"{prefix}.push_issued", "needs push = true.", "Add push = true or remove push_issued.")
    if "sql" in table:
        options["sql"] = _sql(table["sql"], where, f"{prefix}.sql")
    return options


def _sql(raw: Any, where: str, prefix: str) -> SqlSettings:
    from certstatus.config import parse_duration

    if not isinstance(raw, dict):
        raise ConfigError(where, prefix, "must be a table.", f"Write it as [{prefix}].")
    check_known_keys(raw, _SQL_KEYS, where=where, prefix=prefix)
    dsn, query = raw.get("dsn"), raw.get("query")
    if not isinstance(dsn, str) or not dsn.startswith(("postgresql://", "postgres://")):
        raise ConfigError(where, f"{prefix}.dsn", f"{redact(repr(dsn))} is not a PostgreSQL DSN.", 'Write "postgresql://USER@HOST/DB".')
    if not isinstance(query, str) or "%(" not in query:
        raise ConfigError(
            where, f"{prefix}.query", "must be an SQL query using %(serial_hex)s, %(serial)s or %(serial_dec)s.",
            "Return status, revocation_time, reason for the serial.",
        )  # fmt: skip
    timeout = float(parse_duration(raw.get("timeout", 2), file=where, key=f"{prefix}.timeout"))
    if not 0 < timeout <= 60:
        raise ConfigError(where, f"{prefix}.timeout", "must be 1 s to 60 s.", 'Write for example "2s".')
    pool_size = _integer(raw.get("pool_size", 4), 1, 100, where, f"{prefix}.pool_size")
    return SqlSettings(dsn, query, timeout, pool_size)


def admin_settings(raw: Any, *, where: str, base: Path, ocsp_port: int) -> AdminSettings:
    """Validate the ``[admin]`` table; it needs a token file or client certificates."""
    from certstatus.access.names import NameTable
    from certstatus.config import _path, parse_listen
    from certstatus.config_schema import STRINGS

    if not isinstance(raw, dict):
        raise ConfigError(where, "admin", "must be a table.", "Write it as [admin].")
    check_known_keys(raw, _ADMIN_KEYS, where=where, prefix="admin")
    host, port = parse_listen(raw.get("listen", "127.0.0.1:8081"), file=where, key="admin.listen")
    if port == ocsp_port:
        raise ConfigError(where, "admin.listen", "uses the OCSP port.", "Give the admin API its own port.")
    paths = {key: _path(raw[key], base, where, f"admin.{key}") if key in raw else None for key in _ADMIN_PATHS}
    if (paths["tls_certificate"] is None) != (paths["tls_key"] is None):
        raise ConfigError(where, "admin.tls_key", "tls_certificate and tls_key go together.", "Set both or neither.")
    if paths["client_ca"] is not None and paths["tls_certificate"] is None:
        raise ConfigError(where, "admin.client_ca", "client certificates need TLS.", "Set tls_certificate and tls_key.")
    if paths["token_file"] is None and paths["client_ca"] is None:
        raise ConfigError(
            where, "admin", "has no authentication.", "Set token_file, or client_ca with tls_certificate/tls_key."
        )
    names: tuple[str, ...] = ()
    if "operator_names" in raw:
        names = STRINGS.parse(raw["operator_names"], where, "admin.operator_names", base)
        if paths["client_ca"] is None:
            raise ConfigError(where, "admin.operator_names", "names client certificates, but client_ca is not set.",
                              "Set client_ca (with tls_certificate/tls_key), or remove operator_names.")  # fmt: skip
        NameTable.parse(names, where=where, key="admin.operator_names")
    return AdminSettings(host, port, **paths, operator_names=names)


def _integer(value: Any, low: int, high: int, where: str, key: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise ConfigError(where, key, f"{value!r} is not a whole number from {low} to {high}.", "Write a number in that range.")
    return value
