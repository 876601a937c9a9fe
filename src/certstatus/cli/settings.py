"""Settings from the command line: ``--config FILE`` or the single-CA form (``--issuer`` ...).

Shared by every command that reads a configuration (:mod:`certstatus.cli.commands`,
:mod:`certstatus.cli.generate`, :mod:`certstatus.cli.sources`, :mod:`certstatus.cli.signers`).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from certstatus.cli.options import DEFAULT_DB, DEFAULT_LISTEN
from certstatus.cli.signers import single_ca_signer_fields
from certstatus.config import (
    DEFAULT_VALIDITY,
    CaSettings,
    ServerSettings,
    Settings,
    check_settings,
    check_validity,
    database_setting,
    load_config,
    normalise_path,
    parse_duration,
    parse_listen,
)
from certstatus.errors import ConfigError

CLI = "command line"


def _single_ca_settings(opts: dict) -> Settings:
    """The single-CA form's settings from the options the command has (a command without signer or
    source options, such as ``sources``, needs neither)."""
    if "signer_cert" in opts and (not opts["signer_cert"] or not opts["signer_key"]) and not opts["signers_dir"]:
        raise ConfigError(CLI, "--signer-cert/--signer-key", "are required without --config.", "Give the responder certificate and its key.")
    if "crl" in opts and not (opts["crl"] or opts["index"] or opts["issued"]):
        raise ConfigError(CLI, "--crl/--index/--issued", "no source of status given.", "Give at least one of them.")
    validity = parse_duration(opts.get("validity") or DEFAULT_VALIDITY, file=CLI, key="--validity")
    check_validity(validity, opts.get("force_validity", False), file=CLI, key="--validity")
    host, port = parse_listen(opts.get("listen") or DEFAULT_LISTEN, file=CLI, key="--listen")
    unknown_serials = opts.get("unknown_serials") or "unknown"
    if unknown_serials != "unknown" and not (opts["index"] or opts["issued"]):
        raise ConfigError(
            CLI, "--unknown-serials", f'"{unknown_serials}" needs to know which serials were issued.', "Add --index or --issued."
        )
    ca = CaSettings(
        name=opts["name"],
        certificate=Path(opts["issuer"]),
        **single_ca_signer_fields(opts),
        crl=tuple(c if "://" in c else str(Path(c)) for c in opts.get("crl", ())),
        index=Path(opts["index"]) if opts.get("index") else None,
        issued=Path(opts["issued"]) if opts.get("issued") else None,
        path=normalise_path(opts["path"], file=CLI, key="--path") if opts.get("path") else None,
        validity=validity,
        responder_id=opts.get("responder_id", "key"),
        unknown_serials=opts.get("unknown_serials", "unknown"),
        mode=opts.get("mode", "live"),
    )
    database = database_setting(opts["db"] or DEFAULT_DB, base=Path("."), file=CLI, key="--db")
    server = ServerSettings(host, port, opts.get("workers", 0), database, "/", pkcs11_module=opts.get("pkcs11_module"))
    return check_settings(Settings(server, (ca,)), CLI)


def settings_from_options(opts: dict) -> Settings:
    """Settings from ``--config FILE`` (``--listen``, ``--workers``, ``--db`` override its [server]) or
    from the single-CA form (``--issuer`` …), with the options the command has."""
    if opts["config"]:
        if opts["issuer"]:
            raise ConfigError(CLI, "--issuer", "cannot be combined with --config.", "Put the CA in the config file, or drop --config.")
        settings = load_config(Path(opts["config"]))
        # Command-line options given with --config override the file's [server] values.
        overrides: dict = {}
        if opts.get("workers"):
            overrides["workers"] = opts["workers"]
        if opts.get("listen"):
            overrides["host"], overrides["port"] = parse_listen(opts["listen"], file=CLI, key="--listen")
        if opts["db"]:
            overrides["database"] = database_setting(opts["db"], base=Path("."), file=CLI, key="--db")
            overrides["where"] = CLI  # errors about the database then name --db
        if overrides:  # [admin], [tls], [access], [audit] stay as the file says
            settings = _replace(settings, server=_replace(settings.server, **overrides))
        return settings
    if not opts["issuer"]:
        raise ConfigError(CLI, "--config/--issuer", "no CA given.",
                          "Give --config FILE, or the single-CA form: --issuer CA.pem and the options --help lists.")
    return _single_ca_settings(opts)


def _replace(obj, **changes):
    return dataclasses.replace(obj, **changes)
