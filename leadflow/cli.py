"""The `leadflow` command: a thin shell over the pipeline and the store."""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeElapsedColumn
from rich.table import Table

from leadflow import pipeline
from leadflow.config import Settings, load_settings
from leadflow.errors import ConfigError, LeadflowError, RunLocked
from leadflow.store import db, reads

app = typer.Typer(
    help="leadflow: PostHog events → leads and listing analytics.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
db_app = typer.Typer(help="Manage the store's schema.", no_args_is_help=True)
app.add_typer(db_app, name="db")

out = Console()
err = Console(stderr=True)

EXIT_ERROR = 1
EXIT_LOCKED = 3


class BarProgress:
    """A progress bar on stderr that appears only once a run has taken a couple of seconds."""

    def __init__(self, console: Console, delay: float = 2.0) -> None:
        self.bar = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            TextColumn("{task.completed:,.0f}/{task.total:,.0f} events"),
            TimeElapsedColumn(),
            console=console,
            transient=True,
            disable=not console.is_terminal,
        )
        self.task: TaskID | None = None
        self._timer = threading.Timer(delay, self.bar.start)
        self._timer.daemon = True

    def __enter__(self) -> BarProgress:
        self._timer.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._timer.cancel()
        self.bar.stop()

    def reading(self, files: int) -> None:
        self.task = self.bar.add_task(f"reading {files} file(s)", total=None)

    def planned(self, events: int, slices: int) -> None:
        if self.task is not None:
            self.bar.update(self.task, description=f"writing {slices} slice(s)", total=events)

    def advanced(self, events: int) -> None:
        if self.task is not None:
            self.bar.advance(self.task, events)


def _fail(message: str, code: int = EXIT_ERROR) -> typer.Exit:
    err.print(f"[bold red]error:[/] {message}", highlight=False)
    return typer.Exit(code)


def _settings(database: str | None) -> Settings:
    try:
        return load_settings(database_url=database)
    except Exception as exc:  # pydantic's ValidationError, on a malformed environment
        raise _fail(f"bad settings: {exc}".splitlines()[0]) from exc


def _file_source(settings: Settings, source: str | None, path: str | None) -> str:
    """The export path to read: `--source file PATH`, else LEADFLOW_SOURCE=file:PATH."""
    if source not in (None, "file"):
        if source == "posthog":
            raise _fail("the PostHog source is not available yet: use --source file PATH")
        raise _fail(f"unknown source {source!r}: expected 'file' (with a PATH) or 'posthog'")
    if path:
        return path
    configured = settings.source or ""
    if configured.startswith("file:"):
        return configured[len("file:") :]
    raise _fail(
        "no source given: run `leadflow run --source file PATH` "
        "(PATH: an export file, folder or glob) or set LEADFLOW_SOURCE=file:PATH"
    )


def _print_summary(summary: pipeline.RunSummary) -> None:
    window = (
        f"{summary.window_start:%Y-%m-%d %H:%M} → {summary.window_end:%Y-%m-%d %H:%M} UTC"
        if summary.window_start and summary.window_end
        else "no new events"
    )
    table = Table(title=f"run {summary.run_id}: {summary.status}", show_header=False, box=None)
    table.add_column(style="bold")
    table.add_column(justify="right")
    table.add_row("window", window)
    table.add_row("files read", f"{summary.files_read:,}")
    table.add_row("events read", f"{summary.events_read:,}")
    table.add_row("accepted", f"{summary.events_accepted:,}")
    for reason, count in summary.rejected.items():
        table.add_row(f"  rejected: {reason}", f"{count:,}")
    table.add_row("leads inserted", f"{summary.leads_inserted:,}")
    table.add_row("hours written", f"{summary.hours_written:,}")
    table.add_row("listings updated", f"{summary.listings_updated:,}")
    table.add_row("slices", f"{summary.slices:,}")
    rate = summary.events_read / summary.seconds if summary.seconds else 0
    table.add_row("seconds", f"{summary.seconds:.2f} ({rate:,.0f} events/s)")
    out.print(table)


def _run(settings: Settings, path: str, as_json: bool) -> pipeline.RunSummary:
    try:
        with BarProgress(err) as progress:
            summary = pipeline.run(settings, path, progress=progress)
    except RunLocked as exc:
        raise _fail(str(exc), EXIT_LOCKED) from exc
    except LeadflowError as exc:
        raise _fail(str(exc)) from exc
    if as_json:
        out.print_json(json.dumps(summary.to_dict()))
    else:
        _print_summary(summary)
    return summary


@app.command()
def run(
    source: Annotated[
        str | None, typer.Option(help="Where events come from: 'file' (then PATH).")
    ] = None,
    path: Annotated[
        str | None, typer.Argument(help="An export file, a folder of them, or a glob.")
    ] = None,
    database: Annotated[
        str | None, typer.Option(help="Store URL (default: LEADFLOW_DATABASE_URL).")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the run summary as JSON.")] = False,
) -> None:
    """Run the cron job once: read new events, write leads and listing analytics."""
    settings = _settings(database)
    _run(settings, _file_source(settings, source, path), as_json)


@app.command()
def demo(
    folder: Annotated[
        Path, typer.Option("--dir", help="Where to write the demo export files.")
    ] = Path("demo-data"),
    database: Annotated[str | None, typer.Option(help="Store URL.")] = None,
    events: Annotated[int, typer.Option(help="How many events to generate.")] = 2_000_000,
    seed: Annotated[int, typer.Option(help="Random seed of the demo data.")] = 7,
) -> None:
    """Generate a year of realistic demo events, run the pipeline on them, and report."""
    from leadflow.sources.demo import generate_export

    settings = _settings(database)
    if folder.exists() and any(folder.iterdir()):
        err.print(f"using the demo export already in {folder}/ (delete it for fresh data)")
    else:
        folder.mkdir(parents=True, exist_ok=True)
        started = time.perf_counter()
        with Progress(console=err, transient=True, disable=not err.is_terminal) as bar:
            task = bar.add_task("generating demo events", total=events)
            stats = generate_export(
                folder, events=events, seed=seed, progress=lambda n: bar.update(task, completed=n)
            )
        err.print(
            f"generated {stats.events:,} events in {stats.files} files under {folder}/ "
            f"({time.perf_counter() - started:.1f} s; {stats.late:,} late, "
            f"{stats.duplicates:,} duplicated, {stats.malformed:,} malformed)"
        )
    summary = _run(settings, str(folder), as_json=False)
    _print_report(settings, summary)


def _print_report(settings: Settings, summary: pipeline.RunSummary) -> None:
    engine = db.create_store_engine(settings.database_url)
    with engine.connect() as conn:
        for by, title in (
            ("total_leads", "Top listings by leads"),
            ("conversion_rate", "Top listings by conversion (≥ 50 views)"),
        ):
            table = Table(title=title)
            for column in (
                "listing",
                "lister",
                "views",
                "unique views",
                "leads",
                "unique leads",
                "conversion",
            ):
                table.add_column(
                    column, justify="left" if column in ("listing", "lister") else "right"
                )
            for row in reads.top_listings(conn, by=by, limit=5):
                table.add_row(
                    row["listing_id"],
                    row["lister_id"] or "",
                    f"{row['total_views']:,}",
                    f"{row['unique_views']:,}",
                    f"{row['total_leads']:,}",
                    f"{row['unique_leads']:,}",
                    f"{row['conversion_rate']:.2f} %",
                )
            out.print(table)
        scores = Table(title=f"Lead score distribution ({reads.lead_group_count(conn):,} leads)")
        scores.add_column("score")
        scores.add_column("leads", justify="right")
        for band, count in reads.lead_score_distribution(conn):
            scores.add_row(band, f"{count:,}")
        out.print(scores)
    engine.dispose()
    if summary.rejected:
        out.print(
            "rejected this run: "
            + ", ".join(f"{reason} {count:,}" for reason, count in summary.rejected.items())
        )
    out.print(f"store: {settings.database_url}")


@db_app.command("upgrade")
def db_upgrade(
    database: Annotated[str | None, typer.Option(help="Store URL.")] = None,
    revision: Annotated[str, typer.Option(help="Target migration.")] = "head",
) -> None:
    """Create or upgrade leadflow's tables to the newest migration."""
    settings = _settings(database)
    try:
        engine = db.create_store_engine(settings.database_url)
        db.upgrade(engine, revision)
        current = db.current_revision(engine)
    except LeadflowError as exc:
        raise _fail(str(exc)) from exc
    out.print(f"database at migration {current}")


def main(argv: list[str] | None = None) -> Any:
    """Entry point: errors are one line on stderr and a non-zero exit, never a traceback."""
    try:
        return app(args=argv, standalone_mode=True)
    except (ConfigError, LeadflowError) as exc:  # pragma: no cover - commands catch their own
        err.print(f"[bold red]error:[/] {exc}")
        sys.exit(EXIT_ERROR)
    except KeyboardInterrupt:
        err.print("interrupted")
        sys.exit(130)
    except Exception as exc:
        if os.environ.get("LEADFLOW_DEBUG"):
            raise
        err.print(
            f"[bold red]error:[/] unexpected {type(exc).__name__}: {exc} "
            "(set LEADFLOW_DEBUG=1 for the traceback)",
            highlight=False,
        )
        sys.exit(EXIT_ERROR)


if __name__ == "__main__":
    main()
