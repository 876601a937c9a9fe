"""The ``certstatus`` command: serve, import, demo.

Operator-facing errors are one readable paragraph and exit code 2, never a
traceback (a traceback means a bug: exit code 1).
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from certstatus.admin.cli import register as register_source_commands
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
from certstatus.cli_options import DEFAULT_DB, DEFAULT_LISTEN, import_options, serve_options, signer_options
from certstatus.cli_output import FORMAT_OPTION, plural, print_error, print_import, print_text, report_import
from certstatus.errors import CertstatusError, ConfigError
from certstatus.signing.commands import register_signer_commands, single_ca_signer_fields

CLI = "command line"


class _Group(click.Group):
    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except CertstatusError as exc:
            print_error(str(exc))
            sys.exit(2)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="certstatus")
def main() -> None:
    """certstatus: an OCSP responder (RFC 6960, RFC 5019/9919)."""


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


def _settings(opts: dict) -> Settings:
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
    import dataclasses

    return dataclasses.replace(obj, **changes)


@main.command("import")
@import_options
@FORMAT_OPTION
def import_command(fmt: str, **opts) -> None:
    """Import the configured revocation data into the store, then exit (1 if a source was refused)."""
    from certstatus.app import prepare

    report_import(prepare(_settings(opts), log_refusals=False), fmt)


@main.command()
@serve_options
@click.option("--log-level", default="info", type=click.Choice(["debug", "info", "warning", "error"]))
def serve(log_level: str, **opts) -> None:
    """Import the data, then answer OCSP requests until SIGTERM.

    Precomputed/cached CAs: the single-CA form signs every known status before it listens;
    with --config the listener opens at once and the background generator signs what is pending.

    Either --config FILE (any number of CAs), or the single-CA form:
    --issuer ca.pem [--crl ca.crl] [--index index.txt] [--issued serials.txt]
    --signer-cert ocsp.pem --signer-key ocsp.key|ocsp.p12.
    """
    from certstatus.app import prepare
    from certstatus.generator.cli import generate_before_serving
    from certstatus.observability import configure_logging
    from certstatus.server.listen import open_listener
    from certstatus.server.run import serve as run_server

    configure_logging(log_level)  # from here on, an uncaught exception is a JSON line, not a raw traceback
    settings = _settings(opts)
    # The addresses first: one in use stops start-up now, in one line, not after the import.
    sock = open_listener(settings)
    try:
        print_import(prepare(settings))  # a source refused at start is logged as on reload and refresh
        if opts["issuer"]:
            # The single-CA form with --mode precomputed|cached (an operator trying a CA by hand) generates
            # before it serves, with a progress bar: its first answers are the stored ones.
            generate_before_serving(settings)
    except BaseException:
        sock.close()
        raise
    # With --config, no pass here: a restarted responder must answer at once. The stored responses serve
    # (each only while its status is current and before its refresh point, else signed live), and the
    # background generator, a service of the supervisor, signs what is pending (certstatus.generator.schedule).

    def listening(host: str, port: int) -> None:
        print_text(
            f"certstatus listening on {'https' if settings.ops.tls.enabled else 'http'}://{host}:{port}"
            f"{settings.server.common_path or ''} with {plural(settings.server.worker_count, 'worker')} "
            f"for {', '.join(ca.name for ca in settings.cas)}"
        )

    run_server(settings, log_level=log_level, reload_settings=lambda: _settings(opts), on_listening=listening, sock=sock)


@main.command()
@click.option("--dir", "folder", default="demo-pki", show_default=True, type=click.Path(file_okay=False), help="Where the demo PKI is written.")
@click.option("--listen", default="127.0.0.1:8080", show_default=True)
@click.option("--key-type", type=click.Choice(["ec", "rsa"]), default="ec", show_default=True)
@click.option("--workers", type=int, default=0, help="Worker processes (default: one per core).")
@click.option("--no-serve", is_flag=True, help="Write the PKI and configuration, print the commands, do not serve.")
def demo(folder: str, listen: str, key_type: str, workers: int, no_serve: bool) -> None:
    """Generate a demo PKI (root, issuing CA, delegated responder, leaves, CRL) and serve it."""
    from certstatus.app import prepare
    from certstatus.demo_pki import make_demo_pki
    from certstatus.server.run import serve as run_server

    host, port = parse_listen(listen, file=CLI, key="--listen")
    if not no_serve:  # before the PKI is written and imported: a port in use stops the demo at once
        from certstatus.server.listen import check_address

        check_address(host, port, where=CLI, key="--listen")
    pki = make_demo_pki(Path(folder), key_type=key_type, ocsp_url=f"http://{host}:{port}/")
    config = pki.folder / "certstatus.toml"
    config.write_text(
        "# Written by `certstatus demo`: a configuration for the demo PKI.\n"
        "[server]\n"
        f'listen = "{host}:{port}"\n'
        f"workers = {workers}\n"
        'database = "certstatus.sqlite3"\n\n'
        "[ca.demo-issuing-ca]\n"
        f'certificate = "{pki.ca_cert.name}"\n'
        f'crl = ["{pki.crl.name}"]\n'
        f'index = "{pki.index.name}"\n'
        f'signer_certificate = "{pki.ocsp_cert.name}"\n'
        f'signer_key = "{pki.ocsp_key.name}"\n'
        'validity = "1d"\n'
    )
    settings = load_config(config)
    print_import(prepare(settings))
    url = f"http://{host}:{port}/"
    print_text(f"\nDemo PKI in {pki.folder}; configuration {config}\n")
    for label, leaf in (("good", "good"), ("revoked", "revoked-keycompromise"), ("unknown (never issued)", "unknown")):
        print_text(f"# {label}", style="bold")
        print(
            f"openssl ocsp -issuer {pki.ca_cert} -cert {pki.leaves[leaf]} -url {url} "
            f"-CAfile {pki.root_cert} -verify_other {pki.ca_cert} -resp_text",
            flush=True,
        )
    if not no_serve:
        print_text(f"\nserving on {url} (Ctrl-C to stop)")
        run_server(settings)


register_signer_commands(main, signer_options, lambda opts: _settings(opts))
register_source_commands(main)

from certstatus.cli_db import db  # noqa: E402  (own module, registered here)

main.add_command(db)


def _register_operations() -> None:
    from certstatus.cli_operations import billing_group, config_group

    main.add_command(config_group)
    main.add_command(billing_group)


_register_operations()

from certstatus.generator.cli import generate_command  # noqa: E402  (it imports this module)

main.add_command(generate_command)

from certstatus.check.command import check_command  # noqa: E402  (own module, registered here)

main.add_command(check_command)
