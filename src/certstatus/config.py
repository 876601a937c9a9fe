"""Settings: TOML (or the single-CA command line) → typed, validated values.

The keys, their types, defaults and ranges are described once, in
:mod:`certstatus.config_schema` (which also renders docs/configuration.md);
this module builds the settings from the values it checked and adds the rules
that span keys (a CA needs a source of status, ``unknown_serials`` needs to
know issuance, ...). Every error is a :class:`~certstatus.errors.ConfigError`
naming the file, the dotted key and what to write instead. Relative paths are
resolved against the directory of the file that names them.
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
from certstatus.config_ops import OperationsSettings, ca_operation_fields, operations_settings, revive
from certstatus.config_schema import (  # noqa: F401  (re-exported: callers import them from here)
    ARCHIVE_CA_NOT_BEFORE,
    database_setting,
    normalise_path,
    parse_duration,
    parse_listen,
    path_value,
)
from certstatus.errors import ConfigError
from certstatus.model import MODES  # noqa: F401  (re-exported for callers of the settings)
from certstatus.signing.settings import SignerSettings, ca_signer_settings, with_pkcs11_module
from certstatus.source_settings import AdminSettings, SqlSettings, admin_settings, source_options
from certstatus.store.dsn import is_dsn

_CA = schema.CA.default
_SERVER = schema.SERVER.default
MIN_VALIDITY = 3600
MAX_VALIDITY = 10 * 86400
DEFAULT_VALIDITY = _CA("validity")
DEFAULT_MAX_REQUEST_BYTES = _SERVER("max_request_bytes")
#: Bump when a release writes pre-signed responses differently for the same settings, so that rows
#: signed before are re-signed rather than served (CaSettings.signing_profile). 1: nextUpdate bounded by
#: the CRL's nextUpdate.
PROFILE_FORMAT = 1

#: CaSettings fields that hold a file path (JSON strings → Path in Settings.from_json).
_CA_PATHS = frozenset({"certificate", "signer_certificate", "signer_key", "index", "issued", "signer_password_file",
                       "signers_dir", "pkcs11_pin_file"})
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
#: [ca.NAME] keys read here with their defaults (sources, signers, access and forwarding: source_settings,
#: signing.settings, config_ops).
_RESPONSE_KEYS = ("validity", "force_validity", "responder_id", "unknown_serials", "mode", "precomputed_miss",
                  "archive_cutoff", "final_response_after_expiry", "nonce", "include_signer_chain", "cert_hash")


@dataclass(frozen=True, slots=True)
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
    responder_id: str = _CA("responder_id")
    unknown_serials: str = _CA("unknown_serials")
    mode: str = _CA("mode")
    precomputed_miss: str = _CA("precomputed_miss")
    archive_cutoff: int | str | None = None  # retention in seconds, or ARCHIVE_CA_NOT_BEFORE; None: off
    final_response_after_expiry: bool = _CA("final_response_after_expiry")  # revoked + expired: nextUpdate 99991231235959Z
    nonce: str | None = None  # "echo", "ignore", "require"; None: the mode's (see nonce_policy)
    include_signer_chain: bool = _CA("include_signer_chain")  # delegated responses: the CA certificate (+ intermediates) too
    cert_hash: bool = _CA("cert_hash")  # CertHash (Common PKI) in responses; good only for certificates known by hash
    where: str = "command line"
    signers: tuple[SignerSettings, ...] = ()
    signers_dir: Path | None = None
    signer_expiry_warning: int = _CA("signer_expiry_warning")
    signers_rescan: int = _CA("signers_rescan")
    pkcs11_module: str | None = None
    pkcs11_pin_file: Path | None = None
    signature_algorithm: str | None = None
    signer_locally_trusted: bool = _CA("signer_locally_trusted")
    # Sources (see certstatus.source_settings): durations in seconds, sizes in bytes.
    refresh_interval: int = _CA("refresh_interval")
    fetch_timeout: float = _CA("fetch_timeout")
    fetch_retries: int = _CA("fetch_retries")
    max_crl_bytes: int = _CA("max_crl_bytes")
    stale_grace: int = _CA("stale_grace")
    on_stale: str = _CA("on_stale")
    follow_redirects: str = _CA("follow_redirects")  # certstatus.source_settings.REDIRECT_POLICIES
    follow_freshest_crl: bool = _CA("follow_freshest_crl")
    issued_signed: bool = _CA("issued_signed")
    push: bool = _CA("push")
    push_issued: bool = _CA("push_issued")
    sql: SqlSettings | None = None
    # Access and forwarding (certstatus.config_ops); None: the [access] default.
    require_signed_requests: bool | None = None
    authorization: str | None = None
    authorized_names: tuple[str, ...] | None = None
    forward: tuple[str, ...] = ()
    forward_timeout: float = _CA("forward_timeout")

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

    host: str = _SERVER("listen")[0]
    port: int = _SERVER("listen")[1]
    workers: int = _SERVER("workers")  # 0: one per core
    database: Path | str = _SERVER("database")
    common_path: str = _SERVER("common_path")
    max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES
    pkcs11_module: str | None = None
    #: Bytes; None: not configured, sized at each worker's start (:func:`certstatus.cache_size.with_cache_size`).
    response_cache_bytes: int | None = _SERVER("response_cache_bytes")
    #: Fill the edge cache from the store at each worker's start (:mod:`certstatus.server.preload`).
    response_cache_preload: bool = _SERVER("response_cache_preload")
    client_timeout: float = _SERVER("client_timeout")  # seconds
    max_connections: int = _SERVER("max_connections")  # per worker
    max_in_flight: int = _SERVER("max_in_flight")  # per worker
    where: str = dataclasses.field(default="command line", compare=False)
    key_permissions: str = _SERVER("key_permissions")  # or "warn": secret files readable by others (certstatus.secret_files)
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
        # json walks the dataclasses itself (C code): dataclasses.asdict deep-copied every value first,
        # 2-4 s of the supervisor's start-up with 10 000 CAs. Same text.
        return json.dumps(self, default=_plain)

    @classmethod
    def from_json(cls, text: str) -> "Settings":
        raw = json.loads(text)
        database = raw["server"]["database"]
        server = ServerSettings(**{**raw["server"], "database": database if is_dsn(database) else Path(database)})
        cas = []
        shared: dict[str, str] = {}  # one object per text many CAs repeat (the file they come from, mode, policies...)
        raw_cas = raw.pop("cas")
        raw_cas.reverse()
        while raw_cas:  # each CA's parsed JSON is freed once its CaSettings is built (lower peak with many CAs)
            ca = raw_cas.pop()
            for key, value in ca.items():
                if isinstance(value, str):
                    if key in _CA_PATHS:
                        ca[key] = Path(value)
                    else:
                        ca[key] = shared.setdefault(value, value)
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


def _plain(value: Any) -> Any:
    """A dataclass as the dict of its fields (not copied: json encodes them next), anything else as str."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {field.name: getattr(value, field.name) for field in dataclasses.fields(value)}
    return str(value)


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
    server = _server_settings(server_raw, where, base)

    cas: list[CaSettings] = []
    for name, table in _table(raw.get("ca", {}), where, "ca").items():
        cas.append(ca_settings(name, _table(table, where, f"ca.{name}"), where=where, base=base))
    if "ca_dir" in server_raw:
        ca_dir = path_value(server_raw["ca_dir"], base, where, "server.ca_dir")
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
    values = schema.CA.parse(table, where=where, prefix=prefix, base=base)  # every key, checked by the description
    extra = ca_operation_fields(table, where=where, prefix=prefix, base=base)
    path = values.get("path")
    if extra.get("forward"):
        used = [key for key in ("crl", "index", "issued", "signer_certificate", "signer_key", "signer", "signers_dir", "push", "sql",
                                "mode", "precomputed_miss", "archive_cutoff", "final_response_after_expiry", "nonce",
                                "include_signer_chain", "cert_hash") if key in table]
        if used:
            raise ConfigError(where, f"{prefix}.forward", f"forwards this CA, so its {used[0]} would never be used.",
                              "Remove forward, or remove the CA's own data and signers.")
        return CaSettings(name, values["certificate"], path=path, where=where, **extra)
    signing = ca_signer_settings(name, table, where=where, base=base)
    shorthand = signing.signers[0] if "signer_key" in table else None
    crl, index, issued = values.get("crl", ()), values.get("index"), values.get("issued")
    sources = source_options(table, where=where, prefix=prefix, base=base)
    if sources.get("sql") is not None and (crl or index or issued or sources.get("push")):
        raise ConfigError(
            where, f"{prefix}.sql", "a live SQL source answers alone.", "Remove crl, index, issued and push, or the sql table."
        )
    if not crl and index is None and issued is None and not sources.get("push") and sources.get("sql") is None:
        raise ConfigError(where, prefix, "has no source of status.", "Add crl, index, issued, push = true or [sql].")
    core = {key: values.get(key, _CA(key)) for key in _RESPONSE_KEYS}
    check_validity(core["validity"], core["force_validity"], file=where, key=f"{prefix}.validity")
    knows = index is not None or issued is not None or sources.get("push_issued") or sources.get("sql")
    if core["unknown_serials"] != "unknown" and not knows:
        raise ConfigError(
            where, f"{prefix}.unknown_serials",
            f'"{core["unknown_serials"]}" needs to know which serials were issued.', "Add index or issued, or remove the key.",
        )  # fmt: skip
    check_mode(core["mode"], core["precomputed_miss"], knows_issuance=bool(knows), live_sql=sources.get("sql") is not None,
               file=where, prefix=prefix)  # fmt: skip
    check_final_response(core["final_response_after_expiry"], core["archive_cutoff"], index, issued,
                         file=where, key=f"{prefix}.final_response_after_expiry")  # fmt: skip
    check_nonce(core["nonce"], core["mode"], file=where, prefix=prefix)
    if core["cert_hash"] and issued is None:
        raise ConfigError(
            where, f"{prefix}.cert_hash",
            "needs the certificates themselves: CertHash is the hash of the certificate, which no CRL, index.txt or push holds.",
            'Add issued = "FILE or FOLDER" with the CA\'s certificates (PEM or DER), or remove cert_hash.',
        )  # fmt: skip
    return CaSettings(
        name=name,
        certificate=values["certificate"],
        signer_certificate=shorthand.certificate if shorthand else None,
        signer_key=Path(shorthand.key) if shorthand else None,  # a file, or a pkcs11: URI kept as written
        crl=crl,
        index=index,
        issued=issued,
        signer_password_file=shorthand.password_file if shorthand else None,
        path=path,
        validity=core["validity"],
        responder_id=core["responder_id"],
        unknown_serials=core["unknown_serials"],
        mode=core["mode"],
        precomputed_miss=core["precomputed_miss"],
        archive_cutoff=core["archive_cutoff"],
        final_response_after_expiry=core["final_response_after_expiry"],
        nonce=core["nonce"],
        include_signer_chain=core["include_signer_chain"],
        cert_hash=core["cert_hash"],
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


def check_final_response(final: bool, archive_cutoff: int | str | None, index: Path | None, issued: Path | None, *,
                         file: str, key: str) -> None:
    """Refuse ``final_response_after_expiry = true`` (value already checked) without what it needs. A final
    response is a statement about status after expiry, so it needs ``archive_cutoff`` (the responder says it
    keeps that status), and the certificates' notAfter, which only ``index`` or ``issued`` give."""
    if final and archive_cutoff is None:
        raise ConfigError(
            file, key, "needs archive_cutoff: a final response says the status of an expired certificate is kept for good.",
            f'Add archive_cutoff = "{ARCHIVE_CA_NOT_BEFORE}" (or a retention period such as "7y") to the CA, '
            "or remove final_response_after_expiry.",
        )
    if final and index is None and issued is None:
        raise ConfigError(
            file, key, "needs the certificates' notAfter, which no CRL or push gives.",
            'Add index = "FILE" (OpenSSL index.txt) or issued = "FILE or FOLDER" of certificates, '
            "or remove final_response_after_expiry.",
        )


def check_mode(mode: str, precomputed_miss: str, *, knows_issuance: bool, live_sql: bool = False, file: str, prefix: str) -> None:
    """Refuse a CA's ``mode`` and ``precomputed_miss`` (values already checked) that its sources cannot serve.

    ``precomputed_miss = "unauthorized"`` (RFC 5019 §2.2.3) needs a CA whose
    issued serials are known: for a CRL-only CA every good certificate is a
    miss, and refusing them all would break it. A CA answered from a live
    SQL query has no statuses in the store to pre-sign: live mode only.
    """
    if mode != "live" and live_sql:
        raise ConfigError(
            file, f"{prefix}.mode", f'"{mode}" pre-signs the statuses in the store, and a live SQL source puts none there.',
            'Use mode = "live" with [sql], or import the CA database as an issued list or index instead.',
        )  # fmt: skip
    if precomputed_miss == "unauthorized" and not knows_issuance:
        raise ConfigError(
            file, f"{prefix}.precomputed_miss",
            '"unauthorized" would refuse every good certificate of a CA known from CRLs only (its good serials are not in the store).',
            'Add index or issued, or write "sign".',
        )  # fmt: skip


def check_nonce(nonce: str | None, mode: str, *, file: str, prefix: str) -> None:
    """Refuse a CA's ``nonce`` policy (value already checked; None: the mode's default) its mode cannot keep.

    Precomputed mode answers with pre-signed responses, which carry no nonce: it ignores nonces,
    and neither ``"echo"`` nor ``"require"`` can be kept there (``mode = "cached"`` signs nonce requests).
    """
    if mode == "precomputed" and nonce not in (None, "ignore"):
        raise ConfigError(
            file, f"{prefix}.nonce", f'"{nonce}" cannot be kept in precomputed mode: its responses are signed ahead, without nonce.',
            'Use mode = "cached" (pre-signed answers without nonce, live signing with one), or remove nonce.',
        )  # fmt: skip


def check_validity(seconds: int, force: bool, *, file: str, key: str) -> None:
    """Refuse a response validity outside 1 hour .. 10 days unless forced, and any not whole and positive."""
    if not isinstance(seconds, int) or seconds <= 0:
        raise ConfigError(file, key, f"{seconds!r} s is not a positive whole number of seconds.", 'Write for example "1d".')
    if not force and not MIN_VALIDITY <= seconds <= MAX_VALIDITY:
        raise ConfigError(
            file, key, f"{seconds} s is outside 1 hour to 10 days.",
            "Choose a value in that range, or set force_validity = true (--force-validity) if you mean it.",
        )


def _server_settings(raw: dict[str, Any], where: str, base: Path) -> ServerSettings:
    values = schema.SERVER.parse(raw, where=where, prefix="server", base=base, defaults=True)
    deprecated = ()
    if "http" in raw:  # it chose between two HTTP servers; one serves plain HTTP and TLS now
        deprecated = (f"{where}: server.http = {raw['http']!r} is no longer used and is ignored: one HTTP server "
                      "serves plain HTTP and TLS. Remove the key.",)
    host, port = values.pop("listen")
    for key in ("ca_dir", "http"):
        values.pop(key, None)
    return ServerSettings(host, port, where=where, deprecated=deprecated, **values)


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
