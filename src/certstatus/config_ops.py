"""Settings of the operations sections: ``[tls]``, ``[access]``, ``[audit]``,
and the access and forwarding keys of ``[ca.NAME]``.

Values are checked by the description of :mod:`certstatus.config_schema`
(its defaults are these dataclasses' defaults); this module adds the checks that span keys (a client certificate mode needs trust
anchors, a name table needs ``by_name``...). Every error is a
:class:`~certstatus.errors.ConfigError` naming the file, key and fix.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from certstatus import config_schema as schema
from certstatus.access.names import NameTable
from certstatus.errors import ConfigError

_TLS, _ACCESS, _AUDIT = schema.TLS.default, schema.ACCESS.default, schema.AUDIT.default


@dataclass(frozen=True)
class TlsSettings:
    """``[tls]``: HTTPS on the OCSP listener and client certificates."""

    certificate: Path | None = None
    key: Path | None = None
    key_password_file: Path | None = None
    min_version: str = _TLS("min_version")
    client_auth: str = _TLS("client_auth")
    client_trust_anchors: tuple[Path, ...] = ()
    client_cert_header: str | None = None
    trusted_proxies: tuple[str, ...] = ()  # IP networks, as text

    @property
    def enabled(self) -> bool:
        """True when the OCSP listener speaks TLS."""
        return self.certificate is not None


@dataclass(frozen=True)
class AccessSettings:
    """``[access]``: listener-wide signed-request and authorization policy."""

    require_signed_requests: bool = _ACCESS("require_signed_requests")
    signer_trust_anchors: tuple[Path, ...] = ()
    authorization: str = _ACCESS("authorization")
    authorized_names: tuple[str, ...] = ()


@dataclass(frozen=True)
class AuditSettings:
    """``[audit]``: the per-request audit/billing log (``log`` None: off, ``"-"``: stdout)."""

    log: str | None = None
    max_bytes: int = _AUDIT("max_bytes")
    backup_count: int = _AUDIT("backup_count")


@dataclass(frozen=True)
class OperationsSettings:
    """The operations sections together (``[admin]`` is :class:`certstatus.source_settings.AdminSettings`)."""

    tls: TlsSettings = TlsSettings()
    access: AccessSettings = AccessSettings()
    audit: AuditSettings = AuditSettings()


#: The [ca.NAME] keys handled here (the others belong to certstatus.config).
CA_KEYS = frozenset({"require_signed_requests", "authorization", "authorized_names", "forward", "forward_timeout"})


def _table(raw: dict[str, Any], name: str, where: str) -> dict[str, Any]:
    value = raw.get(name, {})
    if not isinstance(value, dict):
        raise ConfigError(where, name, "must be a table.", f"Write it as [{name}].")
    return value


def operations_settings(raw: dict[str, Any], *, where: str, base: Path, cas: tuple = ()) -> OperationsSettings:
    """Read ``[tls]``, ``[access]`` and ``[audit]`` from a parsed TOML file.

    ``cas`` (CaSettings) are checked against them: a CA requiring signed
    requests needs signer trust anchors.
    """
    tls = _tls(schema.TLS.parse(_table(raw, "tls", where), where=where, prefix="tls", base=base), where)
    access = AccessSettings(**schema.ACCESS.parse(_table(raw, "access", where), where=where, prefix="access", base=base))
    check_policy(access.authorization, access.authorized_names, where=where, prefix="access")
    if not (access.signer_trust_anchors or tls.client_trust_anchors):
        if access.require_signed_requests:
            raise ConfigError(where, "access.require_signed_requests", "needs trust anchors to verify request signers.",
                              "Set [access] signer_trust_anchors.")
        for ca in cas:
            if ca.require_signed_requests:
                raise ConfigError(ca.where, f"ca.{ca.name}.require_signed_requests", "needs trust anchors to verify request signers.",
                                  "Set [access] signer_trust_anchors.")
    audit = AuditSettings(**schema.AUDIT.parse(_table(raw, "audit", where), where=where, prefix="audit", base=base))
    return OperationsSettings(tls, access, audit)


def _tls(values: dict[str, Any], where: str) -> TlsSettings:
    networks = values.pop("trusted_proxies", ())
    tls = TlsSettings(**values, trusted_proxies=tuple(str(n) for n in networks))
    if (tls.certificate is None) != (tls.key is None):
        missing = "tls.key" if tls.key is None else "tls.certificate"
        raise ConfigError(where, missing, "is missing.", "TLS needs both certificate and key.")
    if tls.client_auth != "none" and not tls.enabled:
        raise ConfigError(where, "tls.client_auth", "asks for client certificates on a listener without TLS.",
                          "Set tls.certificate and tls.key, or remove client_auth.")
    if (tls.client_auth != "none" or tls.client_cert_header) and not tls.client_trust_anchors:
        raise ConfigError(where, "tls.client_trust_anchors", "is missing: client certificates cannot be verified.",
                          'Write client_trust_anchors = ["clients-ca.pem"].')
    if tls.client_cert_header and not tls.trusted_proxies:
        raise ConfigError(where, "tls.trusted_proxies", "is missing: the client certificate header would be believed from anyone.",
                          'List the proxies, e.g. trusted_proxies = ["10.0.0.5"].')
    return tls


def check_policy(authorization: str | None, names: tuple[str, ...] | None, *, where: str, prefix: str) -> None:
    """Refuse a name table without ``by_name`` and ``by_name`` without names or with a bad entry."""
    if names and authorization not in (None, "by_name"):
        raise ConfigError(where, f"{prefix}.authorized_names", f'is ignored with authorization = "{authorization}".',
                          'Set authorization = "by_name", or remove the names.')
    if authorization == "by_name":
        if not names:
            raise ConfigError(where, f"{prefix}.authorized_names", "is empty, so by_name would refuse every request.",
                              'List the subjects allowed, e.g. ["CN=app1,O=Example"].')
        NameTable.parse(names, where=where, key=f"{prefix}.authorized_names")


def ca_operation_fields(table: dict[str, Any], *, where: str, prefix: str, base: Path) -> dict[str, Any]:
    """Return the access and forwarding fields of one ``[ca.NAME]`` table (for CaSettings)."""
    values = schema.CA.parse(table, where=where, prefix=prefix, base=base, only=CA_KEYS)
    check_policy(values.get("authorization"), values.get("authorized_names"), where=where, prefix=prefix)
    if "forward_timeout" in values and "forward" not in values:
        raise ConfigError(where, f"{prefix}.forward_timeout", "is set but forward is not.", "Add forward = [URL, ...] or remove it.")
    return values


def revive(cls, raw: dict[str, Any]):
    """Rebuild a settings dataclass from its JSON form (paths and tuples restored)."""
    kwargs = {}
    for field in dataclasses.fields(cls):
        if field.name not in raw:
            continue
        value = raw[field.name]
        kind = str(field.type)
        if value is None:
            kwargs[field.name] = None
        elif dataclasses.is_dataclass(field.default):
            kwargs[field.name] = revive(type(field.default), value)
        elif kind.startswith("tuple[Path"):
            kwargs[field.name] = tuple(Path(v) for v in value)
        elif kind.startswith("tuple"):
            kwargs[field.name] = tuple(value)
        elif kind.startswith("Path"):
            kwargs[field.name] = Path(value)
        else:
            kwargs[field.name] = value
    return cls(**kwargs)

