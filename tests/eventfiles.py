"""Test helpers: PostHog events as plain dicts, written as export files in either format."""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import brotli
import pyarrow as pa
import pyarrow.parquet as pq
import zstandard

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

# The event names random streams draw from (the taxonomy plus one it ignores), and the listers
# their events name: any of them for any listing, so that which lister a listing ends with
# depends on which of its events is the latest, whatever the order in which they arrive.
NAMES = [
    "lead_phone",
    "lead_message",
    "lead_appointment",
    "lead",
    "impression_website_visit",
    "property_view",
    "listing_view",
    "$pageview",
    "listing_impression",
    "impression_share",
    "listing_share",
    "impression_saved_listing",
    "listing_save",
    "$autocapture",
]
LISTERS = ["lister-a", "lister-b", "lister-c", None]


def event(
    uuid: str,
    name: str,
    at: datetime | str,
    listing_id: Any = None,
    seeker: str | None = "seeker-1",
    distinct_id: str | None = None,
    **props: Any,
) -> dict[str, Any]:
    """An event as PostHog exports it (JSONL shape: nested properties, ISO times)."""
    properties = dict(props)
    if listing_id is not None:
        properties["listing_id"] = listing_id
    if seeker is not None:
        properties["seeker_id"] = seeker
    timestamp = at if isinstance(at, str) else at.isoformat().replace("+00:00", "Z")
    return {
        "uuid": uuid,
        "event": name,
        "distinct_id": distinct_id if distinct_id is not None else (seeker or "anon-1"),
        "person_id": None,
        "properties": properties,
        "person_properties": {},
        "elements_chain": "",
        "timestamp": timestamp,
        "created_at": timestamp,
        "_inserted_at": timestamp,
    }


def write_jsonl(path: Path, events: Iterable[dict[str, Any] | str]) -> Path:
    """JSONL, compressed by the file name's suffix (.gz, .zst, .br); strings are written as-is."""
    text = "".join((e if isinstance(e, str) else json.dumps(e)) + "\n" for e in events).encode()
    if path.name.endswith(".gz"):
        text = gzip.compress(text)
    elif path.name.endswith(".zst"):
        text = zstandard.ZstdCompressor().compress(text)
    elif path.name.endswith(".br"):
        text = brotli.compress(text)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(text)
    return path


def _micros(value: str) -> int | None:
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except (TypeError, ValueError):
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    delta = moment - EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def write_parquet(
    path: Path, events: Sequence[dict[str, Any]], times: str = "timestamp", codec: str = "snappy"
) -> Path:
    """Parquet as PostHog's S3 export writes it: JSON-string properties, microsecond times.

    `times`: "timestamp" (timestamp[us, UTC]), "int" (int64 microseconds) or "string" (ISO).
    `codec`: the compression inside the file.
    """
    columns: dict[str, list[Any]] = {
        name: [e.get(name) for e in events]
        for name in ("uuid", "event", "distinct_id", "person_id")
    }
    columns["properties"] = [
        p if isinstance(p := e.get("properties"), str) or p is None else json.dumps(p)
        for e in events
    ]
    columns["person_properties"] = ["{}" for _ in events]
    columns["elements_chain"] = ["" for _ in events]
    arrays: dict[str, pa.Array] = {k: pa.array(v, pa.string()) for k, v in columns.items()}
    for name in ("timestamp", "created_at", "_inserted_at"):
        raw = [e.get(name) for e in events]
        if times == "string":
            arrays[name] = pa.array(raw, pa.string())
        else:
            micros = [_micros(v) if isinstance(v, str) else v for v in raw]
            arrays[name] = (
                pa.array(micros, pa.int64())
                if times == "int"
                else pa.array(micros, pa.int64()).cast(pa.timestamp("us", tz="UTC"))
            )
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table(arrays), path, compression=codec)
    return path
