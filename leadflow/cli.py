"""The `leadflow` command: a thin shell over the pipeline and the store."""

from __future__ import annotations

import functools
import gc
import json
import os
import socket
import sys
import threading
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
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
    # One line, whatever the width: an engine's message may hold line breaks of its own, and a
    # long path must not be wrapped in the middle. Escaped: messages quote paths, URLs and
    # commands, whose brackets are not markup.
    line = " ".join(message.split())
    err.print(f"[bold red]error:[/] {escape(line)}", highlight=False, soft_wrap=True)
    return typer.Exit(code)


def _settings(database: str | None) -> Settings:
    try:
        return load_settings(database_url=database)
    except Exception as exc:  # pydantic's ValidationError, on a malformed environment
        raise _fail(f"bad settings: {exc}".splitlines()[0]) from exc


def _source(settings: Settings, source: str | None, path: list[str] | None) -> str | list[str]:
    """What `leadflow run` reads: `--source posthog`, `--source file PATH…` (or bare PATHs), else
    LEADFLOW_SOURCE, else PostHog when its settings (POSTHOG_*) are present."""
    if source not in (None, "file", pipeline.POSTHOG):
        raise _fail(f"unknown source {source!r}: expected 'file' (with a PATH) or 'posthog'")
    if source == pipeline.POSTHOG:
        if path:
            raise _fail("--source posthog reads PostHog's Query API and takes no PATH")
        return pipeline.POSTHOG
    if path:
        return path
    found = settings.configured_source() if source is None else settings.source_file()
    if found is not None:
        return found
    raise _fail(
        "no source given: run `leadflow run --source posthog` (with POSTHOG_HOST, "
        "POSTHOG_PROJECT_ID and POSTHOG_PERSONAL_API_KEY set) or `leadflow run --source file PATH` "
        "(PATH: an export file, folder or glob), or set LEADFLOW_SOURCE=posthog or file:PATH"
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
    if summary.source == pipeline.POSTHOG:
        table.add_row("requests to PostHog", f"{summary.requests:,}")
    else:
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
    for warning in summary.warnings:
        err.print(f"[yellow]warning:[/] {warning}", highlight=False)
    if summary.stopped:
        err.print(f"note: {summary.stopped}", highlight=False)


def _run(settings: Settings, path: str | list[str], as_json: bool) -> pipeline.RunSummary:
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
        str | None,
        typer.Option(
            help="Where events come from: 'posthog' (PostHog's Query API, POSTHOG_* settings) "
            "or 'file' (then PATH). Default: LEADFLOW_SOURCE, else PostHog when configured."
        ),
    ] = None,
    path: Annotated[
        list[str] | None,
        typer.Argument(
            help="Export files, folders of them, or globs (one or more; an unquoted glob's "
            "files, as the shell expands it, are read together)."
        ),
    ] = None,
    database: Annotated[
        str | None, typer.Option(help="Store URL (default: LEADFLOW_DATABASE_URL).")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the run summary as JSON.")] = False,
) -> None:
    """Run the cron job once: read new events, write leads and listing analytics."""
    settings = _settings(database)
    _run(settings, _source(settings, source, path), as_json)


@app.command()
def demo(
    folder: Annotated[
        Path, typer.Option("--dir", help="Where to write the demo export files.")
    ] = Path("demo-data"),
    database: Annotated[str | None, typer.Option(help="Store URL.")] = None,
    events: Annotated[int, typer.Option(help="How many events to generate.")] = 2_000_000,
    seed: Annotated[int, typer.Option(help="Random seed of the demo data.")] = 7,
    posthog: Annotated[
        bool,
        typer.Option(
            "--posthog",
            help="Read the events through a local stand-in for PostHog's Query API (on "
            "loopback), as `--source posthog` reads PostHog, instead of reading the files.",
        ),
    ] = False,
    serve_dashboard: Annotated[
        bool,
        typer.Option(
            "--serve/--no-serve",
            help="Then serve the dashboard and print its link (Ctrl+C stops it).",
        ),
    ] = True,
    host: Annotated[
        str | None,
        typer.Option(help="Address the dashboard binds (default: LEADFLOW_SERVE_HOST, 127.0.0.1)."),
    ] = None,
    port: Annotated[
        int | None,
        typer.Option(
            min=1, max=65535, help="Port of the dashboard (default: LEADFLOW_SERVE_PORT, 8000)."
        ),
    ] = None,
) -> None:
    """Generate a year of realistic demo events, run the pipeline on them, report, and serve
    the dashboard over the result (`--no-serve` stops after the report)."""
    from leadflow.sources.demo import generate_export

    settings = _settings(database)
    bind_host = host or settings.serve_host
    bind_port = port or settings.serve_port
    if serve_dashboard:
        _check_port_free(bind_host, bind_port)
    if posthog:
        _require_chdb()
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
    if posthog:
        summary = _demo_posthog(settings, folder)
    else:
        summary = _run(settings, str(folder), as_json=False)
    _print_report(settings, summary)
    if serve_dashboard:
        _serve_demo(settings, bind_host, bind_port)


def _check_port_free(host: str, port: int) -> None:
    """Fail now, before the demo's work, if the dashboard could not listen on host:port."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            raise _fail(
                f"the dashboard cannot listen on {host}:{port} ({exc.strerror}): pass --port "
                "with a free port, or --no-serve"
            ) from exc


def _serve_demo(settings: Settings, host: str, port: int) -> None:
    """Serve the demo's store, printing links that open the dashboard signed in."""
    import secrets
    from datetime import timedelta

    from leadflow.api.auth import mint_token
    from leadflow.store.dashboard import lister_page

    if not settings.jwt_secret:
        settings = settings.model_copy(update={"jwt_secret": secrets.token_urlsafe(32)})
        err.print(
            "note: LEADFLOW_JWT_SECRET is not set, so the links below are signed with a one-off "
            "secret and work while this server runs (set it to mint tokens: leadflow token)"
        )
    assert settings.jwt_secret is not None
    engine = db.create_store_engine(settings.database_url)
    with engine.connect() as conn:
        busiest, _ = lister_page(conn, None, None, 1, 0)
    engine.dispose()
    ttl = timedelta(days=7)
    shown_host = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host
    base = f"http://{shown_host}:{port}"
    admin = mint_token(settings.jwt_secret, "demo-admin", role="admin", ttl=ttl)
    # Plain prints: a terminal must not wrap the links.
    print(f"\nThe dashboard, signed in as an admin:\n  {base}/#token={admin}", flush=True)
    if busiest:
        lister = busiest[0]["lister_id"]
        token = mint_token(settings.jwt_secret, f"demo-{lister}", lister_id=lister, ttl=ttl)
        print(f"The dashboard as lister {lister} (sees only their own listings):")
        print(f"  {base}/#token={token}")
    print("Ctrl+C stops the server.", flush=True)
    _serve(settings, host, port)


def _require_chdb() -> None:
    try:
        import chdb  # noqa: F401
    except ImportError as exc:
        raise _fail(
            "the local PostHog runs on embedded ClickHouse (chdb), an optional dependency: "
            "pip install 'leadflow[local-posthog]'"
        ) from exc


def _demo_posthog(settings: Settings, folder: Path) -> pipeline.RunSummary:
    """Serve the demo export from a local PostHog stand-in and run the PostHog source on it."""
    from leadflow.sources.local_posthog import LocalPostHog

    started = time.perf_counter()
    with LocalPostHog() as local:
        loaded = local.load_export(folder)
        err.print(
            f"local PostHog at {local.url} holds {loaded:,} events "
            f"({time.perf_counter() - started:.1f} s to load)",
            highlight=False,
        )
        demo_settings = settings.model_copy(
            update={
                "posthog_host": local.url,
                "posthog_project_id": str(local.project_id),
                "posthog_personal_api_key": local.api_key,
                # The stand-in has no rate limit and every event is already ingested.
                "posthog_settle_seconds": 0,
                "posthog_request_budget": 10_000,
            }
        )
        summary = _run(demo_settings, pipeline.POSTHOG, as_json=False)
        sent = sum(r.bytes_out for r in local.requests)
        err.print(
            f"read through {len(local.requests):,} Query API requests, "
            f"{sent / 1e6:,.1f} MB of answers",
            highlight=False,
        )
    return summary


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
                "uniq views",
                "leads",
                "uniq leads",
                "conv %",
            ):
                table.add_column(
                    column,
                    justify="left" if column in ("listing", "lister") else "right",
                    no_wrap=True,
                )
            for row in reads.top_listings(conn, by=by, limit=5):
                table.add_row(
                    row["listing_id"],
                    row["lister_id"] or "",
                    f"{row['total_views']:,}",
                    f"{row['unique_views']:,}",
                    f"{row['total_leads']:,}",
                    f"{row['unique_leads']:,}",
                    f"{row['conversion_rate']:.2f}",
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


@app.command()
def serve(
    host: Annotated[
        str | None, typer.Option(help="Address to bind (default: LEADFLOW_SERVE_HOST, 127.0.0.1).")
    ] = None,
    port: Annotated[
        int | None,
        typer.Option(min=1, max=65535, help="Port (default: LEADFLOW_SERVE_PORT, 8000)."),
    ] = None,
    database: Annotated[
        str | None, typer.Option(help="Store URL (default: LEADFLOW_DATABASE_URL).")
    ] = None,
) -> None:
    """Start the HTTP service: the dashboard at `/`, the cron endpoint, lead management and
    analytics APIs."""
    settings = _settings(database)
    _serve(settings, host or settings.serve_host, port or settings.serve_port)


def _serve(settings: Settings, bind_host: str, bind_port: int) -> None:
    """Run the HTTP service (and the dashboard at `/`) until interrupted."""
    import uvicorn

    from leadflow.api import create_app

    try:
        service = create_app(settings)
    except LeadflowError as exc:
        raise _fail(str(exc)) from exc
    if not settings.cron_secret:
        err.print("note: LEADFLOW_CRON_SECRET is not set, so the cron endpoint refuses to run")
    if not (settings.jwt_secret or settings.jwt_jwks_url):
        err.print(
            "note: neither LEADFLOW_JWT_SECRET nor LEADFLOW_JWT_JWKS_URL is set, "
            "so the lead and analytics endpoints refuse every token"
        )
    err.print(
        f"leadflow serving {settings.database_url} at http://{bind_host}:{bind_port} "
        f"(API documentation at http://{bind_host}:{bind_port}/docs)",
        highlight=False,
    )
    uvicorn.run(service, host=bind_host, port=bind_port, log_level="info")


@app.command()
def token(
    lister: Annotated[
        str | None, typer.Option(help="The lister the token names (claim lister_id).")
    ] = None,
    role: Annotated[str, typer.Option(help="'lister' or 'admin'.")] = "lister",
    sub: Annotated[
        str | None, typer.Option(help="The user (claim sub; default: dev-<lister> or dev-admin).")
    ] = None,
    hours: Annotated[float, typer.Option(min=0.01, help="Hours until the token expires.")] = 24.0,
) -> None:
    """Print a development user token (JWT, HS256, signed with LEADFLOW_JWT_SECRET)."""
    from datetime import timedelta

    from leadflow.api.auth import mint_token

    settings = _settings(None)
    if not settings.jwt_secret:
        raise _fail("LEADFLOW_JWT_SECRET is not set: set it to the secret the service checks")
    if role not in ("lister", "admin"):
        raise _fail(f"unknown role {role!r}: expected 'lister' or 'admin'")
    if role == "lister" and not lister:
        raise _fail("a lister's token names its lister: add --lister LISTER_ID")
    subject = sub or f"dev-{lister if role == 'lister' else 'admin'}"
    minted = mint_token(
        settings.jwt_secret,
        subject,
        role="admin" if role == "admin" else "lister",
        lister_id=lister,
        ttl=timedelta(hours=hours),
    )
    print(minted)


@functools.cache
def _freeze_imports() -> None:
    """Leave what the imports made (some 86,000 objects: modules, classes, SQLAlchemy's and
    pyarrow's tables) out of the garbage collector's full collections, which would walk them all
    again each time a run's work triggers one: 0.1 to 0.2 s of an hourly run. They live as long
    as the process anyway. Once per process."""
    gc.freeze()


def main(argv: list[str] | None = None) -> Any:
    """Entry point: errors are one line on stderr and a non-zero exit, never a traceback."""
    _freeze_imports()
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
