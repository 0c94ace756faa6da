"""Listing analytics over time buckets in a time zone: hourly rows rolled up, uniques kept exact.

The bucket logic lives here and only here. The store keeps one row per listing per UTC hour;
a bucket (hour, day, week from Monday, month) in an IANA time zone holds the UTC hours whose
*start* falls in it, once converted to that zone. In a zone with a half-hour offset (India,
UTC+05:30) a local day therefore holds the UTC hours starting from 18:00 the day before up to
17:00: the hour 18:00-19:00 UTC, which starts at 23:30 local time, counts in the earlier day.

Counts are summed over a bucket's hours. Unique counts are not sums: they are the number of
distinct seekers over the bucket, from the per-hour identities (`listing_hour_seekers`). Where
those are missing for some hour of a bucket, the bucket's unique count is unknown (None) rather
than wrong. Conversion is derived from the summed counts, never averaged over hours.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, Literal
from zoneinfo import ZoneInfo

from leadflow.events import LEAD_COUNTERS, Kind

Granularity = Literal["hour", "day", "week", "month"]
GRANULARITIES: tuple[Granularity, ...] = ("hour", "day", "week", "month")

HOUR = timedelta(hours=1)

# The additive counters of listing_analytics, in the table's order.
SUMMED_COUNTERS: tuple[str, ...] = (
    "total_views",
    "impressions",
    "shares",
    "saves",
    "total_leads",
    *LEAD_COUNTERS,
)
# Unique counter → the kind of seeker identity it counts.
UNIQUE_COUNTERS: dict[str, str] = {"unique_views": Kind.VIEW.value, "unique_leads": Kind.LEAD.value}


def hour_of(day: date, hour: int) -> datetime:
    """The UTC start of a listing_analytics hour."""
    return datetime.combine(day, time(hour), UTC)


def floor_hour(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def ceil_hour(moment: datetime) -> datetime:
    floor = floor_hour(moment)
    return floor if floor == moment else floor + HOUR


def hours_between(start: datetime, end: datetime) -> Iterator[datetime]:
    """The UTC hour starts in [start, end), both hour-aligned."""
    hour = start
    while hour < end:
        yield hour
        hour += HOUR


def local_midnight(day: date, zone: ZoneInfo) -> datetime:
    return datetime.combine(day, time(0), zone)


def bucket_start(hour: datetime, granularity: Granularity, zone: ZoneInfo) -> datetime:
    """The start, in `zone`, of the bucket holding the UTC hour starting at `hour`."""
    local = hour.astimezone(zone)
    if granularity == "hour":
        return local
    day = local.date()
    if granularity == "week":
        day -= timedelta(days=day.weekday())
    elif granularity == "month":
        day = day.replace(day=1)
    return local_midnight(day, zone)


def conversion_rate(total_leads: int, total_views: int) -> float:
    """Leads per 100 views (0 without views), from counts, as listing_analytics defines it."""
    return total_leads * 100.0 / total_views if total_views else 0.0


@dataclass
class Bucket:
    """The metrics of one time bucket (or of a whole range)."""

    start: datetime
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(SUMMED_COUNTERS, 0))
    unique_views: int | None = 0
    unique_leads: int | None = 0

    @property
    def conversion_rate(self) -> float:
        return conversion_rate(self.counts["total_leads"], self.counts["total_views"])

    def as_dict(self) -> dict[str, Any]:
        return {
            "start": self.start,
            **self.counts,
            "unique_views": self.unique_views,
            "unique_leads": self.unique_leads,
            "conversion_rate": round(self.conversion_rate, 4),
        }


@dataclass
class _Uniques:
    """Distinct seekers of a bucket, and whether every hour's identities were there."""

    seekers: dict[str, set[str]] = field(
        default_factory=lambda: {kind: set() for kind in UNIQUE_COUNTERS.values()}
    )
    hourly: dict[str, int] = field(default_factory=lambda: dict.fromkeys(UNIQUE_COUNTERS, 0))
    identities: dict[str, int] = field(default_factory=lambda: dict.fromkeys(UNIQUE_COUNTERS, 0))

    def result(self, counter: str) -> int | None:
        # Every hour's distinct seekers are present iff the rows match the hourly unique counts.
        if self.identities[counter] != self.hourly[counter]:
            return None
        return len(self.seekers[UNIQUE_COUNTERS[counter]])


def roll_up(
    hours: Iterable[Any],
    seekers: Iterable[tuple[date, int, str, str]] | None,
    start: datetime,
    end: datetime,
    granularity: Granularity,
    zone: ZoneInfo,
) -> tuple[list[Bucket], Bucket]:
    """Buckets covering the UTC hours [start, end) (every bucket, empty ones too) and the total.

    `hours` are listing_analytics rows of one listing (attributes date, hour and the counters);
    `seekers` are its (date, hour, kind, seeker_id) identities, or None when the store has none.
    """
    starts: dict[datetime, Bucket] = {}
    for hour in hours_between(start, end):
        key = bucket_start(hour, granularity, zone)
        if key not in starts:
            starts[key] = Bucket(key)
    total = Bucket(start.astimezone(zone))
    uniques: dict[datetime, _Uniques] = {key: _Uniques() for key in starts}
    total_uniques = _Uniques()
    bucket_of: dict[tuple[date, int], datetime] = {}

    for row in hours:
        key = bucket_start(hour_of(row.date, row.hour), granularity, zone)
        bucket_of[(row.date, row.hour)] = key
        bucket = starts.get(key)
        if bucket is None:
            continue
        for counter in SUMMED_COUNTERS:
            value = int(getattr(row, counter) or 0)
            bucket.counts[counter] += value
            total.counts[counter] += value
        for counter in UNIQUE_COUNTERS:
            value = int(getattr(row, counter) or 0)
            uniques[key].hourly[counter] += value
            total_uniques.hourly[counter] += value
            if granularity == "hour":
                setattr(bucket, counter, value)

    by_kind = {kind: counter for counter, kind in UNIQUE_COUNTERS.items()}
    for day, hour_number, kind, seeker in seekers or ():
        unique_counter = by_kind.get(kind)
        key = bucket_of.get((day, hour_number)) or bucket_start(
            hour_of(day, hour_number), granularity, zone
        )
        if unique_counter is None or key not in uniques:
            continue
        for holder in (uniques[key], total_uniques):
            holder.seekers[kind].add(seeker)
            holder.identities[unique_counter] += 1

    if granularity != "hour":
        for key, bucket in starts.items():
            for counter in UNIQUE_COUNTERS:
                setattr(
                    bucket, counter, uniques[key].result(counter) if seekers is not None else None
                )
    for counter in UNIQUE_COUNTERS:
        setattr(total, counter, total_uniques.result(counter) if seekers is not None else None)
    if seekers is None and start + HOUR == end:
        # A one-hour range: the hourly unique count is the exact one.
        for counter in UNIQUE_COUNTERS:
            setattr(total, counter, total_uniques.hourly[counter])
    return list(starts.values()), total


def bucket_count(start: datetime, end: datetime, granularity: Granularity, zone: ZoneInfo) -> int:
    """How many buckets [start, end) spans (to refuse absurd requests before reading)."""
    if granularity == "hour":
        return int((end - start) / HOUR)
    return len({bucket_start(h, granularity, zone) for h in hours_between(start, end)})


def summed(rows: Sequence[Any]) -> dict[str, int]:
    """The summed counters of some listing_analytics rows."""
    return {c: sum(int(getattr(r, c) or 0) for r in rows) for c in SUMMED_COUNTERS}
