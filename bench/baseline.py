"""A deliberately plain, per-event Python implementation of leadflow's tables: the benchmark baseline and the tests' oracle.

It reads export files one event at a time, classifies each event by the rules of
docs/events.md (checks in the table's order, the first failing one counted), and aggregates
with plain dicts and sets. It shares nothing with leadflow but the taxonomy data
(`leadflow.events`) and the table definitions (`leadflow.store.schema`), so that agreement
between the two means something. It computes the single-run view over a whole set of files.

    python -m bench.baseline PATH... --database sqlite:///out.db [--json]

    tables = compute([Path("export/")])      # in memory
    canonical(tables) == canonical_from_db("sqlite:///leadflow.db")

Interpretations, where docs/events.md leaves room:

- *Absent* means a missing key, JSON null or the empty string, for `uuid`, `event`,
  `distinct_id` and every property. So an empty `message_type` is a direct message, an empty
  `lead_type` a website lead, an empty `platform` is "unknown", an empty `appointment_type` is
  not kept, and an empty `lister_id`/`lister_type` does not count as carrying one.
- `uuid` must be a string or an integer (its decimal string); anything else is
  `missing_uuid`. uuids are compared exactly (case-sensitive).
- `ignored_event` is checked before `bad_properties`, so it reads properties that may not
  parse: unparseable properties have no `listing_id` (a `$pageview` is ignored) and no
  `action` (a save goes on to `bad_properties`). Missing or null `properties` are no
  properties (an empty object, so a listing event is then `missing_listing_id`); any other
  value that is not an object or a JSON string holding one (including "") is `bad_properties`.
- `wrong_type`: ids (`listing_id`, `seeker_id`, `lister_id`) must be strings or integers, so
  floats are wrong too, not only objects, lists and booleans. `distinct_id` is not a property
  and not in that list: one that is not a string or an integer is unusable, i.e. absent (so
  `missing_seeker` when there is no `seeker_id`). `lister_type` must be a string
  when present; so must the property an event's kind uses: `platform` on shares, `lead_type` on
  unified leads, `message_type` on message leads, `appointment_type` on appointments.
  All `wrong_type` checks come before the `invalid_value` ones, as in the docs' table.
  A present `seeker_id` of a wrong type is `wrong_type`; it does not fall back to `distinct_id`.
- `invalid_value` applies only where the value picks the channel: `lead_type` on unified lead
  events, `message_type` on message leads (`lead_message`, or `lead` with `lead_type`=message).
  A view with `message_type`="sms" is accepted.
- `duplicate`: a uuid equal to an already *accepted* event's; a rejected event does not reserve
  its uuid, and the first accepted occurrence in file order wins, within a file the one with
  the earliest event time (then the first in row order).
- Timestamps: a string must be ISO-8601 in the extended calendar form
  `YYYY-MM-DD[(T| )HH:MM[:SS[.fraction]]][Z|±HH[[:]MM]]`, offsets up to 23:59 (date-only is
  midnight; no zone is UTC; fraction digits past the 6th are truncated; no surrounding spaces,
  no zone names, no basic `20250501T…` form); numbers are microseconds since the epoch (floats truncated toward
  zero, booleans rejected); Parquet timestamp columns of any unit become microseconds
  (nanoseconds floored), naive ones read as UTC. Times outside years 1 to 9999 are
  `bad_timestamp`.
- Blank lines (only ASCII whitespace) are skipped; a line that is not UTF-8 JSON is
  `malformed_json`. Integer ids of any size are accepted (as decimal strings).
- Files are read in order of their resolved absolute path string; a file named twice is read
  once. A folder contributes its files with a known extension, recursively, except hidden ones
  (a name starting with "."); a glob's matches are taken as named (a matched folder is walked).
- "Latest" (listing and lead lister attribution) orders by (timestamp, uuid): of two events at
  the same time the greater uuid is the later. `last_action_type` is the `action_type`
  (phone/message/appointment/website) of the last action in that order.
- `listings` has a row for every listing with an accepted event of any kind; `share_breakdown`
  is `{}` without shares; `rejects` holds only reasons that occurred.
"""

from __future__ import annotations

import argparse
import glob
import gzip
import io
import json
import math
import re
import sys
import time
import uuid as uuidlib
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import brotli
import pyarrow as pa
import pyarrow.parquet as pq
import zstandard
from sqlalchemy import create_engine, delete

from bench.canonical import (
    Canonical,
    analytics_tuple,
    canonical_from_db,
    format_timestamp,
    hour_seekers_tuple,
    lead_group_tuple,
    listing_tuple,
)
from leadflow.events import DEFAULT_TAXONOMY, LEAD_COUNTERS, Channel, Kind, RejectReason, Taxonomy
from leadflow.store import schema

__all__ = [
    "Tables",
    "canonical",
    "canonical_from_db",
    "compute",
    "expand_paths",
    "main",
    "write",
]

BATCH_SIZE = 10_000
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
JSON_SUFFIXES = (".jsonl", ".json", ".ndjson")
JSON_COMPRESSIONS = ("", ".gz", ".zst", ".br")
# What PostHog adds to a Parquet file's name for the compression inside it.
PARQUET_COMPRESSIONS = ("", ".gz", ".br", ".zst", ".lz4", ".sz")
EVENT_COLUMNS = ("uuid", "event", "distinct_id", "timestamp", "properties")
# A JSONL line longer than this (16 MiB) is malformed, not an event (docs/events.md).
MAX_LINE_BYTES = 16 * 1024 * 1024
TIMESTAMP_SCALE = {"s": 1_000_000, "ms": 1_000, "us": 1}
UNKNOWN_PLATFORM = "unknown"

# The ISO-8601 spellings accepted for an event time (see the module docstring).
ISO_TIMESTAMP = re.compile(
    r"\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?"
    r"(?:Z|[+-](?:[01]\d|2[0-3])(?::?[0-5]\d)?)?)?",
    re.ASCII,
)

# A JSONL line that is not a JSON object.
MALFORMED = object()


@dataclass
class Tables:
    """leadflow's output tables as plain dicts, with the run's read/accept/reject counts.

    `hour_seekers` holds, per hour with a viewer or a lead, its sorted distinct viewers and lead
    seekers (listing_hour_seekers)."""

    analytics: dict[tuple[str, str, int], dict[str, Any]] = field(default_factory=dict)
    hour_seekers: dict[tuple[str, str, int], tuple[list[str], list[str]]] = field(
        default_factory=dict
    )
    listings: dict[str, dict[str, Any]] = field(default_factory=dict)
    leads: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    accepted: int = 0
    rejects: dict[str, int] = field(default_factory=dict)
    read: int = 0


@dataclass(slots=True)
class Event:
    """An accepted event, reduced to what the tables need."""

    uuid: str
    kind: Kind
    listing_id: str
    seeker_id: str
    timestamp: datetime
    lister_id: str | None
    lister_type: str | None
    channel: Channel | None
    appointment_type: str | None
    platform: str | None


# ---------------------------------------------------------------------------------------------
# Finding and reading files


def file_format(path: Path) -> str | None:
    """'parquet', 'jsonl', or None for a file name leadflow does not read."""
    name = path.name.lower()
    if name.endswith("manifest.json"):  # PostHog's list of an export's files
        return None
    if any(name.endswith(".parquet" + compression) for compression in PARQUET_COMPRESSIONS):
        return "parquet"
    for suffix in JSON_SUFFIXES:
        for compression in JSON_COMPRESSIONS:
            if name.endswith(suffix + compression):
                return "jsonl"
    return None


def expand_paths(specs: Iterable[str | Path]) -> list[Path]:
    """Files, folders (recursively) and globs → the export files, in sorted path order."""
    found: dict[str, Path] = {}
    for spec in specs:
        text = str(spec)
        path = Path(text)
        if path.is_dir():
            candidates = _files_under(path)
        elif path.is_file():
            if file_format(path) is None:
                raise ValueError(
                    f"{path}: not an export file; expected .parquet or .jsonl/.json/.ndjson "
                    "(optionally .gz, .zst or .br)"
                )
            candidates = [path]
        elif glob.has_magic(text):
            candidates = []
            for match in sorted(glob.glob(text, recursive=True)):
                m = Path(match)
                if m.is_dir():
                    candidates.extend(_files_under(m))
                elif file_format(m) is not None:
                    candidates.append(m)
            if not candidates:
                raise FileNotFoundError(f"{text}: the glob matches no export file")
        else:
            raise FileNotFoundError(f"{text}: no such file, folder or glob")
        for candidate in candidates:
            resolved = candidate.resolve()
            found[str(resolved)] = resolved
    return [found[key] for key in sorted(found)]


def _files_under(folder: Path) -> list[Path]:
    return [
        p
        for p in folder.rglob("*")
        if p.is_file() and not p.name.startswith(".") and file_format(p) is not None
    ]


def read_batches(path: Path) -> Iterator[list[Any]]:
    """The raw events of one file in row order, in lists: dicts, or MALFORMED for a bad line."""
    kind = file_format(path)
    if kind == "parquet":
        yield from _parquet_batches(path)
    elif kind == "jsonl":
        yield from _jsonl_batches(path)
    else:
        raise ValueError(f"{path}: not an export file")


def _open_binary(path: Path) -> io.BufferedIOBase:
    name = path.name.lower()
    if name.endswith(".br"):
        return io.BytesIO(brotli.decompress(path.read_bytes()))
    if name.endswith(".gz"):
        return gzip.open(path, "rb")
    if name.endswith(".zst"):
        reader = zstandard.ZstdDecompressor().stream_reader(
            open(path, "rb"),  # noqa: SIM115 - closed by the reader (closefd)
            read_across_frames=True,
            closefd=True,
        )
        return io.BufferedReader(reader)
    return open(path, "rb")


def _lines(stream: Iterable[bytes]) -> Iterator[bytes]:
    """A file's lines as text reading splits them (universal newlines): a line ends at a line
    feed, a carriage return and line feed, or a lone carriage return (old Mac line ends)."""
    for chunk in stream:
        yield from chunk.splitlines()


def _jsonl_batches(path: Path) -> Iterator[list[Any]]:
    batch: list[Any] = []
    with _open_binary(path) as stream:
        for line in _lines(stream):
            if not line.strip():
                continue
            try:
                if len(line) > MAX_LINE_BYTES:
                    raise ValueError("a line longer than leadflow reads as an event")
                record = _json_text(line)
            except ValueError:  # also UnicodeDecodeError and UnicodeEncodeError
                record = MALFORMED
            if not isinstance(record, dict):
                record = MALFORMED
            batch.append(record)
            if len(batch) >= BATCH_SIZE:
                yield batch
                batch = []
    if batch:
        yield batch


def _parquet_batches(path: Path) -> Iterator[list[Any]]:
    parquet = pq.ParquetFile(path)
    names = [name for name in EVENT_COLUMNS if name in parquet.schema_arrow.names]
    if not names:
        # No column we read: every row is an event without uuid.
        rows = parquet.metadata.num_rows
        for start in range(0, rows, BATCH_SIZE):
            yield [{} for _ in range(min(BATCH_SIZE, rows - start))]
        return
    for batch in parquet.iter_batches(batch_size=BATCH_SIZE, columns=names):
        keys = batch.schema.names
        columns = [_python_values(batch.column(i)) for i in range(batch.num_columns)]
        yield [dict(zip(keys, values, strict=True)) for values in zip(*columns, strict=True)]


def _python_values(column: pa.Array) -> list[Any]:
    kind = column.type
    if pa.types.is_timestamp(kind):
        ints = column.cast(pa.int64()).to_pylist()
        if kind.unit == "ns":
            return [None if v is None else v // 1000 for v in ints]
        scale = TIMESTAMP_SCALE[kind.unit]
        return [None if v is None else v * scale for v in ints]
    if pa.types.is_map(kind):
        return [None if v is None else dict(v) for v in column.to_pylist()]
    if pa.types.is_fixed_size_binary(kind) and kind.byte_width == 16:
        return [None if v is None else str(uuidlib.UUID(bytes=v)) for v in column.to_pylist()]
    if pa.types.is_binary(kind) or pa.types.is_large_binary(kind):
        return [_decoded(v) for v in column.to_pylist()]
    return column.to_pylist()  # type: ignore[no-any-return]


def _decoded(value: bytes | None) -> Any:
    if value is None:
        return None
    try:
        return value.decode()
    except UnicodeDecodeError:
        return value


# ---------------------------------------------------------------------------------------------
# Classifying and aggregating, one event at a time


def _wrong_string(value: Any) -> bool:
    """A type property that is present but not a string."""
    return value is not None and not isinstance(value, str)


def _absent(value: Any) -> bool:
    return value is None or (isinstance(value, str) and value == "")


def _id_text(value: Any) -> str | None:
    """An id as text, or None when its type is wrong (ids are strings or integers)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, int):
        return str(value)
    return None


def _uuid_text(value: Any) -> str | None:
    if isinstance(value, str):
        return value or None
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return str(value)
    if isinstance(value, uuidlib.UUID):
        return str(value)
    return None


def _properties(value: Any) -> dict[str, Any] | None:
    if isinstance(value, dict):
        return value
    if isinstance(value, str | bytes):
        try:
            parsed = _json_text(value)
        except ValueError:
            return None
        return parsed if isinstance(parsed, dict) else None
    return None


def _json_text(text: str | bytes) -> Any:
    """JSON text as json.loads reads it, except that a string escaping half a surrogate pair
    (`"\\ud800"` alone) is not text and raises ValueError, as JSON readers that keep strings
    as UTF-8 refuse it."""
    parsed = json.loads(text)
    if (b"\\u" in text) if isinstance(text, bytes) else ("\\u" in text):
        json.dumps(parsed, ensure_ascii=False).encode()  # UnicodeEncodeError is a ValueError
    return parsed


def parse_timestamp(value: Any) -> datetime | None:
    """An event time as an aware UTC datetime, or None when it is missing or unparseable."""
    try:
        if value is None or isinstance(value, bool):
            return None
        if isinstance(value, int):
            return EPOCH + timedelta(microseconds=value)
        if isinstance(value, float):
            return EPOCH + timedelta(microseconds=int(value)) if math.isfinite(value) else None
        if isinstance(value, str):
            if ISO_TIMESTAMP.fullmatch(value) is None:
                return None
            value = datetime.fromisoformat(value)
        if isinstance(value, datetime):
            if value.tzinfo is None:
                return value.replace(tzinfo=UTC)
            return value.astimezone(UTC)
        if isinstance(value, date):
            return datetime(value.year, value.month, value.day, tzinfo=UTC)
    except (ValueError, OverflowError):
        return None
    return None


class Baseline:
    """Accumulates the tables from events fed one at a time through `add`."""

    def __init__(self, taxonomy: Taxonomy = DEFAULT_TAXONOMY) -> None:
        t = taxonomy
        self.taxonomy = t
        # Later assignments win, so a name in several lists takes the first kind of
        # lead, view, impression, share, save.
        self.kinds: dict[str, Kind] = {}
        for names, kind in (
            (t.save_events, Kind.SAVE),
            (t.share_events, Kind.SHARE),
            (t.impression_events, Kind.IMPRESSION),
            (t.view_events + t.pageview_events, Kind.VIEW),
            ((*t.lead_events, *t.unified_lead_events), Kind.LEAD),
        ):
            for name in names:
                self.kinds[name] = kind
        self.pageview_events = set(t.pageview_events)
        self.unified_lead_events = set(t.unified_lead_events)
        self.lead_types = set(t.lead_types)
        self.message_types = {c.message_type for c in t.channels if c.message_type}
        self.channels: dict[tuple[str, str | None], Channel] = {
            (c.action_type, c.message_type): c for c in t.channels
        }

        self.read = 0
        self.accepted = 0
        self.rejects: dict[str, int] = {}
        self.accepted_uuids: set[str] = set()
        self.hours: dict[tuple[str, str, int], dict[str, int]] = {}
        self.hour_viewers: dict[tuple[str, str, int], set[str]] = {}
        self.hour_leaders: dict[tuple[str, str, int], set[str]] = {}
        self.listings: dict[str, dict[str, int]] = {}
        self.listing_viewers: dict[str, set[str]] = {}
        self.listing_leaders: dict[str, set[str]] = {}
        self.share_breakdowns: dict[str, dict[str, int]] = {}
        self.lead_breakdowns: dict[str, dict[str, int]] = {}
        # (listing or lead group, field) → ((timestamp, uuid), value) of the latest carrier.
        self.listing_lister: dict[tuple[str, str], tuple[tuple[datetime, str], str]] = {}
        self.group_lister: dict[tuple[str, str, str], tuple[tuple[datetime, str], str]] = {}
        self.group_actions: dict[
            tuple[str, str], list[tuple[datetime, str, dict[str, Any], int]]
        ] = {}

    def add(self, raw: Any) -> None:
        self.read += 1
        result = self.classify(raw)
        if isinstance(result, Event):
            self.accepted += 1
            self.accumulate(result)
        else:
            self.rejects[result.value] = self.rejects.get(result.value, 0) + 1

    def classify(self, raw: Any) -> Event | RejectReason:
        """The accepted event, or the first reason (in docs/events.md's order) it is rejected."""
        t = self.taxonomy
        if raw is MALFORMED or not isinstance(raw, dict):
            return RejectReason.MALFORMED_JSON

        event_uuid = _uuid_text(raw.get("uuid"))
        if event_uuid is None:
            return RejectReason.MISSING_UUID

        name = raw.get("event")
        if not isinstance(name, str) or name == "":
            return RejectReason.MISSING_EVENT

        kind = self.kinds.get(name)
        if kind is None:
            return RejectReason.IGNORED_EVENT
        raw_properties = raw.get("properties")
        properties = {} if raw_properties is None else _properties(raw_properties)
        readable = properties if properties is not None else {}
        if name in self.pageview_events and not _id_text(readable.get(t.listing_id)):
            return RejectReason.IGNORED_EVENT
        if kind is Kind.SAVE and readable.get(t.action) == t.save_remove_action:
            return RejectReason.IGNORED_EVENT

        if properties is None:
            return RejectReason.BAD_PROPERTIES

        timestamp = parse_timestamp(raw.get("timestamp"))
        if timestamp is None:
            return RejectReason.BAD_TIMESTAMP

        listing_value = properties.get(t.listing_id)
        if _absent(listing_value):
            return RejectReason.MISSING_LISTING_ID

        seeker_value = properties.get(t.seeker_id)
        if _absent(seeker_value):
            seeker_value = _id_text(raw.get("distinct_id"))
        if _absent(seeker_value):
            return RejectReason.MISSING_SEEKER

        listing_id = _id_text(listing_value)
        seeker_id = _id_text(seeker_value)
        lister_value = properties.get(t.lister_id)
        lister_id = None if _absent(lister_value) else _id_text(lister_value)
        if (
            listing_id is None
            or seeker_id is None
            or (lister_id is None and not _absent(lister_value))
        ):
            return RejectReason.WRONG_TYPE
        # Type properties are checked where the event's kind uses them (docs/events.md).
        if _wrong_string(properties.get(t.lister_type)):
            return RejectReason.WRONG_TYPE
        if kind is Kind.SHARE and _wrong_string(properties.get(t.platform)):
            return RejectReason.WRONG_TYPE
        channel = None
        if kind is Kind.LEAD:
            if name in self.unified_lead_events:
                lead_value = properties.get(t.lead_type)
                if _wrong_string(lead_value):
                    return RejectReason.WRONG_TYPE
                lead_type = lead_value or t.default_lead_type
            else:
                lead_type = t.lead_events[name]
            message_type = None
            if lead_type == "message":
                message_value = properties.get(t.message_type)
                if _wrong_string(message_value):
                    return RejectReason.WRONG_TYPE
                message_type = message_value or t.default_message_type
            if lead_type == "appointment" and _wrong_string(properties.get(t.appointment_type)):
                return RejectReason.WRONG_TYPE
            if lead_type not in self.lead_types:
                return RejectReason.INVALID_VALUE
            if lead_type == "message" and message_type not in self.message_types:
                return RejectReason.INVALID_VALUE
            channel = self.channels[(lead_type, message_type)]

        if event_uuid in self.accepted_uuids:
            return RejectReason.DUPLICATE
        self.accepted_uuids.add(event_uuid)

        return Event(
            uuid=event_uuid,
            kind=kind,
            listing_id=listing_id,
            seeker_id=seeker_id,
            timestamp=timestamp,
            lister_id=lister_id,
            lister_type=properties.get(t.lister_type) or None,
            channel=channel,
            appointment_type=properties.get(t.appointment_type) or None,
            platform=properties.get(t.platform) or None,
        )

    def accumulate(self, event: Event) -> None:
        listing_id = event.listing_id
        hour_key = (listing_id, event.timestamp.date().isoformat(), event.timestamp.hour)
        hour = self.hours.get(hour_key)
        if hour is None:
            hour = self.hours[hour_key] = {
                name: 0
                for name in ("total_views", "impressions", "shares", "saves", *LEAD_COUNTERS)
            }
            self.hour_viewers[hour_key] = set()
            self.hour_leaders[hour_key] = set()
        listing = self.listings.get(listing_id)
        if listing is None:
            listing = self.listings[listing_id] = {
                name: 0
                for name in (
                    "total_views",
                    "total_impressions",
                    "total_shares",
                    "total_saves",
                    *LEAD_COUNTERS,
                )
            }
            self.listing_viewers[listing_id] = set()
            self.listing_leaders[listing_id] = set()
            self.share_breakdowns[listing_id] = {}
            self.lead_breakdowns[listing_id] = {}

        rank = (event.timestamp, event.uuid)
        for prop, value in (("lister_id", event.lister_id), ("lister_type", event.lister_type)):
            if value is not None:
                latest = self.listing_lister.get((listing_id, prop))
                if latest is None or rank > latest[0]:
                    self.listing_lister[(listing_id, prop)] = (rank, value)

        if event.kind is Kind.VIEW:
            hour["total_views"] += 1
            listing["total_views"] += 1
            self.hour_viewers[hour_key].add(event.seeker_id)
            self.listing_viewers[listing_id].add(event.seeker_id)
        elif event.kind is Kind.IMPRESSION:
            hour["impressions"] += 1
            listing["total_impressions"] += 1
        elif event.kind is Kind.SHARE:
            hour["shares"] += 1
            listing["total_shares"] += 1
            shares = self.share_breakdowns[listing_id]
            platform = event.platform or UNKNOWN_PLATFORM
            shares[platform] = shares.get(platform, 0) + 1
        elif event.kind is Kind.SAVE:
            hour["saves"] += 1
            listing["total_saves"] += 1
        elif event.kind is Kind.LEAD:
            channel = event.channel
            assert channel is not None
            hour[channel.counter] += 1
            listing[channel.counter] += 1
            self.hour_leaders[hour_key].add(event.seeker_id)
            self.listing_leaders[listing_id].add(event.seeker_id)
            breakdown = self.lead_breakdowns[listing_id]
            breakdown[channel.name] = breakdown.get(channel.name, 0) + 1
            self._add_action(event, channel, rank)

    def _add_action(self, event: Event, channel: Channel, rank: tuple[datetime, str]) -> None:
        action: dict[str, Any] = {
            "event_uuid": event.uuid,
            "action_type": channel.action_type,
            "timestamp": format_timestamp(event.timestamp),
        }
        if channel.action_type == "message":
            action["message_type"] = channel.message_type
        if channel.action_type == "appointment" and event.appointment_type is not None:
            action["appointment_type"] = event.appointment_type
        group = (event.listing_id, event.seeker_id)
        self.group_actions.setdefault(group, []).append(
            (event.timestamp, event.uuid, action, channel.score)
        )
        for prop, value in (("lister_id", event.lister_id), ("lister_type", event.lister_type)):
            if value is not None:
                latest = self.group_lister.get((*group, prop))
                if latest is None or rank > latest[0]:
                    self.group_lister[(*group, prop)] = (rank, value)

    def tables(self) -> Tables:
        analytics: dict[tuple[str, str, int], dict[str, Any]] = {}
        for key, hour in self.hours.items():
            total_leads = sum(hour[name] for name in LEAD_COUNTERS)
            analytics[key] = {
                "total_views": hour["total_views"],
                "unique_views": len(self.hour_viewers[key]),
                "impressions": hour["impressions"],
                "shares": hour["shares"],
                "saves": hour["saves"],
                "total_leads": total_leads,
                **{name: hour[name] for name in LEAD_COUNTERS},
                "unique_leads": len(self.hour_leaders[key]),
                "conversion_rate": _conversion_rate(total_leads, hour["total_views"]),
            }

        listings: dict[str, dict[str, Any]] = {}
        for listing_id, totals in self.listings.items():
            total_leads = sum(totals[name] for name in LEAD_COUNTERS)
            lister_id = self.listing_lister.get((listing_id, "lister_id"))
            lister_type = self.listing_lister.get((listing_id, "lister_type"))
            breakdown = self.lead_breakdowns[listing_id]
            listings[listing_id] = {
                "lister_id": None if lister_id is None else lister_id[1],
                "lister_type": None if lister_type is None else lister_type[1],
                "total_views": totals["total_views"],
                "unique_views": len(self.listing_viewers[listing_id]),
                "total_impressions": totals["total_impressions"],
                "total_shares": totals["total_shares"],
                "total_saves": totals["total_saves"],
                "total_leads": total_leads,
                **{name: totals[name] for name in LEAD_COUNTERS},
                "unique_leads": len(self.listing_leaders[listing_id]),
                "conversion_rate": _conversion_rate(total_leads, totals["total_views"]),
                "share_breakdown": dict(self.share_breakdowns[listing_id]),
                "leads_breakdown": {
                    c.name: breakdown.get(c.name, 0) for c in self.taxonomy.channels
                },
            }

        leads: dict[tuple[str, str], dict[str, Any]] = {}
        for group, entries in self.group_actions.items():
            entries = sorted(entries, key=lambda e: (e[0], e[1]))
            lister_id = self.group_lister.get((*group, "lister_id"))
            lister_type = self.group_lister.get((*group, "lister_type"))
            leads[group] = {
                "listing_id": group[0],
                "seeker_id": group[1],
                "lister_id": None if lister_id is None else lister_id[1],
                "lister_type": None if lister_type is None else lister_type[1],
                "lead_actions": [e[2] for e in entries],
                "total_actions": len(entries),
                "lead_score": sum(e[3] for e in entries),
                "first_action_date": entries[0][0],
                "last_action_date": entries[-1][0],
                "last_action_type": entries[-1][2]["action_type"],
                "status": "new",
            }

        hour_seekers = {
            key: (sorted(self.hour_viewers[key]), sorted(self.hour_leaders[key]))
            for key in self.hours
            if self.hour_viewers[key] or self.hour_leaders[key]
        }
        return Tables(
            analytics=analytics,
            hour_seekers=hour_seekers,
            listings=listings,
            leads=leads,
            accepted=self.accepted,
            rejects=dict(self.rejects),
            read=self.read,
        )


def _conversion_rate(total_leads: int, total_views: int) -> float:
    return total_leads / total_views * 100 if total_views else 0.0


# ---------------------------------------------------------------------------------------------
# The API


def earliest_copies_first(raws: list[Any]) -> list[Any]:
    """A file's raw events, with the copies of each uuid in event-time order in the places the
    copies held: of a file's copies of an event, the earliest is the one counted."""
    places: dict[str, list[int]] = {}
    for i, raw in enumerate(raws):
        if isinstance(raw, dict) and (key := _uuid_text(raw.get("uuid"))):
            places.setdefault(key, []).append(i)
    ordered = list(raws)
    for at in places.values():
        if len(at) > 1:
            copies = sorted((raws[i] for i in at), key=_time_order)
            for i, raw in zip(at, copies, strict=True):
                ordered[i] = raw
    return ordered


def _time_order(raw: dict[str, Any]) -> tuple[bool, datetime]:
    timestamp = parse_timestamp(raw.get("timestamp"))
    return (timestamp is None, timestamp or EPOCH)


def compute_timed(
    paths: Iterable[str | Path], taxonomy: Taxonomy = DEFAULT_TAXONOMY
) -> tuple[Tables, float, float]:
    """The tables of all events in `paths`, with the seconds spent reading and computing."""
    baseline = Baseline(taxonomy)
    read_seconds = compute_seconds = 0.0
    for path in expand_paths(paths):
        started = time.perf_counter()
        raws = [raw for batch in read_batches(path) for raw in batch]
        read_seconds += time.perf_counter() - started
        started = time.perf_counter()
        for raw in earliest_copies_first(raws):
            baseline.add(raw)
        compute_seconds += time.perf_counter() - started
    started = time.perf_counter()
    tables = baseline.tables()
    compute_seconds += time.perf_counter() - started
    return tables, read_seconds, compute_seconds


def compute(paths: Iterable[str | Path], taxonomy: Taxonomy = DEFAULT_TAXONOMY) -> Tables:
    """The tables of all events in `paths` (files, folders or globs), as one run would make them."""
    return compute_timed(paths, taxonomy)[0]


def canonical(tables: Tables) -> Canonical:
    """The comparable form of `tables` (see bench.canonical for its shape)."""
    return {
        "listing_analytics": sorted(
            analytics_tuple(listing_id, day, hour, row)
            for (listing_id, day, hour), row in tables.analytics.items()
        ),
        "listing_hour_seekers": sorted(
            hour_seekers_tuple(listing_id, day, hour, viewers, lead_seekers)
            for (listing_id, day, hour), (viewers, lead_seekers) in tables.hour_seekers.items()
        ),
        "listings": sorted(
            (listing_tuple(listing_id, row) for listing_id, row in tables.listings.items()),
            key=lambda row: row[0],
        ),
        "lead_groups": sorted(
            (
                lead_group_tuple(
                    listing_id,
                    seeker_id,
                    lead["lead_score"],
                    (
                        (
                            a["event_uuid"],
                            a["action_type"],
                            a["timestamp"],
                            a.get("message_type"),
                            a.get("appointment_type"),
                        )
                        for a in lead["lead_actions"]
                    ),
                )
                for (listing_id, seeker_id), lead in tables.leads.items()
            ),
            key=lambda row: (row[0], row[1]),
        ),
    }


def write(tables: Tables, url: str, *, replace: bool = False, now: datetime | None = None) -> None:
    """Store `tables` in leadflow's listing_analytics, listings and leads, one row per statement.

    The tables are created when missing; `replace` first deletes their rows (otherwise they
    should be empty). Everything is one transaction.
    """
    now = now or datetime.now(UTC)
    engine = create_engine(url)
    try:
        schema.metadata.create_all(engine)
        with engine.begin() as conn:
            if replace:
                for table in (
                    schema.leads,
                    schema.listing_analytics,
                    schema.listing_hour_seekers,
                    schema.listings,
                ):
                    conn.execute(delete(table))
            for (listing_id, day, hour_of_day), row in sorted(tables.analytics.items()):
                conn.execute(
                    schema.listing_analytics.insert(),
                    {
                        "listing_id": listing_id,
                        "date": date.fromisoformat(day),
                        "hour": hour_of_day,
                        **row,
                        "updated_at": now,
                    },
                )
            for (listing_id, day, hour_of_day), (viewers, lead_seekers) in sorted(
                tables.hour_seekers.items()
            ):
                conn.execute(
                    schema.listing_hour_seekers.insert(),
                    {
                        "listing_id": listing_id,
                        "date": date.fromisoformat(day),
                        "hour": hour_of_day,
                        "viewers": viewers,
                        "lead_seekers": lead_seekers,
                    },
                )
            for listing_id, row in sorted(tables.listings.items()):
                conn.execute(
                    schema.listings.insert(),
                    {"listing_id": listing_id, **row, "analytics_updated_at": now},
                )
            at = format_timestamp(now)
            for _, lead in sorted(tables.leads.items()):
                conn.execute(
                    schema.leads.insert(),
                    {
                        **lead,
                        "status_tracker": [{"status": "new", "at": at, "by": "system"}],
                        "notes": [],
                        "run_id": None,
                        "created_at": now,
                        "updated_at": now,
                    },
                )
    finally:
        engine.dispose()


# ---------------------------------------------------------------------------------------------
# The command


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.baseline",
        description="Compute leadflow's tables the plain way (the benchmark baseline) and store them.",
    )
    parser.add_argument("paths", nargs="+", metavar="PATH", help="export file, folder or glob")
    parser.add_argument("--database", required=True, help="SQLAlchemy URL, e.g. sqlite:///out.db")
    parser.add_argument("--replace", action="store_true", help="delete the tables' rows first")
    parser.add_argument("--json", action="store_true", help="print the summary as JSON")
    args = parser.parse_args(argv)

    started = time.perf_counter()
    try:
        files = expand_paths(args.paths)
    except (OSError, ValueError) as error:
        parser.error(str(error))
    tables, read_seconds, compute_seconds = compute_timed(files)
    write_started = time.perf_counter()
    write(tables, args.database, replace=args.replace)
    finished = time.perf_counter()

    summary = {
        "files": len(files),
        "events_read": tables.read,
        "accepted": tables.accepted,
        "rejects": dict(sorted(tables.rejects.items())),
        "leads": len(tables.leads),
        "analytics_rows": len(tables.analytics),
        "listings": len(tables.listings),
        "seconds": round(finished - started, 6),
        "read_seconds": round(read_seconds, 6),
        "compute_seconds": round(compute_seconds, 6),
        "write_seconds": round(finished - write_started, 6),
    }
    if args.json:
        print(json.dumps(summary))
    else:
        for key, value in summary.items():
            print(f"{key}: {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
