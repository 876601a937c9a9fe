"""``certstatus generate``, and the pass the single-CA ``certstatus serve`` runs before it listens.

With ``--config``, ``serve`` generates only in the background (:mod:`certstatus.generator.schedule`).
"""

from __future__ import annotations

import dataclasses
import sys

import click
from rich.progress import BarColumn, MofNCompleteColumn, ProgressColumn, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.progress import Progress as RichProgress
from rich.text import Text

from certstatus.cli.options import generate_options
from certstatus.cli.output import console, print_import, print_text, table
from certstatus.cli.settings import settings_from_options
from certstatus.config import Settings
from certstatus.generator.run import DEFAULT_BATCH_SIZE, RESPONSES_PER_SERIAL, GenerationSummary, Generator, generated_cas
from certstatus.loading import validate_signers
from certstatus.store.factory import open_configured_store


class _RateColumn(ProgressColumn):
    """Responses per second (each serial is one response per CertID hash algorithm)."""

    def render(self, task) -> Text:
        speed = task.finished_speed or task.speed
        return Text("" if speed is None else f"{speed * RESPONSES_PER_SERIAL:,.0f} responses/s")


class _RichProgress:
    def __init__(self, progress: RichProgress) -> None:
        self.progress = progress
        self.task = None

    def start(self, total: int) -> None:
        self.task = self.progress.add_task("signing", total=total)

    def advance(self, serials: int) -> None:
        self.progress.advance(self.task, serials)


def run_with_progress(generator: Generator) -> GenerationSummary:
    """One full pass with a progress bar on stderr (serials; two responses each)."""
    columns = (
        TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TextColumn("serials"),
        _RateColumn(), TimeElapsedColumn(), TimeRemainingColumn(),
    )  # fmt: skip
    with RichProgress(*columns, console=console(stderr=True), transient=False) as progress:
        return generator.run_pass(progress=_RichProgress(progress))


def print_summary(summary: GenerationSummary) -> None:
    """The per-CA table and the rate of a pass."""
    rows = [(ca.name, f"{ca.signed:,}", f"{ca.removed:,}") for ca in summary.cas.values()]
    console(stderr=True).print(table("pre-signed responses", ("CA", "signed", "dropped serials"), rows))
    for ca in summary.cas.values():
        if ca.generated_by is not None:
            print_text(f"CA {ca.name}: not signed here: {ca.generated_by} holds its generator lock")
        if ca.unavailable is not None:
            print_text(f"CA {ca.name}: not all signed: {ca.unavailable}; install a valid signer (certstatus signer new / signer add)")
    processes = f"{summary.processes} processes" if summary.processes else "in-process"
    print_text(
        f"{summary.signed:,} responses in {summary.seconds:.1f} s: "
        f"{summary.responses_per_second:,.0f} responses/s ({processes})"
    )


@click.command("generate")
@generate_options
@click.option("--processes", type=int, default=None, help="Signing processes (default: one per core; 0: this process).")
@click.option(
    "--batch-size", type=click.IntRange(1, 100_000), default=DEFAULT_BATCH_SIZE, show_default=True,
    help="Serials per batch (one transaction each).",
)  # fmt: skip
@click.option("--no-import", is_flag=True, help="Sign what the store holds; do not import the configured sources first.")
def generate_command(processes: int | None, batch_size: int, no_import: bool, **opts) -> None:
    """Sign a response for every known status into the store, on every core, then exit.

    With --config, for the CAs in mode "precomputed" or "cached"; in the
    single-CA form (--issuer ...) for that CA whatever --mode says.
    Responses still fresh are kept: a generation stopped half-way resumes
    where it stopped. Exits 1 when a CA had no signer valid now (the other
    CAs are signed all the same).
    """
    settings = settings_from_options(opts)
    if not opts["config"]:
        settings = Settings(settings.server, tuple(_as_generated(ca) for ca in settings.cas))
    if no_import:
        validate_signers(settings)
    else:
        from certstatus.app import prepare  # deferred: the responder's modules (~0.5 s), not needed with --no-import

        if not print_import(prepare(settings, log_refusals=False)):
            sys.exit(1)
    if not generated_cas(settings):
        print_text('no CA has mode = "precomputed" or "cached": nothing to generate')
        return
    store = open_configured_store(settings)
    try:
        with Generator(settings, store, processes=processes, batch_size=batch_size) as generator:
            summary = run_with_progress(generator)
            print_summary(summary)
    finally:
        store.close()
    if any(ca.unavailable is not None for ca in summary.cas.values()):
        sys.exit(1)  # a CA had no signer valid now: the table and the line under it say which


def _as_generated(ca):
    return ca if ca.mode != "live" else dataclasses.replace(ca, mode="precomputed")


def generate_before_serving(settings: Settings) -> None:
    """The single-CA ``certstatus serve --mode precomputed|cached``: one pass with a progress bar before
    the listener opens (nothing when the CA is live).

    The background generator keeps the responses current afterwards (a
    service of the supervisor: :mod:`certstatus.generator.schedule`).
    """
    if not generated_cas(settings):
        return
    store = open_configured_store(settings)
    try:
        with Generator(settings, store) as generator:
            print_summary(run_with_progress(generator))
    finally:
        store.close()
