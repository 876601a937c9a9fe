"""Operator commands for sources: ``revoke``, ``unrevoke``, ``issue``, ``reload``, ``sources``.

They work on the store directly (the same store the servers read, so a
change is served at once by every process over it) and exit 2 with one
paragraph for an operator error (unknown CA, pushes off, malformed serial),
1 when ``reload`` had a source refused, and 1 when ``unrevoke`` left the
serial revoked or changed nothing (its message says which source still
revokes it).
"""

from __future__ import annotations

import sys
from pathlib import Path

import click
from rich.table import Table

from certstatus.clock import SystemClock
from certstatus.config import load_config

_config_option = click.option(
    "--config", required=True, type=click.Path(dir_okay=False), help="TOML configuration naming the CA."
)


def _push(config: str, ca_name: str, changes_fields: list[dict]) -> tuple[int, list[dict]]:
    """Apply the changes; return how many, and the unrevoke reports (:mod:`certstatus.admin.push_report`)."""
    from certstatus.admin.push_report import unrevoke_reports
    from certstatus.app import open_store
    from certstatus.sources.push import apply_push, find_target, parse_change
    from certstatus.sources.refresh import register_targets

    settings = load_config(Path(config))
    clock = SystemClock()
    now = clock.now()
    changes = [parse_change(fields, now) for fields in changes_fields]
    store = open_store(settings)
    try:
        target = find_target(register_targets(store, settings.cas), ca_name)
        result = apply_push(store, target, changes, clock)
        return result.changes, unrevoke_reports(store, target, result)
    finally:
        store.close()


@click.command()
@click.argument("ca")
@click.argument("serial")
@click.option("--reason", help="RFC 5280 reason: keyCompromise, superseded, certificateHold, ...")
@click.option("--time", "revocation_time", help="revocationTime, ISO 8601 with zone (default: now).")
@click.option("--invalidity-date", help="invalidityDate, ISO 8601 with zone.")
@_config_option
def revoke(ca: str, serial: str, reason: str | None, revocation_time: str | None, invalidity_date: str | None, config: str) -> None:
    """Revoke SERIAL (hex) of CA now: one transaction, served at once."""
    fields = {"action": "revoke", "serial": serial, "reason": reason, "revocation_time": revocation_time, "invalidity_date": invalidity_date}
    _push(config, ca, [fields])
    click.echo(f"revoked {serial} of CA {ca}")


@click.command()
@click.argument("ca")
@click.argument("serial")
@_config_option
def unrevoke(ca: str, serial: str, config: str) -> None:
    """Remove the pushed revocation of SERIAL (hex) of CA (e.g. release a certificateHold).

    Says what changed and what still revokes the serial (a CRL or index lists
    it: it stays revoked until that source stops). Exit 0 when a pushed
    revocation was removed and the serial is no longer revoked, 1 otherwise.
    """
    from certstatus.admin.push_report import unrevoke_done, unrevoke_sentence

    _, (report,) = _push(config, ca, [{"action": "unrevoke", "serial": serial}])
    click.echo(unrevoke_sentence(ca, report))
    if not unrevoke_done(report):
        sys.exit(1)


@click.command()
@click.argument("ca")
@click.argument("serials", nargs=-1, required=True)
@_config_option
def issue(ca: str, serials: tuple[str, ...], config: str) -> None:
    """Record SERIALS (hex) as issued by CA, all in one transaction."""
    count, _ = _push(config, ca, [{"action": "issue", "serial": serial} for serial in serials])
    click.echo(f"recorded {count} issued serial(s) of CA {ca}")


def _reload_command():
    from certstatus.cli import _print_import, _settings, ca_options

    @click.command()
    @ca_options
    def reload(**opts) -> None:
        """Fetch every configured source now and import what changed (exit 1 if one was refused).

        Works from any host of a fleet: the data goes to the shared store.
        A running `certstatus serve` also re-imports on SIGHUP or POST /v1/reload.
        """
        from certstatus.app import open_store
        from certstatus.sources.refresh import Refresher, register_targets

        settings = _settings(opts)
        store = open_store(settings)
        try:
            refresher = Refresher(settings, lambda: store, SystemClock())
            results = refresher.run_pass(store, register_targets(store, settings.cas), force=True)
        finally:
            store.close()
        if not _print_import(results):
            sys.exit(1)

    return reload


def _sources_command():
    from certstatus.cli import _settings, ca_options, console

    @click.command()
    @ca_options
    def sources(**opts) -> None:
        """Show every imported source of every CA: age, nextUpdate, entries."""
        from certstatus.app import open_store
        from certstatus.sources.health import source_ages
        from certstatus.sources.refresh import register_targets

        settings = _settings(opts)
        store = open_store(settings)
        try:
            targets = register_targets(store, settings.cas)
            ages = source_ages(store, ((n, t.issuer_id) for n, t in targets.items()), SystemClock().now())
        finally:
            store.close()
        table = Table(title="sources", title_justify="left")
        for column in ("CA", "source", "origin", "entries", "age", "nextUpdate in"):
            table.add_column(column)
        for age in ages:
            left = "-" if age.seconds_to_next_update is None else f"{age.seconds_to_next_update:.0f} s"
            if age.seconds_to_next_update is not None and age.seconds_to_next_update < 0:
                left = f"[red]{left} (past)[/]"
            table.add_row(age.ca, age.kind, age.origin, str(age.entries), f"{age.age_seconds:.0f} s", left)
        console.print(table)

    return sources


def register(group: click.Group) -> None:
    """Add the source commands to the ``certstatus`` group."""
    for command in (revoke, unrevoke, issue, _reload_command(), _sources_command()):
        group.add_command(command)
