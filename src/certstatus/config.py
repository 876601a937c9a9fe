"""Settings: TOML (or the single-CA command line) → typed, validated values.

Every error is a :class:`~certstatus.errors.ConfigError` naming the file, the
dotted key and what to write instead. Relative paths are resolved against
the directory of the file that names them.

Layout::

    [server]
    listen = "127.0.0.1:8080"
    workers = 2                  # default: number of cores
    database = "certstatus.sqlite3"  # or "postgresql://user@host:5432/db" (docs/database.md)
    common_path = "/"            # URL serving every CA; "" serves CAs only at their own path
    max_request_bytes = 10000
    client_timeout = 10          # seconds for a client to send a whole request (and keep-alive idle time)
    max_connections = 1000       # per worker; a connection beyond gets 503 tryLater (docs/operations.md)
    max_in_flight = 64           # per worker: forwarded requests waiting for a remote; beyond: tryLater
    ca_dir = "ca.d"              # optional: one TOML file per CA, named after the CA
    response_cache_bytes = 67108864  # per worker: in-process cache of answers (precomputed/cached CAs)

    [ca.issuing-1]
    certificate = "ca.pem"
    crl = ["ca.crl"]             # and/or index = "index.txt", issued = "issued.txt"
    signer_certificate = "ocsp.pem"
    signer_key = "ocsp.key"      # or a .p12, or "pkcs11:token=..;object=.."; passphrase: signer_password_file
                                 # or $CERTSTATUS_SIGNER_PASSWORD; several signers: [[ca.NAME.signer]],
                                 # signers_dir (see certstatus.signing.settings)
    path = "/issuing-1"          # optional URL of this CA alone
    validity = "1d"              # thisUpdate..nextUpdate, 1h to 10d unless force_validity = true
    responder_id = "key"         # or "name"
    unknown_serials = "unknown"  # or "revoked" (RFC 6960 §2.2 extended revoked) or "unauthorized"
    mode = "live"                # "precomputed" or "cached": see docs/precomputed.md
    precomputed_miss = "sign"    # precomputed mode, serial the store does not know: "sign" or "unauthorized"
    archive_cutoff = "ca-not-before"  # or a retention "7y": ArchiveCutoff, status kept after expiry
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from certstatus import config_schema as schema
from certstatus.config_ops import CA_KEYS as CA_OPERATION_KEYS
from certstatus.config_ops import DEFAULT_FORWARD_TIMEOUT, OperationsSettings, ca_operation_fields, operations_settings, revive
from certstatus.errors import ConfigError
from certstatus.signing.settings import (
    CA_SIGNER_KEYS,
    DEFAULT_EXPIRY_WARNING,
    DEFAULT_RESCAN,
    SignerSettings,
    ca_signer_settings,
    with_pkcs11_module,
)
from certstatus.source_settings import (
    DEFAULT_MAX_CRL_BYTES,
    DEFAULT_REFRESH_INTERVAL,
    SOURCE_KEYS,
    AdminSettings,
    SqlSettings,
    admin_settings,
    source_options,
)
from certstatus.store.dsn import check_dsn, is_dsn

MIN_VALIDITY = 3600
MAX_VALIDITY = 10 * 86400
DEFAULT_VALIDITY = 86400
DEFAULT_MAX_REQUEST_BYTES = 10_000
DEFAULT_CLIENT_TIMEOUT = 10.0
DEFAULT_RESPONSE_CACHE_BYTES = 64 * 1024 * 1024
DEFAULT_MAX_CONNECTIONS = 1000  # per worker (certstatus.server.overload)
DEFAULT_MAX_IN_FLIGHT = 64  # per worker: blocking work (forwarded requests) running in threads
#: Per-CA serving modes (docs/precomputed.md).
MODES = ("live", "precomputed", "cached")
#: ``archive_cutoff`` value: the CA certificate's notBefore is the cutoff (ETSI EN 319 411-2 §6.3.10).
ARCHIVE_CA_NOT_BEFORE = "ca-not-before"
_RETENTION = re.compile(r"^\s*(\d+)\s*([smhdy]?)\s*$")
_RETENTION_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "y": 365 * 86400}
#: Bump when a release writes pre-signed responses differently for the same settings, so that rows
#: signed before are re-signed rather than served (CaSettings.signing_profile). 1: nextUpdate bounded by
#: the CRL's nextUpdate.
PROFILE_FORMAT = 1

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_DURATION = re.compile(r"^\s*(\d+)\s*([smhd]?)\s*$")
_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


@dataclass(frozen=True)
class CaSettings:
    """One CA served (a ``[ca.NAME]`` table). Durations in seconds."""

    name: str
    certificate: Path
    signer_certificate: Path | None = None  # shorthand of one signer; `signers` holds them all
    signer_key: Path | None = None
    crl: tuple[str, ...] = ()
    index: Path | None = None
    issued: Path | None = None
    signer_password_file: Path | None = None
    path: str | None = None
    validity: int = DEFAULT_VALIDITY
    responder_id: str = "key"
    unknown_serials: str = "unknown"
    mode: str = "live"
    precomputed_miss: str = "sign"
    archive_cutoff: int | str | None = None  # retention in seconds, or ARCHIVE_CA_NOT_BEFORE; None: off
    final_response_after_expiry: bool = False  # revoked + expired: nextUpdate 99991231235959Z (needs archive_cutoff)
    nonce: str | None = None  # "echo", "ignore", "require"; None: the mode's (see nonce_policy)
    include_signer_chain: bool = False  # delegated responses: the CA certificate (+ intermediates) too
    cert_hash: bool = False  # CertHash (Common PKI) in responses; good only for certificates known by hash
    where: str = "command line"
    signers: tuple[SignerSettings, ...] = ()
    signers_dir: Path | None = None
    signer_expiry_warning: int = DEFAULT_EXPIRY_WARNING
    signers_rescan: int = DEFAULT_RESCAN
    pkcs11_module: str | None = None
    pkcs11_pin_file: Path | None = None
    signature_algorithm: str | None = None
    signer_locally_trusted: bool = False
    # Sources (see certstatus.source_settings): durations in seconds, sizes in bytes.
    refresh_interval: int = DEFAULT_REFRESH_INTERVAL
    fetch_timeout: float = 10.0
    fetch_retries: int = 2
    max_crl_bytes: int = DEFAULT_MAX_CRL_BYTES
    stale_grace: int = 0
    on_stale: str = "tryLater"
    follow_redirects: str = "same-origin"  # certstatus.source_settings.REDIRECT_POLICIES
    follow_freshest_crl: bool = True
    issued_signed: bool = False
    push: bool = False
    push_issued: bool = False
    sql: SqlSettings | None = None
    # Access and forwarding (certstatus.config_ops); None: the [access] default.
    require_signed_requests: bool | None = None
    authorization: str | None = None
    authorized_names: tuple[str, ...] | None = None
    forward: tuple[str, ...] = ()
    forward_timeout: float = DEFAULT_FORWARD_TIMEOUT

    @property
    def knows_issuance(self) -> bool:
        """True when an index file, an issued list, pushes or the SQL source say which serials exist."""
        return self.index is not None or self.issued is not None or self.push_issued or self.sql is not None

    @property
    def nonce_policy(self) -> str:
        """``nonce`` as configured, else the mode's: ``"ignore"`` in precomputed mode (its answers are
        pre-signed, RFC 5019 §4), ``"echo"`` otherwise (:mod:`certstatus.pipeline.nonce`)."""
        if self.nonce is not None:
            return self.nonce
        return "ignore" if self.mode == "precomputed" else "echo"

    @property
    def signing_profile(self) -> int:
        """A signed 64-bit number naming what a pre-signed response of this CA says besides its status,
        times and signer: the settings that shape it and :data:`PROFILE_FORMAT`.

        The generator stores it with every response and the request path serves only rows of the
        current profile, so a configuration change (or a release that writes responses differently)
        never serves responses made under the old one (docs/precomputed.md).
        """
        about = (
            f"certstatus response profile {PROFILE_FORMAT}", f"validity={self.validity}",
            f"responder_id={self.responder_id}", f"unknown_serials={self.unknown_serials}",
            f"signature_algorithm={self.signature_algorithm}", f"archive_cutoff={self.archive_cutoff}",
            f"final_response_after_expiry={self.final_response_after_expiry}",
            f"include_signer_chain={self.include_signer_chain}", f"cert_hash={self.cert_hash}",
        )  # fmt: skip
        return int.from_bytes(hashlib.sha256("\n".join(about).encode()).digest()[:8], "big", signed=True)


@dataclass(frozen=True)
class ServerSettings:
    """The HTTP listener and the store.

    ``database`` is an SQLite path, or a ``postgresql://`` URI (str);
    ``where`` names the file it was read from, for error messages.
    """

    host: str = "127.0.0.1"
    port: int = 8080
    workers: int = 0  # 0: one per core
    database: Path | str = Path("certstatus.sqlite3")
    common_path: str = "/"
    max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES
    pkcs11_module: str | None = None
    response_cache_bytes: int = DEFAULT_RESPONSE_CACHE_BYTES
    client_timeout: float = DEFAULT_CLIENT_TIMEOUT  # seconds
    max_connections: int = DEFAULT_MAX_CONNECTIONS  # per worker
    max_in_flight: int = DEFAULT_MAX_IN_FLIGHT  # per worker
    where: str = dataclasses.field(default="command line", compare=False)
    key_permissions: str = "refuse"  # or "warn": secret files readable by others (certstatus.secret_files)
    #: Warnings about keys that are accepted but no longer used (one sentence each, naming the file and the fix).
    deprecated: tuple[str, ...] = dataclasses.field(default=(), compare=False)

    @property
    def database_key(self) -> str:
        """The setting that names the database, for error messages."""
        return "--db" if self.where == "command line" else "server.database"

    @property
    def worker_count(self) -> int:
        return self.workers or (os.cpu_count() or 1)


@dataclass(frozen=True)
class Settings:
    server: ServerSettings
    cas: tuple[CaSettings, ...]
    admin: AdminSettings | None = None
    ops: OperationsSettings = OperationsSettings()

    def to_json(self) -> str:
        """Serialise for worker processes (paths as strings, no secrets inside)."""
        return json.dumps(dataclasses.asdict(self), default=str)

    @classmethod
    def from_json(cls, text: str) -> "Settings":
        raw = json.loads(text)
        database = raw["server"]["database"]
        server = ServerSettings(**{**raw["server"], "database": database if is_dsn(database) else Path(database)})
        cas = []
        for ca in raw["cas"]:
            for key in ("certificate", "signer_certificate", "signer_key", "index", "issued", "signer_password_file",
                        "signers_dir", "pkcs11_pin_file"):
                if ca.get(key) is not None:
                    ca[key] = Path(ca[key])
            ca["crl"] = tuple(ca["crl"])
            ca["signers"] = tuple(SignerSettings.from_dict(s) for s in ca.get("signers", ()))
            ca["sql"] = None if ca.get("sql") is None else SqlSettings(**ca["sql"])
            ca["forward"] = tuple(ca.get("forward", ()))
            if ca.get("authorized_names") is not None:
                ca["authorized_names"] = tuple(ca["authorized_names"])
            cas.append(CaSettings(**ca))
        admin = raw.get("admin")
        if admin is not None:
            admin = {k: v if k in ("host", "port", "operator_names") or v is None else Path(v) for k, v in admin.items()}
            admin = AdminSettings(**{**admin, "operator_names": tuple(admin.get("operator_names", ()))})
        return cls(server, tuple(cas), admin, revive(OperationsSettings, raw.get("ops", {})))


_SERVER_KEYS = {
    "listen", "workers", "database", "common_path", "max_request_bytes", "client_timeout", "ca_dir", "pkcs11_module",
    "response_cache_bytes", "http", "key_permissions", "max_connections", "max_in_flight",
}
_CA_KEYS = {
    "certificate", "crl", "index", "issued", "signer_certificate", "signer_key",
    "signer_password_file", "path", "validity", "force_validity", "responder_id", "unknown_serials",
    "mode", "precomputed_miss", "archive_cutoff", "final_response_after_expiry", "nonce", "include_signer_chain",
    "cert_hash",
} | CA_SIGNER_KEYS | SOURCE_KEYS | CA_OPERATION_KEYS


def parse_duration(value: Any, *, file: str, key: str) -> int:
    """Return seconds from an integer or a string like ``"90m"``, ``"24h"``, ``"1d"``."""
    if isinstance(value, bool):
        raise ConfigError(file, key, f"{value!r} is not a duration.", 'Write seconds or a string like "24h" or "1d".')
    if isinstance(value, int):
        return value
    if isinstance(value, str) and (match := _DURATION.match(value)):
        return int(match.group(1)) * _UNITS[match.group(2)]
    raise ConfigError(file, key, f"{value!r} is not a duration.", 'Write seconds or a string like "24h" or "1d".')


def parse_archive_cutoff(value: Any, *, file: str, key: str) -> int | str:
    """``archive_cutoff``: ``"ca-not-before"``, or a retention period as seconds or ``"7y"``, ``"3650d"``,
    ``"90d"`` (a year is 365 days); return the string, or the retention in seconds. Raises :class:`ConfigError`."""
    if value == ARCHIVE_CA_NOT_BEFORE:
        return value
    seconds = None
    if isinstance(value, int) and not isinstance(value, bool):
        seconds = value
    elif isinstance(value, str) and (match := _RETENTION.match(value)):
        seconds = int(match.group(1)) * _RETENTION_UNITS[match.group(2)]
    if seconds is None or seconds <= 0:
        raise ConfigError(
            file, key, f"{value!r} is not a retention period or \"{ARCHIVE_CA_NOT_BEFORE}\".",
            f'Write "{ARCHIVE_CA_NOT_BEFORE}" (the CA certificate\'s notBefore, as ETSI EN 319 411-2 recommends) '
            'or how long status is kept after expiry, e.g. "7y" or "3650d".',
        )
    return seconds


def check_final_response(value: Any, archive_cutoff: int | str | None, index: Path | None, issued: Path | None, *,
                         file: str, key: str) -> bool:
    """``final_response_after_expiry``: true or false. A final response is a statement about status after
    expiry, so it needs ``archive_cutoff`` (the responder says it keeps that status), and the certificates'
    notAfter, which only ``index`` or ``issued`` give. Raises :class:`ConfigError`."""
    if not isinstance(value, bool):
        raise ConfigError(file, key, "must be true or false.", "Write true or false.")
    if value and archive_cutoff is None:
        raise ConfigError(
            file, key, "needs archive_cutoff: a final response says the status of an expired certificate is kept for good.",
            f'Add archive_cutoff = "{ARCHIVE_CA_NOT_BEFORE}" (or a retention period such as "7y") to the CA, '
            "or remove final_response_after_expiry.",
        )
    if value and index is None and issued is None:
        raise ConfigError(
            file, key, "needs the certificates' notAfter, which no CRL or push gives.",
            'Add index = "FILE" (OpenSSL index.txt) or issued = "FILE or FOLDER" of certificates, '
            "or remove final_response_after_expiry.",
        )
    return value


def parse_listen(value: str, *, file: str, key: str) -> tuple[str, int]:
    """Split ``HOST:PORT`` (``[v6]:PORT`` too) and check the port."""
    host, sep, port = str(value).rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) < 65536:
        raise ConfigError(file, key, f"{value!r} is not HOST:PORT.", 'Write for example "127.0.0.1:8080".')
    return host.strip("[]") or "0.0.0.0", int(port)


def normalise_path(value: str, *, file: str, key: str) -> str:
    """Return a URL path prefix with a leading and a trailing '/'."""
    if not isinstance(value, str) or not value.startswith("/") or any(c in value for c in "?#% "):
        raise ConfigError(file, key, f"{value!r} is not a URL path.", 'Write a path such as "/issuing-1".')
    return value.rstrip("/") + "/"


def load_config(path: Path) -> Settings:
    """Read and validate a TOML configuration file (and its ``ca_dir``).

    Raises :class:`ConfigError` for unreadable files, TOML syntax errors,
    unknown keys, wrong types or values, duplicate CA names or URL paths,
    and a configuration without any CA.
    """
    path = Path(path)
    raw = _read_toml(path)
    where = str(path)
    base = path.parent
    schema.check_known_keys(raw, schema.TOP_LEVEL, where=where, prefix="", what="section")
    server_raw = _table(raw.get("server", {}), where, "server")
    schema.check_known_keys(server_raw, _SERVER_KEYS, where=where, prefix="server")
    server = _server_settings(server_raw, where, base)

    cas: list[CaSettings] = []
    for name, table in _table(raw.get("ca", {}), where, "ca").items():
        cas.append(ca_settings(name, _table(table, where, f"ca.{name}"), where=where, base=base))
    if "ca_dir" in server_raw:
        ca_dir = _path(server_raw["ca_dir"], base, where, "server.ca_dir")
        if not ca_dir.is_dir():
            raise ConfigError(where, "server.ca_dir", f"{ca_dir} is not a directory.", "Create it or remove the key.")
        for file in sorted(ca_dir.glob("*.toml")):
            cas.append(ca_settings(file.stem, _read_toml(file), where=str(file), base=file.parent))
    if not cas:
        raise ConfigError(where, "ca", "no CA is configured.", "Add a [ca.NAME] table or server.ca_dir.")
    cas = [with_pkcs11_module(ca, server.pkcs11_module) for ca in cas]
    admin = None
    if "admin" in raw:
        admin = admin_settings(raw["admin"], where=where, base=base, ocsp_port=server.port)
    ops = operations_settings(raw, where=where, base=base, cas=tuple(cas))
    return check_settings(Settings(server, tuple(cas), admin, ops), where)


def check_settings(settings: Settings, where: str) -> Settings:
    """Refuse duplicate CA names and URL paths; return ``settings``."""
    names: set[str] = set()
    paths: dict[str, str] = {}
    for ca in settings.cas:
        if ca.name in names:
            raise ConfigError(ca.where, f"ca.{ca.name}", "this CA name is configured twice.", "Give each CA its own name.")
        names.add(ca.name)
        if ca.path is not None:
            if ca.path == settings.server.common_path or ca.path in paths:
                other = paths.get(ca.path, "server.common_path")
                raise ConfigError(ca.where, f"ca.{ca.name}.path", f"{ca.path} is already used by {other}.", "Give each CA its own path.")
            paths[ca.path] = f"ca.{ca.name}"
    if not settings.server.common_path and any(ca.path is None for ca in settings.cas):
        ca = next(ca for ca in settings.cas if ca.path is None)
        raise ConfigError(
            ca.where, f"ca.{ca.name}.path", "server.common_path is off and this CA has no path, so nothing serves it.", "Set a path for it."
        )
    return settings


def ca_settings(name: str, table: dict[str, Any], *, where: str, base: Path) -> CaSettings:
    """Validate one CA table (from ``[ca.NAME]`` or a ``ca_dir`` file)."""
    prefix = f"ca.{name}"
    if not _NAME.match(name):
        raise ConfigError(where, prefix, "CA names use letters, digits, '.', '_' and '-' (at most 64).", "Rename it.")
    schema.check_known_keys(table, _CA_KEYS, where=where, prefix=prefix)
    if "certificate" not in table:
        raise ConfigError(where, f"{prefix}.certificate", "is missing.", 'Add certificate = "FILE".')
    extra = ca_operation_fields(table, where=where, prefix=prefix, base=base)
    if extra.get("forward"):
        used = [key for key in ("crl", "index", "issued", "signer_certificate", "signer_key", "signer", "signers_dir", "push", "sql",
                                "mode", "precomputed_miss", "archive_cutoff", "final_response_after_expiry", "nonce",
                                "include_signer_chain", "cert_hash") if key in table]
        if used:
            raise ConfigError(where, f"{prefix}.forward", f"forwards this CA, so its {used[0]} would never be used.",
                              "Remove forward, or remove the CA's own data and signers.")
        path = normalise_path(table["path"], file=where, key=f"{prefix}.path") if "path" in table else None
        return CaSettings(name, _path(table["certificate"], base, where, f"{prefix}.certificate"), path=path, where=where, **extra)
    signing = ca_signer_settings(name, table, where=where, base=base, parse_duration=parse_duration)
    shorthand = signing.signers[0] if "signer_key" in table else None
    crl = table.get("crl", [])
    if isinstance(crl, str):
        crl = [crl]
    if not isinstance(crl, list) or not all(isinstance(item, str) for item in crl):
        raise ConfigError(where, f"{prefix}.crl", "must be a path or URL, or a list of them.", 'Write crl = ["ca.crl"].')
    crl = tuple(item if "://" in item else str(_path(item, base, where, f"{prefix}.crl")) for item in crl)
    index = _path(table["index"], base, where, f"{prefix}.index") if "index" in table else None
    issued = _path(table["issued"], base, where, f"{prefix}.issued") if "issued" in table else None
    sources = source_options(table, where=where, prefix=prefix)
    if sources.get("sql") is not None and (crl or index or issued or sources.get("push")):
        raise ConfigError(
            where, f"{prefix}.sql", "a live SQL source answers alone.", "Remove crl, index, issued and push, or the sql table."
        )
    if not crl and index is None and issued is None and not sources.get("push") and sources.get("sql") is None:
        raise ConfigError(where, prefix, "has no source of status.", "Add crl, index, issued, push = true or [sql].")
    validity = parse_duration(table.get("validity", DEFAULT_VALIDITY), file=where, key=f"{prefix}.validity")
    force = table.get("force_validity", False)
    if not isinstance(force, bool):
        raise ConfigError(where, f"{prefix}.force_validity", "must be true or false.", "Write true or false.")
    check_validity(validity, force, file=where, key=f"{prefix}.validity")
    responder_id = table.get("responder_id", "key")
    if responder_id not in ("key", "name"):
        raise ConfigError(where, f"{prefix}.responder_id", f"{responder_id!r} is not key or name.", 'Write "key" (default) or "name".')
    unknown_serials = table.get("unknown_serials", "unknown")
    if unknown_serials not in ("unknown", "revoked", "unauthorized"):
        raise ConfigError(
            where, f"{prefix}.unknown_serials", f"{unknown_serials!r} is not unknown, revoked or unauthorized.",
            'Write "unknown", "revoked" or "unauthorized".',
        )
    knows = index is not None or issued is not None or sources.get("push_issued") or sources.get("sql")
    if unknown_serials != "unknown" and not knows:
        raise ConfigError(
            where, f"{prefix}.unknown_serials",
            f'"{unknown_serials}" needs to know which serials were issued.', "Add index or issued, or remove the key.",
        )
    archive_cutoff = None
    if "archive_cutoff" in table:
        archive_cutoff = parse_archive_cutoff(table["archive_cutoff"], file=where, key=f"{prefix}.archive_cutoff")
    final = check_final_response(table.get("final_response_after_expiry", False), archive_cutoff, index, issued,
                                 file=where, key=f"{prefix}.final_response_after_expiry")  # fmt: skip
    mode, precomputed_miss = check_mode(
        table.get("mode", "live"), table.get("precomputed_miss", "sign"),
        knows_issuance=bool(knows), live_sql=sources.get("sql") is not None, file=where, prefix=prefix,
    )  # fmt: skip
    nonce = check_nonce(table.get("nonce"), mode, file=where, prefix=prefix)
    include_chain = table.get("include_signer_chain", False)
    if not isinstance(include_chain, bool):
        raise ConfigError(where, f"{prefix}.include_signer_chain", "must be true or false.", "Write true or false.")
    cert_hash = table.get("cert_hash", False)
    if not isinstance(cert_hash, bool):
        raise ConfigError(where, f"{prefix}.cert_hash", "must be true or false.", "Write true or false.")
    if cert_hash and issued is None:
        raise ConfigError(
            where, f"{prefix}.cert_hash",
            "needs the certificates themselves: CertHash is the hash of the certificate, which no CRL, index.txt or push holds.",
            'Add issued = "FILE or FOLDER" with the CA\'s certificates (PEM or DER), or remove cert_hash.',
        )  # fmt: skip
    return CaSettings(
        name=name,
        certificate=_path(table["certificate"], base, where, f"{prefix}.certificate"),
        signer_certificate=shorthand.certificate if shorthand else None,
        signer_key=Path(shorthand.key) if shorthand else None,  # a file, or a pkcs11: URI kept as written
        crl=crl,
        index=index,
        issued=issued,
        signer_password_file=shorthand.password_file if shorthand else None,
        path=normalise_path(table["path"], file=where, key=f"{prefix}.path") if "path" in table else None,
        validity=validity,
        responder_id=responder_id,
        unknown_serials=unknown_serials,
        mode=mode,
        precomputed_miss=precomputed_miss,
        archive_cutoff=archive_cutoff,
        final_response_after_expiry=final,
        nonce=nonce,
        include_signer_chain=include_chain,
        cert_hash=cert_hash,
        where=where,
        signers=signing.signers[1:] if shorthand else signing.signers,  # the [[ca.NAME.signer]] tables
        signers_dir=signing.signers_dir,
        signer_expiry_warning=signing.expiry_warning,
        signers_rescan=signing.rescan,
        pkcs11_module=signing.pkcs11_module,
        pkcs11_pin_file=signing.pkcs11_pin_file,
        signature_algorithm=signing.signature_algorithm,
        signer_locally_trusted=bool(shorthand and shorthand.locally_trusted),
        **sources,
        **extra,
    )


def check_mode(
    mode: Any, precomputed_miss: Any, *, knows_issuance: bool, live_sql: bool = False, file: str, prefix: str
) -> tuple[str, str]:
    """Validate a CA's ``mode`` and ``precomputed_miss``; return them.

    ``precomputed_miss = "unauthorized"`` (RFC 5019 §2.2.3) needs a CA whose
    issued serials are known: for a CRL-only CA every good certificate is a
    miss, and refusing them all would break it. A CA answered from a live
    SQL query has no statuses in the store to pre-sign: live mode only.
    """
    if mode not in MODES:
        raise ConfigError(file, f"{prefix}.mode", f"{mode!r} is not a mode.", 'Write "live", "precomputed" or "cached".')
    if mode != "live" and live_sql:
        raise ConfigError(
            file, f"{prefix}.mode", f'"{mode}" pre-signs the statuses in the store, and a live SQL source puts none there.',
            'Use mode = "live" with [sql], or import the CA database as an issued list or index instead.',
        )  # fmt: skip
    if precomputed_miss not in ("sign", "unauthorized"):
        raise ConfigError(file, f"{prefix}.precomputed_miss", f"{precomputed_miss!r} is not sign or unauthorized.", 'Write "sign" or "unauthorized".')
    if precomputed_miss == "unauthorized" and not knows_issuance:
        raise ConfigError(
            file, f"{prefix}.precomputed_miss",
            '"unauthorized" would refuse every good certificate of a CA known from CRLs only (its good serials are not in the store).',
            'Add index or issued, or write "sign".',
        )  # fmt: skip
    return mode, precomputed_miss


def check_nonce(nonce: Any, mode: str, *, file: str, prefix: str) -> str | None:
    """Validate a CA's ``nonce`` policy against its mode; return it (None: not set, the mode's default).

    Precomputed mode answers with pre-signed responses, which carry no nonce: it ignores nonces,
    and neither ``"echo"`` nor ``"require"`` can be kept there (``mode = "cached"`` signs nonce requests).
    """
    if nonce is None:
        return None
    if nonce not in ("echo", "ignore", "require"):
        raise ConfigError(file, f"{prefix}.nonce", f"{nonce!r} is not echo, ignore or require.", 'Write "echo", "ignore" or "require".')
    if mode == "precomputed" and nonce != "ignore":
        raise ConfigError(
            file, f"{prefix}.nonce", f'"{nonce}" cannot be kept in precomputed mode: its responses are signed ahead, without nonce.',
            'Use mode = "cached" (pre-signed answers without nonce, live signing with one), or remove nonce.',
        )  # fmt: skip
    return nonce


def check_validity(seconds: int, force: bool, *, file: str, key: str) -> None:
    """Refuse a response validity outside 1 hour .. 10 days unless forced."""
    if seconds <= 0:
        raise ConfigError(file, key, "must be positive.", 'Write for example "1d".')
    if not force and not MIN_VALIDITY <= seconds <= MAX_VALIDITY:
        raise ConfigError(
            file, key, f"{seconds} s is outside 1 hour to 10 days.",
            "Choose a value in that range, or set force_validity = true (--force-validity) if you mean it.",
        )


def _server_settings(raw: dict[str, Any], where: str, base: Path) -> ServerSettings:
    host, port = parse_listen(raw.get("listen", "127.0.0.1:8080"), file=where, key="server.listen")
    workers = raw.get("workers", 0)
    if not isinstance(workers, int) or isinstance(workers, bool) or workers < 0:
        raise ConfigError(where, "server.workers", f"{workers!r} is not a number of processes.", "Write a whole number, 0 for one per core.")
    limit = raw.get("max_request_bytes", DEFAULT_MAX_REQUEST_BYTES)
    if not isinstance(limit, int) or isinstance(limit, bool) or not 64 <= limit <= 1_000_000:
        raise ConfigError(where, "server.max_request_bytes", f"{limit!r} is out of range.", "Write a size in bytes from 64 to 1000000.")
    common = raw.get("common_path", "/")
    common = "" if common == "" else normalise_path(common, file=where, key="server.common_path")
    database = database_setting(raw.get("database", "certstatus.sqlite3"), base=base, file=where, key="server.database")
    module = raw.get("pkcs11_module")
    if module is not None and (not isinstance(module, str) or not module):
        raise ConfigError(where, "server.pkcs11_module", f"{module!r} is not a file path.", 'Write e.g. "/usr/lib/softhsm/libsofthsm2.so".')
    cache_bytes = raw.get("response_cache_bytes", DEFAULT_RESPONSE_CACHE_BYTES)
    if not isinstance(cache_bytes, int) or isinstance(cache_bytes, bool) or cache_bytes < 0:
        raise ConfigError(where, "server.response_cache_bytes", f"{cache_bytes!r} is not a size.", "Write a size in bytes, 0 to turn the cache off.")
    timeout = raw.get("client_timeout", DEFAULT_CLIENT_TIMEOUT)
    if not isinstance(timeout, (int, float)) or isinstance(timeout, bool) or not 0 < timeout <= 3600:
        raise ConfigError(where, "server.client_timeout", f"{timeout!r} is not a number of seconds.", "Write seconds from 0.1 to 3600, e.g. 10.")
    deprecated = ()
    if "http" in raw:  # it chose between two HTTP servers; one serves plain HTTP and TLS now
        deprecated = (f"{where}: server.http = {raw['http']!r} is no longer used and is ignored: one HTTP server "
                      "serves plain HTTP and TLS. Remove the key.",)
    permissions = raw.get("key_permissions", "refuse")
    if permissions not in ("refuse", "warn"):
        raise ConfigError(where, "server.key_permissions", f"{permissions!r} is not refuse or warn.", 'Write "refuse" (default) or "warn".')
    limits = {}
    for key, default, top in (("max_connections", DEFAULT_MAX_CONNECTIONS, 1_000_000),
                              ("max_in_flight", DEFAULT_MAX_IN_FLIGHT, 10_000)):
        value = raw.get(key, default)
        if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= top:
            raise ConfigError(where, f"server.{key}", f"{value!r} is out of range.",
                              f"Write a whole number from 1 to {top}, e.g. {default} (per worker process).")
        limits[key] = value
    return ServerSettings(host, port, workers, database, common, limit, module, response_cache_bytes=cache_bytes,
                          client_timeout=float(timeout), where=where, key_permissions=permissions, deprecated=deprecated,
                          **limits)


def database_setting(value: Any, *, base: Path, file: str, key: str) -> Path | str:
    """A ``postgresql://`` URI (checked by libpq's parser) as is, or an SQLite path resolved against ``base``."""
    if is_dsn(value):
        try:
            check_dsn(value)
        except ValueError as exc:
            raise ConfigError(
                file, key, f"is not a valid PostgreSQL URI: {exc}.",
                'Write for example "postgresql://certstatus@db.example:5432/certstatus".',
            ) from None
        return value
    return _path(value, base, file, key)


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with open(path, "rb") as handle:
            return tomllib.load(handle)
    except OSError as exc:
        raise ConfigError(str(path), "-", f"cannot read the file: {exc.strerror}.", "Check the path.") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(str(path), "-", f"is not valid TOML: {exc}.", "Fix the syntax at that line.") from None
    except UnicodeDecodeError as exc:  # tomllib reads UTF-8 only (TOML v1.0.0 §Spec)
        line = exc.object[: exc.start].count(b"\n") + 1
        raise ConfigError(str(path), "-", f"is not UTF-8 text (byte {exc.start} on line {line}).", "Save the file as UTF-8.") from None


def _table(value: Any, where: str, key: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ConfigError(where, key, "must be a table.", f"Write it as [{key}].")
    return value


def _path(value: Any, base: Path, where: str, key: str) -> Path:
    if not isinstance(value, str) or not value:
        raise ConfigError(where, key, f"{value!r} is not a file path.", 'Write a path in quotes, e.g. "ca.pem".')
    try:
        path = Path(value).expanduser()
    except RuntimeError:  # "~name/..." of a user this host does not know
        raise ConfigError(
            where, key, f"{value!r} names the home folder of an unknown user.", "Write an absolute path or one relative to the configuration file."
        ) from None
    return path if path.is_absolute() else (base / path)
