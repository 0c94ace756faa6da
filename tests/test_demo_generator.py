"""The demo PostHog S3 export generator: file layout, columns, event mix, faults, determinism."""

from __future__ import annotations

import gzip
import json
import re
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from leadflow.events import DEFAULT_TAXONOMY, Kind
from leadflow.sources.demo import DemoStats, ExportFormat, generate_export

END = datetime(2025, 3, 1, 13, tzinfo=UTC)
DAYS = 30
SMALL: dict[str, Any] = {
    "events": 20_000,
    "listings": 200,
    "seekers": 2_000,
    "days": DAYS,
    "end": END,
}
NAME = re.compile(
    r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ)-(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ)\.(parquet|jsonl(\.gz|\.zst)?)$"
)
ISO = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")
COLUMNS = [
    "uuid",
    "event",
    "distinct_id",
    "person_id",
    "properties",
    "person_properties",
    "elements_chain",
    "timestamp",
    "created_at",
    "_inserted_at",
]
LEAD_EVENTS = {"lead_phone", "lead_message", "lead_appointment", "lead", "impression_website_visit"}


@dataclass
class Row:
    """One row or line of an export, parsed; `event` is None when the line is not an object."""

    file: int  # index of its file, in name order
    raw: Any  # the line text, or the Parquet row as a dict
    event: dict[str, Any] | None
    properties: Any
    timestamp: datetime | None
    created_at: datetime | None
    inserted_at: datetime | None


@dataclass
class Export:
    stats: DemoStats
    files: list[Path]
    rows: list[Row]


def _parse_time(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return value
    if isinstance(value, str) and ISO.match(value):
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    return None


def _lines(path: Path) -> list[str]:
    if path.name.endswith(".gz"):
        data = gzip.decompress(path.read_bytes())
    elif path.name.endswith(".zst"):
        zstandard = pytest.importorskip("zstandard")
        with zstandard.ZstdDecompressor().stream_reader(path.open("rb")) as reader:
            data = reader.read()
    else:
        data = path.read_bytes()
    text = data.decode()
    assert text.endswith("\n")
    return text.splitlines()


def read_export(folder: Path, fmt: str) -> tuple[list[Path], list[Row]]:
    files = sorted(folder.iterdir())
    rows: list[Row] = []
    for index, path in enumerate(files):
        if fmt == "parquet":
            for record in pq.read_table(path).to_pylist():
                try:
                    properties = json.loads(record["properties"])
                except json.JSONDecodeError:
                    properties = record["properties"]
                rows.append(
                    Row(
                        index,
                        record,
                        record,
                        properties,
                        record["timestamp"],
                        record["created_at"],
                        record["_inserted_at"],
                    )
                )
            continue
        for line in _lines(path):
            try:
                event = json.loads(line)
            except json.JSONDecodeError:
                event = None
            if not isinstance(event, dict):
                rows.append(Row(index, line, None, None, None, None, None))
                continue
            rows.append(
                Row(
                    index,
                    line,
                    event,
                    event["properties"],
                    _parse_time(event["timestamp"]),
                    _parse_time(event["created_at"]),
                    _parse_time(event["_inserted_at"]),
                )
            )
    return files, rows


def make_export(folder: Path, fmt: ExportFormat, **overrides: Any) -> Export:
    stats = generate_export(folder, fmt=fmt, **{**SMALL, **overrides})
    files, rows = read_export(folder, fmt)
    return Export(stats, files, rows)


@pytest.fixture(scope="module")
def parquet_export(tmp_path_factory: pytest.TempPathFactory) -> Export:
    return make_export(tmp_path_factory.mktemp("parquet"), "parquet")


@pytest.fixture(scope="module")
def jsonl_export(tmp_path_factory: pytest.TempPathFactory) -> Export:
    return make_export(tmp_path_factory.mktemp("jsonl"), "jsonl")


@pytest.fixture(params=["parquet", "jsonl"])
def export(request: pytest.FixtureRequest) -> Export:
    fixture: Export = request.getfixturevalue(f"{request.param}_export")
    return fixture


def is_malformed(row: Row) -> bool:
    """Whether a row has one of the generator's deliberate defects."""
    event = row.event
    if event is None or event.get("uuid") is None or row.timestamp is None:
        return True
    props = row.properties
    if not isinstance(props, dict):
        return True
    if isinstance(props.get("listing_id"), dict) or props.get("message_type") == "fax":
        return True
    listing_event = (
        DEFAULT_TAXONOMY.kind_of(event["event"]) is not None and event["event"] != "$pageview"
    )
    return (
        listing_event
        and "listing_id" not in props
        and props.get("context_type") != "lister_profile"
    )


def originals(export: Export) -> list[Row]:
    """The rows that are not duplicate copies (a uuid seen in an earlier row)."""
    seen: set[str] = set()
    out = []
    for row in export.rows:
        uuid = row.event.get("uuid") if row.event else None
        if uuid is not None and uuid in seen:
            continue
        if uuid is not None:
            seen.add(uuid)
        out.append(row)
    return out


def test_files_are_named_like_posthog_batches_with_no_partial_files(export: Export) -> None:
    assert len(export.files) == export.stats.files
    assert export.files
    for path in export.files:
        match = NAME.match(path.name)
        assert match, path.name
        start = datetime.fromisoformat(match.group(1).replace("Z", "+00:00"))
        stop = datetime.fromisoformat(match.group(2).replace("Z", "+00:00"))
        assert stop - start == timedelta(hours=24)
        assert start.hour == 0  # daily intervals are aligned to midnight UTC, like PostHog's
    starts = [p.name[:20] for p in export.files]
    assert starts == sorted(starts)
    assert export.files[0].name.startswith("2025-01-30T00:00:00Z-")
    assert export.files[-1].name.startswith("2025-03-01T00:00:00Z-2025-03-02T00:00:00Z.")


def test_parquet_columns_and_types(parquet_export: Export) -> None:
    utc = pa.timestamp("us", tz="UTC")
    for path in parquet_export.files[:3]:
        schema = pq.read_schema(path)
        assert schema.names == COLUMNS
        for name in ("timestamp", "created_at", "_inserted_at"):
            assert schema.field(name).type == utc
        for name in COLUMNS[:7]:
            assert schema.field(name).type == pa.string()
    row = next(r for r in parquet_export.rows if not is_malformed(r))
    assert isinstance(row.raw["properties"], str)
    assert isinstance(json.loads(row.raw["person_properties"]), dict)
    assert row.raw["elements_chain"] == ""


def test_jsonl_lines_are_objects_with_nested_properties_and_iso_times(
    jsonl_export: Export,
) -> None:
    good = [r for r in jsonl_export.rows if not is_malformed(r)]
    assert len(good) > 0.99 * len(jsonl_export.rows)
    for row in good[:2_000]:
        assert row.event is not None
        assert list(row.event) == COLUMNS
        assert isinstance(row.event["properties"], dict)
        assert isinstance(row.event["person_properties"], dict)
        for name in ("timestamp", "created_at", "_inserted_at"):
            assert ISO.match(row.event[name])


@pytest.mark.parametrize("fmt", ["jsonl.gz", "jsonl.zst"])
def test_compressed_jsonl_holds_the_same_events(
    fmt: ExportFormat, jsonl_export: Export, tmp_path: Path
) -> None:
    compressed = make_export(tmp_path, fmt)
    assert all(p.name.endswith(f".{fmt}") for p in compressed.files)
    assert compressed.stats == jsonl_export.stats
    assert [r.raw for r in compressed.rows] == [r.raw for r in jsonl_export.rows]


def test_event_mix(export: Export) -> None:
    rows = [r for r in originals(export) if not is_malformed(r)]
    kinds: Counter[str] = Counter()
    for row in rows:
        assert row.event is not None
        name = row.event["event"]
        kind = DEFAULT_TAXONOMY.kind_of(name)
        if name == "$pageview" and "listing_id" not in row.properties:
            kind = None
        kinds[kind or "ignored"] += 1
    share = {k: v / len(rows) for k, v in kinds.items()}
    assert share[Kind.IMPRESSION] == pytest.approx(0.55, abs=0.03)
    assert share[Kind.VIEW] == pytest.approx(0.36, abs=0.03)
    assert share[Kind.SHARE] == pytest.approx(0.02, abs=0.01)
    assert share[Kind.SAVE] == pytest.approx(0.03, abs=0.01)
    assert 0.01 <= share[Kind.LEAD] <= 0.03
    assert share["ignored"] == pytest.approx(0.02, abs=0.01)


def test_every_lead_channel_and_property_is_present(export: Export) -> None:
    channels: Counter[str] = Counter()
    appointment_types: Counter[str] = Counter()
    platforms: Counter[str] = Counter()
    actions: Counter[str] = Counter()
    profile_leads = 0
    lister_of: dict[str, set[tuple[str, str]]] = {}
    for row in originals(export):
        if is_malformed(row):
            continue
        assert row.event is not None
        name, props = row.event["event"], row.properties
        if name in ("listing_share", "impression_share"):
            platforms[props["platform"]] += 1
        if name == "impression_saved_listing":
            actions[props["action"]] += 1
        if name not in LEAD_EVENTS:
            continue
        assert props["lister_type"] in ("developer", "agent", "agency")
        assert re.fullmatch(r"lister-\d{4}", props["lister_id"])
        if "listing_id" not in props:
            assert props["context_type"] == "lister_profile"
            profile_leads += 1
            continue
        lister_of.setdefault(props["listing_id"], set()).add(
            (props["lister_id"], props["lister_type"])
        )
        lead_type = DEFAULT_TAXONOMY.lead_events.get(name) or props.get("lead_type", "website")
        channel = DEFAULT_TAXONOMY.channel_for(lead_type, props.get("message_type")).name
        channels[channel] += 1
        if "appointment_type" in props:
            appointment_types[props["appointment_type"]] += 1
    assert set(channels) == {c.name for c in DEFAULT_TAXONOMY.channels}
    assert set(appointment_types) == {"in_person", "video"}
    assert set(platforms) == {"whatsapp", "facebook", "x", "email", "copy_link"}
    assert set(actions) == {"save", "remove"}
    assert profile_leads > 0
    assert all(len(v) == 1 for v in lister_of.values())  # a listing has one lister, one type


def test_ids_and_seekers(export: Export) -> None:
    anonymous = with_seeker = 0
    for row in originals(export):
        if is_malformed(row):
            continue
        assert row.event is not None
        props = row.properties
        if "listing_id" in props:
            assert re.fullmatch(r"listing-\d{5}", props["listing_id"])
        if "seeker_id" in props:
            assert re.fullmatch(r"seeker-\d{6}", props["seeker_id"])
            assert row.event["distinct_id"] == props["seeker_id"]
            with_seeker += 1
        elif not row.event["distinct_id"].startswith("seeker-"):
            anonymous += 1
    assert 0.7 < with_seeker / len(export.rows) < 0.95
    assert anonymous > 0


def test_fault_counts_match_the_stats(export: Export) -> None:
    stats = export.stats
    assert stats.events == len(export.rows)
    assert stats.malformed == sum(is_malformed(r) for r in export.rows)
    assert stats.malformed > 0
    kept = originals(export)
    assert stats.duplicates == len(export.rows) - len(kept) > 0
    late = [
        r
        for r in kept
        if r.timestamp and r.created_at and r.created_at - r.timestamp >= timedelta(hours=1)
    ]
    assert stats.late == len(late) > 0
    assert all(r.created_at - r.timestamp <= timedelta(days=3) for r in late)  # type: ignore[operator]


def test_duplicates_are_identical_copies_in_the_next_file(export: Export) -> None:
    first: dict[str, Row] = {}
    copies = 0
    for row in export.rows:
        uuid = row.event.get("uuid") if row.event else None
        if uuid is None:
            continue
        if uuid in first:
            original = first[uuid]
            assert row.raw == original.raw
            assert row.file == original.file + 1
            end_of_original = export.files[original.file].name[21:41]
            assert export.files[row.file].name.startswith(end_of_original)
            copies += 1
        else:
            first[uuid] = row
    assert copies == export.stats.duplicates


def test_times(export: Export) -> None:
    start = END - timedelta(days=DAYS)
    kept = {id(r) for r in originals(export)}
    for row in export.rows:
        if row.timestamp is None or row.created_at is None or row.inserted_at is None:
            continue
        assert start <= row.timestamp < END
        assert row.timestamp <= row.created_at < END
        assert row.created_at < row.inserted_at
        if id(row) in kept:
            # An original lies in the file of its ingestion time; late ones in a later file.
            name = export.files[row.file].name
            lo = datetime.fromisoformat(name[:19] + "+00:00")
            assert lo <= row.created_at < lo + timedelta(days=1)
            if row.created_at - row.timestamp >= timedelta(hours=1):
                assert row.timestamp < lo


def test_realistic_shape(parquet_export: Export) -> None:
    rows = [r for r in originals(parquet_export) if not is_malformed(r)]
    pairs = {
        (r.properties["listing_id"], r.properties.get("seeker_id") or r.raw["distinct_id"])
        for r in rows
        if "listing_id" in r.properties
    }
    assert len(pairs) < len(rows) / 2  # seekers come back to their favourite listings
    per_listing = Counter(
        r.properties.get("listing_id") for r in rows if "listing_id" in r.properties
    )
    counts = sorted(per_listing.values(), reverse=True)
    assert sum(counts[: len(counts) // 10]) > 0.4 * sum(counts)  # popularity is skewed
    hours = Counter(r.timestamp.hour for r in rows if r.timestamp)
    assert sum(hours[h] for h in (19, 20, 21)) > 5 * sum(hours[h] for h in (2, 3, 4))
    weekdays = Counter(r.timestamp.weekday() for r in rows if r.timestamp)
    assert (weekdays[5] + weekdays[6]) / 2 > sum(weekdays[d] for d in range(5)) / 5


def test_deterministic_for_a_seed(tmp_path: Path) -> None:
    small = {**SMALL, "events": 5_000}
    a = generate_export(tmp_path / "a", seed=11, fmt="jsonl", **small)
    b = generate_export(tmp_path / "b", seed=11, fmt="jsonl", **small)
    generate_export(tmp_path / "c", seed=12, fmt="jsonl", **small)
    assert a == b
    names = sorted(p.name for p in (tmp_path / "a").iterdir())
    assert names == sorted(p.name for p in (tmp_path / "b").iterdir())
    for name in names:
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    first = (tmp_path / "a" / names[0]).read_bytes()
    assert first != (tmp_path / "c" / names[0]).read_bytes()
    pa_ = generate_export(tmp_path / "pa", seed=11, **small)
    pb = generate_export(tmp_path / "pb", seed=11, **small)
    assert pa_ == pb
    for path in sorted((tmp_path / "pa").iterdir()):
        assert pq.read_table(path).equals(pq.read_table(tmp_path / "pb" / path.name))


def test_uuids_are_unique_but_for_the_duplicates(parquet_export: Export) -> None:
    uuids = [r.raw["uuid"] for r in originals(parquet_export) if r.raw["uuid"] is not None]
    assert len(uuids) == len(set(uuids))


def test_progress_and_batch_hours(tmp_path: Path) -> None:
    seen: list[int] = []
    stats = generate_export(
        tmp_path, **{**SMALL, "events": 3_000, "days": 2}, batch_hours=6, progress=seen.append
    )
    names = sorted(p.name for p in tmp_path.iterdir())
    assert len(names) == stats.files == len(seen)
    assert seen == sorted(seen) and seen[-1] == stats.events
    assert names[0].startswith("2025-02-27T12:00:00Z-2025-02-27T18:00:00Z.")


def test_no_events_no_files(tmp_path: Path) -> None:
    assert generate_export(tmp_path, **{**SMALL, "events": 0}) == DemoStats(0, 0, 0, 0, 0)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "bad",
    [{"fmt": "csv"}, {"days": 0}, {"listings": 0}, {"late_rate": 1.5}, {"events": -1}],
)
def test_rejects_bad_arguments(tmp_path: Path, bad: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        generate_export(tmp_path, **{**SMALL, **bad})


def test_readers_never_see_a_partial_file(tmp_path: Path) -> None:
    checked: set[str] = set()

    def check(_: int) -> None:
        for path in tmp_path.iterdir():
            if path.name.startswith("."):
                assert path.name.endswith(".tmp")
            elif path.name not in checked:
                pq.read_metadata(path)  # complete, with its footer
                checked.add(path.name)

    stats = generate_export(tmp_path, **{**SMALL, "events": 5_000}, batch_hours=6, progress=check)
    assert len(list(tmp_path.iterdir())) == stats.files


def test_a_failed_export_leaves_no_temporary_files(tmp_path: Path) -> None:
    calls = 0

    def fail(_: int) -> None:
        nonlocal calls
        calls += 1
        if calls == 3:
            raise RuntimeError("stop")

    with pytest.raises(RuntimeError):
        generate_export(tmp_path, **{**SMALL, "events": 5_000}, batch_hours=6, progress=fail)
    names = [p.name for p in tmp_path.iterdir()]
    assert names and not [n for n in names if n.startswith(".")]
    for name in names:
        pq.read_table(tmp_path / name)
