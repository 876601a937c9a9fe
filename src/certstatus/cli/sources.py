"""Operator commands for sources: ``revoke``, ``unrevoke``, ``issue``, ``reload``, ``sources``.

They work on the store directly (the same store the servers read, so a
change is served at once by every process over it) and exit 2 with one
paragraph for an operator error (unknown CA, pushes off, malformed serial),
1 when ``reload`` had a source refused, and 1 when ``unrevoke`` left the
serial revoked or changed nothing (its message says which source still
revokes it).
"""

from __future__ import annotations

import dataclasses
import sys

import click

from certstatus.cli.options import import_options, store_options
from certstatus.cli.output import FORMAT_OPTION, cell, duration, print_json, report_import, table
from certstatus.cli.output import console as make_console
from certstatus.cli.settings import settings_from_options
from certstatus.clock import SystemClock
from certstatus.errors import ConfigError
from certstatus.store.factory import open_configured_store

CLI = "command line"


def _push_target_settings(opts: dict):
    """The settings naming the CA pushed to: ``--config FILE``, or the single-CA form (``--issuer``,
    ``--name``, ``--db``), whose CA takes the pushes typed here (it has no ``push`` setting)."""
    settings = settings_from_options(opts)
    if opts["config"]:
        return settings
    return dataclasses.replace(settings, cas=tuple(dataclasses.replace(ca, push=True) for ca in settings.cas))


def _ca_and_serials(opts: dict, args: tuple[str, ...], *, one_serial: bool) -> tuple[str, tuple[str, ...]]:
    """Split the arguments into the CA's name and the serials: with ``--config`` the CA is the first
    argument; in the single-CA form it is ``--name`` and every argument is a serial."""
    ca, serials = (args[0], args[1:]) if opts["config"] else (opts["name"], args)
    if not serials or (one_serial and len(serials) != 1):
        usage = ("CA SERIAL" if one_serial else "CA SERIAL...") if opts["config"] else ("SERIAL" if one_serial else "SERIAL...")
        raise ConfigError(CLI, "arguments", f"{' '.join(args)!r} is not {usage}.",
                          "With --config give the CA's name, then the serial in hex; in the single-CA form only the serial.")
    return ca, serials


def _push(opts: dict, ca_name: str, changes_fields: list[dict]) -> tuple[int, list[dict]]:
    """Apply the changes; return how many, and the unrevoke reports (:mod:`certstatus.admin.push_report`)."""
    # deferred: the importers bring httpx and ldap3 (~0.15 s), which the other commands do not need
    from certstatus.admin.push_report import unrevoke_reports
    from certstatus.sources.push import apply_push, find_target, parse_change
    from certstatus.sources.refresh import register_targets

    settings = _push_target_settings(opts)
    clock = SystemClock()
    now = clock.now()
    changes = [parse_change(fields, now) for fields in changes_fields]
    store = open_configured_store(settings)
    try:
        target = find_target(register_targets(store, settings.cas), ca_name)
        result = apply_push(store, target, changes, clock)
        return result.changes, unrevoke_reports(store, target, result)
    finally:
        store.close()


_SINGLE_CA = "In the single-CA form (--issuer CA.pem [--name NAME] [--db DB]) the CA is --name and the arguments are serials."


@click.command(epilog=_SINGLE_CA)
@click.argument("args", nargs=-1, required=True, metavar="[CA] SERIAL")
@click.option("--reason", help="RFC 5280 reason: keyCompromise, superseded, certificateHold, ...")
@click.option("--time", "revocation_time", help="revocationTime, ISO 8601 with zone (default: now).")
@click.option("--invalidity-date", help="invalidityDate, ISO 8601 with zone.")
@store_options
def revoke(args: tuple[str, ...], reason: str | None, revocation_time: str | None, invalidity_date: str | None, **opts) -> None:
    """Revoke SERIAL (hex) of CA now: one transaction, served at once."""
    ca, (serial,) = _ca_and_serials(opts, args, one_serial=True)
    fields = {"action": "revoke", "serial": serial, "reason": reason, "revocation_time": revocation_time, "invalidity_date": invalidity_date}
    _push(opts, ca, [fields])
    click.echo(f"revoked {serial} of CA {ca}")


@click.command(epilog=_SINGLE_CA)
@click.argument("args", nargs=-1, required=True, metavar="[CA] SERIAL")
@store_options
def unrevoke(args: tuple[str, ...], **opts) -> None:
    """Remove the pushed revocation of SERIAL (hex) of CA (e.g. release a certificateHold).

    Says what changed and what still revokes the serial (a CRL or index lists
    it: it stays revoked until that source stops). Exit 0 when a pushed
    revocation was removed and the serial is no longer revoked, 1 otherwise.
    """
    from certstatus.admin.push_report import (  # deferred: the importers bring httpx and ldap3 (~0.15 s), which the other commands do not need
        unrevoke_done,
        unrevoke_sentence,
    )

    ca, (serial,) = _ca_and_serials(opts, args, one_serial=True)
    _, (report,) = _push(opts, ca, [{"action": "unrevoke", "serial": serial}])
    click.echo(unrevoke_sentence(ca, report))
    if not unrevoke_done(report):
        sys.exit(1)


@click.command(epilog=_SINGLE_CA)
@click.argument("args", nargs=-1, required=True, metavar="CA SERIAL...")
@store_options
def issue(args: tuple[str, ...], **opts) -> None:
    """Record SERIALS (hex) as issued by CA, all in one transaction."""
    ca, serials = _ca_and_serials(opts, args, one_serial=False)
    count, _ = _push(opts, ca, [{"action": "issue", "serial": serial} for serial in serials])
    click.echo(f"recorded {count} issued serial(s) of CA {ca}")


@click.command()
@import_options
@FORMAT_OPTION
def reload(fmt: str, **opts) -> None:
    """Fetch every configured source now and import what changed (exit 1 if one was refused).

    Works from any host of a fleet: the data goes to the shared store.
    A running `certstatus serve` also re-imports on SIGHUP or POST /v1/reload.
    """
    from certstatus.sources.refresh import (  # deferred: the importers bring httpx and ldap3 (~0.15 s), which the other commands do not need
        Refresher,
        register_targets,
    )

    settings = settings_from_options(opts)
    store = open_configured_store(settings)
    try:
        refresher = Refresher(settings, lambda: store, SystemClock())
        results = refresher.run_pass(store, register_targets(store, settings.cas), force=True)
    finally:
        store.close()
    report_import(results, fmt)


def _next_update(seconds: float | None):
    if seconds is None:
        return "-"
    if seconds < 0:
        return cell(f"past by {duration(-seconds)}", "red")
    return duration(seconds)


@click.command()
@store_options
@FORMAT_OPTION
def sources(fmt: str, **opts) -> None:
    """Show every imported source of every CA: age, nextUpdate, entries."""
    # deferred: the importers bring httpx and ldap3 (~0.15 s), which the other commands do not need
    from certstatus.sources.health import source_ages
    from certstatus.sources.refresh import register_targets

    settings = settings_from_options(opts)
    store = open_configured_store(settings)
    try:
        targets = register_targets(store, settings.cas)
        ages = source_ages(store, ((n, t.issuer_id) for n, t in targets.items()), SystemClock().now())
    finally:
        store.close()
    if fmt == "json":  # the shape of the admin API's GET /v1/sources
        print_json({"sources": [age.as_json() for age in ages]})
        return
    rows = [(age.ca, age.kind, age.origin, str(age.entries), duration(age.age_seconds), _next_update(age.seconds_to_next_update))
            for age in ages]
    make_console().print(table("sources", ("CA", "source", "origin", "entries", "age", "nextUpdate in"), rows))


def register(group: click.Group) -> None:
    """Add the source commands to the ``certstatus`` group."""
    for command in (revoke, unrevoke, issue, reload, sources):
        group.add_command(command)
