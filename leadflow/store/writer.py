"""Bulk writes of one slice of a run, inside the caller's transaction."""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
from sqlalchemy import Table, text
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

    def __init__(self, conn: Connection, now: datetime) -> None:
        self.conn = conn
        self.dbapi: Any = conn.connection.driver_connection
        self.dialect = conn.dialect
        self.now = now
        self.now_text = now.strftime(TIMESTAMP_TEXT + ".%f")
        self._temp_ready = False

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
            "DELETE FROM listing_analytics_breakdown WHERE EXISTS (SELECT 1 FROM lf_touched_hours t "
            "WHERE t.listing_id = listing_analytics_breakdown.listing_id "
            "AND t.date = listing_analytics_breakdown.date AND t.hour = listing_analytics_breakdown.hour)"
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
        self.conn.execute(text(_REFRESH_LISTINGS_SQLITE), {"now": self.now_text})
        return int(listers.num_rows)


# listings column ← sum over listing_analytics column
_TOTALS = {
    "total_views": "total_views",
    "total_impressions": "impressions",
    "total_shares": "shares",
    "total_saves": "saves",
    "total_leads": "total_leads",
    **{counter: counter for counter in LEAD_COUNTERS},
}


def _refresh_listings_sqlite() -> str:
    sums = ",\n           ".join(f"sum(a.{src}) AS {dst}" for dst, src in _TOTALS.items())
    totals = ", ".join(_TOTALS)
    leads_breakdown = ",\n               ".join(
        f"'{key}', coalesce(sum(b.count) FILTER (WHERE b.key = '{key}'), 0)"
        for key in LEADS_BREAKDOWN_KEYS
    )
    derived = (
        *_TOTALS,
        "unique_views",
        "unique_leads",
        "conversion_rate",
        "share_breakdown",
        "leads_breakdown",
        "analytics_updated_at",
    )
    updates = ",\n    ".join(f"{c} = excluded.{c}" for c in derived)
    return f"""
INSERT INTO listings (listing_id, lister_id, lister_type, {totals}, unique_views, unique_leads,
                      conversion_rate, share_breakdown, leads_breakdown, analytics_updated_at)
SELECT t.listing_id, t.lister_id, t.lister_type, {", ".join("s." + c for c in _TOTALS)},
       (SELECT count(*) FROM listing_seekers v
        WHERE v.listing_id = t.listing_id AND v.kind = '{Kind.VIEW}'),
       (SELECT count(*) FROM listing_seekers v
        WHERE v.listing_id = t.listing_id AND v.kind = '{Kind.LEAD}'),
       CASE WHEN s.total_views > 0 THEN s.total_leads * 100.0 / s.total_views ELSE 0 END,
       (SELECT coalesce(json_group_object(key, n), '{{}}') FROM (
            SELECT b.key, sum(b.count) AS n FROM listing_analytics_breakdown b
            WHERE b.listing_id = t.listing_id AND b.dimension = 'share_platform'
            GROUP BY b.key ORDER BY b.key)),
       (SELECT json_object(
               {leads_breakdown})
        FROM listing_analytics_breakdown b
        WHERE b.listing_id = t.listing_id AND b.dimension = 'lead_channel'),
       :now
FROM lf_touched_listings t
JOIN (SELECT a.listing_id,
           {sums}
      FROM listing_analytics a
      WHERE a.listing_id IN (SELECT listing_id FROM lf_touched_listings)
      GROUP BY a.listing_id) s ON s.listing_id = t.listing_id
WHERE true
ON CONFLICT (listing_id) DO UPDATE SET
    lister_id = coalesce(excluded.lister_id, listings.lister_id),
    lister_type = coalesce(excluded.lister_type, listings.lister_type),
    {updates}
"""


_REFRESH_LISTINGS_SQLITE = _refresh_listings_sqlite()
