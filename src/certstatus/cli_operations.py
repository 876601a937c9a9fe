"""Operator commands: ``certstatus config reference|check`` and ``certstatus billing report``."""

from __future__ import annotations

import csv
import datetime as dt
import json
import sys
from pathlib import Path

import click
from rich.console import Console
from rich.table import Table

from certstatus.errors import ConfigError

CLI = "command line"


@click.group("config")
def config_group() -> None:
    """Configuration: the reference, and checking a file."""


@config_group.command("reference")
@click.option("--output", type=click.Path(dir_okay=False), help="Write to this file instead of standard output.")
def reference(output: str | None) -> None:
    """Print the configuration reference (Markdown), generated from the schema: docs/configuration.md."""
    from certstatus.config_schema import render_reference

    text = render_reference()
    if output:
        Path(output).write_text(text)
    else:
        click.echo(text, nl=False)


@config_group.command("check")
@click.argument("file", type=click.Path(dir_okay=False))
def check(file: str) -> None:
    """Check a configuration file, its certificates, keys and trust anchors, without serving or importing."""
    from certstatus.app import check_operations, load_ca
    from certstatus.clock import SystemClock
    from certstatus.config import load_config
    from certstatus.store.sqlite import SQLiteStore

    settings = load_config(Path(file))
    check_operations(settings)
    store = SQLiteStore(":memory:")
    try:
        for ca in settings.cas:
            load_ca(ca, store, SystemClock())
    finally:
        store.close()
    console = Console(stderr=True)
    for notice in settings.server.deprecated:
        console.print(f"warning: {notice}", highlight=False, markup=False, soft_wrap=True)
    console.print(f"{file}: ok ({len(settings.cas)} CAs)", highlight=False)


@click.group("billing")
def billing_group() -> None:
    """Billing statistics from the audit log."""


def _moment(value: str, option: str) -> dt.datetime:
    try:
        when = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise ConfigError(CLI, option, f"{value!r} is not a date or time.", 'Write e.g. "2026-11-01" or "2026-11-01T12:00:00Z".') from None
    return when if when.tzinfo else when.replace(tzinfo=dt.timezone.utc)


@billing_group.command("report")
@click.option("--from", "start", required=True, help="Start (inclusive): a date or ISO time, UTC unless it says otherwise.")
@click.option("--to", "end", required=True, help="End (exclusive): a date or ISO time.")
@click.option("--by", type=click.Choice(["requestor", "issuer"]), default="requestor", show_default=True)
@click.option("--per", type=click.Choice(["none", "day", "month"]), default="none", show_default=True, help="Split each row by period (UTC).")
@click.option("--log", "logs", multiple=True, type=click.Path(dir_okay=False), help="Audit log file (its rotated copies are read too).")
@click.option("--config", type=click.Path(dir_okay=False), help="Read the audit log path from this configuration's [audit] log.")
@click.option("--format", "fmt", type=click.Choice(["table", "csv", "json"]), default="table", show_default=True)
def report(start: str, end: str, by: str, per: str, logs: tuple[str, ...], config: str | None, fmt: str) -> None:
    """Count queried certificates per requestor (or issuer) and period, from the audit log."""
    from certstatus.billing import COLUMNS, billing_report, log_files

    paths = list(logs)
    if config:
        from certstatus.config import load_config

        target = load_config(Path(config)).ops.audit.log
        if target in (None, "-"):
            raise ConfigError(config, "audit.log", "names no audit file to read.", "Give the file with --log.")
        paths.append(target)
    if not paths:
        raise ConfigError(CLI, "--log/--config", "no audit log given.", "Give --log FILE or --config FILE.")
    files = [name for path in paths for name in log_files(path)]
    if not files:
        raise ConfigError(CLI, "--log", f"no audit log found at {', '.join(paths)}.", "Check the path.")
    result = billing_report(files, _moment(start, "--from"), _moment(end, "--to"), by=by, per=per)
    if fmt == "json":
        rows = [{by: row.key, "period": row.period, **row.counts} for row in result.rows]
        click.echo(json.dumps({"from": start, "to": end, "by": by, "rows": rows, "totals": result.totals(),
                               "unreadable_lines": result.bad_lines}, indent=2))
        return
    if fmt == "csv":
        writer = csv.writer(sys.stdout)
        writer.writerow([by, "period", *COLUMNS])
        for row in result.rows:
            writer.writerow([row.key, row.period, *(row.counts[c] for c in COLUMNS)])
        return
    table = Table(title=f"certificates queried by {by}, {start} to {end}", title_justify="left")
    for column in (by, "period", *COLUMNS):
        table.add_column(column, justify="left" if column in (by, "period") else "right")
    for row in result.rows:
        table.add_row(row.key, row.period, *(str(row.counts[c]) for c in COLUMNS))
    totals = result.totals()
    table.add_row("[bold]total[/]", "", *(f"[bold]{totals[c]}[/]" for c in COLUMNS))
    console = Console(width=200)
    console.print(table)
    if result.bad_lines:
        Console(stderr=True).print(f"{result.bad_lines} unreadable lines skipped", highlight=False)
