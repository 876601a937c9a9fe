"""The options the commands share, in groups, so each command lists only the options it uses.

``serve`` takes them all; ``import`` and ``reload`` what the import reads (the
signers are validated as ``serve`` would); ``generate`` also the response
options; ``sources`` and the push commands only which CA in which store;
``signers`` also the signer options. :func:`certstatus.cli._settings` turns
the values into settings.
"""

from __future__ import annotations

import click

from certstatus.cli.signers import SIGNER_OPTIONS
from certstatus.config import DEFAULT_VALIDITY
from certstatus.model import MODES

DEFAULT_LISTEN = "127.0.0.1:8080"
DEFAULT_DB = "certstatus.sqlite3"

_CONFIG = [click.option("--config", type=click.Path(dir_okay=False), help="TOML configuration (any number of CAs).")]
_CA = [
    click.option("--issuer", type=click.Path(dir_okay=False), help="Single-CA form: the CA certificate."),
    click.option("--name", default="default", show_default=True, help="Single-CA form: the CA's name."),
]
_STORE = [click.option("--db", help=f"Store: SQLite file or postgresql:// URI [default: {DEFAULT_DB}; with --config, overrides server.database].")]
_SOURCES = [
    click.option("--crl", multiple=True, help="CRL (DER or PEM): a file or an http(s):// or ldap:// URL; repeat for base + delta CRL."),
    click.option("--index", type=click.Path(dir_okay=False), help="OpenSSL index.txt."),
    click.option("--issued", type=click.Path(dir_okay=False), help="File of issued serials (hex, one per line)."),
]
_SIGNER = [
    click.option("--signer-cert", type=click.Path(dir_okay=False), help="Responder certificate (CA or delegated)."),
    click.option("--signer-key", help="Responder key: PEM or PKCS#12 file, or 'pkcs11:token=…;object=…' (RFC 7512)."),
    click.option("--signer-password-file", type=click.Path(dir_okay=False), help="File holding the key passphrase (or $CERTSTATUS_SIGNER_PASSWORD)."),
    *SIGNER_OPTIONS,
]
_RESPONSES = [
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
]
_SERVING = [
    click.option("--listen", help=f"HOST:PORT to listen on [default: {DEFAULT_LISTEN}; with --config, overrides server.listen]."),
    click.option("--workers", type=int, default=0, help="Worker processes (default: one per core)."),
    click.option("--path", help="URL path of this CA (default: served at /)."),
    click.option(
        "--mode",
        type=click.Choice(MODES),
        default="live",
        show_default=True,
        help="live: sign every request; precomputed/cached: pre-sign every status (docs/precomputed.md).",
    ),
]


def _options(*groups: list):
    """A decorator adding the options of ``groups`` (lists of click options), in order."""
    options = [option for group in groups for option in group]

    def decorate(func):
        for option in reversed(options):
            func = option(func)
        return func

    return decorate


#: ``serve``: every option of the single-CA form.
serve_options = _options(_CONFIG, _CA, _SOURCES, _SIGNER, _SERVING, _STORE, _RESPONSES)
#: ``import``, ``reload``: what the import reads (the signers are validated as ``serve`` would).
import_options = _options(_CONFIG, _CA, _SOURCES, _SIGNER, _STORE)
#: ``generate``: what the import and the signing read.
generate_options = _options(_CONFIG, _CA, _SOURCES, _SIGNER, _STORE, _RESPONSES)
#: ``sources``, ``revoke``, ``unrevoke``, ``issue``: which CA, in which store.
store_options = _options(_CONFIG, _CA, _STORE)
#: ``signers``: which CA, its signers, the store (their revocation).
signer_options = _options(_CONFIG, _CA, _SIGNER, _STORE)
