"""Bulk writes of one slice of a run, inside the caller's transaction.

`SliceWriter(conn, now)` gives the writer of the connection's store. Both stores take a slice's
Arrow tables into staging tables without turning rows into Python objects, then write each
table with one set-based statement: SQLite through ADBC's bulk ingest into a scratch database
file that the store's connection attaches, PostgreSQL through COPY into temporary tables.
Close the writer (it is a context manager) after the transaction ends.
"""

from __future__ import annotations

import collections
import functools
import io
import itertools
import json
import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from datetime import datetime
from types import TracebackType
from typing import Any
from uuid import uuid4

import adbc_driver_manager as adbc
import adbc_driver_sqlite as adbc_sqlite
import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
from sqlalchemy import Table, inspect, text
from sqlalchemy.engine import Connection

from leadflow.events import LEAD_COUNTERS, Kind
from leadflow.store.leads import STATUS_TIME_FORMAT
from leadflow.store.schema import (
    HOURLY_COUNTERS,
    LEADS_BREAKDOWN_KEYS,
    lead_events,
    leads,
    listing_analytics,
    listing_analytics_breakdown,
    listing_hour_seekers,
    listing_listers,
    listing_seekers,
)
from leadflow.store.schema import listings as listings_table

BATCH_ROWS = 50_000
# listing_analytics' key, and the columns of its rows as the pipeline computes them.
HOUR_KEY: tuple[str, ...] = ("listing_id", "date", "hour")
ANALYTICS_ROW: tuple[str, ...] = (*HOUR_KEY, *HOURLY_COUNTERS, "conversion_rate")
TIMESTAMP_TEXT = "%Y-%m-%d %H:%M:%S"


def _text_column(column: pa.ChunkedArray) -> pa.ChunkedArray:
    """Dates and times as the text SQLAlchemy stores and both SQLite and PostgreSQL parse."""
    if pa.types.is_date(column.type):
        return pc.cast(column, pa.string())
    if pa.types.is_timestamp(column.type):
        return pc.strftime(pc.cast(column, pa.timestamp("us")), format=TIMESTAMP_TEXT)
    return column


def arrow_rows(table: pa.Table, columns: Sequence[str]) -> Iterator[tuple[Any, ...]]:
    """Rows of `table` as tuples in `columns` order, batch by batch (Python objects are costly)."""
    for batch in table.select(list(columns)).to_batches(BATCH_ROWS):
        values = [_text_column(pa.chunked_array([col])).to_pylist() for col in batch.columns]
        yield from zip(*values, strict=True)


def bulk_ingest(path: str, name: str, rows: pa.Table, *, append: bool = False) -> None:
    """Create table `name` holding `rows` in the new SQLite database file `path`, without a
    journal (a scratch file); with `append`, append them to the existing table `name` of the
    database file `path`, journaled as that file is. ADBC's bulk ingest: a prepared INSERT bound
    from the Arrow buffers in C, in one transaction.

    ADBC's driver links a SQLite of its own, which does not see the locks Python's SQLite holds
    in the same process: no connection of Python's may have the file open meanwhile."""
    with (
        adbc_sqlite.connect(path) as database,
        adbc.AdbcConnection(database) as connection,
    ):
        for pragma in () if append else ("journal_mode=OFF", "synchronous=OFF"):
            with adbc.AdbcStatement(connection) as statement:
                statement.set_sql_query(f"PRAGMA {pragma}")
                statement.execute_query()
        mode = adbc.INGEST_OPTION_MODE_APPEND if append else adbc.INGEST_OPTION_MODE_CREATE
        with adbc.AdbcStatement(connection) as statement:
            statement.set_options(
                **{
                    adbc.StatementOptions.INGEST_TARGET_TABLE.value: name,
                    adbc.StatementOptions.INGEST_MODE.value: mode,
                }
            )
            statement.bind_stream(rows.to_reader())
            statement.execute_update()


def new_lead_values(now: datetime) -> dict[str, str]:
    """The status, status history and notes a lead record the pipeline inserts at `now` starts
    with (the history's time as the leads API writes its own, store.leads.STATUS_TIME_FORMAT)."""
    at = now.strftime(STATUS_TIME_FORMAT)
    return {
        "status": "new",
        "status_tracker": f'[{{"status":"new","at":"{at}","by":"leadflow"}}]',
        "notes": "[]",
    }


def lead_event_rows(actions: pa.Table, records: pa.Table) -> pa.Table:
    """The lead_events rows of lead `actions` (uuid, listing_id, seeker_id): each uuid with the
    id of its (listing, seeker)'s record in `records`."""
    keys = records.select(["listing_id", "seeker_id", "id"])
    events = actions.select(["uuid", "listing_id", "seeker_id"]).join(
        keys, ["listing_id", "seeker_id"], join_type="inner"
    )
    if events.num_rows != actions.num_rows:
        raise AssertionError("a lead action without its lead record")
    return events.select(["uuid", "id"]).rename_columns(["event_uuid", "lead_id"])


def _remove_scratch(path: str) -> None:
    for suffix in ("", "-journal"):
        if os.path.exists(path + suffix):
            os.remove(path + suffix)


def text_table(table: pa.Table) -> pa.Table:
    """`table` with dates and times as text (_text_column)."""
    return pa.table({name: _text_column(table.column(name)) for name in table.column_names})


def scratch_file(scratch: str, rows: pa.Table) -> str:
    """A new SQLite database file in the folder `scratch` whose table `rows` holds `rows`.

    The bulk load runs in C without the GIL, so a run loads the next slice's tables on another
    thread while the store's connection writes the current one (`SliceWriter.adopt`)."""
    path = os.path.join(scratch, f"leadflow-stage-{uuid4().hex}.sqlite")
    bulk_ingest(path, "rows", text_table(rows))
    return path


class SliceWriter:
    """Writes one slice's rows through the DBAPI connection under a SQLAlchemy transaction.

    SQLite: each bulk table is loaded into a fresh scratch database file by ADBC's bulk ingest
    (C, about twice Python's `executemany`, and no Python object per value), attached to the
    store's connection inside the transaction, and written with one INSERT … SELECT in the
    table's key order. The scratch files are detached and deleted by `close()`.
    """

    # The driver's placeholders (a value, a JSON document, a date as 'YYYY-MM-DD'), and whether
    # it takes a timestamp column's value as text; how a comparison of text goes byte by byte
    # (SQLite's default collation does).
    _placeholder = "?"
    _json_placeholder = "?"
    _date = "?"
    _times_as_text = True
    _bytewise = ""

    def __new__(cls, conn: Connection, *_args: Any, **_kwargs: Any) -> SliceWriter:
        if cls is SliceWriter and conn.dialect.name == "postgresql":
            cls = PostgresSliceWriter
        return super().__new__(cls)

    def __init__(
        self,
        conn: Connection,
        now: datetime,
        scratch: str | None = None,
        duck: duckdb.DuckDBPyConnection | None = None,
    ) -> None:
        self.conn = conn
        # The DuckDB that groups the slice's Arrow tables: the run's own, else the process's.
        self.duck = duck
        self.dbapi: Any = conn.connection.driver_connection
        self.dialect = conn.dialect
        self.now = now
        self.now_text = now.strftime(TIMESTAMP_TEXT + ".%f")
        self._now_value: Any = self.now_text if self._times_as_text else now
        self._own_scratch = scratch is None
        self.scratch = scratch
        self._temp_tables: set[str] = set()
        self._attached: dict[str, str] = {}  # schema name → scratch file
        self._staged: dict[str, pa.Table] = {}  # staging table → the rows it holds
        self._loaded: list[tuple[pa.Table, str]] = []  # loaded ahead (`adopt`), not attached
        self._owns_listings: bool | None = None
        # Whether the slice's hours are new to the store (upsert_analytics finds out).
        self._fresh = False
        # Whether the changes tables (_changes) gather what the slice's writes change per
        # listing: then refresh_listings brings the listings leadflow keeps up to date by them.
        self._changing = False

    def __enter__(self) -> SliceWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Detach and delete the scratch files (SQLite refuses to detach inside a transaction)."""
        try:
            while self._attached:
                schema, path = self._attached.popitem()
                try:
                    self.dbapi.execute(f"DETACH DATABASE {schema}")
                finally:
                    _remove_scratch(path)
        finally:
            while self._loaded:
                _remove_scratch(self._loaded.pop()[1])
            if self._own_scratch and self.scratch is not None:
                shutil.rmtree(self.scratch, ignore_errors=True)
                self.scratch = None

    def adopt(self, staged: Sequence[tuple[pa.Table, str]]) -> None:
        """(rows, scratch_file(…, rows)) pairs loaded ahead: the writer attaches such a file
        instead of loading its rows again, and deletes it when it closes."""
        self._loaded.extend(staged)

    # -- helpers -------------------------------------------------------------------------------

    def _executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        cursor = self.dbapi.cursor()
        rows = iter(rows)
        try:
            while chunk := list(itertools.islice(rows, BATCH_ROWS)):
                cursor.executemany(sql, chunk)
        finally:
            cursor.close()

    def _ingest(self, rows: pa.Table) -> str:
        """`rows` as a table of a freshly attached scratch database; its qualified name.

        Each staging table gets its own file: once the transaction has read an attached file,
        SQLite holds a lock on it that would keep the next bulk ingest out until commit."""
        for name, table in self._staged.items():
            if table is rows:
                return name
        loaded = [path for table, path in self._loaded if table is rows]
        if loaded:
            path = loaded[0]
            self._loaded = [(table, p) for table, p in self._loaded if p != path]
        else:
            if self.scratch is None:
                self.scratch = tempfile.mkdtemp(prefix="leadflow-stage-")
            path = scratch_file(self.scratch, rows)
        schema = f"lf_stage_{uuid4().hex}"  # unique, should a pooled connection keep one attached
        self.dbapi.execute(f"ATTACH DATABASE ? AS {schema}", (path,))
        self._attached[schema] = path
        name = f"{schema}.rows"
        self._staged[name] = rows
        return name

    def _insert_select(
        self,
        table: Table,
        columns: Sequence[str],
        source: str,
        *,
        upsert_keys: Sequence[str] = (),
        ignore: bool = False,
        constants: dict[str, Any] | None = None,
        returning: Sequence[str] = (),
    ) -> list[tuple[Any, ...]]:
        """INSERT the `columns` of staging table `source` (plus `constants`) into `table`; the
        `returning` columns of the rows it inserted (not of those a conflict ignored)."""
        constants = constants or {}
        names = ", ".join([*columns, *constants])
        values = ", ".join([*columns, *(self._placeholder for _ in constants)])
        sqlite_ignore = ignore and self.dialect.name == "sqlite"
        verb = "INSERT OR IGNORE" if sqlite_ignore else "INSERT"
        sql = f"{verb} INTO {table.name} ({names}) SELECT {values} FROM {source} WHERE true"
        if upsert_keys:
            sets = ", ".join(
                f"{c} = excluded.{c}" for c in [*columns, *constants] if c not in upsert_keys
            )
            sql += f" ON CONFLICT ({', '.join(upsert_keys)}) DO UPDATE SET {sets}"
        elif ignore and not sqlite_ignore:
            sql += " ON CONFLICT DO NOTHING"
        if returning:
            sql += f" RETURNING {', '.join(returning)}"
        cursor = self.dbapi.execute(sql, tuple(constants.values()))
        return [tuple(row) for row in cursor.fetchall()] if returning else []

    def _execute(self, sql: str, params: Sequence[Any] | None = None) -> list[tuple[Any, ...]]:
        """Run `sql` (the driver's placeholders) through the driver; the rows it returns."""
        cursor = self.dbapi.execute(sql, params or ())
        return [tuple(row) for row in cursor.fetchall()] if cursor.description else []

    def _temp_table(self, name: str, columns: str) -> None:
        """An empty temporary table `name` (`columns` as in CREATE TABLE) for this transaction.

        SQLite keeps a connection's temporary tables until it closes: a pooled connection may
        bring one back, emptied here."""
        if name in self._temp_tables:
            return
        self._execute(f"CREATE TEMP TABLE IF NOT EXISTS {name} ({columns})")
        self._execute(f"DELETE FROM {name}")
        self._temp_tables.add(name)

    def _append(self, table: str, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
        """Insert a few `rows` (Python values of `columns`) into `table`, a temporary table.

        Python values, not Arrow: making Arrow arrays of Python objects imports pandas when it
        is installed (about 0.4 s)."""
        marks = ", ".join(self._placeholder for _ in columns)
        self._executemany(f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks})", rows)

    def _append_arrow(self, table: str, rows: pa.Table) -> None:
        self._append(table, rows.column_names, arrow_rows(rows, rows.column_names))

    def _arrow(self, sql: str, **tables: pa.Table) -> pa.Table:
        """`sql` over Arrow `tables` (by their keyword names), in DuckDB.

        Rather than pyarrow's own group_by or Python values made Arrow values, both of which
        import pandas when it is installed (about 0.4 s, more than an hourly run's whole write).
        """
        with (self.duck or _engine()).cursor() as con:
            for name, table in tables.items():
                con.register(name, table)
            return con.sql(sql).to_arrow_table()

    # -- the slice's writes ----------------------------------------------------------------------

    def known_lead_events(self, uuids: Sequence[str]) -> set[str]:
        """Which of these lead event uuids the store already holds."""
        known: set[str] = set()
        for start in range(0, len(uuids), 500):
            chunk = list(uuids[start : start + 500])
            marks = ", ".join("?" for _ in chunk)
            cursor = self.dbapi.cursor()
            cursor.execute(
                f"SELECT event_uuid FROM lead_events WHERE event_uuid IN ({marks})", chunk
            )
            known.update(row[0] for row in cursor.fetchall())
            cursor.close()
        return known

    def insert_leads(self, records: pa.Table, actions: pa.Table, run_id: int) -> int:
        """Insert lead records (from transform.leads) and remember their events' uuids."""
        if records.num_rows == 0:
            return 0
        cursor = self.dbapi.cursor()
        cursor.execute("SELECT coalesce(max(id), 0) FROM leads")
        first_id = int(cursor.fetchone()[0]) + 1
        cursor.close()
        records = self._arrow(
            # Ids in the records' (listing, seeker) order, whatever order DuckDB scans them in.
            f"SELECT *, CAST({first_id} + row_number() OVER (ORDER BY listing_id, seeker_id) - 1 "
            "AS BIGINT) AS id FROM records",
            records=records,
        )
        constants = {
            **new_lead_values(self.now),
            "run_id": run_id,
            "created_at": self._now_value,
            "updated_at": self._now_value,
        }
        columns = [c for c in records.column_names if c in leads.c]
        self._insert_select(leads, columns, self._ingest(records), constants=constants)
        # Every action's uuid, with its record's id through (listing_id, seeker_id), in the
        # table's key order: random uuids inserted in order fill its B-tree three times faster.
        events = self._arrow(
            "SELECT a.uuid AS event_uuid, r.id AS lead_id FROM actions a "
            "JOIN records r USING (listing_id, seeker_id) ORDER BY event_uuid",
            actions=actions,
            records=records,
        )
        if events.num_rows != actions.num_rows:
            raise AssertionError("a lead action without its lead record")
        self._insert_select(lead_events, ["event_uuid", "lead_id"], self._ingest(events))
        return int(records.num_rows)

    def upsert_analytics(self, rows: pa.Table) -> int:
        """Replace the listing_analytics rows of these (listing, hour)s by the recomputed ones."""
        hours = self._hours_table(rows)
        self._fresh = self._span_is_empty(rows, hours)
        self._gather_changes("lf_listing_changes", listing_analytics, (), _TOTALS, hours, rows)
        self._write_analytics(hours)
        return int(rows.num_rows)

    def _span_is_empty(self, rows: pa.Table, hours: str) -> bool:
        """Whether the store holds no hour of these listings (staged as `hours`) from the rows'
        first hour to their last: then they are new, with nothing to subtract or delete (each
        slice of a first run or a backfill), and the per-hour probes of what they held before
        are skipped."""
        if rows.num_rows == 0:
            return True
        d0, h0, d1, h1 = (
            self._arrow(
                "SELECT strftime(min(date), '%Y-%m-%d') AS d0, arg_min(hour, (date, hour)) AS h0, "
                "strftime(max(date), '%Y-%m-%d') AS d1, arg_max(hour, (date, hour)) AS h1 "
                "FROM rows",
                rows=rows,
            )
            .to_pylist()[0]
            .values()
        )
        found = self._execute(
            "SELECT 1 FROM listing_analytics a "
            f"WHERE a.listing_id IN (SELECT listing_id FROM {hours}) "
            f"AND a.date BETWEEN {self._date} AND {self._date} "
            f"AND (a.date > {self._date} OR a.hour >= {self._placeholder}) "
            f"AND (a.date < {self._date} OR a.hour <= {self._placeholder}) LIMIT 1",
            (d0, d1, d0, h0, d1, h1),
        )
        return not found

    def _write_analytics(self, staged: str) -> None:
        self._insert_select(
            listing_analytics,
            ANALYTICS_ROW,
            staged,
            upsert_keys=HOUR_KEY,
            constants={"updated_at": self._now_value},
        )

    def _hours_table(self, touched: pa.Table) -> str:
        """The staged table holding these (listing_id, date, hour)s."""
        return self._ingest(touched)

    def _seekers_table(self, rows: pa.Table) -> str:
        return self._ingest(rows)

    def replace_breakdown(self, touched: pa.Table, rows: pa.Table) -> None:
        """Replace the per-hour breakdown rows of the touched (listing, hour)s."""
        self._gather_changes(
            "lf_breakdown_changes",
            listing_analytics_breakdown,
            ("dimension", "key"),
            {"change": "count"},
            self._hours_table(touched),
            rows,
        )
        self._replace_hours(listing_analytics_breakdown, touched, rows)

    def replace_hour_seekers(self, touched: pa.Table, rows: pa.Table) -> None:
        """Replace the per-hour seeker identities of the touched (listing, hour)s."""
        self._replace_hours(listing_hour_seekers, touched, rows)

    def _replace_hours(self, table: Table, touched: pa.Table, rows: pa.Table) -> None:
        """Delete `table`'s rows of the touched (listing, hour)s, then insert `rows`."""
        if not self._fresh:
            self.dbapi.execute(
                # A row-value IN probes the primary key per touched hour; EXISTS would scan it.
                f"DELETE FROM {table.name} WHERE (listing_id, date, hour) IN "
                f"(SELECT listing_id, date, hour FROM {self._ingest(touched)})"
            )
        self._insert_select(table, [c.name for c in table.c], self._ingest(rows))

    def add_seekers(self, rows: pa.Table) -> None:
        """Remember these distinct (listing, kind, seeker)s; count per listing the new ones:
        those the insert did not find (it returns only the rows it inserts)."""
        columns = ["listing_id", "kind", "seeker_id"]
        added = collections.Counter(
            self._insert_select(
                listing_seekers,
                columns,
                self._seekers_table(rows),
                ignore=True,
                returning=("listing_id", "kind"),
            )
        )
        if added:
            self._changes()
            self._append(
                "lf_listing_changes",
                ["listing_id", *_UNIQUE.values()],
                (
                    (listing, *(added[(listing, kind)] for kind in _UNIQUE))
                    for listing in sorted({listing for listing, _ in added})
                ),
            )

    def _gather_changes(
        self,
        changes: str,
        table: Table,
        keys: Sequence[str],
        sums: dict[str, str],
        hours: str,
        rows: pa.Table,
    ) -> None:
        """Add to the changes table `changes`, per (listing, *keys), the sums of the slice's
        `rows` less those of what `table` holds for the touched hours (staged as `hours`; new
        hours hold nothing). `sums`: changes column ← summed column."""
        self._changes()
        group = ", ".join(["listing_id", *keys])
        columns = f"{group}, {', '.join(sums)}"
        if not self._fresh:
            held = ", ".join(f"-sum({source})" for source in sums.values())
            self._execute(
                f"INSERT INTO {changes} ({columns}) SELECT {group}, {held} FROM {table.name} "
                f"WHERE (listing_id, date, hour) IN (SELECT listing_id, date, hour FROM {hours}) "
                f"GROUP BY {group}"
            )
        if rows.num_rows:
            new = ", ".join(f"CAST(sum({source}) AS BIGINT) AS {c}" for c, source in sums.items())
            self._append_arrow(
                changes,
                self._arrow(f"SELECT {group}, {new} FROM rows GROUP BY {group}", rows=rows),
            )

    def _changes(self) -> None:
        """The temporary tables in which the slice's writes leave, per listing, what its hours
        hold after them less what they held before: the changes of its totals (and of its
        unique counts, by the seekers new to it), and of its breakdown counts."""
        if self._changing:
            return
        counters = ", ".join(f"{c} BIGINT NOT NULL DEFAULT 0" for c in _CHANGED)
        self._temp_table("lf_listing_changes", f"listing_id TEXT NOT NULL, {counters}")
        self._temp_table(
            "lf_breakdown_changes",
            "listing_id TEXT NOT NULL, dimension TEXT NOT NULL, key TEXT NOT NULL, "
            "change BIGINT NOT NULL",
        )
        self._changing = True

    def refresh_listings(self, listers: pa.Table) -> int:
        """Bring the cumulative totals of these listings up to date.

        A listing whose totals leadflow keeps (its row has `analytics_updated_at`) gets them
        by difference: the changes the steps above gathered are added to its row; an hour
        replaced by itself changes nothing. Any other listing (new, or a portal's row leadflow
        has not computed yet) is recomputed from all its hours.
        """
        self._temp_table(
            "lf_touched_listings",
            "listing_id TEXT PRIMARY KEY, lister_id TEXT, lister_type TEXT, "
            "lister_id_key TEXT, lister_type_key TEXT",
        )
        self._stage_listers(listers)
        self._keep_latest_listers()
        if self._changing:
            self._execute(self._update_kept_sql(), (self._now_value,))
            self._rewrite_breakdowns()
            self._execute(
                "DELETE FROM lf_touched_listings WHERE listing_id IN "
                "(SELECT listing_id FROM listings WHERE analytics_updated_at IS NOT NULL)"
            )
        self._recompute_listings()
        return int(listers.num_rows)

    def _stage_listers(self, listers: pa.Table) -> None:
        self._append_arrow("lf_touched_listings", listers.select(listing_listers.c.keys()))

    def _keep_latest_listers(self) -> None:
        """Per touched listing, of the lister the slice names and the one stored, keep the one
        named by the later event (listing_listers), in lf_touched_listings and in the store."""
        t, c = "lf_touched_listings", self._bytewise
        for name in ("lister_id", "lister_type"):
            key = f"{name}_key"
            self._execute(
                f"UPDATE {t} SET {name} = s.{name}, {key} = s.{key} "
                f"FROM {listing_listers.name} s "
                f"WHERE s.listing_id = {t}.listing_id AND s.{key} IS NOT NULL "
                f"AND ({t}.{key} IS NULL OR s.{key}{c} > {t}.{key}{c})"
            )
        names = listing_listers.c.keys()
        columns = ", ".join(names)
        updates = ", ".join(f"{n} = excluded.{n}" for n in names[1:])
        self._execute(
            f"INSERT INTO {listing_listers.name} ({columns}) SELECT {columns} FROM {t} "
            "WHERE lister_id_key IS NOT NULL OR lister_type_key IS NOT NULL "
            f"ON CONFLICT (listing_id) DO UPDATE SET {updates}"
        )

    def _recompute_listings(self) -> None:
        """Recompute the totals of the listings left in lf_touched_listings from all their
        hourly rows."""
        sql = _REFRESH_LISTINGS_SQLITE if self.owns_listings() else _UPDATE_LISTINGS_SQLITE
        self.conn.execute(text(sql), {"now": self.now_text})

    def _update_kept_sql(self) -> str:
        """UPDATE the kept touched listings: their totals plus the slice's changes (and, in
        leadflow's own table, the lister the events name)."""
        sets = [f"{c} = listings.{c} + d.{c}" for c in _CHANGED]
        views, leads_ = (
            "listings.total_views + d.total_views",
            "listings.total_leads + d.total_leads",
        )
        sets.append(
            f"conversion_rate = CASE WHEN {views} > 0 "
            f"THEN ({leads_}) * CAST(100.0 AS FLOAT) / ({views}) ELSE 0 END"
        )
        if self.owns_listings():
            sets += [f"{c} = coalesce(d.{c}, listings.{c})" for c in ("lister_id", "lister_type")]
        sets.append(f"analytics_updated_at = {self._placeholder}")
        sums = ", ".join(f"CAST(coalesce(sum(c.{c}), 0) AS BIGINT) AS {c}" for c in _CHANGED)
        return f"""
UPDATE listings SET {", ".join(sets)}
FROM (SELECT t.listing_id, t.lister_id, t.lister_type, {sums}
      FROM lf_touched_listings t LEFT JOIN lf_listing_changes c ON c.listing_id = t.listing_id
      GROUP BY t.listing_id, t.lister_id, t.lister_type) AS d
WHERE listings.listing_id = d.listing_id AND listings.analytics_updated_at IS NOT NULL
"""

    def _rewrite_breakdowns(self) -> None:
        """Rewrite the JSON breakdowns of the kept listings whose breakdown counts the slice
        changes (most hours of most listings have no share and no lead)."""
        changes: dict[str, list[tuple[str, str, int]]] = collections.defaultdict(list)
        for listing, dimension, key, change in self._execute(
            "SELECT c.listing_id, c.dimension, c.key, sum(c.change) FROM lf_breakdown_changes c "
            "JOIN listings l ON l.listing_id = c.listing_id "
            "WHERE l.analytics_updated_at IS NOT NULL "
            "GROUP BY c.listing_id, c.dimension, c.key HAVING sum(c.change) <> 0"
        ):
            changes[listing].append((dimension, key, int(change)))
        if not changes:
            return
        names = sorted(changes)
        updates = []
        for start in range(0, len(names), 500):
            chunk = names[start : start + 500]
            marks = ", ".join(self._placeholder for _ in chunk)
            for listing, share_doc, leads_doc in self._execute(
                "SELECT listing_id, share_breakdown, leads_breakdown FROM listings "
                f"WHERE listing_id IN ({marks})",
                chunk,
            ):
                shares, channels = _json_doc(share_doc), _json_doc(leads_doc)
                for dimension, key, change in changes[listing]:
                    counts = shares if dimension == "share_platform" else channels
                    counts[key] = int(counts.get(key, 0)) + change
                updates.append(
                    (
                        json.dumps({k: v for k, v in sorted(shares.items()) if v}),
                        json.dumps({k: int(channels.get(k, 0)) for k in LEADS_BREAKDOWN_KEYS}),
                        listing,
                    )
                )
        self._executemany(
            f"UPDATE listings SET share_breakdown = {self._json_placeholder}, "
            f"leads_breakdown = {self._json_placeholder} WHERE listing_id = {self._placeholder}",
            updates,
        )

    def owns_listings(self) -> bool:
        """Whether `listings` is leadflow's own table, or a portal's that leadflow only annotates.

        A portal's table (one with columns leadflow does not know) gets leadflow's analytics
        columns updated on the rows it already has; leadflow never inserts rows into it.
        """
        if self._owns_listings is None:
            names = {column["name"] for column in inspect(self.conn).get_columns("listings")}
            self._owns_listings = names <= set(listings_table.c.keys())
        return self._owns_listings


class PostgresSliceWriter(SliceWriter):
    """PostgreSQL's fast path: each bulk table goes through COPY (CSV that pyarrow writes) into a
    temporary staging table dropped at commit, then one set-based statement into the real table.

    Times are written with their zone ('…Z'), so the session's time zone cannot shift them.
    """

    _placeholder = "%s"
    _bytewise = ' COLLATE "C"'
    _json_placeholder = "CAST(%s AS jsonb)"
    _date = "CAST(%s AS date)"
    _times_as_text = False

    def _execute(self, sql: str, params: Sequence[Any] | None = None) -> list[tuple[Any, ...]]:
        with self.dbapi.cursor() as cursor:
            cursor.execute(sql, params)
            return list(cursor.fetchall()) if cursor.description else []

    def _copy(self, table: str, columns: Sequence[str], rows: pa.Table) -> None:
        """COPY `rows` (their `columns`, in order) into `table`."""
        names = ", ".join(columns)
        options = pa_csv.WriteOptions(include_header=False, quoting_style="all_valid")
        with (
            self.dbapi.cursor() as cursor,
            cursor.copy(f"COPY {table} ({names}) FROM STDIN (FORMAT csv)") as copy,
        ):
            for batch in rows.select(list(columns)).to_batches(BATCH_ROWS):
                buffer = io.BytesIO()
                pa_csv.write_csv(_zoned(pa.Table.from_batches([batch])), buffer, options)
                copy.write(buffer.getbuffer())

    def _stage(self, name: str, like: str, columns: Sequence[str], rows: pa.Table) -> None:
        """A temporary table `name` with `like`'s types for `columns`, holding `rows`.

        Not analysed: the planner sizes a never-analysed table by its pages, which is all that
        the scans and hash joins over a staging table need.
        """
        if name in self._staged:
            self._execute(f"TRUNCATE {name}")
        else:
            self._execute(
                f"CREATE TEMP TABLE {name} ON COMMIT DROP AS "
                f"SELECT {', '.join(columns)} FROM {like} WITH NO DATA"
            )
        self._copy(name, columns, rows)
        self._staged[name] = rows

    # -- the slice's writes ----------------------------------------------------------------------

    def known_lead_events(self, uuids: Sequence[str]) -> set[str]:
        known: set[str] = set()
        for start in range(0, len(uuids), BATCH_ROWS):
            chunk = list(uuids[start : start + BATCH_ROWS])
            rows = self._execute(
                "SELECT event_uuid FROM lead_events WHERE event_uuid = ANY(%s)", (chunk,)
            )
            known.update(row[0] for row in rows)
        return known

    def insert_leads(self, records: pa.Table, actions: pa.Table, run_id: int) -> int:
        if records.num_rows == 0:
            return 0
        # Ids come from the table's own sequence, so that any other writer of leads (the portal,
        # the API) keeps getting fresh ones.
        ids = self._execute(
            "SELECT nextval(pg_get_serial_sequence('leads', 'id')) FROM generate_series(1, %s)",
            (records.num_rows,),
        )
        count = records.num_rows
        now = pa.scalar(self.now, pa.timestamp("us", tz="UTC"))
        records = records.append_column("id", pa.array(sorted(r[0] for r in ids), pa.int64()))
        for name, value in (
            *(
                (column, pa.scalar(document))
                for column, document in new_lead_values(self.now).items()
            ),
            ("run_id", pa.scalar(run_id, pa.int64())),
            ("created_at", now),
            ("updated_at", now),
        ):
            records = records.append_column(name, pa.repeat(value, count))
        self._copy("leads", [c.name for c in leads.c if c.name in records.column_names], records)
        events = lead_event_rows(actions, records)
        self._copy("lead_events", ["event_uuid", "lead_id"], events)
        return int(count)

    def _hours_table(self, touched: pa.Table) -> str:
        if self._staged.get("lf_stage_analytics") is touched:
            return "lf_stage_analytics"  # the hours upsert_analytics staged are these
        if "total_views" in touched.column_names:
            self._stage("lf_stage_analytics", "listing_analytics", ANALYTICS_ROW, touched)
            return "lf_stage_analytics"
        if self._staged.get("lf_touched_hours") is not touched:
            self._stage("lf_touched_hours", "listing_analytics", HOUR_KEY, touched)
        return "lf_touched_hours"

    def _replace_hours(self, table: Table, touched: pa.Table, rows: pa.Table) -> None:
        if not self._fresh:
            self._execute(
                f"DELETE FROM {table.name} b USING {self._hours_table(touched)} t "
                "WHERE b.listing_id = t.listing_id AND b.date = t.date AND b.hour = t.hour"
            )
        self._copy(table.name, [c.name for c in table.c], rows)

    def _seekers_table(self, rows: pa.Table) -> str:
        columns = ["listing_id", "kind", "seeker_id"]
        self._stage("lf_stage_seekers", "listing_seekers", columns, rows)
        return "lf_stage_seekers"

    def _temp_table(self, name: str, columns: str) -> None:
        if name not in self._temp_tables:
            self._execute(f"CREATE TEMP TABLE IF NOT EXISTS {name} ({columns}) ON COMMIT DROP")
            self._execute(f"TRUNCATE {name}")
            self._temp_tables.add(name)

    def _append(self, table: str, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
        with (
            self.dbapi.cursor() as cursor,
            cursor.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy,
        ):
            for row in rows:
                copy.write_row(row)

    def _stage_listers(self, listers: pa.Table) -> None:
        super()._stage_listers(listers)
        self._execute("ANALYZE lf_touched_listings")

    def _recompute_listings(self) -> None:
        sql = _REFRESH_LISTINGS_POSTGRES if self.owns_listings() else _UPDATE_LISTINGS_POSTGRES
        self.conn.execute(text(sql), {"now": self.now})


def _zoned(table: pa.Table) -> pa.Table:
    """Naive timestamps (UTC by leadflow's convention) marked as UTC, so the CSV says '…Z'."""
    for index, field in enumerate(table.schema):
        if pa.types.is_timestamp(field.type) and field.type.tz is None:
            column = pc.cast(table.column(index), pa.timestamp("us", tz="UTC"))
            table = table.set_column(index, field.name, column)
    return table


# listings column ← sum over listing_analytics column
_TOTALS = {
    "total_views": "total_views",
    "total_impressions": "impressions",
    "total_shares": "shares",
    "total_saves": "saves",
    "total_leads": "total_leads",
    **{counter: counter for counter in LEAD_COUNTERS},
}

# The columns leadflow computes in `listings` (its analytics columns), after listing_id and the
# lister it names.
ANALYTICS_COLUMNS: tuple[str, ...] = (
    *_TOTALS,
    "unique_views",
    "unique_leads",
    "conversion_rate",
    "share_breakdown",
    "leads_breakdown",
    "analytics_updated_at",
)


# -- the listings' totals, kept by difference ----------------------------------------------------

# listings' unique-count column ← the seeker kind it counts
_UNIQUE = {Kind.VIEW.value: "unique_views", Kind.LEAD.value: "unique_leads"}
# The listings columns a kept listing gets by adding the slice's changes (lf_listing_changes).
_CHANGED: tuple[str, ...] = (*_TOTALS, *_UNIQUE.values())


@functools.cache
def _engine() -> duckdb.DuckDBPyConnection:
    """The process's in-memory DuckDB, for writers not given a run's (a new database costs
    tens of milliseconds, a cursor of this one next to nothing)."""
    return duckdb.connect()


def _json_doc(value: Any) -> dict[str, Any]:
    """A JSON column's object as the driver returns it (text from SQLite, parsed from psycopg)."""
    if value is None:
        return {}
    return dict(json.loads(value) if isinstance(value, str | bytes) else value)


def _refresh_listings(totals_select: str, own_table: bool) -> str:
    """The statement that writes `totals_select`'s rows (one per touched listing) to listings.

    leadflow's own table: insert, or update the listing's lister (when the events name one)
    and analytics columns. A portal's table: update the analytics columns of its rows only.
    """
    if not own_table:
        sets = ",\n    ".join(f"{c} = r.{c}" for c in ANALYTICS_COLUMNS)
        return f"""
UPDATE listings SET
    {sets}
FROM ({totals_select}) AS r
WHERE listings.listing_id = r.listing_id
"""
    updates = ",\n    ".join(f"{c} = excluded.{c}" for c in ANALYTICS_COLUMNS)
    return f"""
INSERT INTO listings (listing_id, lister_id, lister_type, {", ".join(ANALYTICS_COLUMNS)})
{totals_select}
ON CONFLICT (listing_id) DO UPDATE SET
    lister_id = coalesce(excluded.lister_id, listings.lister_id),
    lister_type = coalesce(excluded.lister_type, listings.lister_type),
    {updates}
"""


def _listing_totals_sqlite() -> str:
    sums = ",\n           ".join(f"sum(a.{src}) AS {dst}" for dst, src in _TOTALS.items())
    leads_breakdown = ",\n               ".join(
        f"'{key}', coalesce(sum(b.count) FILTER (WHERE b.key = '{key}'), 0)"
        for key in LEADS_BREAKDOWN_KEYS
    )
    return f"""
SELECT t.listing_id AS listing_id, t.lister_id AS lister_id, t.lister_type AS lister_type,
       {", ".join(f"s.{c} AS {c}" for c in _TOTALS)},
       (SELECT count(*) FROM listing_seekers v
        WHERE v.listing_id = t.listing_id AND v.kind = '{Kind.VIEW}') AS unique_views,
       (SELECT count(*) FROM listing_seekers v
        WHERE v.listing_id = t.listing_id AND v.kind = '{Kind.LEAD}') AS unique_leads,
       CASE WHEN s.total_views > 0 THEN s.total_leads * 100.0 / s.total_views ELSE 0 END
           AS conversion_rate,
       (SELECT coalesce(json_group_object(key, n), '{{}}') FROM (
            SELECT b.key, sum(b.count) AS n FROM listing_analytics_breakdown b
            WHERE b.listing_id = t.listing_id AND b.dimension = 'share_platform'
            GROUP BY b.key ORDER BY b.key)) AS share_breakdown,
       (SELECT json_object(
               {leads_breakdown})
        FROM listing_analytics_breakdown b
        WHERE b.listing_id = t.listing_id AND b.dimension = 'lead_channel') AS leads_breakdown,
       :now AS analytics_updated_at
FROM lf_touched_listings t
JOIN (SELECT a.listing_id,
           {sums}
      FROM listing_analytics a
      WHERE a.listing_id IN (SELECT listing_id FROM lf_touched_listings)
      GROUP BY a.listing_id) s ON s.listing_id = t.listing_id
WHERE true"""


def _listing_totals_postgres() -> str:
    """PostgreSQL's reading of the same totals: set-based joins and JSONB builders."""
    sums = ",\n           ".join(f"sum(a.{src}) AS {dst}" for dst, src in _TOTALS.items())
    channel_sums = ",\n           ".join(
        f"sum(b.count) FILTER (WHERE b.key = '{key}') AS {key}" for key in LEADS_BREAKDOWN_KEYS
    )
    leads_breakdown = ",\n           ".join(
        f"'{key}', coalesce(lb.{key}, 0)" for key in LEADS_BREAKDOWN_KEYS
    )
    return f"""
SELECT t.listing_id AS listing_id, t.lister_id AS lister_id, t.lister_type AS lister_type,
       {", ".join(f"s.{c} AS {c}" for c in _TOTALS)},
       coalesce(u.unique_views, 0) AS unique_views,
       coalesce(u.unique_leads, 0) AS unique_leads,
       CASE WHEN s.total_views > 0
            THEN s.total_leads * CAST(100.0 AS double precision) / s.total_views
            ELSE 0 END AS conversion_rate,
       coalesce(sb.share_breakdown, '{{}}'::jsonb) AS share_breakdown,
       jsonb_build_object(
           {leads_breakdown}) AS leads_breakdown,
       CAST(:now AS timestamptz) AS analytics_updated_at
FROM lf_touched_listings t
JOIN (SELECT a.listing_id,
           {sums}
      FROM listing_analytics a JOIN lf_touched_listings x ON x.listing_id = a.listing_id
      GROUP BY a.listing_id) s ON s.listing_id = t.listing_id
LEFT JOIN (SELECT v.listing_id,
                  count(*) FILTER (WHERE v.kind = '{Kind.VIEW}') AS unique_views,
                  count(*) FILTER (WHERE v.kind = '{Kind.LEAD}') AS unique_leads
           FROM listing_seekers v JOIN lf_touched_listings x ON x.listing_id = v.listing_id
           GROUP BY v.listing_id) u ON u.listing_id = t.listing_id
LEFT JOIN (SELECT listing_id, jsonb_object_agg(key, n) AS share_breakdown
           FROM (SELECT b.listing_id, b.key, sum(b.count) AS n
                 FROM listing_analytics_breakdown b
                 JOIN lf_touched_listings x ON x.listing_id = b.listing_id
                 WHERE b.dimension = 'share_platform'
                 GROUP BY b.listing_id, b.key) shares
           GROUP BY listing_id) sb ON sb.listing_id = t.listing_id
LEFT JOIN (SELECT b.listing_id,
           {channel_sums}
           FROM listing_analytics_breakdown b
           JOIN lf_touched_listings x ON x.listing_id = b.listing_id
           WHERE b.dimension = 'lead_channel'
           GROUP BY b.listing_id) lb ON lb.listing_id = t.listing_id
WHERE true"""


_REFRESH_LISTINGS_SQLITE = _refresh_listings(_listing_totals_sqlite(), own_table=True)
_UPDATE_LISTINGS_SQLITE = _refresh_listings(_listing_totals_sqlite(), own_table=False)
_REFRESH_LISTINGS_POSTGRES = _refresh_listings(_listing_totals_postgres(), own_table=True)
_UPDATE_LISTINGS_POSTGRES = _refresh_listings(_listing_totals_postgres(), own_table=False)
