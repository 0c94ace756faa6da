"""One cron run, end to end: lock, plan, read, aggregate, write slice by slice, record."""

from __future__ import annotations

import bisect
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Protocol

import duckdb
import pyarrow as pa
from sqlalchemy import Engine, delete, func, insert, or_, select, true, update
from sqlalchemy.engine import Connection

from leadflow.config import POSTHOG_SOURCE, Settings
from leadflow.errors import ConfigError, LeadflowError, RunFailed, SourceError
from leadflow.events import DEFAULT_TAXONOMY, RejectReason, Taxonomy
from leadflow.sources.files import (
    ExportFile,
    discover,
    discover_all,
    raw_events_sql,
    readable,
    unreadable_lines_sql,
)
from leadflow.store.db import (
    checkpoint,
    create_store_engine,
    deferring_checkpoints,
    ensure_schema,
)
from leadflow.store.lock import RunLock, heartbeat_statement, process_is_gone
from leadflow.store.schema import cron_runs, source_files, utcnow
from leadflow.store.writer import SliceWriter, scratch_file
from leadflow.transform.classify import classify_sql
from leadflow.transform.dialect import DUCKDB
from leadflow.transform.leads import lead_records_sql
from leadflow.transform.metrics import (
    hour_seekers_sql,
    hourly_breakdown_sql,
    hourly_metrics_sql,
    listing_listers_sql,
    listing_seekers_sql,
)

if TYPE_CHECKING:
    # The PostHog client (and httpx) is imported by runs that read PostHog, not by every run.
    from leadflow.sources import posthog

HOUR = timedelta(hours=1)
# How many ledger paths one statement names.
LEDGER_CHUNK = 1000
# New export files of at most this many bytes are read before they are classified, and
# classified in pieces (FileRun._split).
SPLIT_BATCH_MAX_BYTES = 16 * 1024 * 1024
POSTHOG = POSTHOG_SOURCE  # the source name of runs that read PostHog's Query API
# The DuckDB table in which the batch's JSONL lines that are not readable text are kept.
UNREADABLE_LINES = "lf_unreadable_lines"

# The write steps of a slice, in order; a fault injected at any of them must leave no trace.
WRITE_STEPS = (
    "leads",
    "ledger",
    "seekers",
    "analytics",
    "breakdown",
    "hour_seekers",
    "listings",
    "run_record",
)


class Progress(Protocol):
    """What a run reports while it works (the CLI draws it as a progress bar)."""

    def reading(self, files: int) -> None: ...

    def planned(self, events: int, slices: int) -> None: ...

    def advanced(self, events: int) -> None: ...


@dataclass
class RunSummary:
    """What a run did; printed by `leadflow run` and returned by the cron endpoint."""

    run_id: int
    status: str
    source: str
    window_start: datetime | None = None
    window_end: datetime | None = None
    files_read: int = 0
    events_read: int = 0
    events_accepted: int = 0
    rejected: dict[str, int] = field(default_factory=dict)
    leads_inserted: int = 0
    hours_written: int = 0
    listings_updated: int = 0
    slices: int = 0
    seconds: float = 0.0
    timings: dict[str, float] = field(default_factory=dict)
    # The PostHog source: requests made, why a run stopped before its window's end (the next run
    # continues from its last committed slice), and anything PostHog did that needs a look.
    requests: int = 0
    stopped: str | None = None
    warnings: list[str] = field(default_factory=list)

    def progress_values(self, slices_done: int, slices_total: int) -> dict[str, Any]:
        """The run's cron_runs columns that each committed slice brings up to date."""
        return {
            "events_read": self.events_read,
            "events_accepted": self.events_accepted,
            "rejects": self.rejected,
            "leads_inserted": self.leads_inserted,
            "analytics_rows_written": self.hours_written,
            "listings_updated": self.listings_updated,
            "slices_done": slices_done,
            "slices_total": slices_total,
        }

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        for key in ("window_start", "window_end"):
            value = data[key]
            data[key] = value.isoformat().replace("+00:00", "Z") if value else None
        data["seconds"] = round(self.seconds, 3)
        data["timings"] = {k: round(v, 3) for k, v in self.timings.items()}
        return data


@dataclass(frozen=True)
class Slice:
    first_hour: datetime
    last_hour: datetime
    events: int

    @property
    def end(self) -> datetime:
        # The last hour a datetime holds (an event of 9999-12-31 23:xx) ends at its last moment.
        return self.last_hour + HOUR if self.last_hour < datetime.max - HOUR else datetime.max


def plan_slices(
    histogram: Sequence[tuple[datetime, int]], max_events: int, max_days: int
) -> list[Slice]:
    """Cut the touched hours, in order, into slices of at most `max_events` and `max_days`."""
    slices: list[Slice] = []
    first: datetime | None = None
    last: datetime | None = None
    count = 0
    for hour, events in histogram:
        if first is not None and (
            count + events > max_events or hour - first >= timedelta(days=max_days)
        ):
            assert last is not None
            slices.append(Slice(first, last, count))
            first, count = None, 0
        if first is None:
            first = hour
        last, count = hour, count + events
    if first is not None and last is not None:
        slices.append(Slice(first, last, count))
    return slices


def _aware(moment: datetime | None) -> datetime | None:
    return moment.replace(tzinfo=UTC) if moment is not None and moment.tzinfo is None else moment


def _naive(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(tzinfo=None)


RUN_FOLDER_PREFIX = "leadflow-run-"


def _run_folder() -> tempfile.TemporaryDirectory[str]:
    """The run's scratch folder (its DuckDB file, staged tables), in the temporary directory
    and named after this process, once the folders of runs that died without deleting theirs
    are deleted: a killed run's DuckDB file can hold gigabytes."""
    _delete_dead_run_folders()
    return tempfile.TemporaryDirectory(prefix=f"{RUN_FOLDER_PREFIX}{os.getpid()}-")


def _delete_dead_run_folders() -> None:
    with os.scandir(tempfile.gettempdir()) as entries:
        for entry in entries:
            if not entry.name.startswith(RUN_FOLDER_PREFIX):
                continue
            pid = entry.name[len(RUN_FOLDER_PREFIX) :].split("-", 1)[0]
            if pid.isdigit() and process_is_gone(int(pid)) and entry.is_dir(follow_symlinks=False):
                shutil.rmtree(entry.path, ignore_errors=True)


@contextmanager
def _engine_session(
    settings: Settings, workdir: str, in_memory: bool
) -> Iterator[duckdb.DuckDBPyConnection]:
    """The run's DuckDB: in memory for a small batch (no database file to write), else a file
    in the run's folder, whose tables DuckDB keeps within its memory limit."""
    config: dict[str, Any] = {
        "memory_limit": settings.engine_memory_limit,
        "temp_directory": workdir,
        "preserve_insertion_order": False,
    }
    if settings.engine_threads:
        config["threads"] = settings.engine_threads
    if not in_memory:
        # The run's tables are written once and read a few times, in the same run: analysing
        # each column for the best compression costs more than it saves (at 10M events, storing
        # the classified batch takes 14 s against 18 s, for about 300 MiB more held in memory).
        config["force_compression"] = "dictionary"
    con = duckdb.connect(":memory:" if in_memory else f"{workdir}/run.duckdb", config=config)
    try:
        con.execute("SET TimeZone = 'UTC'")
        # Progress is the run's to report (its Progress): no bar of DuckDB's on the terminal.
        con.execute("SET enable_progress_bar = false")
        yield con
    finally:
        con.close()


@contextmanager
def _reading() -> Iterator[None]:
    """DuckDB's errors while it reads the export files, as the run's SourceError."""
    try:
        yield
    except duckdb.Error as exc:
        raise SourceError(f"cannot read the export files: {exc}".splitlines()[0]) from exc


@dataclass
class _Ledger:
    """The ledger's view for one run: which files are new or pending. Files read before are
    looked up by the hours a run recomputes (`FileRun._old_files`), not listed here: a year
    of hourly export files is 8,760 rows."""

    batch: list[ExportFile]
    resume_from: dict[str, datetime]  # path → processed_through, for files a crashed run left


def _read_ledger(conn: Connection, files: Sequence[ExportFile]) -> _Ledger:
    t = source_files
    # Only the columns that tell whether a file is new (no time to convert per row).
    known = {
        path: (size, mtime_ns)
        for path, size, mtime_ns in conn.execute(select(t.c.path, t.c.size, t.c.mtime_ns)).all()
    }
    # Files a crashed run left unfinished (every other known file is done), and how far their
    # hours are written.
    unfinished = {
        path: through
        for path, through in conn.execute(
            select(t.c.path, t.c.processed_through).where(t.c.done.is_(False))
        )
    }
    batch: list[ExportFile] = []
    resume_from: dict[str, datetime] = {}
    for f in files:
        if known.get(f.path) != (f.size, f.mtime_ns):
            batch.append(f)
        elif f.path in unfinished:
            batch.append(f)
            if unfinished[f.path] is not None:
                resume_from[f.path] = _naive(unfinished[f.path])
    in_batch = {f.path for f in batch}
    # A file a crashed run left unfinished is resumed even when this run names other files.
    for path, through in unfinished.items():
        if path in in_batch:
            continue
        try:
            found = discover(path)
        except SourceError:
            continue
        batch.extend(found)
        if through is not None:
            resume_from[path] = _naive(through)
    return _Ledger(sorted(batch, key=lambda f: f.path), resume_from)


class FileRun:
    """The work of one run over an export folder, given an open DuckDB session."""

    def __init__(
        self,
        con: duckdb.DuckDBPyConnection,
        engine: Engine,
        settings: Settings,
        taxonomy: Taxonomy,
        run_id: int,
        lock: RunLock,
        progress: Progress | None,
        fault: Callable[[str], None] | None,
        scratch: str,
    ) -> None:
        self.con = con
        self.engine = engine
        self.settings = settings
        self.taxonomy = taxonomy
        self.run_id = run_id
        self.lock = lock
        self.progress = progress
        self.fault = fault or (lambda _step: None)
        self.scratch = scratch  # the run's folder (decompressed files, scratch databases)

    def _classify_sql(self, raw: str, carry: Sequence[str] = ()) -> str:
        """classify_sql for this run's store: PostgreSQL keeps no NUL character in text."""
        refuse_nul = self.engine.dialect.name == "postgresql"
        return classify_sql(raw, self.taxonomy, carry=carry, refuse_nul=refuse_nul)

    def _sql(self, sql: str) -> None:
        with _reading():
            self.con.execute(sql)

    def _readable(self, files: list[tuple[int, ExportFile]]) -> list[tuple[int, ExportFile]]:
        """The files as DuckDB reads them (brotli ones decompressed into the run's folder)."""
        return readable(files, self.scratch)

    def _split(self, raw: str) -> str:
        """The rows of query `raw`, read into Arrow in as many pieces as DuckDB has threads.

        A small batch (an hourly run's) fits in one row group of its file, which one thread
        would read and classify; from these pieces, classifying (the costly part) takes all."""
        with _reading():
            rows = self.con.sql(raw).to_arrow_table().combine_chunks()
            (threads,) = self.con.execute("SELECT current_setting('threads')").fetchall()[0]
        size = max(1, -(-rows.num_rows // int(threads)))
        self.con.register("raw_batch", pa.Table.from_batches(rows.to_batches(size), rows.schema))
        return "raw_batch"

    def stage(self, ledger: _Ledger) -> None:
        """Read and classify the batch, pull in old events of touched hours, find duplicates."""
        batch_files = list(enumerate(ledger.batch))
        readable_batch = self._readable(batch_files)
        source = f"({raw_events_sql(readable_batch, UNREADABLE_LINES)})"
        split = sum(f.size for f in ledger.batch) <= SPLIT_BATCH_MAX_BYTES
        if split:
            source = self._split(source)
        self._sql("CREATE TABLE batch AS " + self._classify_sql(source))
        if split:
            self.con.unregister(source)
        # A JSONL line that is not readable text (not UTF-8, or longer than the limit) is an
        # event of its file all the same: counted, as malformed.
        if self.con.execute(
            f"SELECT 1 FROM duckdb_tables() WHERE table_name = '{UNREADABLE_LINES}'"
        ).fetchall():
            self._sql(
                f"INSERT INTO batch (file_id, reject) "
                f"SELECT file_id, '{RejectReason.MALFORMED_JSON.value}' FROM ("
                f"{unreadable_lines_sql(readable_batch, UNREADABLE_LINES)})"
            )
        resume = ", ".join(
            f"({fid}, TIMESTAMP '{ledger.resume_from[f.path]:%Y-%m-%d %H:%M:%S}')"
            for fid, f in batch_files
            if f.path in ledger.resume_from
        )
        fresh_filter = "reject IS NULL"
        if resume:
            self._sql(
                f"CREATE TABLE resume_from AS SELECT * FROM (VALUES {resume}) r(file_id, since)"
            )
            fresh_filter += (
                " AND NOT EXISTS (SELECT 1 FROM resume_from r "
                "WHERE r.file_id = batch.file_id AND batch.hour_ts < r.since)"
            )
        fresh = f"SELECT * FROM batch WHERE {fresh_filter}"
        self._sql(f"CREATE TABLE touched_hours AS SELECT DISTINCT hour_ts FROM ({fresh})")
        # A copy of an event delivered again may carry a slightly different time (PostHog
        # corrects each delivery for the client's clock), which can put it in the hour next to
        # its original's: the hours next to the touched ones are read too, to find duplicates.
        self._sql(
            """
CREATE TABLE dedup_hours AS
SELECT DISTINCT hour_ts + to_hours(step) AS hour_ts
FROM touched_hours, (VALUES (-1), (0), (1)) AS steps(step)
WHERE hour_ts + to_hours(step) BETWEEN TIMESTAMP '0001-01-01' AND TIMESTAMP '9999-12-31 23:00'
"""
        )
        hours = [
            row[0]
            for row in self.con.execute("SELECT hour_ts FROM dedup_hours ORDER BY 1").fetchall()
        ]

        # Old files whose event-time range covers one of those hours: their events of the
        # touched hours take part in the recompute, and older copies of an event win over newer
        # ones (those of the hours next to them only the latter).
        context_files = [
            (len(batch_files) + i, f) for i, f in enumerate(self._old_files(ledger, hours))
        ]
        for _, f in context_files:
            if not os.path.exists(f.path):
                raise SourceError(
                    f"{f.path} is missing: it was read by an earlier run and holds events of hours "
                    "this run recomputes; restore it (export folders are append-only)"
                )
        if context_files:
            # Only the events of those hours are classified: an old file may span far more.
            hour = DUCKDB.hour("ts")
            raw = (
                f"(SELECT * FROM ({raw_events_sql(self._readable(context_files))}) "
                f"WHERE {hour} IN (SELECT hour_ts FROM dedup_hours))"
            )
            # Rejected events go with the others below: a WHERE on the reject reason here would
            # be pushed into the classifier's expressions, computed twice (about 1.5 times).
            self._sql(f"CREATE TABLE context AS {self._classify_sql(raw)}")
        else:
            self._sql("CREATE TABLE context AS SELECT * FROM batch WHERE false")
        self.context_files = len(context_files)

        # Every copy of an event but its first (context before batch, then by file, then the
        # earliest in its file: a table's row order is not the file's) is marked a duplicate
        # where it lies. Only uuids whose hash occurs twice are compared
        # exactly: grouping ten million hashes costs half what grouping the strings does, and
        # the scans keep only those rows (the strings of the others are never carried).
        self._sql(
            """
CREATE TEMP TABLE losers AS
WITH duplicated AS (
    SELECT h FROM (
        SELECT hash(uuid) AS h FROM context WHERE reject IS NULL
        UNION ALL
        SELECT hash(uuid) AS h FROM batch WHERE reject IS NULL
    ) GROUP BY h HAVING count(*) > 1
), candidates AS (
    SELECT 0 AS origin, rowid AS row_id, file_id, ts, uuid FROM context
    WHERE reject IS NULL AND hash(uuid) IN (SELECT h FROM duplicated)
    UNION ALL
    SELECT 1 AS origin, rowid AS row_id, file_id, ts, uuid FROM batch
    WHERE reject IS NULL AND hash(uuid) IN (SELECT h FROM duplicated)
)
SELECT origin, row_id FROM (
    SELECT origin, row_id,
           row_number() OVER (PARTITION BY uuid ORDER BY origin, file_id, ts, row_id) AS copy
    FROM candidates
) WHERE copy > 1
"""
        )
        for origin, table in ((0, "context"), (1, "batch")):
            self._sql(
                f"UPDATE {table} SET reject = '{RejectReason.DUPLICATE.value}' "
                f"WHERE rowid IN (SELECT row_id FROM losers WHERE origin = {origin})"
            )
        self._sql("DROP TABLE losers")
        # Without files to resume every accepted event of the batch is fresh; else only those of
        # the (listing, hour) pairs its fresh events touch take part (an hour is recomputed from
        # all its events), and so it is for the old files' events.
        batch_filter = "reject IS NULL"
        if context_files or resume:
            self._sql(
                f"CREATE TABLE touched_pairs AS SELECT DISTINCT listing_id, hour_ts FROM ({fresh})"
            )
            in_pairs = "(listing_id, hour_ts) IN (SELECT listing_id, hour_ts FROM touched_pairs)"
            self._sql(f"DELETE FROM context WHERE reject IS NOT NULL OR NOT {in_pairs}")
            if resume:
                batch_filter += f" AND {in_pairs}"
        # The events the slices aggregate: a view, so that they are not copied; each slice's
        # queries read only the row groups of its hours (export files come roughly in time
        # order, and the batch keeps them so).
        self._sql(
            f"""
CREATE VIEW events AS
SELECT * EXCLUDE (reject) FROM context
UNION ALL
SELECT * EXCLUDE (reject) FROM batch WHERE {batch_filter}
"""
        )
        # The run's new lead events (a few in a hundred events), read three times by the first
        # slice: kept apart.
        self._sql(
            "CREATE TABLE new_leads AS "
            "SELECT * EXCLUDE (reject) FROM batch WHERE reject IS NULL AND kind = 'lead'"
        )

    def _old_files(self, ledger: _Ledger, hours: list[datetime]) -> list[ExportFile]:
        """The files read before (not in this run's batch) whose event-time range covers one of
        the sorted `hours`, found by one query on the ledger's time ranges (a scan of the
        ledger: about 12 ms for 30,000 files in SQLite), not by reading every row into Python."""
        if not hours:
            return []
        t = source_files
        end_of_last = hours[-1].replace(minute=59, second=59, microsecond=999999)
        # In the order the files were first read: of an event's copies in old files, the one
        # read first keeps counting.
        query = (
            select(t.c.path, t.c.min_ts, t.c.max_ts, t.c.format)
            .where(t.c.min_ts <= _aware(end_of_last), t.c.max_ts >= _aware(hours[0]))
            .order_by(t.c.id)
        )
        in_batch = {f.path for f in ledger.batch}
        with self.engine.connect() as conn:
            rows = conn.execute(query).all()
        return [
            ExportFile(path, 0, 0, fmt, _compression(path))
            for path, low, high, fmt in rows
            if path not in in_batch and _covers_any(hours, _naive(low), _naive(high))
        ]

    def counts(self) -> tuple[int, dict[str, int]]:
        """(events read, rejects by reason) of the batch, duplicates included."""
        read = 0
        rejects: dict[str, int] = {}
        for reason, n in self.con.execute(
            "SELECT reject, count(*) FROM batch GROUP BY reject"
        ).fetchall():
            read += n
            if reason is not None:
                rejects[reason] = n
        return read, dict(sorted(rejects.items()))

    def file_ranges(self) -> dict[int, tuple[int, datetime | None, datetime | None]]:
        """Per batch file: its events, and the event-time range of those accepted (duplicates
        included: a copy in the file is still an event of its hour)."""
        held = f"reject IS NULL OR reject = '{RejectReason.DUPLICATE.value}'"
        rows = self.con.execute(
            f"SELECT file_id, count(*), min(ts) FILTER (WHERE {held}), "
            f"max(ts) FILTER (WHERE {held}) FROM batch GROUP BY file_id"
        ).fetchall()
        return {fid: (n, low, high) for fid, n, low, high in rows}

    def touched_listings(self) -> int:
        (count,) = self.con.execute("SELECT count(DISTINCT listing_id) FROM events").fetchone() or (
            0,
        )
        return int(count)

    def histogram(self) -> list[tuple[datetime, int]]:
        return [
            (hour, n)
            for hour, n in self.con.execute(
                "SELECT hour_ts, count(*) FROM events GROUP BY hour_ts ORDER BY hour_ts"
            ).fetchall()
        ]

    def arrow(self, sql: str) -> pa.Table:
        return self.con.sql(sql).to_arrow_table()

    def lead_records(self, store: SliceWriter) -> tuple[pa.Table, pa.Table]:
        """The run's lead records and their actions, leaving out actions the store has."""
        uuids = [row[0] for row in self.con.execute("SELECT uuid FROM new_leads").fetchall()]
        known = store.known_lead_events(uuids)
        if known:
            self.con.execute("CREATE OR REPLACE TEMP TABLE known_leads (uuid VARCHAR)")
            self.con.executemany("INSERT INTO known_leads VALUES (?)", [(u,) for u in known])
            source = "(SELECT * FROM new_leads WHERE uuid NOT IN (SELECT uuid FROM known_leads))"
        else:
            source = "new_leads"
        records = self.arrow(lead_records_sql(source, self.taxonomy))
        actions = self.arrow(f"SELECT uuid, listing_id, seeker_id FROM {source}")
        return records, actions


def _compression(path: str) -> str:
    from leadflow.sources.files import file_format

    kind = file_format(path)
    return kind[1] if kind else "none"


def _skipped_warning(paths: Sequence[str]) -> str:
    names = ", ".join(os.path.basename(p) for p in paths[:3])
    more = f" and {len(paths) - 3} more" if len(paths) > 3 else ""
    return (
        f"{len(paths)} file(s) not named as export files were not read ({names}{more}); "
        "export files end in .parquet[.codec] or .jsonl/.ndjson/.json[.gz|.br|.zst]"
    )


def _covers_any(hours: Sequence[datetime], low: datetime, high: datetime) -> bool:
    """Whether any of the sorted `hours` falls within [hour of low, high]."""
    start = low.replace(minute=0, second=0, microsecond=0)
    i = bisect.bisect_left(hours, start)
    return i < len(hours) and hours[i] <= high


def run(
    settings: Settings,
    source: str | Sequence[str],
    *,
    engine: Engine | None = None,
    taxonomy: Taxonomy = DEFAULT_TAXONOMY,
    progress: Progress | None = None,
    fault: Callable[[str], None] | None = None,
    on_started: Callable[[int], None] | None = None,
    defer_checkpoint: bool = False,
) -> RunSummary:
    """One cron run over `source`, into the store of `settings`: `"posthog"` reads PostHog's
    Query API (settings.posthog_*); anything else names export files (a file, folder or glob, or
    several of them, as a shell expands an unquoted glob).

    Raises RunLocked when another run holds the lock, SourceError/ConfigError before a run
    starts, and RunFailed (with the run's id, recorded in cron_runs) when a started run fails.
    `on_started` is called with the run's id as soon as the run is recorded in cron_runs (the
    HTTP service answers a trigger that does not wait with it). `defer_checkpoint`: leave copying
    SQLite's write-ahead log after the last slice to the caller (`store.db.checkpoint`), as the
    service does once it has answered.
    """
    started = time.perf_counter()
    engine = engine or create_store_engine(settings.database_url)
    ensure_schema(engine)
    engine = deferring_checkpoints(engine)
    paths = [source] if isinstance(source, str) else list(source)
    from_posthog = paths == [POSTHOG]
    if not paths or (POSTHOG in paths and not from_posthog):
        raise ConfigError(f"{POSTHOG!r} is a source of its own, not one of several paths")
    # As cron_runs records it (a shell's expansion of a glob may name thousands of files).
    source = " ".join(paths if len(paths) <= 5 else [*paths[:3], f"… ({len(paths)} paths)"])
    skipped: list[str] = []
    files = [] if from_posthog else discover_all(paths, skipped)
    client = None
    if from_posthog:
        from leadflow.sources import posthog

        client = posthog.client_from_settings(settings)
    lock = RunLock(engine, timedelta(seconds=settings.lock_timeout_seconds))
    try:
        lock.acquire()
    except BaseException:
        if client is not None:
            client.close()
        raise
    try:
        with engine.begin() as conn:
            run_id = int(
                conn.execute(
                    insert(cron_runs)
                    .values(started_at=utcnow(), status="running", source=source, rejects={})
                    .returning(cron_runs.c.id)
                ).scalar_one()
            )
        lock.attach(run_id)
        summary = RunSummary(run_id=run_id, status="running", source=source)
        if skipped:
            summary.warnings.append(_skipped_warning(skipped))
        try:
            if on_started is not None:
                on_started(run_id)
            ledger = None
            if client is None:
                with engine.connect() as conn:
                    ledger = _read_ledger(conn, files)
            batch_bytes = sum(f.size for f in ledger.batch) if ledger else 0
            with (
                _run_folder() as workdir,
                _engine_session(
                    settings, workdir, batch_bytes <= settings.engine_in_memory_max_bytes
                ) as con,
            ):
                work = FileRun(
                    con, engine, settings, taxonomy, run_id, lock, progress, fault, workdir
                )
                if client is not None:
                    client.deadline = time.monotonic() + settings.posthog_time_budget_seconds
                    _run_posthog(work, client, summary)
                else:
                    assert ledger is not None
                    _run_files(work, ledger, summary)
        except Exception as exc:
            message = str(exc) if isinstance(exc, LeadflowError) else f"{type(exc).__name__}: {exc}"
            with engine.begin() as conn:
                conn.execute(
                    update(cron_runs)
                    .where(cron_runs.c.id == run_id)
                    .values(status="failed", finished_at=utcnow(), error=message)
                )
            raise RunFailed(run_id, message) from exc
        summary.status = "succeeded"
        summary.seconds = time.perf_counter() - started
        with engine.begin() as conn:
            conn.execute(
                update(cron_runs)
                .where(cron_runs.c.id == run_id)
                .values(status="succeeded", finished_at=utcnow(), error=summary.stopped)
            )
        return summary
    finally:
        if client is not None:
            client.close()
        lock.release()
        if not defer_checkpoint:
            checkpoint(engine)


@dataclass
class SliceWrite:
    """One slice's rows and how its transaction records the slice's source progress."""

    # The slice's tables (None: a slice with no hours to write; the cursor still moves). Taken
    # once the slice's leads and source progress are written, so that a run writes those while
    # the slice's rows are still being aggregated.
    tables: SliceTables | None
    # Inserts the slice's new leads (deduplicated against the store, under the run lock).
    leads: Callable[[SliceWriter], None] | None
    # Records how far the source is read (the file ledger, or the PostHog cursor).
    progress: Callable[[Connection], None]
    # The run's cron_runs values once this slice is written.
    run_values: Callable[[], dict[str, Any]]


# One table of a slice's aggregates, and the scratch file it is already loaded into (SQLite).
_Part = tuple[pa.Table, str | None]


class SliceTables:
    """One slice's aggregates, in the order the writer takes them. Each may still be being
    computed on the aggregating thread: `take` waits for that one only, so that the writer
    writes each table as soon as it is ready."""

    NAMES = ("seekers", "metrics", "breakdown", "hour_seekers", "listers")

    def __init__(
        self, parts: dict[str, Future[_Part]], spans: list[tuple[float, float]] | None = None
    ) -> None:
        self._parts = parts
        self._spans = [] if spans is None else spans  # each table's (start, end)
        self.waited = 0.0  # how long the writer waited for tables

    @classmethod
    def ready(cls, **tables: pa.Table) -> SliceTables:
        """Tables already computed (a PostHog slice's)."""
        parts: dict[str, Future[_Part]] = {}
        for name in cls.NAMES:
            parts[name] = Future()
            parts[name].set_result((tables[name], None))
        return cls(parts)

    def take(self, name: str) -> _Part:
        clock = time.perf_counter()
        part = self._parts[name].result()
        self.waited += time.perf_counter() - clock
        return part

    def seconds(self) -> float:
        """How long aggregating the tables took, first start to last end (once all are taken)."""
        if not self._spans:
            return 0.0
        return max(end for _, end in self._spans) - min(start for start, _ in self._spans)


def _write_slice(work: FileRun, summary: RunSummary, piece: SliceWrite) -> None:
    """Write one slice in one transaction, calling the fault hook after each WRITE_STEPS step."""
    now = utcnow()
    checkpoint(work.engine)  # the slice before's pages
    with (
        work.engine.connect().execution_options(sqlite_begin="IMMEDIATE") as conn,
        SliceWriter(conn, now, work.scratch, work.con) as writer,
        conn.begin(),
    ):
        if piece.leads is not None:
            piece.leads(writer)
            work.fault("leads")
        piece.progress(conn)
        work.fault("ledger")
        tables = piece.tables
        if tables is not None:

            def take(name: str) -> pa.Table:
                table, scratch = tables.take(name)
                if scratch is not None:
                    writer.adopt([(table, scratch)])
                return table

            writer.add_seekers(take("seekers"))
            work.fault("seekers")
            metrics = take("metrics")
            summary.hours_written += writer.upsert_analytics(metrics)
            work.fault("analytics")
            writer.replace_breakdown(metrics, take("breakdown"))
            work.fault("breakdown")
            writer.replace_hour_seekers(metrics, take("hour_seekers"))
            work.fault("hour_seekers")
            writer.refresh_listings(take("listers"))
            work.fault("listings")
        conn.execute(
            update(cron_runs).where(cron_runs.c.id == summary.run_id).values(**piece.run_values())
        )
        conn.execute(heartbeat_statement(work.lock.holder, now))
        work.fault("run_record")


def _run_files(work: FileRun, ledger: _Ledger, summary: RunSummary) -> None:
    timings = summary.timings
    clock = time.perf_counter()
    if work.progress:
        work.progress.reading(len(ledger.batch))
    work.stage(ledger)
    summary.files_read = len(ledger.batch)
    summary.events_read, summary.rejected = work.counts()
    summary.events_accepted = summary.events_read - sum(summary.rejected.values())
    ranges = work.file_ranges()
    summary.listings_updated = work.touched_listings()
    slices = plan_slices(work.histogram(), work.settings.slice_events, work.settings.slice_max_days)
    summary.slices = len(slices)
    if slices:
        summary.window_start = slices[0].first_hour.replace(tzinfo=UTC)
        summary.window_end = slices[-1].end.replace(tzinfo=UTC)
    timings["read"] = time.perf_counter() - clock
    if work.progress:
        work.progress.planned(sum(s.events for s in slices), len(slices))

    # Slice k+1 is aggregated (DuckDB, on a thread of its own) while slice k is written (the
    # store, single-threaded): the two overlap on the machine's cores. The writer takes each of
    # a slice's tables as soon as it is ready; the first slice's leads are written while its
    # rows are aggregated.
    # The run's lead records are made before the aggregating thread takes DuckDB's cores (the
    # run lock keeps any other writer of lead events out until the first slice inserts them).
    with work.engine.connect() as conn, SliceWriter(conn, utcnow()) as reader:
        leads: tuple[pa.Table, pa.Table] | None = work.lead_records(reader)
    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="leadflow-aggregate")
    try:
        pending = [_aggregate_slice(work, piece, pool) for piece in slices[:1]]
        for index, piece in enumerate(slices or [None]):
            if index + 1 < len(slices):
                pending.append(_aggregate_slice(work, slices[index + 1], pool))
            tables = pending.pop(0) if piece is not None else None
            clock = time.perf_counter()
            _write_file_slice(work, summary, ledger, ranges, slices, index, piece, tables, leads)
            leads = None  # the first slice wrote them: not held through the others
            timings["write"] = timings.get("write", 0.0) + time.perf_counter() - clock
            if tables is not None:
                timings["write"] -= tables.waited
                timings["aggregate"] = timings.get("aggregate", 0.0) + tables.seconds()
            if work.progress and piece is not None:
                work.progress.advanced(piece.events)
    finally:
        # After a failure the queries not yet started are dropped; a running one finishes.
        pool.shutdown(wait=True, cancel_futures=True)


def _aggregate_slice(work: FileRun, piece: Slice, pool: ThreadPoolExecutor) -> SliceTables:
    """Start aggregating one slice's events on `pool`, query after query in the order the
    writer takes their tables, and loading the rows a SQLite store takes into scratch files
    there, off the writing thread. DuckDB runs a large slice's query on all its threads; a
    small slice (an hourly run's) fits in one of its row groups, which one thread scans, and
    the writer has the other core."""
    where = (
        f"(SELECT * FROM events WHERE hour_ts BETWEEN TIMESTAMP '{piece.first_hour}' "
        f"AND TIMESTAMP '{piece.last_hour}')"
    )
    scratch = work.scratch if work.engine.dialect.name == "sqlite" else None
    spans: list[tuple[float, float]] = []

    def rows(sql: str, staged: bool) -> _Part:
        started = time.perf_counter()
        with work.con.cursor() as con:
            table = con.sql(sql).to_arrow_table()
        path = scratch_file(scratch, table) if staged and scratch else None
        spans.append((started, time.perf_counter()))
        return table, path

    queries = {
        "seekers": (listing_seekers_sql(where), True),
        "metrics": (hourly_metrics_sql(where, work.taxonomy), True),
        "breakdown": (hourly_breakdown_sql(where), True),
        "hour_seekers": (hour_seekers_sql(where), True),
        "listers": (listing_listers_sql(where), False),
    }
    return SliceTables(
        {name: pool.submit(rows, *queries[name]) for name in SliceTables.NAMES}, spans
    )


def _write_file_slice(
    work: FileRun,
    summary: RunSummary,
    ledger: _Ledger,
    ranges: dict[int, tuple[int, datetime | None, datetime | None]],
    slices: list[Slice],
    index: int,
    piece: Slice | None,
    tables: SliceTables | None,
    leads: tuple[pa.Table, pa.Table] | None,
) -> None:
    """Write slice `index` of a file run (a run without slices writes one, with no rows); the
    run's `leads` go into the first."""
    last = index == len(slices) - 1 or piece is None
    through = piece.end if piece is not None else None
    first = index == 0
    slices_done = index + 1 if piece is not None else 0

    def insert_leads(writer: SliceWriter) -> None:
        assert leads is not None
        summary.leads_inserted = writer.insert_leads(*leads, summary.run_id)

    def record_ledger(conn: Connection) -> None:
        _write_ledger(
            conn, ledger.batch, ranges, through, last, summary.run_id, utcnow(), first=first
        )

    def run_values() -> dict[str, Any]:
        window = {"window_start": summary.window_start, "window_end": summary.window_end}
        return window | summary.progress_values(slices_done, len(slices))

    _write_slice(
        work,
        summary,
        SliceWrite(
            tables,
            leads=insert_leads if leads is not None else None,
            progress=record_ledger,
            run_values=run_values,
        ),
    )


def posthog_watermark(conn: Connection) -> datetime | None:
    """How far PostHog's events are read: the greatest ingestion time a committed slice reached
    (each committed slice of a `posthog` run sets its run's window_end, in its transaction)."""
    value = conn.execute(
        select(func.max(cron_runs.c.window_end)).where(
            cron_runs.c.source == POSTHOG, cron_runs.c.window_end.is_not(None)
        )
    ).scalar_one_or_none()
    return _aware(value)


def _run_posthog(work: FileRun, client: posthog.QueryClient, summary: RunSummary) -> None:
    """Read PostHog from the watermark (less the overlap) to now less the settle delay, slice by
    slice of ingestion time, each slice committed with the cursor it reaches."""
    from leadflow.sources import posthog

    settings = work.settings
    timings = summary.timings
    clock = time.perf_counter()
    now = posthog.utc_now()
    with work.engine.connect() as conn:
        watermark = posthog_watermark(conn)
    window_end = now - timedelta(seconds=settings.posthog_settle_seconds)
    if watermark is None:
        counted_from = window_start = now - timedelta(days=settings.posthog_backfill_days)
    else:
        counted_from = watermark
        window_start = watermark - timedelta(minutes=settings.posthog_overlap_minutes)
    counted_from = min(counted_from, window_end)
    window_start = min(window_start, window_end)
    summary.window_start = window_start
    reader = posthog.PostHogReader(
        client,
        work.taxonomy,
        page_rows=settings.posthog_page_rows,
        lateness=timedelta(days=settings.posthog_lateness_days),
    )
    if work.progress:
        work.progress.reading(0)
    try:
        census = reader.census(window_start, window_end, counted_from)
    except posthog.OutOfBudget as stop:
        summary.stopped = f"stopped before reading anything: {stop}; the next run starts here"
        _note_client(summary, client)
        return
    slices = reader.plan(
        census, window_start, window_end, settings.posthog_slice_events, settings.slice_max_days
    )
    summary.slices = len(slices)
    timings["read"] = time.perf_counter() - clock
    if work.progress:
        work.progress.planned(sum(s.accepted for s in slices), len(slices))
    leads = _PostHogLeads(work, counted_from)
    touched: set[str] = set()
    for index, piece in enumerate(slices):
        clock = time.perf_counter()
        try:
            rows = reader.rollups(piece.hours)
            raw_leads = reader.lead_events(piece.created_from, piece.created_to, counted_from)
        except posthog.OutOfBudget as stop:
            summary.stopped = (
                f"stopped after {index} of {len(slices)} slices: {stop}; the next run continues "
                f"from {summary.window_end or window_start:%Y-%m-%d %H:%M:%S} UTC"
            )
            break
        timings["read"] += time.perf_counter() - clock
        clock = time.perf_counter()
        leads.stage(raw_leads)
        timings["aggregate"] = timings.get("aggregate", 0.0) + time.perf_counter() - clock
        clock = time.perf_counter()
        touched.update(rows.listers.column("listing_id").to_pylist())
        counts_before = (summary.events_read, dict(summary.rejected))
        summary.events_read += piece.read
        for reason, n in piece.rejected.items():
            summary.rejected[reason] = summary.rejected.get(reason, 0) + n

        def insert_leads(writer: SliceWriter) -> None:
            read, rejected, records, actions = leads.records(writer)
            summary.events_read += read
            for reason, n in rejected.items():
                summary.rejected[reason] = summary.rejected.get(reason, 0) + n
            summary.leads_inserted += writer.insert_leads(records, actions, summary.run_id)

        reached = piece.created_to
        slices_done = index + 1

        def record_cursor(conn: Connection, reached: datetime = reached) -> None:
            conn.execute(
                update(cron_runs)
                .where(cron_runs.c.id == summary.run_id)
                .values(window_start=window_start, window_end=reached)
            )

        def run_values(slices_done: int = slices_done) -> dict[str, Any]:
            summary.rejected = dict(sorted(summary.rejected.items()))
            summary.events_accepted = summary.events_read - sum(summary.rejected.values())
            summary.listings_updated = len(touched)
            return summary.progress_values(slices_done, len(slices))

        tables = (
            SliceTables.ready(
                metrics=rows.metrics,
                breakdown=rows.breakdown,
                hour_seekers=rows.hour_seekers,
                seekers=rows.seekers,
                listers=rows.listers,
            )
            if piece.hours
            else None
        )

        try:
            _write_slice(
                work,
                summary,
                SliceWrite(
                    tables,
                    leads=insert_leads,
                    progress=record_cursor,
                    run_values=run_values,
                ),
            )
        except BaseException:
            summary.events_read, summary.rejected = counts_before
            raise
        summary.window_end = reached
        timings["write"] = timings.get("write", 0.0) + time.perf_counter() - clock
        if work.progress:
            work.progress.advanced(piece.accepted)
    _note_client(summary, client)


def _note_client(summary: RunSummary, client: posthog.QueryClient) -> None:
    stats = client.stats
    summary.requests = stats.requests
    summary.warnings.extend(client.warnings)


class _PostHogLeads:
    """A slice's raw lead events (one row per uuid: its first copy, and how many copies to
    count), classified locally by the same classifier PostHog's signals go through, and
    deduplicated against the store."""

    def __init__(self, work: FileRun, counted_from: datetime) -> None:
        self.work = work
        self.counted_from = _naive(counted_from)

    def stage(self, raw: pa.Table) -> None:
        con = self.work.con
        con.register("posthog_lead_events", raw)
        try:
            con.execute(
                "CREATE OR REPLACE TABLE lead_batch AS "
                + classify_sql(
                    """(SELECT 0 AS file_id, false AS malformed, uuid, event, distinct_id,
                        properties AS props, false AS props_bad,
                        CAST("timestamp" AS TIMESTAMP) AS ts,
                        CAST(created_at AS TIMESTAMP) AS created_at, counted_copies
                    FROM posthog_lead_events)""",
                    self.work.taxonomy,
                    carry=("created_at", "counted_copies"),
                )
            )
        finally:
            con.unregister("posthog_lead_events")

    def records(self, writer: SliceWriter) -> tuple[int, dict[str, int], pa.Table, pa.Table]:
        """(events read, rejects by reason, lead records, their actions) of the staged events.

        Copies ingested before the watermark (the overlap) are read again but not counted; of
        an accepted event's counted copies, all but its first are duplicates, and all are when
        the store already has the event."""
        con = self.work.con
        since = f"TIMESTAMP '{self.counted_from:%Y-%m-%d %H:%M:%S.%f}'"
        uuids = [
            row[0]
            for row in con.execute("SELECT uuid FROM lead_batch WHERE reject IS NULL").fetchall()
        ]
        known = writer.known_lead_events(uuids)
        con.execute("CREATE OR REPLACE TEMP TABLE known_leads (uuid VARCHAR)")
        if known:
            con.executemany("INSERT INTO known_leads VALUES (?)", [(u,) for u in known])
        rejected: dict[str, int] = {}
        read = 0
        for reason, copies, new_firsts in con.execute(
            f"""
SELECT reject, sum(counted_copies),
       count(*) FILTER (WHERE created_at >= {since}
                        AND uuid NOT IN (SELECT uuid FROM known_leads))
FROM lead_batch GROUP BY reject
"""
        ).fetchall():
            copies = int(copies or 0)
            read += copies
            if reason is not None:
                if copies:
                    rejected[reason] = copies
                continue
            duplicates = copies - int(new_firsts or 0)
            if duplicates:
                rejected[RejectReason.DUPLICATE.value] = duplicates
        fresh = (
            "(SELECT * EXCLUDE (created_at, counted_copies) FROM lead_batch "
            "WHERE reject IS NULL AND uuid NOT IN (SELECT uuid FROM known_leads))"
        )
        records = self.work.arrow(lead_records_sql(fresh, self.work.taxonomy))
        actions = self.work.arrow(f"SELECT uuid, listing_id, seeker_id FROM {fresh}")
        return read, rejected, records, actions


def _write_ledger(
    conn: Connection,
    batch: Sequence[ExportFile],
    ranges: dict[int, tuple[int, datetime | None, datetime | None]],
    through: datetime | None,
    last: bool,
    run_id: int,
    now: datetime,
    first: bool,
) -> None:
    """Record the batch's files and how far their hours are written, in the slice's transaction:
    the first slice adds their rows, each later one moves the files not yet done."""
    through_aware = _aware(through)
    t = source_files
    if not first:
        # One statement, however many files: the first slice gave every batch file this run's
        # id and its time range, and every file still open has been read up to `through`.
        assert through_aware is not None
        done = true() if last else or_(t.c.max_ts.is_(None), t.c.max_ts < through_aware)
        conn.execute(
            update(t)
            .where(t.c.run_id == run_id, t.c.done.is_(False))
            .values(processed_through=through_aware, done=done)
        )
        return
    rows: list[dict[str, Any]] = []
    for fid, f in enumerate(batch):
        events, low, high = ranges.get(fid, (0, None, None))
        rows.append(
            {
                "path": f.path,
                "size": f.size,
                "mtime_ns": f.mtime_ns,
                "format": f.format,
                "events": events,
                "min_ts": _aware(low),
                "max_ts": _aware(high),
                "processed_through": through_aware,
                "done": last or high is None or (through is not None and high < through),
                "run_id": run_id,
                "added_at": now,
            }
        )
    if not rows:
        return
    # A file read before (changed since, or left unfinished by a crashed run) is replaced. In
    # chunks: a store limits a statement's parameters (PostgreSQL to 65,535; SQLite, as often
    # built, to 32,766), and a folder of hourly files holds 8,760 a year.
    paths = [f.path for f in batch]
    for start in range(0, len(paths), LEDGER_CHUNK):
        conn.execute(delete(t).where(t.c.path.in_(paths[start : start + LEDGER_CHUNK])))
    conn.execute(insert(t), rows)
