"""CLI: ``certstatus signers`` (table of every CA's signers) and ``certstatus signer new|add``.

Registered on the main group by :func:`register_signer_commands`, which
receives the shared CA options and the settings builder from
:mod:`certstatus.cli`. :data:`SIGNER_OPTIONS` are the
single-CA signer options of ``serve``/``import``.
"""

from __future__ import annotations

import datetime as dt
import re
import sys
from pathlib import Path

import click
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from certstatus.cli.output import FORMAT_OPTION, cell, console, duration, print_error, print_json, print_text, table
from certstatus.clock import SystemClock
from certstatus.config import CaSettings, load_config, parse_duration
from certstatus.errors import ConfigError, SignerError
from certstatus.signing.algorithms import ALGORITHMS
from certstatus.signing.keys import load_certificates, load_private_key, read_password
from certstatus.signing.lifecycle import (
    KEY_TYPES,
    PKCS11_REF_SUFFIX,
    build_csr,
    check_issued_certificate,
    default_subject,
    generate_file_key,
    generate_pkcs11_key,
    signer_toml,
    write_atomically,
    write_key_file,
)
from certstatus.signing.loader import crl_signature_oid, load_signers
from certstatus.signing.pkcs11 import PIN_ENV, read_pin
from certstatus.signing.pkcs11_keys import open_pkcs11_key
from certstatus.signing.pkcs11_uri import is_pkcs11_uri, parse_pkcs11_uri
from certstatus.signing.revocation import revocation_lookup
from certstatus.signing.settings import check_algorithm, key_reference
from certstatus.signing.signer import prove_key
from certstatus.signing.signer_set import SignerSet
from certstatus.store.factory import open_configured_store

CLI = "command line"

SIGNER_OPTIONS = [
    click.option("--pkcs11-module", help="PKCS#11 library for pkcs11: keys (e.g. /usr/lib/softhsm/libsofthsm2.so)."),
    click.option("--pkcs11-pin-file", type=click.Path(dir_okay=False), help="File holding the token PIN (or $CERTSTATUS_PKCS11_PIN)."),
    click.option("--signers-dir", type=click.Path(file_okay=False), help="Directory of installed signers (certstatus signer add)."),
    click.option("--signature-algorithm", type=click.Choice(list(ALGORITHMS)), help="Default signature algorithm (default: by key)."),
    click.option("--signer-locally-trusted", is_flag=True, help="The signer is not issued by the CA; clients trust it out of band (RFC 6960 §2.2)."),
    click.option("--signer-expiry-warning", default="14d", show_default=True, help="Warn this long before the active signer expires unrelieved."),
]


def single_ca_signer_fields(opts: dict) -> dict:
    """CaSettings fields of the single-CA command line's signer options."""
    fields: dict = {}
    if opts.get("signer_cert") and opts.get("signer_key"):
        fields.update(
            signer_certificate=Path(opts["signer_cert"]),
            # a file, or a pkcs11: URI (checked per RFC 7512) kept as written
            signer_key=Path(key_reference(opts["signer_key"], Path.cwd(), CLI, "--signer-key")),
            signer_password_file=Path(opts["signer_password_file"]) if opts.get("signer_password_file") else None,
        )
    fields.update(
        signers_dir=Path(opts["signers_dir"]) if opts.get("signers_dir") else None,
        signer_expiry_warning=parse_duration(opts.get("signer_expiry_warning") or "14d", file=CLI, key="--signer-expiry-warning"),
        pkcs11_module=opts.get("pkcs11_module"),
        pkcs11_pin_file=Path(opts["pkcs11_pin_file"]) if opts.get("pkcs11_pin_file") else None,
        signature_algorithm=opts.get("signature_algorithm"),
        signer_locally_trusted=bool(opts.get("signer_locally_trusted")),
    )
    return fields


#: A signer name: the stem of its files in the signers directory and its token label. One plain file name:
#: no path separator, no "." or "..", no leading dot (a hidden file the re-scan would skip).
_SIGNER_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


def check_signer_name(name: str) -> str:
    """Return ``name`` when it is a signer name (:data:`_SIGNER_NAME`); raise :class:`ConfigError` otherwise.

    The name becomes file names in the signers directory (``NAME.key``, ``NAME.toml``...): ``../x``
    or ``/etc/x`` would write outside it.
    """
    if not _SIGNER_NAME.fullmatch(name):
        raise ConfigError(
            CLI, "--name", f"{name!r} is not a signer name: it becomes the name of files in the signers directory.",
            "Use 1 to 64 letters, digits, '.', '_' or '-', starting with a letter or digit (e.g. ocsp-2027); "
            "no '/', no '..'.",
        )  # fmt: skip
    return name


_STATE_STYLE = {"active": "bold green", "standby": "green", "next": "cyan", "expired": "red", "revoked": "red",
                "refused": "red", "none": "red"}
SIGNER_COLUMNS = ("CA", "signer", "subject", "algorithm", "notBefore", "notAfter", "left", "state", "note")


def _when(value: dt.datetime) -> str:
    return f"{value:%Y-%m-%d %H:%M:%SZ}"


def signer_rows(settings, clock=None) -> tuple[list[dict], bool]:
    """One dict per signer of every CA (``certstatus signers``); the flag is False when a CA has no active signer.

    Keys: ``ca``, ``signer``, ``subject``, ``serial_number`` (hex), ``algorithm``, ``not_before``,
    ``not_after`` (aware UTC), ``seconds_left``, ``state`` (a :class:`SignerState` state, or ``refused``
    with the reason in ``notes``, or ``none`` for a CA without signer), ``notes`` (list of str).
    """
    clock = clock or SystemClock()
    now = clock.now()
    rows: list[dict] = []
    ok = True
    store = open_configured_store(settings)
    try:
        for ca in settings.cas:
            ca_certificate = load_certificates(ca.certificate)[0]
            issuer_id = store.register_issuer(ca.name, ca_certificate.public_bytes(serialization.Encoding.DER))

            signers, refused = load_signers(ca, ca_certificate, now, strict=False)
            signer_set = SignerSet(ca.name, signers, clock,
                                   expiry_warning=ca.signer_expiry_warning, crl_signature_oid=crl_signature_oid(ca))
            signer_set.check_revocations(revocation_lookup(store, issuer_id))
            states = signer_set.states(now)
            if not any(s.state == "active" for s in states):
                ok = False
            for state in states:
                notes = []
                if state.locally_trusted:
                    notes.append("locally trusted (clients need it out of band)")
                if state.warning:
                    notes.append("expires soon, no successor")
                rows.append({
                    "ca": ca.name, "signer": state.name, "subject": state.subject, "serial_number": f"{state.serial_number:X}",
                    "algorithm": state.algorithm, "not_before": state.not_before, "not_after": state.not_after,
                    "seconds_left": state.seconds_left, "state": state.state, "notes": notes,
                })  # fmt: skip
            for item in refused:
                rows.append({"ca": ca.name, "signer": item.name, "state": "refused", "notes": [item.reason]})
            if not states and not refused:
                rows.append({"ca": ca.name, "signer": None, "state": "none", "notes": ["no signer configured"]})
    finally:
        store.close()
    return rows, ok


def signers_table(rows: list[dict]):
    """The rows of :func:`signer_rows` as a rich table (durations for people, expiry warnings in yellow)."""
    lines = []
    for row in rows:
        left = row.get("seconds_left")
        warned = "expires soon, no successor" in row["notes"]
        lines.append((
            row["ca"], row["signer"] or "-", row.get("subject", ""), row.get("algorithm", ""),
            _when(row["not_before"]) if "not_before" in row else "", _when(row["not_after"]) if "not_after" in row else "",
            "" if left is None else "expired" if left < 0 else duration(left),
            cell(row["state"], _STATE_STYLE.get(row["state"], "")), cell("; ".join(row["notes"]), "yellow" if warned else ""),
        ))  # fmt: skip
    return table("signers", SIGNER_COLUMNS, lines)


def _ca_for(settings, name: str | None):
    if name is None:
        if len(settings.cas) != 1:
            raise ConfigError(CLI, "--ca", "several CAs are configured.", f"Name one: {', '.join(c.name for c in settings.cas)}.")
        return settings.cas[0]
    for ca in settings.cas:
        if ca.name == name:
            return ca
    raise ConfigError(CLI, "--ca", f"no CA named {name!r}.", f"Configured: {', '.join(c.name for c in settings.cas)}.")


def _signers_dir(ca, override: str | None) -> Path:
    folder = Path(override) if override else ca.signers_dir
    if folder is None:
        raise ConfigError(
            ca.where, f"ca.{ca.name}.signers_dir", "is not set: installed signers need a directory the server re-reads.",
            'Add signers_dir = "signers/NAME" to the CA, or give --signers-dir.',
        )
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _password(password_file: str | None) -> bytes | None:
    return read_password(Path(password_file) if password_file else None)


def _pin(uri, pin_file: str | None, ca) -> str:
    pin = read_pin(uri, Path(pin_file) if pin_file else ca.pkcs11_pin_file if ca else None, where=CLI)
    if pin is None:
        raise SignerError(f"no PIN for the PKCS#11 token: set {PIN_ENV}, --pkcs11-pin-file or pin-source in the URI")
    return pin


def _new(settings, ca_name, signers_dir, name, key_type, pkcs11_uri, pkcs11_module, pkcs11_pin_file, subject, password_file):
    if name is not None:
        check_signer_name(name)  # before anything is written
    now = dt.datetime.now(dt.timezone.utc)
    ca = _ca_for(settings, ca_name) if settings is not None else None
    folder = _signers_dir(ca, signers_dir) if ca is not None else Path(signers_dir or ".")
    folder.mkdir(parents=True, exist_ok=True)
    name = name or f"ocsp-{now:%Y%m%d-%H%M%S}"
    ca_certificate = load_certificates(ca.certificate)[0] if ca is not None else None
    if subject:
        try:
            subject_name = x509_name(subject)
        except ValueError as exc:
            raise ConfigError(CLI, "--subject", f"{exc}.", 'Write e.g. "CN=Example OCSP Responder,O=Example".') from None
    else:
        subject_name = default_subject(ca_certificate, now)
    if pkcs11_uri:
        try:
            uri = parse_pkcs11_uri(pkcs11_uri if "object=" in pkcs11_uri or "id=" in pkcs11_uri else f"{pkcs11_uri};object={name}")
        except ValueError as exc:
            raise ConfigError(CLI, "--pkcs11", f"{exc}.") from None
        module = uri.module_path or pkcs11_module or (ca.pkcs11_module if ca else None)
        if not module:
            raise ConfigError(CLI, "--pkcs11-module", "is needed for a key in a token.", "Give the PKCS#11 library path.")
        where = f"token object {uri.describe()}"
        generate_pkcs11_key(uri, module, _pin(uri, pkcs11_pin_file, ca), key_type, where=where)
        pin_file = Path(pkcs11_pin_file) if pkcs11_pin_file else (ca.pkcs11_pin_file if ca else None)
        key = open_pkcs11_key(uri, module, pin_file=pin_file, where=where)
        reference = folder / f"{name}{PKCS11_REF_SUFFIX}"
        write_atomically(reference, (uri.text if "object=" in uri.text or "id=" in uri.text else pkcs11_uri).encode() + b"\n")
        key_place = f"{where} (recorded in {reference})"
    else:
        key = generate_file_key(key_type)
        key_path = folder / f"{name}.key"
        password = _password(password_file)
        write_key_file(key, key_path, password)
        key_place = f"{key_path}" + (" (encrypted)" if password else "")
    csr = build_csr(key, subject_name)
    csr_path = folder / f"{name}.csr"
    write_atomically(csr_path, csr.public_bytes(serialization.Encoding.PEM))
    print_text(f"key: {key_place}\nrequest: {csr_path}\nsubject: {subject_name.rfc4514_string()}", stderr=False)
    where_args = f"--config FILE --ca {ca.name}" if ca else f"--issuer CA.pem --signers-dir {folder}"
    post_quantum = key_type.startswith("ml-dsa-")
    print_text(
        "\nHave the CA issue it with the OCSP responder profile, e.g.\n"
        f"  openssl x509 -req -in {csr_path} -CA CA.pem -CAkey CA.key -copy_extensions copyall -days 30 -out {folder / name}.pem\n"
        + ("  (an ML-DSA request needs OpenSSL 3.5 or later, or a CA product that reads ML-DSA; the CA signs\n"
           "  with its own algorithm, ECDSA or RSA included)\n" if post_quantum else "")
        + f"then install it: certstatus signer add {where_args} {folder / name}.pem",
        stderr=False,
    )


def x509_name(text: str):
    """Parse ``CN=...,O=...`` (RFC 4514) into an x509.Name; ValueError when it is not one."""
    return x509.Name.from_rfc4514_string(text)


def _pending_keys(folder: Path):
    """(stem, key reference) of the keys `signer new` left in ``folder`` without a certificate."""
    for path in sorted(folder.glob("*.key")):
        if not (folder / f"{path.stem}.toml").exists():
            yield path.stem, str(path)
    for path in sorted(folder.glob(f"*{PKCS11_REF_SUFFIX}")):
        if not (folder / f"{path.stem}.toml").exists():
            yield path.stem, path.read_text().strip()


def _public_key_of(reference: str, ca, opts, certificate):
    """The public key of a key reference (file or pkcs11 URI); SignerError when unusable."""
    if is_pkcs11_uri(reference):
        uri = parse_pkcs11_uri(reference)
        module = uri.module_path or opts["pkcs11_module"] or (ca.pkcs11_module if ca else None)
        pin_file = Path(opts["pkcs11_pin_file"]) if opts["pkcs11_pin_file"] else (ca.pkcs11_pin_file if ca else None)
        key = open_pkcs11_key(uri, module, pin_file=pin_file, where=uri.describe(),
                              certificate_public_key=certificate.public_key())
        prove_key(key, certificate, where=uri.describe())
        return key.public_key()
    return load_private_key(Path(reference), _password(opts["password_file"])).key.public_key()


def _add(ca, opts, certificate_file: str) -> None:
    if opts["name"] is not None:
        check_signer_name(opts["name"])
    folder = _signers_dir(ca, opts["signers_dir"])
    certificates = load_certificates(Path(certificate_file))
    certificate = certificates[0]
    ca_certificate = load_certificates(ca.certificate)[0]
    spki = certificate.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    candidates = [(opts["name"] or Path(certificate_file).stem, opts["key"])] if opts["key"] else list(_pending_keys(folder))
    if not candidates:
        raise SignerError(f"{certificate_file}: no pending key in {folder}; give the key with --key FILE|pkcs11:URI")
    chosen = None
    for stem, reference in candidates:
        try:
            public = _public_key_of(reference, ca, opts, certificate)
        except SignerError:
            if opts["key"]:
                raise
            continue
        if public.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo) == spki:
            chosen = (opts["name"] or stem, reference, public)
            break
    if chosen is None:
        raise SignerError(
            f"{certificate_file}: the certificate's key ({certificate.subject.rfc4514_string()}) is not "
            f"{'the key ' + opts['key'] if opts['key'] else 'any pending key in ' + str(folder)}; "
            "install the certificate issued for that key"
        )
    name, reference, public = chosen
    warnings = check_issued_certificate(certificate, ca_certificate, public, dt.datetime.now(dt.timezone.utc),
                                        where=f"{certificate_file} for CA {ca.name}")
    toml_path = folder / f"{name}.toml"
    if toml_path.exists():
        raise SignerError(f"{toml_path} exists already: signer {name} is installed; give another --name")
    algorithm = check_algorithm(opts["signature_algorithm"], CLI, "--signature-algorithm")
    pem = b"".join(c.public_bytes(serialization.Encoding.PEM) for c in certificates)
    write_atomically(folder / f"{name}.pem", pem)
    key_field = reference
    if not reference.startswith("pkcs11:") and Path(reference).parent.resolve() == folder.resolve():
        key_field = Path(reference).name
    password_file = Path(opts["password_file"]).resolve() if opts["password_file"] else None
    pin_file = Path(opts["pkcs11_pin_file"]).resolve() if opts["pkcs11_pin_file"] else None
    # The .toml last: a server re-scanning the folder sees the signer only once it is complete.
    write_atomically(toml_path, signer_toml(f"{name}.pem", key_field, password_file=password_file,
                                            pin_file=pin_file, signature_algorithm=algorithm).encode())
    for warning in warnings:
        print_error(warning, label="warning:")
    print_text(
        f"installed signer {name} for CA {ca.name}: {toml_path}\n"
        f"valid {_when(certificate.not_valid_before_utc)} to {_when(certificate.not_valid_after_utc)}; "
        f"running servers pick it up within signers_rescan ({duration(ca.signers_rescan)}) or on SIGHUP",
        stderr=False,
    )


def register_signer_commands(main: click.Group, signer_options, settings_from_opts) -> None:
    """Add ``signers`` and ``signer new|add`` to ``main`` (``signer_options``, ``settings_from_opts`` from cli)."""

    @main.command("signers")
    @signer_options
    @FORMAT_OPTION
    def signers_command(fmt: str, **opts) -> None:
        """List every CA's signers: validity, algorithm, which one is active (exit 1 if a CA has none)."""
        rows, ok = signer_rows(settings_from_opts(opts))
        if fmt == "json":
            print_json({"signers": rows})
        else:
            console().print(signers_table(rows))
        if not ok:
            sys.exit(1)

    @main.group("signer")
    def signer_group() -> None:
        """Delegated responder lifecycle: make a key and request, install the issued certificate."""

    @signer_group.command("new")
    @click.option("--config", type=click.Path(dir_okay=False), help="Configuration: the key goes to the CA's signers_dir.")
    @click.option("--ca", "ca_name", help="The CA (needed when several are configured).")
    @click.option("--signers-dir", type=click.Path(file_okay=False), help="Where to write the key and request (without --config: default .).")
    @click.option("--name", help="Signer name: file stem and token label (default: ocsp-DATE-TIME).")
    @click.option("--key-type", type=click.Choice(KEY_TYPES), default="ec-p256", show_default=True)
    @click.option("--pkcs11", "pkcs11_uri", help="Generate the key in this token: 'pkcs11:token=…' (object= defaults to --name).")
    @click.option("--pkcs11-module", help="PKCS#11 library (or pkcs11_module in the configuration).")
    @click.option("--pkcs11-pin-file", type=click.Path(dir_okay=False), help="Token PIN file (or $CERTSTATUS_PKCS11_PIN).")
    @click.option("--subject", help='Subject of the request, RFC 4514 (default: "CN=<CA CN> OCSP Responder <date>").')
    @click.option("--password-file", type=click.Path(dir_okay=False), help="Encrypt the key with this passphrase (or $CERTSTATUS_SIGNER_PASSWORD).")
    def new_command(config, ca_name, signers_dir, name, key_type, pkcs11_uri, pkcs11_module, pkcs11_pin_file, subject, password_file) -> None:
        """Make a responder key (file or PKCS#11) and a PKCS#10 request with the OCSP responder profile."""
        settings = load_config(Path(config)) if config else None
        _new(settings, ca_name, signers_dir, name, key_type, pkcs11_uri, pkcs11_module, pkcs11_pin_file, subject, password_file)

    @signer_group.command("add")
    @click.argument("certificate", type=click.Path(dir_okay=False, exists=True))
    @click.option("--config", type=click.Path(dir_okay=False), help="Configuration: install into the CA's signers_dir.")
    @click.option("--ca", help="The CA (needed when several are configured).")
    @click.option("--issuer", type=click.Path(dir_okay=False, exists=True), help="Without --config: the CA certificate.")
    @click.option("--signers-dir", type=click.Path(file_okay=False), help="Without --config: the directory the server re-reads.")
    @click.option("--name", help="Signer name (default: the pending key's name).")
    @click.option("--key", help="The certificate's key (file or pkcs11: URI); default: the matching pending key in signers_dir.")
    @click.option("--password-file", type=click.Path(dir_okay=False), help="Passphrase of the key file (or $CERTSTATUS_SIGNER_PASSWORD).")
    @click.option("--pkcs11-module", help="PKCS#11 library (or pkcs11_module in the configuration).")
    @click.option("--pkcs11-pin-file", type=click.Path(dir_okay=False), help="Token PIN file (or $CERTSTATUS_PKCS11_PIN).")
    @click.option("--signature-algorithm", type=click.Choice(list(ALGORITHMS)), help="Signature algorithm of this signer (default: by key).")
    def add_command(certificate, **opts) -> None:
        """Check a delegated responder certificate (issued by the CA, EKU, key) and install it; no restart needed."""
        if opts["config"]:
            ca = _ca_for(load_config(Path(opts["config"])), opts["ca"])
        elif opts["issuer"] and opts["signers_dir"]:
            ca = CaSettings(name=opts["ca"] or "default", certificate=Path(opts["issuer"]),
                            signers_dir=Path(opts["signers_dir"]), pkcs11_module=opts["pkcs11_module"])
        else:
            raise ConfigError(CLI, "--config/--issuer", "which CA?", "Give --config FILE [--ca NAME], or --issuer CA.pem --signers-dir DIR.")
        _add(ca, opts, certificate)
