"""Bulk writes of one slice of a run, inside the caller's transaction.

`SliceWriter(conn, now)` gives the writer of the connection's store: SQLite's `executemany` in
key order, or PostgreSQL's COPY into temporary staging tables and one set-based statement each.
"""

from __future__ import annotations

import io
import itertools
from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
from sqlalchemy import Table, inspect, text
from sqlalchemy.dialects import sqlite
from sqlalchemy.engine import Connection

from leadflow.events import LEAD_COUNTERS, Kind
from leadflow.store.schema import (
    HOURLY_COUNTERS,
    LEADS_BREAKDOWN_KEYS,
    lead_events,
    leads,
    listing_analytics,
    listing_analytics_breakdown,
    listing_seekers,
)
from leadflow.store.schema import listings as listings_table

BATCH_ROWS = 50_000
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


class SliceWriter:
    """Writes one slice's rows through the DBAPI connection under a SQLAlchemy transaction.

    The statements are built with SQLAlchemy Core for the connection's dialect; rows go through
    `executemany` in key order, which is SQLite's fastest path.
    """

    def __new__(cls, conn: Connection, now: datetime) -> SliceWriter:
        if cls is SliceWriter and conn.dialect.name == "postgresql":
            cls = PostgresSliceWriter
        return super().__new__(cls)

    def __init__(self, conn: Connection, now: datetime) -> None:
        self.conn = conn
        self.dbapi: Any = conn.connection.driver_connection
        self.dialect = conn.dialect
        self.now = now
        self.now_text = now.strftime(TIMESTAMP_TEXT + ".%f")
        self._temp_ready = False
        self._owns_listings: bool | None = None

    # -- helpers -------------------------------------------------------------------------------

    def _executemany(self, sql: str, rows: Iterator[tuple[Any, ...]]) -> None:
        cursor = self.dbapi.cursor()
        try:
            while chunk := list(itertools.islice(rows, BATCH_ROWS)):
                cursor.executemany(sql, chunk)
        finally:
            cursor.close()

    def _insert_sql(
        self,
        table: Table,
        columns: Sequence[str],
        upsert_keys: Sequence[str] = (),
        ignore: bool = False,
    ) -> str:
        stmt: Any
        if self.dialect.name == "sqlite":
            stmt = sqlite.insert(table)
        else:
            from sqlalchemy.dialects import postgresql

            stmt = postgresql.insert(table)
        if upsert_keys:
            stmt = stmt.on_conflict_do_update(
                index_elements=list(upsert_keys),
                set_={c: stmt.excluded[c] for c in columns if c not in upsert_keys},
            )
        elif ignore:
            stmt = stmt.on_conflict_do_nothing()
        compiled = stmt.values({c: None for c in columns}).compile(dialect=self.dialect)
        assert list(compiled.positiontup or []) == list(columns), compiled.positiontup
        return str(compiled)

    def _prepare_temp(self) -> None:
        if self._temp_ready:
            return
        self.conn.exec_driver_sql(
            "CREATE TEMP TABLE IF NOT EXISTS lf_touched_hours "
            "(listing_id TEXT, date TEXT, hour INTEGER, PRIMARY KEY (listing_id, date, hour))"
        )
        self.conn.exec_driver_sql(
            "CREATE TEMP TABLE IF NOT EXISTS lf_touched_listings "
            "(listing_id TEXT PRIMARY KEY, lister_id TEXT, lister_type TEXT)"
        )
        self.conn.exec_driver_sql("DELETE FROM lf_touched_hours")
        self.conn.exec_driver_sql("DELETE FROM lf_touched_listings")
        self._temp_ready = True

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
        ids = pa.array(range(first_id, first_id + records.num_rows), pa.int64())
        records = records.append_column("id", ids)
        tracker = f'[{{"status":"new","at":"{self.now.strftime("%Y-%m-%dT%H:%M:%S.%fZ")}","by":"leadflow"}}]'
        columns = [
            "id",
            "listing_id",
            "seeker_id",
            "lister_id",
            "lister_type",
            "lead_actions",
            "total_actions",
            "lead_score",
            "first_action_date",
            "last_action_date",
            "last_action_type",
        ]
        extra = ["status", "status_tracker", "notes", "run_id", "created_at", "updated_at"]
        sql = self._insert_sql(leads, [*columns, *extra])
        constants = ("new", tracker, "[]", run_id, self.now_text, self.now_text)
        self._executemany(sql, (row + constants for row in arrow_rows(records, columns)))
        # Map every action's uuid to its record through (listing_id, seeker_id).
        key_to_id = {
            (listing, seeker): lead_id
            for listing, seeker, lead_id in zip(
                records.column("listing_id").to_pylist(),
                records.column("seeker_id").to_pylist(),
                ids.to_pylist(),
                strict=True,
            )
        }
        event_rows = (
            (uuid, key_to_id[(listing, seeker)])
            for uuid, listing, seeker in arrow_rows(actions, ["uuid", "listing_id", "seeker_id"])
        )
        self._executemany(self._insert_sql(lead_events, ["event_uuid", "lead_id"]), event_rows)
        return int(records.num_rows)

    def upsert_analytics(self, rows: pa.Table) -> int:
        """Replace the listing_analytics rows of these (listing, hour)s by the recomputed ones."""
        columns = ["listing_id", "date", "hour", *HOURLY_COUNTERS, "conversion_rate"]
        sql = self._insert_sql(
            listing_analytics, [*columns, "updated_at"], upsert_keys=["listing_id", "date", "hour"]
        )
        now = (self.now_text,)
        self._executemany(sql, (row + now for row in arrow_rows(rows, columns)))
        return int(rows.num_rows)

    def replace_breakdown(self, touched: pa.Table, rows: pa.Table) -> None:
        """Replace the per-hour breakdown rows of the touched (listing, hour)s."""
        self._prepare_temp()
        keys = ["listing_id", "date", "hour"]
        self._executemany(
            "INSERT OR IGNORE INTO lf_touched_hours VALUES (?, ?, ?)", arrow_rows(touched, keys)
        )
        self.conn.exec_driver_sql(
            # A row-value IN probes the primary key per touched hour; EXISTS would scan the table.
            "DELETE FROM listing_analytics_breakdown WHERE (listing_id, date, hour) IN "
            "(SELECT listing_id, date, hour FROM lf_touched_hours)"
        )
        columns = ["listing_id", "date", "hour", "dimension", "key", "count"]
        self._executemany(
            self._insert_sql(listing_analytics_breakdown, columns), arrow_rows(rows, columns)
        )

    def add_seekers(self, rows: pa.Table) -> None:
        columns = ["listing_id", "kind", "seeker_id"]
        self._executemany(
            self._insert_sql(listing_seekers, columns, ignore=True), arrow_rows(rows, columns)
        )

    def refresh_listings(self, listers: pa.Table) -> int:
        """Recompute the cumulative totals of these listings from their hourly rows."""
        self._prepare_temp()
        self._executemany(
            "INSERT OR REPLACE INTO lf_touched_listings VALUES (?, ?, ?)",
            arrow_rows(listers, ["listing_id", "lister_id", "lister_type"]),
        )
        sql = _REFRESH_LISTINGS_SQLITE if self.owns_listings() else _UPDATE_LISTINGS_SQLITE
        self.conn.execute(text(sql), {"now": self.now_text})
        return int(listers.num_rows)

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

    def __init__(self, conn: Connection, now: datetime) -> None:
        super().__init__(conn, now)
        self._staged: dict[str, pa.Table] = {}

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
        tracker = f'[{{"status":"new","at":"{self.now.strftime("%Y-%m-%dT%H:%M:%S.%fZ")}","by":"leadflow"}}]'
        now = pa.scalar(self.now, pa.timestamp("us", tz="UTC"))
        records = records.append_column("id", pa.array(sorted(r[0] for r in ids), pa.int64()))
        for name, value in (
            ("status", pa.scalar("new")),
            ("status_tracker", pa.scalar(tracker)),
            ("notes", pa.scalar("[]")),
            ("run_id", pa.scalar(run_id, pa.int64())),
            ("created_at", now),
            ("updated_at", now),
        ):
            records = records.append_column(name, pa.repeat(value, count))
        self._copy("leads", [c.name for c in leads.c if c.name in records.column_names], records)
        # Every action's uuid, with its record's id through (listing_id, seeker_id).
        keys = records.select(["listing_id", "seeker_id", "id"])
        events = actions.select(["uuid", "listing_id", "seeker_id"]).join(
            keys, ["listing_id", "seeker_id"], join_type="inner"
        )
        if events.num_rows != actions.num_rows:
            raise AssertionError("a lead action without its lead record")
        events = events.rename_columns(
            [
                "event_uuid" if c == "uuid" else "lead_id" if c == "id" else c
                for c in events.column_names
            ]
        )
        self._copy("lead_events", ["event_uuid", "lead_id"], events)
        return int(count)

    def upsert_analytics(self, rows: pa.Table) -> int:
        columns = ["listing_id", "date", "hour", *HOURLY_COUNTERS, "conversion_rate"]
        self._stage("lf_stage_analytics", "listing_analytics", columns, rows)
        updates = ", ".join(f"{c} = excluded.{c}" for c in [*columns[3:], "updated_at"])
        self._execute(
            f"INSERT INTO listing_analytics ({', '.join(columns)}, updated_at) "
            f"SELECT {', '.join(columns)}, %s FROM lf_stage_analytics "
            f"ON CONFLICT (listing_id, date, hour) DO UPDATE SET {updates}",
            (self.now,),
        )
        return int(rows.num_rows)

    def replace_breakdown(self, touched: pa.Table, rows: pa.Table) -> None:
        keys = ["listing_id", "date", "hour"]
        if self._staged.get("lf_stage_analytics") is touched:
            hours = "lf_stage_analytics"  # the hours upsert_analytics staged are these
        else:
            self._stage("lf_touched_hours", "listing_analytics", keys, touched)
            hours = "lf_touched_hours"
        self._execute(
            f"DELETE FROM listing_analytics_breakdown b USING {hours} t "
            "WHERE b.listing_id = t.listing_id AND b.date = t.date AND b.hour = t.hour"
        )
        columns = ["listing_id", "date", "hour", "dimension", "key", "count"]
        self._copy("listing_analytics_breakdown", columns, rows)

    def add_seekers(self, rows: pa.Table) -> None:
        columns = ["listing_id", "kind", "seeker_id"]
        self._stage("lf_stage_seekers", "listing_seekers", columns, rows)
        self._execute(
            "INSERT INTO listing_seekers (listing_id, kind, seeker_id) "
            "SELECT listing_id, kind, seeker_id FROM lf_stage_seekers ON CONFLICT DO NOTHING"
        )

    def refresh_listings(self, listers: pa.Table) -> int:
        self._execute(
            "CREATE TEMP TABLE IF NOT EXISTS lf_touched_listings "
            "(listing_id text PRIMARY KEY, lister_id text, lister_type text) ON COMMIT DROP"
        )
        self._execute("TRUNCATE lf_touched_listings")
        self._copy("lf_touched_listings", ["listing_id", "lister_id", "lister_type"], listers)
        self._execute("ANALYZE lf_touched_listings")
        sql = _REFRESH_LISTINGS_POSTGRES if self.owns_listings() else _UPDATE_LISTINGS_POSTGRES
        self.conn.execute(text(sql), {"now": self.now})
        return int(listers.num_rows)


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
