"""The ``certstatus`` command: serve, import, demo.

Operator-facing errors are one readable paragraph and exit code 2, never a
traceback (a traceback means a bug: exit code 1).
"""

from __future__ import annotations

import sys
from pathlib import Path

import click
from rich.console import Console
from rich.table import Table

from certstatus.admin.cli import register as register_source_commands
from certstatus.config import (
    DEFAULT_VALIDITY,
    MODES,
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
from certstatus.errors import CertstatusError, ConfigError
from certstatus.signing.commands import SIGNER_OPTIONS, register_signer_commands, single_ca_signer_fields

console = Console(stderr=True)

CLI = "command line"
DEFAULT_LISTEN = "127.0.0.1:8080"
DEFAULT_DB = "certstatus.sqlite3"


class _Group(click.Group):
    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except CertstatusError as exc:
            console.print(f"[bold red]error:[/] {exc}", highlight=False)
            sys.exit(2)


@click.group(cls=_Group)
@click.version_option(package_name="certstatus")
def main() -> None:
    """certstatus: an OCSP responder (RFC 6960, RFC 5019/9919)."""


def _single_ca_settings(opts: dict) -> Settings:
    if (not opts["signer_cert"] or not opts["signer_key"]) and not opts["signers_dir"]:
        raise ConfigError(CLI, "--signer-cert/--signer-key", "are required without --config.", "Give the responder certificate and its key.")
    if not (opts["crl"] or opts["index"] or opts["issued"]):
        raise ConfigError(CLI, "--crl/--index/--issued", "no source of status given.", "Give at least one of them.")
    validity = parse_duration(opts["validity"], file=CLI, key="--validity")
    check_validity(validity, opts["force_validity"], file=CLI, key="--validity")
    host, port = parse_listen(opts["listen"] or DEFAULT_LISTEN, file=CLI, key="--listen")
    if opts["unknown_serials"] != "unknown" and not (opts["index"] or opts["issued"]):
        raise ConfigError(
            CLI, "--unknown-serials", f'"{opts["unknown_serials"]}" needs to know which serials were issued.', "Add --index or --issued."
        )
    ca = CaSettings(
        name=opts["name"],
        certificate=Path(opts["issuer"]),
        **single_ca_signer_fields(opts),
        crl=tuple(c if "://" in c else str(Path(c)) for c in opts["crl"]),
        index=Path(opts["index"]) if opts["index"] else None,
        issued=Path(opts["issued"]) if opts["issued"] else None,
        path=normalise_path(opts["path"], file=CLI, key="--path") if opts["path"] else None,
        validity=validity,
        responder_id=opts["responder_id"],
        unknown_serials=opts["unknown_serials"],
        mode=opts["mode"],
    )
    database = database_setting(opts["db"] or DEFAULT_DB, base=Path("."), file=CLI, key="--db")
    server = ServerSettings(host, port, opts["workers"], database, "/", pkcs11_module=opts["pkcs11_module"])
    return check_settings(Settings(server, (ca,)), CLI)


def _settings(opts: dict) -> Settings:
    if opts["config"]:
        if opts["issuer"]:
            raise ConfigError(CLI, "--issuer", "cannot be combined with --config.", "Put the CA in the config file, or drop --config.")
        settings = load_config(Path(opts["config"]))
        # Command-line options given with --config override the file's [server] values.
        overrides: dict = {}
        if opts["workers"]:
            overrides["workers"] = opts["workers"]
        if opts["listen"]:
            overrides["host"], overrides["port"] = parse_listen(opts["listen"], file=CLI, key="--listen")
        if opts["db"]:
            overrides["database"] = database_setting(opts["db"], base=Path("."), file=CLI, key="--db")
            overrides["where"] = CLI  # errors about the database then name --db
        if overrides:
            settings = Settings(_replace(settings.server, **overrides), settings.cas)
        return settings
    if not opts["issuer"]:
        raise ConfigError(CLI, "--config/--issuer", "nothing to serve.", "Give --config FILE, or --issuer with its sources and signer.")
    return _single_ca_settings(opts)


def _replace(obj, **changes):
    import dataclasses

    return dataclasses.replace(obj, **changes)


_ca_options = [
    click.option("--config", type=click.Path(dir_okay=False), help="TOML configuration (any number of CAs)."),
    click.option("--issuer", type=click.Path(dir_okay=False), help="Single-CA form: the CA certificate."),
    click.option("--name", default="default", show_default=True, help="Single-CA form: the CA's name."),
    click.option("--crl", multiple=True, help="CRL (DER or PEM): a file or an http(s):// or ldap:// URL; repeat for base + delta CRL."),
    click.option("--index", type=click.Path(dir_okay=False), help="OpenSSL index.txt."),
    click.option("--issued", type=click.Path(dir_okay=False), help="File of issued serials (hex, one per line)."),
    click.option("--signer-cert", type=click.Path(dir_okay=False), help="Responder certificate (CA or delegated)."),
    click.option("--signer-key", help="Responder key: PEM or PKCS#12 file, or 'pkcs11:token=…;object=…' (RFC 7512)."),
    click.option("--signer-password-file", type=click.Path(dir_okay=False), help="File holding the key passphrase (or $CERTSTATUS_SIGNER_PASSWORD)."),
    *SIGNER_OPTIONS,
    click.option("--listen", help=f"HOST:PORT to listen on [default: {DEFAULT_LISTEN}; with --config, overrides server.listen]."),
    click.option("--db", help=f"Store: SQLite file or postgresql:// URI [default: {DEFAULT_DB}; with --config, overrides server.database]."),
    click.option("--workers", type=int, default=0, help="Worker processes (default: one per core)."),
    click.option("--path", help="URL path of this CA (default: served at /)."),
    click.option("--validity", default=str(DEFAULT_VALIDITY), show_default=True, help='thisUpdate..nextUpdate: seconds or "24h", "1d".'),
    click.option("--force-validity", is_flag=True, help="Allow a validity outside 1 hour .. 10 days."),
    click.option("--responder-id", type=click.Choice(["key", "name"]), default="key", show_default=True),
    click.option(
        "--unknown-serials",
        type=click.Choice(["unknown", "revoked", "unauthorized"]),
        default="unknown",
        show_default=True,
        help='Never-issued serials: "unknown", RFC 6960 §2.2 extended revoked, or no answer ("unauthorized").',
    ),
    click.option(
        "--mode",
        type=click.Choice(MODES),
        default="live",
        show_default=True,
        help="live: sign every request; precomputed/cached: pre-sign every status (docs/precomputed.md).",
    ),
]


def ca_options(func):
    for option in reversed(_ca_options):
        func = option(func)
    return func


def _print_import(results) -> bool:
    table = Table(title="revocation data", title_justify="left")
    for column in ("CA", "source", "origin", "entries", "result"):
        table.add_column(column)
    ok = True
    for result in results:
        if result.error:
            ok = False
            table.add_row(result.ca, result.kind, result.origin, "-", f"[red]refused: {result.error}[/]")
        else:
            done = f"unchanged ({result.note})" if result.unchanged else "imported"
            table.add_row(result.ca, result.kind, result.origin, str(result.entries), f"[green]{done}[/]")
    console.print(table)
    return ok


@main.command("import")
@ca_options
def import_command(**opts) -> None:
    """Import the configured revocation data into the store, then exit (1 if a source was refused)."""
    from certstatus.app import prepare

    if not _print_import(prepare(_settings(opts))):
        sys.exit(1)


@main.command()
@ca_options
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
    from certstatus.server.run import serve as run_server

    settings = _settings(opts)
    _print_import(prepare(settings))
    if opts["issuer"]:
        # The single-CA form with --mode precomputed|cached (an operator trying a CA by hand) generates
        # before it serves, with a progress bar, as issue 3 asks of it.
        generate_before_serving(settings)
    # With --config, no pass here: a restarted responder must answer at once. The stored responses serve
    # (each only while its status is current and before its refresh point, else signed live), and the
    # background generator, a service of the supervisor, signs what is pending (certstatus.generator.schedule).

    def listening(host: str, port: int) -> None:
        console.print(
            f"certstatus listening on {'https' if settings.ops.tls.enabled else 'http'}://{host}:{port}"
            f"{settings.server.common_path or ''} with {settings.server.worker_count} workers "
            f"for {', '.join(ca.name for ca in settings.cas)}",
            highlight=False,
        )

    if settings.http_server != "protocol":  # the protocol edge reports the port it bound (0: a free one)
        listening(settings.server.host, settings.server.port)
    run_server(settings, log_level=log_level, reload_settings=lambda: _settings(opts), on_listening=listening)


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
    _print_import(prepare(settings))
    url = f"http://{host}:{port}/"
    console.print(f"\nDemo PKI in [bold]{pki.folder}[/]; configuration {config}\n", highlight=False)
    for label, leaf in (("good", "good"), ("revoked", "revoked-keycompromise"), ("unknown (never issued)", "unknown")):
        console.print(f"# {label}", style="bold", highlight=False)
        print(
            f"openssl ocsp -issuer {pki.ca_cert} -cert {pki.leaves[leaf]} -url {url} "
            f"-CAfile {pki.root_cert} -verify_other {pki.ca_cert} -resp_text",
            flush=True,
        )
    if not no_serve:
        console.print(f"\nserving on {url} (Ctrl-C to stop)", highlight=False)
        run_server(settings)


register_signer_commands(main, ca_options, lambda opts: _settings(opts))
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
