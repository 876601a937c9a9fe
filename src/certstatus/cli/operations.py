"""Operator commands: ``certstatus config reference|check`` and ``certstatus billing report``."""

from __future__ import annotations

import csv
import datetime as dt
import json
import sys
from pathlib import Path

import click

from certstatus.billing import COLUMNS, billing_report, log_files
from certstatus.cli.output import cell, console, plural, print_error, print_import, print_text, table
from certstatus.config import load_config
from certstatus.config_schema import render_reference
from certstatus.errors import ConfigError

CLI = "command line"


@click.group("config")
def config_group() -> None:
    """Configuration: the reference, and checking a file."""


@config_group.command("reference")
@click.option("--output", type=click.Path(dir_okay=False), help="Write to this file instead of standard output.")
def reference(output: str | None) -> None:
    """Print the configuration reference (Markdown), generated from the schema: docs/configuration.md."""
    text = render_reference()
    if output:
        Path(output).write_text(text)
    else:
        click.echo(text, nl=False)


@config_group.command("check")
@click.argument("file", required=False, type=click.Path(dir_okay=False))
@click.option("--config", type=click.Path(dir_okay=False), help="The configuration file (or give it as FILE).")
def check(file: str | None, config: str | None) -> None:
    """Check a configuration as `serve` would, without serving or changing anything.

    The checks of start-up: the file itself, secret file modes, TLS and admin files, every CA's
    certificate and signers, its index, issued list and CRL files (parsed and verified, imported into
    memory; URLs are not fetched), and that the listen addresses can be bound. Exit 2 with the
    first error, 1 when a source is refused, 0 when `serve` would start and serve every CA.
    """
    from certstatus.preflight import check_configuration  # deferred: it loads the responder's modules (~0.5 s)

    if file and config and file != config:
        raise ConfigError(CLI, "--config/FILE", "name two files.", "Give the configuration once.")
    path = config or file
    if not path:
        raise ConfigError(CLI, "--config", "no configuration given.", "Run certstatus config check --config FILE.")
    report = check_configuration(Path(path))
    for warning in report.warnings:
        print_error(warning, label="warning:")
    if report.refused:
        print_import(report.refused)
        sys.exit(1)
    skipped = f"; not fetched: {', '.join(report.not_fetched)}" if report.not_fetched else ""
    print_text(f"{path}: ok ({plural(report.cas, 'CA')}, {plural(report.sources, 'source file')} read{skipped})")


@click.group("billing")
def billing_group() -> None:
    """Billing statistics from the audit log."""


def _moment(value: str, option: str) -> dt.datetime:
    try:
        when = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise ConfigError(CLI, option, f"{value!r} is not a date or time.", 'Write e.g. "2026-11-01" or "2026-11-01T12:00:00Z".') from None
    return when if when.tzinfo else when.replace(tzinfo=dt.timezone.utc)


def month_bounds(now: dt.datetime) -> tuple[str, str]:
    """The first day of ``now``'s month and of the next one (UTC), as ``YYYY-MM-DD``."""
    first = now.astimezone(dt.timezone.utc).date().replace(day=1)
    following = (first + dt.timedelta(days=32)).replace(day=1)
    return first.isoformat(), following.isoformat()


@billing_group.command("report")
@click.option("--from", "start", help="Start (inclusive): a date or ISO time, UTC unless it says otherwise [default: this month's first day].")
@click.option("--to", "end", help="End (exclusive): a date or ISO time [default: the next month's first day].")
@click.option("--by", type=click.Choice(["requestor", "issuer"]), default="requestor", show_default=True)
@click.option("--per", type=click.Choice(["none", "day", "month"]), default="none", show_default=True, help="Split each row by period (UTC).")
@click.option("--log", "logs", multiple=True, type=click.Path(dir_okay=False), help="Audit log file (its rotated copies are read too).")
@click.option("--config", type=click.Path(dir_okay=False), help="Read the audit log path from this configuration's [audit] log.")
@click.option("--format", "fmt", type=click.Choice(["table", "csv", "json"]), default="table", show_default=True)
def report(start: str | None, end: str | None, by: str, per: str, logs: tuple[str, ...], config: str | None, fmt: str) -> None:
    """Count queried certificates per requestor (or issuer) and period, from the audit log (default: this month, UTC)."""
    month = month_bounds(dt.datetime.now(dt.timezone.utc))
    start, end = start or month[0], end or month[1]

    paths = list(logs)
    if config:
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
    totals = result.totals()
    rows = [(row.key, row.period, *(str(row.counts[c]) for c in COLUMNS)) for row in result.rows]
    rows.append((cell("total", "bold"), "", *(cell(totals[c], "bold") for c in COLUMNS)))
    grid = table(f"certificates queried by {by}, {start} to {end}", (by, "period", *COLUMNS), rows)
    for column in grid.columns[2:]:
        column.justify = "right"
    console().print(grid)
    if result.bad_lines:
        print_text(f"{result.bad_lines} unreadable lines skipped")
