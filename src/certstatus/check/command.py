"""``certstatus check URL``: ask a responder, judge its answers, print one line per rule.

Exit status 0 when no rule is violated (warnings and notes do not fail),
1 when one is, 2 for an operator error (unreadable --issuer, bad serial, a
responder that gives no HTTP answer at all).
"""

from __future__ import annotations

import json
import ssl
import sys
from typing import TYPE_CHECKING

import click
from cryptography.x509 import ocsp
from rich.console import Console
from rich.table import Table

from certstatus.clock import SystemClock
from certstatus.errors import CertstatusError, ConfigError
from certstatus.pipeline.audit import RESPONSE_STATUS_NAMES
from certstatus.protocol.response import CERT_STATUS_NAMES
from certstatus.signing.keys import load_certificates
from certstatus.sources.issued import parse_serial

if TYPE_CHECKING:
    from certstatus.check.probe import Reply
    from certstatus.check.rules import Summary

CLI = "command line"
_STYLE = {"violation": "bold red", "warning": "yellow", "note": "cyan", "ok": "green"}


@click.command("check")
@click.argument("url")
@click.option("--issuer", required=True, type=click.Path(dir_okay=False), help="The CA certificate (PEM or DER) whose serials are asked.")
@click.option("--serial", "serials", multiple=True, help="A serial the CA issued (hex); repeat for more.")
@click.option("--unassigned-serial", "unassigned", multiple=True, help="A serial the CA never issued (hex): must never be answered good.")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True)
@click.option("--timeout", type=float, default=10.0, show_default=True, help="Seconds to wait for each answer.")
@click.option("--tls-ca-file", type=click.Path(dir_okay=False), help="For an https:// URL: the CA certificates to trust (default: the system's).")
def check_command(url: str, issuer: str, serials: tuple[str, ...], unassigned: tuple[str, ...], fmt: str, timeout: float,
                  tls_ca_file: str | None) -> None:  # fmt: skip
    """Ask the OCSP responder at URL about serials of one CA and report every rule it can observe.

    Each serial is asked 8 ways: GET and POST, SHA-1 and SHA-256 CertIDs, with and without a
    nonce (plus an If-None-Match revalidation). Rules: docs/compliance.md. Exit 1 on a violation.
    """
    import httpx  # deferred, with the check modules that use it: httpx (~0.1 s) only for `certstatus check`

    from certstatus.check.probe import ask_all, plan
    from certstatus.check.rules import judge, summarise

    if not serials and not unassigned:
        raise ConfigError(CLI, "--serial", "no serial to ask about.", "Give at least one --serial (or --unassigned-serial) in hex.")
    issued = [_serial(text, "--serial") for text in serials]
    never = [_serial(text, "--unassigned-serial") for text in unassigned]
    if both := set(issued) & set(never):
        listed = ", ".join(f"{s:x}" for s in sorted(both))
        raise ConfigError(CLI, "--unassigned-serial", f"{listed} is also given as --serial.", "Give each serial once.")
    if not url.startswith(("http://", "https://")):
        raise ConfigError(CLI, "URL", f"{url!r} is not an http:// or https:// URL.", "Give the responder's URL, e.g. http://ocsp.example.com/.")
    ca = load_certificates(issuer)[0]
    probes = plan(ca, issued, never)
    with httpx.Client(timeout=timeout, verify=_tls_context(tls_ca_file)) as client:
        replies = list(ask_all(client, url, probes, SystemClock()))
    if all(reply.error is not None for reply in replies):
        raise CertstatusError(f"{url}: no HTTP answer ({replies[0].error}). Check the URL and that the responder is running and reachable.")
    summaries = summarise(judge(replies, ca))
    violations = sum(s.result == "violation" for s in summaries)
    if fmt == "json":
        click.echo(json.dumps(_json(url, ca.subject.rfc4514_string(), summaries, replies), indent=2))
    else:
        _print_table(url, summaries, len(replies))
    sys.exit(1 if violations else 0)


def _tls_context(ca_file: str | None):
    """The TLS client context for an https:// URL: the system's trust, or ``ca_file``'s."""
    try:
        return ssl.create_default_context(cafile=ca_file)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(CLI, "--tls-ca-file", f"{ca_file} cannot be read as PEM CA certificates ({exc}).",
                          "Give a file of PEM certificates.") from None  # fmt: skip


def _serial(text: str, option: str) -> int:
    serial = parse_serial(text)
    if serial is None:
        raise ConfigError(CLI, option, f"{text!r} is not a hexadecimal serial number.", "Write it in hex, e.g. 1A2B, 0x1a2b or 1a:2b.")
    return serial


def _print_table(url: str, summaries: list[Summary], answers: int) -> None:
    from certstatus.check.rules import RESULTS  # deferred: the check modules bring httpx, only for `certstatus check`

    table = Table(title=f"{url}: {answers} answers", title_justify="left")
    for column in ("rule", "source", "result", "detail"):
        table.add_column(column)
    for summary in summaries:
        detail = summary.detail if summary.result in ("ok", "note") or summary.probe is None else f"{summary.detail} [dim]({summary.probe})[/]"
        table.add_row(summary.rule.title, summary.rule.source, f"[{_STYLE[summary.result]}]{summary.result}[/]", detail)
    counts = {result: sum(s.result == result for s in summaries) for result in RESULTS}
    table.caption = f"{counts['violation']} violations, {counts['warning']} warnings, {counts['note']} notes"
    table.caption_justify = "left"
    console = Console()
    if not console.is_terminal:  # a pipe or file gets every column whole, never cut to 80
        natural = console.measure(table, options=console.options.update_width(10_000)).maximum
        console = Console(width=max(console.width, natural))
    console.print(table)


def _json(url: str, issuer: str, summaries: list[Summary], replies: list[Reply]) -> dict:
    """The report as JSON: the rules (``result`` the worst, ``counts`` per result) and every answer."""
    return {
        "url": url,
        "issuer": issuer,
        "violations": sum(s.result == "violation" for s in summaries),
        "warnings": sum(s.result == "warning" for s in summaries),
        "rules": [
            {"rule": s.rule.key, "title": s.rule.title, "source": s.rule.source, "result": s.result, "detail": s.detail,
             "answer": s.probe, "counts": s.counts}
            for s in summaries
        ],  # fmt: skip
        "answers": [_answer(reply) for reply in replies],
    }


def _answer(reply: Reply) -> dict:
    probe = reply.probe
    entry = {
        "answer": probe.label, "serial": f"{probe.serial_number:x}", "unassigned": probe.unassigned, "method": probe.method,
        "cert_id_hash": probe.hash_algorithm, "nonce": probe.nonce is not None, "if_none_match": probe.conditional,
        "received_at": reply.received_at.isoformat(), "http_status": reply.status, "error": reply.error,
        "content_type": reply.header("content-type"), "cache_control": reply.header("cache-control"), "bytes": len(reply.body),
    }  # fmt: skip
    if reply.status == 200:
        entry.update(_parsed(reply.body))
    return entry


def _parsed(der: bytes) -> dict:
    try:
        response = ocsp.load_der_ocsp_response(der)
    except ValueError:
        return {"response_status": None}
    entry: dict = {"response_status": RESPONSE_STATUS_NAMES[response.response_status]}
    if response.response_status is ocsp.OCSPResponseStatus.SUCCESSFUL:
        singles = list(response.responses)
        entry["cert_status"] = [CERT_STATUS_NAMES[s.certificate_status] for s in singles]
        entry["this_update"] = [s.this_update_utc.isoformat() for s in singles]
        entry["next_update"] = [s.next_update_utc.isoformat() if s.next_update_utc else None for s in singles]
        entry["produced_at"] = response.produced_at_utc.isoformat()
    return entry
