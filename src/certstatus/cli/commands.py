"""The ``certstatus`` group and its commands ``serve``, ``import`` and ``demo``.

Operator-facing errors are one readable paragraph and exit code 2, never a
traceback (a traceback means a bug: exit code 1).
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from certstatus.cli.generate import generate_before_serving
from certstatus.cli.options import import_options, serve_options
from certstatus.cli.output import FORMAT_OPTION, plural, print_error, print_import, print_text, report_import
from certstatus.cli.settings import CLI, settings_from_options
from certstatus.config import load_config, parse_listen
from certstatus.demo_pki import make_demo_pki
from certstatus.errors import CertstatusError
from certstatus.observability import configure_logging


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


@main.command("import")
@import_options
@FORMAT_OPTION
def import_command(fmt: str, **opts) -> None:
    """Import the configured revocation data into the store, then exit (1 if a source was refused)."""
    from certstatus.app import prepare  # deferred: the responder's modules (~0.5 s) only for the commands that run it

    report_import(prepare(settings_from_options(opts), log_refusals=False), fmt)


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
    # deferred: the responder's modules (~0.5 s) only for the commands that run it
    from certstatus.app import prepare
    from certstatus.server.listen import open_listener
    from certstatus.supervisor.run import serve as run_server

    configure_logging(log_level)  # from here on, an uncaught exception is a JSON line, not a raw traceback
    settings = settings_from_options(opts)
    # The addresses first: one in use stops start-up now, in one line, not after the import.
    sock = open_listener(settings)
    loaded = []  # the CAs prepare() loads: the supervisor keeps them as its own signers
    try:
        print_import(prepare(settings, loaded=loaded))  # a source refused at start is logged as on reload and refresh
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

    run_server(settings, log_level=log_level, reload_settings=lambda: settings_from_options(opts), on_listening=listening, sock=sock,
               loaded=loaded)


@main.command()
@click.option("--dir", "folder", default="demo-pki", show_default=True, type=click.Path(file_okay=False), help="Where the demo PKI is written.")
@click.option("--listen", default="127.0.0.1:8080", show_default=True)
@click.option("--key-type", type=click.Choice(["ec", "rsa"]), default="ec", show_default=True)
@click.option("--workers", type=int, default=0, help="Worker processes (default: one per core).")
@click.option("--no-serve", is_flag=True, help="Write the PKI and configuration, print the commands, do not serve.")
def demo(folder: str, listen: str, key_type: str, workers: int, no_serve: bool) -> None:
    """Generate a demo PKI (root, issuing CA, delegated responder, leaves, CRL) and serve it."""
    # deferred: the responder's modules (~0.5 s) only for the commands that run it
    from certstatus.app import prepare
    from certstatus.server.listen import check_address
    from certstatus.supervisor.run import serve as run_server

    host, port = parse_listen(listen, file=CLI, key="--listen")
    if not no_serve:  # before the PKI is written and imported: a port in use stops the demo at once
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
