"""Settings of the revocation-data sources (the source keys of ``[ca.NAME]``, ``[ca.NAME.sql]``) and of
the admin listener (``[admin]``, off unless the table is present; never on the OCSP port).

The keys, types, defaults and ranges are in :mod:`certstatus.config_schema`
(the description that also renders docs/configuration.md); this module builds
the settings from the values it checked and adds the rules that span keys.
Every error is a :class:`~certstatus.errors.ConfigError` naming file, key and fix.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from certstatus import config_schema as schema
from certstatus.access.names import NameTable
from certstatus.errors import ConfigError

#: ``follow_redirects``: HTTP redirects of a CRL URL followed to ``same-origin`` (its scheme, host and port),
#: ``any`` http(s) URL (https never to http), or ``none`` (certstatus.sources.fetch).
REDIRECT_POLICIES = schema.CA.key("follow_redirects").kind.choices
#: The [ca.NAME] keys read here (the others belong to certstatus.config, signing.settings, config_ops).
SOURCE_KEYS = frozenset({
    "refresh_interval", "fetch_timeout", "fetch_retries", "max_crl_bytes", "stale_grace", "on_stale",
    "follow_freshest_crl", "issued_signed", "push", "push_issued", "sql", "follow_redirects",
})  # fmt: skip
_SQL = schema.SQL.default


@dataclass(frozen=True, slots=True)
class SqlSettings:
    """A live SQL source: ``dsn`` (postgresql://...), ``query`` with psycopg named
    parameters ``%(issuer)s``, ``%(serial)s`` (numeric), ``%(serial_hex)s``
    (upper-case, even length, ``-`` before a negative one) and ``%(serial_dec)s``; ``timeout`` in seconds
    (pool wait + statement); ``pool_size`` connections per worker process."""

    dsn: str
    query: str
    timeout: float = _SQL("timeout")
    pool_size: int = _SQL("pool_size")


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


def source_options(table: dict[str, Any], *, where: str, prefix: str, base: Path) -> dict[str, Any]:
    """Validate the source keys of one CA table; return keyword arguments for CaSettings (keys present only)."""
    options = schema.CA.parse(table, where=where, prefix=prefix, base=base, only=SOURCE_KEYS)
    if options.get("push_issued") and not options.get("push"):
        raise ConfigError(where, f"{prefix}.push_issued", "needs push = true.", "Add push = true or remove push_issued.")
    if "sql" in options:
        options["sql"] = SqlSettings(**schema.SQL.parse(options["sql"], where=where, prefix=f"{prefix}.sql", base=base))
    return options


def admin_settings(raw: Any, *, where: str, base: Path, ocsp_port: int) -> AdminSettings:
    """Validate the ``[admin]`` table; it needs a token file or client certificates."""
    if not isinstance(raw, dict):
        raise ConfigError(where, "admin", "must be a table.", "Write it as [admin].")
    values = schema.ADMIN.parse(raw, where=where, prefix="admin", base=base)
    host, port = values.pop("listen", schema.ADMIN.default("listen"))
    if port == ocsp_port:
        raise ConfigError(where, "admin.listen", "uses the OCSP port.", "Give the admin API its own port.")
    if ("tls_certificate" in values) != ("tls_key" in values):
        raise ConfigError(where, "admin.tls_key", "tls_certificate and tls_key go together.", "Set both or neither.")
    if "client_ca" in values and "tls_certificate" not in values:
        raise ConfigError(where, "admin.client_ca", "client certificates need TLS.", "Set tls_certificate and tls_key.")
    if "token_file" not in values and "client_ca" not in values:
        raise ConfigError(
            where, "admin", "has no authentication.", "Set token_file, or client_ca with tls_certificate/tls_key."
        )
    if "operator_names" in values:
        if "client_ca" not in values:
            raise ConfigError(where, "admin.operator_names", "names client certificates, but client_ca is not set.",
                              "Set client_ca (with tls_certificate/tls_key), or remove operator_names.")  # fmt: skip
        NameTable.parse(values["operator_names"], where=where, key="admin.operator_names")
    return AdminSettings(host, port, **values)
