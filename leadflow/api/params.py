"""The query and path parameters the routes share: ids, ranges and time zones, series, paging."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from functools import cache
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, available_timezones

from fastapi import Depends, Path, Query
from pydantic import BeforeValidator

from leadflow.api.deps import invalid
from leadflow.transform.series import Granularity, bucket_count, ceil_hour

# -- ids -----------------------------------------------------------------------------------------

# Ids as the store keeps them: printable text of bounded length (a listing id is at most 128
# characters, a seeker id at most 256).
ID_PATTERN = r"^[^\x00-\x1f\x7f]+$"

ListingId = Annotated[
    str,
    Path(min_length=1, max_length=128, pattern=ID_PATTERN, examples=["listing-1"]),
]
SeekerId = Annotated[
    str,
    Path(min_length=1, max_length=256, pattern=ID_PATTERN, examples=["seeker-1"]),
]
ListerId = Annotated[
    str, Path(min_length=1, max_length=128, pattern=ID_PATTERN, examples=["lister-a"])
]

# -- times ---------------------------------------------------------------------------------------

EARLIEST_YEAR, LATEST_YEAR = 1970, 2200
_ISO_START = re.compile(r"^\d{4}-\d{2}-\d{2}")


def _iso_only(value: Any) -> Any:
    if isinstance(value, str) and not _ISO_START.match(value):
        raise ValueError(
            "expected an ISO 8601 date or date-time, such as 2025-05-01 or 2025-05-01T10:00:00Z"
        )
    return value


# A time in a query: an ISO 8601 date-time (with or without offset) or a date.
Moment = Annotated[datetime | date, BeforeValidator(_iso_only)]


def moment_at(value: datetime | date | None, name: str, zone: tzinfo) -> datetime | None:
    """A query's time as an aware datetime: a date is its midnight, and times without an
    offset are read in `zone`. Years the service cannot place on a calendar are refused."""
    if value is None:
        return None
    if not EARLIEST_YEAR <= value.year <= LATEST_YEAR:
        raise invalid(f"query.{name}", f"must be between {EARLIEST_YEAR} and {LATEST_YEAR}")
    if not isinstance(value, datetime):
        value = datetime.combine(value, time(0))
    return value.replace(tzinfo=zone) if value.tzinfo is None else value.astimezone(zone)


# -- a range of analytics, in a time zone --------------------------------------------------------

DEFAULT_RANGE = timedelta(days=30)
MAX_RANGE = timedelta(days=5 * 366)
MAX_BUCKETS = 10_000

From = Annotated[
    Moment | None,
    Query(
        alias="from",
        description="Start of the range (inclusive): an ISO 8601 date-time or date; one without "
        "offset is read in `tz`. Default: 30 days before `to`.",
        examples=["2025-05-01"],
    ),
]
To = Annotated[
    Moment | None,
    Query(
        description="End of the range (exclusive), read like `from`. Default: now.",
        examples=["2025-06-01"],
    ),
]
Tz = Annotated[
    str,
    Query(
        min_length=1,
        max_length=64,
        description="IANA time zone of the buckets and of times without offset.",
        examples=["Europe/Madrid"],
    ),
]
GranularityParam = Annotated[
    Granularity,
    Query(description="Bucket size: hour, day, week (from Monday) or month, in `tz`."),
]


@cache
def _zone_names() -> frozenset[str]:
    return frozenset(available_timezones()) | {"UTC"}


def time_zone(name: str) -> ZoneInfo:
    if name not in _zone_names():
        raise invalid(
            "query.tz",
            f"unknown time zone {name!r}: expected an IANA name such as 'UTC' or 'Europe/Madrid'",
        )
    return ZoneInfo(name)


@dataclass(frozen=True)
class TimeRange:
    """A request's range: the hours it covers (UTC, [start, end)) and how it was asked."""

    start: datetime
    end: datetime
    zone: ZoneInfo
    asked_from: datetime
    asked_to: datetime


def time_range(from_: datetime | date | None, to: datetime | date | None, tz: str) -> TimeRange:
    """The range of `from`, `to` and `tz`, checked: 30 days up to now by default, at most
    MAX_RANGE, and `from` before `to`."""
    zone = time_zone(tz)
    asked_to = moment_at(to, "to", zone) or datetime.now(UTC).astimezone(zone)
    asked_from = moment_at(from_, "from", zone) or asked_to - DEFAULT_RANGE
    if asked_from >= asked_to:
        raise invalid("query.from", "must be before `to`")
    if asked_to - asked_from > MAX_RANGE:
        raise invalid("query.to", f"the range may span at most {MAX_RANGE.days} days")
    return TimeRange(ceil_hour(asked_from), ceil_hour(asked_to), zone, asked_from, asked_to)


@dataclass(frozen=True)
class Series:
    """A time series request: its range, and the size of its buckets in the range's zone."""

    window: TimeRange
    granularity: Granularity

    @property
    def tz(self) -> str:
        return self.window.zone.key


def series_request(
    from_: From = None,
    to: To = None,
    granularity: GranularityParam = "day",
    tz: Tz = "UTC",
) -> Series:
    """The range and buckets of a time series endpoint, checked (at most MAX_BUCKETS)."""
    window = time_range(from_, to, tz)
    if bucket_count(window.start, window.end, granularity, window.zone) > MAX_BUCKETS:
        raise invalid(
            "query.granularity",
            f"the range holds more than {MAX_BUCKETS} {granularity} buckets: "
            "ask for a shorter range or a coarser granularity",
        )
    return Series(window, granularity)


# `from`, `to`, `granularity` and `tz` of a series endpoint.
SeriesQuery = Annotated[Series, Depends(series_request)]

# -- lists ---------------------------------------------------------------------------------------

Order = Annotated[Literal["desc", "asc"], Query(description="Descending (default) or ascending.")]


def page_size(items: str) -> Any:
    """`limit`: how many `items` a page holds."""
    return Query(ge=1, le=200, description=f"{items} per page.")


def page_offset(items: str) -> Any:
    """`offset`: how many `items` to skip (offset paging)."""
    return Query(ge=0, le=1_000_000, description=f"{items} to skip.")


def id_contains(items: str) -> Any:
    """`q`: a search in the ids of `items`."""
    return Query(min_length=1, max_length=128, description=f"Only {items} whose id contains this.")
