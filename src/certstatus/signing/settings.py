"""Signer settings: the ``[[ca.NAME.signer]]`` tables, their shorthand, and signer directories.

Each CA has one or more signers::

    [ca.issuing-1]
    signer_certificate = "ocsp.pem"        # shorthand for one signer
    signer_key = "ocsp.key"                # a file (PEM, PKCS#12) or a pkcs11: URI
    signers_dir = "signers/issuing-1"      # signers installed by `certstatus signer add`
    signer_expiry_warning = "14d"          # warn this long before the active signer expires
    signers_rescan = "60s"                 # how often the server re-reads signers_dir
    pkcs11_module = "/usr/lib/softhsm/libsofthsm2.so"   # or [server] pkcs11_module

    [[ca.issuing-1.signer]]
    certificate = "ocsp-2026.pem"
    key = "pkcs11:token=OCSP;object=ocsp-2026"
    pin_file = "/etc/certstatus/pin"       # or $CERTSTATUS_PKCS11_PIN, or pin-source in the URI
    password_file = "..."                  # passphrase of an encrypted key file
    signature_algorithm = "ecdsa-sha256"   # default: by key (see certstatus.signing.algorithms)
    locally_trusted = false                # RFC 6960 §2.2 trusted responder not issued by this CA

A file in ``signers_dir`` named ``NAME.toml`` holds one such table (without
the header); relative paths in it are relative to the directory.
Secrets are never part of the settings: only the paths of the files that hold them.
The keys, types and defaults are those of :mod:`certstatus.config_schema`
(``SIGNER`` and the signer keys of ``CA``), which checks each value; this
module adds the rules that span keys and the checks of key references and
algorithm names.
"""

from __future__ import annotations

import dataclasses
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from certstatus import config_schema as schema
from certstatus.config_schema import path_value
from certstatus.errors import ConfigError
from certstatus.signing.algorithms import ALGORITHMS
from certstatus.signing.pkcs11_uri import is_pkcs11_uri, parse_pkcs11_uri

#: Default warning time before the active signer expires without successor (seconds).
DEFAULT_EXPIRY_WARNING = schema.CA.default("signer_expiry_warning")
#: Default period of the signers_dir re-scan in a running server (seconds).
DEFAULT_RESCAN = schema.CA.default("signers_rescan")
#: Keys a [ca.NAME] table carries for its signers, read here.
CA_SIGNER_KEYS = frozenset({
    "signer_certificate", "signer_key", "signer_password_file", "signer", "signers_dir", "signer_expiry_warning",
    "signers_rescan", "pkcs11_module", "pkcs11_pin_file", "signature_algorithm", "signer_locally_trusted",
})  # fmt: skip


@dataclass(frozen=True, slots=True)
class SignerSettings:
    """One signer of a CA: its certificate file and its key (file path or ``pkcs11:`` URI).

    ``where`` names the signer in messages (``file: ca.NAME.signer[2]``).
    """

    certificate: Path
    key: str
    password_file: Path | None = None
    pin_file: Path | None = None
    pkcs11_module: str | None = None
    signature_algorithm: str | None = None
    locally_trusted: bool = False
    name: str | None = None
    where: str = "command line"

    @property
    def is_pkcs11(self) -> bool:
        """True when the key lives in a PKCS#11 token."""
        return is_pkcs11_uri(self.key)

    @property
    def label(self) -> str:
        """A short name for tables: the name, else the certificate file's stem."""
        return self.name or self.certificate.stem

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> "SignerSettings":
        """Rebuild from :func:`dataclasses.asdict` output (settings handed to workers)."""
        values = dict(raw)
        for key in ("certificate", "password_file", "pin_file"):
            if values.get(key) is not None:
                values[key] = Path(values[key])
        return cls(**values)


def key_reference(value: Any, base: Path, where: str, key: str) -> str:
    """Return a key reference: a ``pkcs11:`` URI checked per RFC 7512, or a resolved file path."""
    if isinstance(value, str) and is_pkcs11_uri(value):
        try:
            parse_pkcs11_uri(value)
        except ValueError as exc:
            raise ConfigError(where, key, f"{exc}.", 'Write e.g. "pkcs11:token=OCSP;object=ocsp-2026".') from None
        return value
    return str(path_value(value, base, where, key))


def check_algorithm(value: Any, where: str, key: str) -> str | None:
    """Return a signature algorithm name from :data:`ALGORITHMS`, or None when absent."""
    if value is None:
        return None
    if value not in ALGORITHMS:
        raise ConfigError(where, key, f"{value!r} is not a signature algorithm.", f"Use one of {', '.join(ALGORITHMS)}.")
    return value


def signer_settings(
    table: dict[str, Any],
    *,
    where: str,
    prefix: str,
    base: Path,
    defaults: dict[str, Any] | None = None,
) -> SignerSettings:
    """Validate one signer table (``[[ca.NAME.signer]]`` or a ``signers_dir`` file).

    ``defaults`` carries CA-level values (``pkcs11_module``, ``pin_file``,
    ``signature_algorithm``). Raises :class:`ConfigError` naming the key.
    """
    if not isinstance(table, dict):
        raise ConfigError(where, prefix, "must be a table.", f"Write it as [[{prefix}]].")
    values = schema.SIGNER.parse(table, where=where, prefix=prefix, base=base)
    defaults = defaults or {}
    return SignerSettings(
        certificate=values["certificate"],
        key=key_reference(table["key"], base, where, f"{prefix}.key"),
        password_file=values.get("password_file", defaults.get("password_file")),
        pin_file=values.get("pin_file", defaults.get("pin_file")),
        pkcs11_module=values.get("pkcs11_module", defaults.get("pkcs11_module")),
        signature_algorithm=check_algorithm(values.get("signature_algorithm", defaults.get("signature_algorithm")), where,
                                            f"{prefix}.signature_algorithm"),
        locally_trusted=values.get("locally_trusted", schema.SIGNER.default("locally_trusted")),
        name=values.get("name"),
        where=f"{where}: {prefix}",
    )


@dataclass(frozen=True)
class CaSignerSettings:
    """Everything signer-related of one ``[ca.NAME]`` table, parsed."""

    signers: tuple[SignerSettings, ...]
    signers_dir: Path | None
    expiry_warning: int
    rescan: int
    pkcs11_module: str | None
    pkcs11_pin_file: Path | None
    signature_algorithm: str | None


def ca_signer_settings(name: str, table: dict[str, Any], *, where: str, base: Path) -> CaSignerSettings:
    """Parse the signer keys of ``[ca.NAME]``: the shorthand, the ``signer`` array, ``signers_dir``.

    At least one signer must be configured (shorthand, array or directory).
    Raises :class:`ConfigError`.
    """
    prefix = f"ca.{name}"
    values = schema.CA.parse(table, where=where, prefix=prefix, base=base, only=CA_SIGNER_KEYS)
    module, pin_file = values.get("pkcs11_module"), values.get("pkcs11_pin_file")
    algorithm = check_algorithm(values.get("signature_algorithm"), where, f"{prefix}.signature_algorithm")
    defaults = {"pkcs11_module": module, "pin_file": pin_file, "signature_algorithm": algorithm}
    signers = []
    if "signer_certificate" in table or "signer_key" in table:
        for required in ("signer_certificate", "signer_key"):
            if required not in table:
                raise ConfigError(where, f"{prefix}.{required}", "is missing.", f'Add {required} = "FILE".')
        key_reference(table["signer_key"], base, where, f"{prefix}.signer_key")  # errors name the shorthand key
        shorthand = {"certificate": table["signer_certificate"], "key": table["signer_key"]}
        if "signer_password_file" in table:
            shorthand["password_file"] = table["signer_password_file"]
        if "signer_locally_trusted" in table:
            shorthand["locally_trusted"] = table["signer_locally_trusted"]
        signer = signer_settings(shorthand, where=where, prefix=prefix, base=base, defaults=defaults)
        signers.append(signer)
    for index, entry in enumerate(values.get("signer", []), 1):
        signers.append(signer_settings(entry, where=where, prefix=f"{prefix}.signer[{index}]", base=base, defaults=defaults))
    signers_dir = values.get("signers_dir")
    if not signers and signers_dir is None:
        raise ConfigError(
            where, f"{prefix}.signer_certificate", "no signer is configured.",
            "Add signer_certificate and signer_key, [[ca.NAME.signer]] tables, or signers_dir.",
        )
    warning = values.get("signer_expiry_warning", DEFAULT_EXPIRY_WARNING)
    rescan = values.get("signers_rescan", DEFAULT_RESCAN)
    return CaSignerSettings(tuple(signers), signers_dir, warning, rescan, module, pin_file, algorithm)


def read_signer_file(path: Path, *, defaults: dict[str, Any] | None = None) -> SignerSettings:
    """Read one ``signers_dir`` file (``NAME.toml``); relative paths are relative to its folder.

    Raises :class:`ConfigError` naming the file.
    """
    try:
        with open(path, "rb") as handle:
            table = tomllib.load(handle)
    except OSError as exc:
        raise ConfigError(str(path), "-", f"cannot read the file: {exc.strerror}.", "Check the signers directory.") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(str(path), "-", f"is not valid TOML: {exc}.", "Fix the syntax at that line.") from None
    table.setdefault("name", path.stem)
    return signer_settings(table, where=str(path), prefix="signer", base=path.parent, defaults=defaults)


def with_pkcs11_module(ca, module: str | None):
    """Return ``ca`` (a CaSettings) with ``[server] pkcs11_module`` as the default of its signers."""
    if module is None:
        return ca
    signers = tuple(s if s.pkcs11_module else dataclasses.replace(s, pkcs11_module=module) for s in ca.signers)
    return dataclasses.replace(ca, signers=signers, pkcs11_module=ca.pkcs11_module or module)


def configured_signers(ca) -> tuple[SignerSettings, ...]:
    """The signers configured for ``ca`` (a CaSettings): the shorthand, then ``signers``.

    The shorthand (``signer_certificate``/``signer_key``, on the single-CA
    command line too) takes the CA-level PIN file, module, algorithm and
    locally-trusted flag; ``signers`` holds the ``[[ca.NAME.signer]]`` tables.
    """
    found = []
    if ca.signer_certificate is not None and ca.signer_key is not None:
        found.append(
            SignerSettings(
                certificate=Path(ca.signer_certificate),
                key=str(ca.signer_key),
                password_file=ca.signer_password_file,
                pin_file=ca.pkcs11_pin_file,
                pkcs11_module=ca.pkcs11_module,
                signature_algorithm=ca.signature_algorithm,
                locally_trusted=ca.signer_locally_trusted,
                name=Path(ca.signer_certificate).stem,
                where=f"{ca.where}: ca.{ca.name}",
            )
        )
    return (*found, *ca.signers)
