"""What the command line prints: consoles sized for where the output goes, tables or JSON, durations.

* On a terminal, rich wraps and fits tables to the terminal's width. Anywhere
  else (a pipe, a file, the journal) nothing is cut or wrapped: a table is as
  wide as its longest cell and a command line to copy stays on one line.
* Text from outside the program (error messages, file names, URLs, subjects)
  is never read as rich markup: ``[ca.NAME]`` prints as written. Tables take
  their cells through :func:`cell`, messages go through :func:`print_error`
  and :func:`print_text`.
* Listing commands take ``--format json`` (:data:`FORMAT_OPTION`): the same
  rows as one JSON document on standard output, for scripts.
"""

from __future__ import annotations

import dataclasses
import json
import sys
from typing import Any

import click
from rich.console import Console
from rich.table import Table
from rich.text import Text

#: Columns of a console that is not a terminal: no table row or line certstatus prints comes near it.
UNBOUNDED_WIDTH = 100_000

FORMAT_OPTION = click.option(
    "--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True,
    help="table: for people; json: one JSON document on standard output, for scripts.",
)  # fmt: skip


def console(*, stderr: bool = False) -> Console:
    """A console on standard output (or error): the terminal's width on a terminal, else unbounded.

    Made per use: the stream is looked up when called (tests replace it).
    """
    terminal = Console(stderr=stderr)
    if terminal.is_terminal:
        return terminal
    return Console(stderr=stderr, width=UNBOUNDED_WIDTH)


def cell(value: Any, style: str = "") -> Text:
    """A table cell showing ``value`` as written (no markup), in ``style``."""
    return Text("" if value is None else str(value), style=style)


def table(title: str, columns: tuple[str, ...], rows: list[tuple[Text | str, ...]]) -> Table:
    """A table with a left-aligned ``title``; plain ``str`` cells are shown as written too."""
    result = Table(title=title, title_justify="left")
    for column in columns:
        result.add_column(column)
    for row in rows:
        result.add_row(*(item if isinstance(item, Text) else cell(item) for item in row))
    return result


def print_text(text: str, *, style: str = "", stderr: bool = True) -> None:
    """Print ``text`` as written (no markup, no highlighting)."""
    console(stderr=stderr).print(Text(text, style=style))


def print_error(message: str, *, label: str = "error:") -> None:
    """``error: MESSAGE`` on standard error, the message exactly as given."""
    console(stderr=True).print(Text.assemble((label, "bold red"), " ", message))


def print_json(document: Any) -> None:
    """``document`` as indented JSON on standard output (datetimes and paths as strings)."""
    click.echo(json.dumps(document, indent=2, default=str))


def duration(seconds: float) -> str:
    """A duration for people, two units at most: ``"7d 0h"``, ``"5h 3m"``, ``"4m 10s"``, ``"12s"``.

    Negative values get a leading ``-``.
    """
    sign = "-" if seconds < 0 else ""
    days, rest = divmod(int(round(abs(seconds))), 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        text = f"{days}d {hours}h"
    elif hours:
        text = f"{hours}h {minutes}m"
    elif minutes:
        text = f"{minutes}m {secs}s"
    else:
        text = f"{secs}s"
    return sign + text


def plural(count: int, noun: str) -> str:
    """``"1 worker"``, ``"2 workers"``: ``count`` and ``noun``, with an ``s`` unless it is one."""
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


#: Sources shown one per row by :func:`print_import`; beyond it, the refused ones and then one summary row.
IMPORT_TABLE_ROWS = 100


def print_import(results, *, stderr: bool = True) -> bool:
    """The import results as a table (standard error unless ``stderr`` is False); False if one was refused.

    With more than :data:`IMPORT_TABLE_ROWS` sources (thousands of CAs), every refused source still
    gets its row, the others fill the table up to that many, and one last row counts the rest: a row
    per source took ~1.3 ms to lay out (13 s of start-up with 10 000 CAs), and nobody reads that
    table (``import --format json`` lists them all).
    """
    refused = [result for result in results if result.error]
    imported = [result for result in results if not result.error]
    room = len(imported) if len(results) <= IMPORT_TABLE_ROWS else max(0, IMPORT_TABLE_ROWS - len(refused))
    kept = {id(result) for result in refused + imported[:room]}
    shown, hidden = [result for result in results if id(result) in kept], imported[room:]
    rows = []
    for result in shown:
        if result.error:
            rows.append((result.ca, result.kind, result.origin, "-", cell(f"refused: {result.error}", "red")))
        else:
            done = f"unchanged ({result.note})" if result.unchanged else "imported"
            rows.append((result.ca, result.kind, result.origin, str(result.entries), cell(done, "green")))
    if hidden:
        unchanged = sum(1 for result in hidden if result.unchanged)
        rows.append(("…", "", f"{len(hidden)} more sources", str(sum(result.entries for result in hidden)),
                     cell(f"{len(hidden) - unchanged} imported, {unchanged} unchanged", "green")))  # fmt: skip
    console(stderr=stderr).print(table("revocation data", ("CA", "source", "origin", "entries", "result"), rows))
    return not refused


def report_import(results, fmt: str) -> None:
    """The import results of ``import`` or ``reload`` on standard output, as a table or JSON; exit 1 if one was refused."""
    if fmt == "json":
        print_json({"results": [dataclasses.asdict(result) for result in results]})
        ok = not any(result.error for result in results)
    else:
        ok = print_import(results, stderr=False)
    if not ok:
        sys.exit(1)
