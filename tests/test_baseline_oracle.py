"""The plain baseline (bench/baseline.py) that tests use as an oracle: it must follow docs/events.md."""

from __future__ import annotations

import gzip
import json
import sqlite3
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import zstandard

from bench.baseline import (
    Tables,
    canonical,
    canonical_from_db,
    compute,
    expand_paths,
    main,
    write,
)


def ts(text: str) -> str:
    return f"2025-05-01T{text}Z"


def event(
    uuid: str | None,
    name: Any,
    timestamp: Any = None,
    distinct_id: Any = "anon-1",
    **properties: Any,
) -> dict[str, Any]:
    record: dict[str, Any] = {
        "uuid": uuid,
        "event": name,
        "distinct_id": distinct_id,
        "timestamp": ts("10:00:00") if timestamp is None else timestamp,
        "properties": properties,
        "person_id": "p-1",
        "created_at": ts("12:00:00"),
    }
    return record


def write_jsonl(path: Path, records: list[Any]) -> Path:
    lines = [r if isinstance(r, str) else json.dumps(r) for r in records]
    data = ("\n".join(lines) + "\n").encode()
    if path.name.endswith(".gz"):
        path.write_bytes(gzip.compress(data))
    elif path.name.endswith(".zst"):
        path.write_bytes(zstandard.ZstdCompressor().compress(data))
    else:
        path.write_bytes(data)
    return path


def write_parquet(path: Path, records: list[dict[str, Any]], *, time_type: Any = None) -> Path:
    """An S3-batch-export-like Parquet file: properties as JSON text, times in microseconds."""
    time_type = time_type or pa.timestamp("us", tz="UTC")

    def micros(value: str) -> Any:
        moment = datetime.fromisoformat(value)
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        if pa.types.is_timestamp(time_type):
            return moment
        if pa.types.is_integer(time_type):
            return int(moment.timestamp() * 1_000_000)
        return value

    table = pa.table(
        {
            "uuid": pa.array([r["uuid"] for r in records], pa.string()),
            "event": pa.array([r["event"] for r in records], pa.string()),
            "distinct_id": pa.array([r["distinct_id"] for r in records], pa.string()),
            "timestamp": pa.array([micros(r["timestamp"]) for r in records], time_type),
            "properties": pa.array([json.dumps(r["properties"]) for r in records], pa.string()),
            "elements_chain": pa.array(["" for _ in records], pa.string()),
        }
    )
    pq.write_table(table, path)
    return path


def row(tables: Tables, listing_id: str, hour: int, day: str = "2025-05-01") -> dict[str, Any]:
    return tables.analytics[(listing_id, day, hour)]


def test_two_calls_in_one_hour_make_one_lead_with_score_60(tmp_path: Path) -> None:
    path = write_jsonl(
        tmp_path / "seed.jsonl",
        [
            event("u1", "lead_phone", ts("10:05:00"), listing_id="L1", seeker_id="S1"),
            event("u2", "lead_phone", ts("10:40:00"), listing_id="L1", seeker_id="S1"),
        ],
    )
    tables = compute([path])

    assert list(tables.leads) == [("L1", "S1")]
    lead = tables.leads[("L1", "S1")]
    assert lead["total_actions"] == 2
    assert lead["lead_score"] == 60
    assert [a["event_uuid"] for a in lead["lead_actions"]] == ["u1", "u2"]
    hour = row(tables, "L1", 10)
    assert (hour["phone_leads"], hour["total_leads"], hour["unique_leads"]) == (2, 2, 1)
    assert tables.read == tables.accepted == 2
    assert tables.rejects == {}


def test_every_reject_reason_is_counted_once_and_events_are_conserved(tmp_path: Path) -> None:
    ok = {"listing_id": "L1", "seeker_id": "S1"}
    records: list[Any] = [
        "{not json",  # malformed_json
        "[1, 2]",  # malformed_json: not an object
        "",  # blank: skipped, not read
        "   ",
        event(None, "lead_phone", **ok),  # missing_uuid
        event("", "lead_phone", **ok),  # missing_uuid
        event("u-noname", None, **ok),  # missing_event
        event("u-intname", 7, **ok),  # missing_event
        event("u-other", "button_click", **ok),  # ignored_event
        event("u-pv", "$pageview", seeker_id="S1"),  # ignored_event: $pageview without listing
        event("u-unsave", "impression_saved_listing", action="remove", **ok),  # ignored_event
        {**event("u-props", "lead_phone"), "properties": "[1]"},  # bad_properties
        {**event("u-props2", "lead_phone"), "properties": 5},  # bad_properties
        event("u-ts", "lead_phone", "yesterday", **ok),  # bad_timestamp
        {**event("u-ts2", "lead_phone", **ok), "timestamp": None},  # bad_timestamp
        event("u-nolisting", "lead_phone", seeker_id="S1", lister_id="A1"),  # missing_listing_id
        event("u-emptylisting", "lead_phone", listing_id="", seeker_id="S1"),  # missing_listing_id
        event("u-noseeker", "lead_phone", distinct_id=None, listing_id="L1"),  # missing_seeker
        event("u-wt1", "lead_phone", listing_id=["L1"], seeker_id="S1"),  # wrong_type
        event("u-wt2", "listing_view", listing_id="L1", seeker_id={"id": 1}),  # wrong_type
        event("u-wt3", "listing_view", listing_id=True, seeker_id="S1"),  # wrong_type
        event("u-wt4", "listing_view", lister_id=[1], **ok),  # wrong_type
        event("u-wt5", "listing_share", platform=3, **ok),  # wrong_type
        event("u-wt6", "lead_message", message_type=["whatsapp"], **ok),  # wrong_type
        event("u-iv1", "lead_message", message_type="sms", **ok),  # invalid_value
        event("u-iv2", "lead", lead_type="fax", **ok),  # invalid_value
        event("u-ok", "lead_phone", **ok),  # accepted
        event("u-ok", "lead_phone", **ok),  # duplicate
        event("u-ok2", "listing_view", listing_id=42, distinct_id=7),  # accepted, ids as ints
    ]
    tables = compute([write_jsonl(tmp_path / "events.jsonl", records)])

    assert tables.rejects == {
        "malformed_json": 2,
        "missing_uuid": 2,
        "missing_event": 2,
        "ignored_event": 3,
        "bad_properties": 2,
        "bad_timestamp": 2,
        "missing_listing_id": 2,
        "missing_seeker": 1,
        "wrong_type": 6,
        "invalid_value": 2,
        "duplicate": 1,
    }
    assert tables.accepted == 2
    assert tables.read == len(records) - 2 == tables.accepted + sum(tables.rejects.values())
    assert ("42", "2025-05-01", 10) in tables.analytics
    assert tables.analytics[("42", "2025-05-01", 10)]["unique_views"] == 1


def test_checks_apply_in_the_documented_order(tmp_path: Path) -> None:
    records = [
        # unknown name beats bad properties and a bad timestamp
        {**event("a", "nope", "never"), "properties": "oops"},
        # $pageview whose properties do not parse has no listing_id: ignored
        {**event("b", "$pageview"), "properties": "oops"},
        # a save whose properties do not parse is not an un-save: bad properties
        {**event("c", "listing_save"), "properties": "oops"},
        # bad timestamp beats a missing listing id
        event("d", "lead_phone", "not a time", seeker_id="S1"),
        # missing listing beats a wrong seeker type
        event("e", "lead_phone", seeker_id=[1]),
        # a present seeker_id of a wrong type does not fall back to distinct_id
        event("f", "lead_phone", listing_id="L1", seeker_id=1.5),
        # wrong type beats an invalid value
        event("g", "lead_message", listing_id="L1", message_type="sms", lister_type=1),
        # absent or null properties are no properties: the listing id is missing
        {**event("h", "lead_phone"), "properties": None},
        {key: value for key, value in event("i", "lead_phone").items() if key != "properties"},
        # a distinct_id that is not a string or integer is unusable: no seeker
        event("j", "lead_phone", distinct_id={"id": 1}, listing_id="L1"),
        # a type property is checked only on the kind that uses it
        event("k", "listing_view", listing_id="L1", seeker_id="S1", platform=["x"]),
        event("l", "listing_view", listing_id="L1", seeker_id="S1", message_type="sms"),
        event("m", "lead", listing_id="L1", seeker_id="S1", lead_type="phone", message_type="x"),
    ]
    tables = compute([write_jsonl(tmp_path / "order.jsonl", records)])
    assert tables.rejects == {
        "ignored_event": 2,
        "bad_properties": 1,
        "bad_timestamp": 1,
        "missing_listing_id": 3,
        "missing_seeker": 1,
        "wrong_type": 2,
    }
    assert tables.accepted == 3


def test_a_rejected_event_does_not_reserve_its_uuid(tmp_path: Path) -> None:
    records = [
        event("u1", "lead_phone", seeker_id="S1"),  # missing_listing_id
        event("u1", "lead_phone", listing_id="L1", seeker_id="S1"),  # accepted
        event("u1", "listing_view", listing_id="L1", seeker_id="S1"),  # duplicate
    ]
    tables = compute([write_jsonl(tmp_path / "e.jsonl", records)])
    assert tables.accepted == 1
    assert tables.rejects == {"missing_listing_id": 1, "duplicate": 1}


def test_duplicates_across_two_files_keep_the_first_file_in_path_order(tmp_path: Path) -> None:
    first = [
        event("u1", "lead_phone", ts("10:00:00"), listing_id="L1", seeker_id="S1"),
        event("u2", "listing_view", ts("10:10:00"), listing_id="L1", seeker_id="S1"),
    ]
    second = [
        # the same uuid u1 at another hour: a duplicate, so hour 11 gets nothing from it
        event("u1", "lead_phone", ts("11:00:00"), listing_id="L1", seeker_id="S1"),
        event("u3", "listing_view", ts("11:10:00"), listing_id="L1", seeker_id="S2"),
        event("u2", "listing_view", ts("10:10:00"), listing_id="L1", seeker_id="S1"),
    ]
    # Named so that the Parquet file sorts first although it is written second.
    b = write_jsonl(tmp_path / "2025-05-01T01-b.jsonl", second)
    a = write_parquet(tmp_path / "2025-05-01T00-a.parquet", first)
    tables = compute([b, a])

    assert tables.read == 5
    assert tables.accepted == 3
    assert tables.rejects == {"duplicate": 2}
    assert row(tables, "L1", 10)["phone_leads"] == 1
    assert row(tables, "L1", 11)["total_leads"] == 0
    assert tables.leads[("L1", "S1")]["lead_actions"][0]["timestamp"] == (
        "2025-05-01T10:00:00.000000Z"
    )


def test_unique_views_per_hour_and_over_all_time(tmp_path: Path) -> None:
    records = [
        event("v1", "listing_view", ts("10:00:00"), listing_id="L1", seeker_id="A"),
        event("v2", "property_view", ts("10:30:00"), listing_id="L1", seeker_id="B"),
        event("v3", "listing_view", ts("10:31:00"), listing_id="L1", seeker_id="A"),
        # seeker falls back to distinct_id, for views too
        event("v4", "$pageview", ts("11:00:00"), distinct_id="A", listing_id="L1"),
        event("v5", "listing_view", ts("11:59:59.999999"), distinct_id="C", listing_id="L1"),
    ]
    tables = compute([write_jsonl(tmp_path / "views.jsonl", records)])

    ten, eleven = row(tables, "L1", 10), row(tables, "L1", 11)
    assert (ten["total_views"], ten["unique_views"]) == (3, 2)
    assert (eleven["total_views"], eleven["unique_views"]) == (2, 2)
    listing = tables.listings["L1"]
    assert (listing["total_views"], listing["unique_views"]) == (5, 3)  # not 2 + 2


def test_share_and_lead_breakdowns_and_counters(tmp_path: Path) -> None:
    s = {"listing_id": "L1"}
    records = [
        event("s1", "listing_share", seeker_id="A", platform="whatsapp", **s),
        event("s2", "impression_share", seeker_id="A", platform="facebook", **s),
        event("s3", "listing_share", seeker_id="B", platform="whatsapp", **s),
        event("s4", "listing_share", seeker_id="B", **s),  # no platform → unknown
        event("sv1", "listing_save", seeker_id="A", **s),
        event("sv2", "impression_saved_listing", seeker_id="A", action="add", **s),
        event("i1", "listing_impression", seeker_id="A", **s),
        event("v1", "listing_view", seeker_id="A", **s),
        event("v2", "listing_view", seeker_id="B", **s),
        event("v3", "listing_view", seeker_id="C", **s),
        event("v4", "listing_view", seeker_id="D", **s),
        event("l1", "lead_phone", seeker_id="A", **s),
        event("l2", "lead_message", seeker_id="A", message_type="whatsapp", **s),
        event("l3", "lead_message", seeker_id="B", **s),  # direct_message by default
        event("l4", "lead_message", seeker_id="B", message_type="email", **s),
        event("l5", "lead_appointment", seeker_id="C", appointment_type="visit", **s),
        event("l6", "lead", seeker_id="C", lead_type="message", message_type="whatsapp", **s),
        event("l7", "lead", seeker_id="C", **s),  # website by default
        event("l8", "impression_website_visit", seeker_id="C", **s),
        event("l9", "lead", seeker_id="D", lead_type="phone", **s),
    ]
    tables = compute([write_jsonl(tmp_path / "mix.jsonl", records)])

    hour = row(tables, "L1", 10)
    assert hour["shares"] == 4 and hour["saves"] == 2 and hour["impressions"] == 1
    assert (
        hour["phone_leads"],
        hour["message_leads"],
        hour["email_leads"],
        hour["appointment_leads"],
        hour["website_leads"],
    ) == (2, 3, 1, 1, 2)
    assert hour["total_leads"] == 9
    assert hour["unique_leads"] == 4
    assert hour["conversion_rate"] == pytest.approx(225.0)

    listing = tables.listings["L1"]
    assert listing["share_breakdown"] == {"whatsapp": 2, "facebook": 1, "unknown": 1}
    assert listing["leads_breakdown"] == {
        "phone": 2,
        "whatsapp": 2,
        "direct_message": 1,
        "email": 1,
        "appointment": 1,
        "website": 2,
    }
    assert (listing["total_shares"], listing["total_saves"], listing["total_impressions"]) == (
        4,
        2,
        1,
    )
    assert listing["total_leads"] == 9 and listing["conversion_rate"] == pytest.approx(225.0)

    c_actions = tables.leads[("L1", "C")]["lead_actions"]
    assert {a["event_uuid"]: a for a in c_actions}["l5"] == {
        "event_uuid": "l5",
        "action_type": "appointment",
        "timestamp": "2025-05-01T10:00:00.000000Z",
        "appointment_type": "visit",
    }
    assert tables.leads[("L1", "C")]["lead_score"] == 40 + 15 + 10 + 10
    b_types = [a.get("message_type") for a in tables.leads[("L1", "B")]["lead_actions"]]
    assert sorted(b_types) == ["direct_message", "email"]


def test_a_listing_without_views_or_leads_has_zero_rates_and_full_leads_breakdown(
    tmp_path: Path,
) -> None:
    path = write_jsonl(
        tmp_path / "e.jsonl", [event("i1", "listing_impression", listing_id="L9", seeker_id="A")]
    )
    listing = compute([path]).listings["L9"]
    assert listing["conversion_rate"] == 0
    assert listing["share_breakdown"] == {}
    assert set(listing["leads_breakdown"].values()) == {0}
    assert len(listing["leads_breakdown"]) == 6


def test_lister_comes_from_the_latest_event_carrying_one_each_field_alone(tmp_path: Path) -> None:
    s = {"listing_id": "L1", "seeker_id": "A"}
    records = [
        event("a", "lead_phone", ts("09:00:00"), lister_id="old", lister_type="agent", **s),
        event("b", "listing_view", ts("12:00:00"), lister_id=55, **s),  # latest id, no type
        event("c", "lead_phone", ts("11:00:00"), lister_type="agency", **s),
        event("d", "listing_view", ts("13:00:00"), **s),  # latest event, carries nothing
        # a tie on time is broken by uuid: "z" beats "y"
        event("z", "listing_impression", ts("12:30:00"), lister_type="developer", **s),
        event("y", "listing_impression", ts("12:30:00"), lister_type="agent", **s),
    ]
    tables = compute([write_jsonl(tmp_path / "e.jsonl", records)])
    listing = tables.listings["L1"]
    assert (listing["lister_id"], listing["lister_type"]) == ("55", "developer")
    lead = tables.leads[("L1", "A")]
    assert (lead["lister_id"], lead["lister_type"]) == ("old", "agency")


def test_lead_actions_are_sorted_by_time_then_uuid(tmp_path: Path) -> None:
    s = {"listing_id": "L1", "seeker_id": "A"}
    records = [
        event("u3", "lead_appointment", ts("10:30:00"), **s),  # no appointment_type kept
        event("u2", "lead_phone", ts("10:00:00.5"), **s),
        event("u1", "lead", ts("10:00:00.5"), lead_type="website", **s),
    ]
    lead = compute([write_jsonl(tmp_path / "e.jsonl", records)]).leads[("L1", "A")]
    assert lead["lead_actions"] == [
        {"event_uuid": "u1", "action_type": "website", "timestamp": "2025-05-01T10:00:00.500000Z"},
        {"event_uuid": "u2", "action_type": "phone", "timestamp": "2025-05-01T10:00:00.500000Z"},
        {
            "event_uuid": "u3",
            "action_type": "appointment",
            "timestamp": "2025-05-01T10:30:00.000000Z",
        },
    ]
    assert lead["first_action_date"] == datetime(2025, 5, 1, 10, 0, 0, 500000, tzinfo=UTC)
    assert lead["last_action_date"] == datetime(2025, 5, 1, 10, 30, tzinfo=UTC)
    assert lead["last_action_type"] == "appointment"
    assert lead["lead_score"] == 10 + 30 + 40


def test_time_spellings_land_in_the_same_utc_hour(tmp_path: Path) -> None:
    s = {"listing_id": "L1"}
    micros = int(datetime(2025, 5, 1, 10, 15, tzinfo=UTC).timestamp() * 1_000_000)
    jsonl = [
        event("j1", "listing_view", "2025-05-01T10:15:00Z", seeker_id="a", **s),
        event("j2", "listing_view", "2025-05-01T12:15:00+02:00", seeker_id="b", **s),
        event("j3", "listing_view", "2025-05-01T10:15:00", seeker_id="c", **s),  # no zone: UTC
        event("j4", "listing_view", micros, seeker_id="d", **s),
        event("j5", "listing_view", "2025-05-01 10:59:59.9999999", seeker_id="e", **s),
        event("j6", "listing_view", True, seeker_id="f", **s),  # bad_timestamp
    ]
    parquet_rows = [
        event("p1", "listing_view", "2025-05-01T10:20:00", seeker_id="g", **s),
    ]
    paths = [
        write_jsonl(tmp_path / "a.jsonl", jsonl),
        write_parquet(tmp_path / "b.parquet", parquet_rows),
        write_parquet(
            tmp_path / "c.parquet",
            [{**parquet_rows[0], "uuid": "p2"}],
            time_type=pa.timestamp("ns"),
        ),
        write_parquet(
            tmp_path / "d.parquet", [{**parquet_rows[0], "uuid": "p3"}], time_type=pa.int64()
        ),
        write_parquet(
            tmp_path / "e.parquet",
            [{**parquet_rows[0], "uuid": "p4", "timestamp": "2025-05-01T12:20:00+02:00"}],
            time_type=pa.string(),
        ),
    ]
    tables = compute(paths)
    assert tables.rejects == {"bad_timestamp": 1}
    assert list(tables.analytics) == [("L1", "2025-05-01", 10)]
    assert row(tables, "L1", 10)["total_views"] == 9


@pytest.mark.parametrize(
    "timestamp",
    [
        "20250501T101500Z",  # ISO basic form
        "2025-05-01T10:15:00 Europe/Paris",  # a zone name
        "2025-05-01T10",  # an hour without minutes
        " 2025-05-01T10:15:00Z",  # surrounding space
        "2025-02-30T10:15:00Z",  # no such day
        "10000-01-01T00:00:00Z",
        253402300800000000,  # microseconds past year 9999
        float("nan"),
    ],
)
def test_unreadable_times_are_bad_timestamps(tmp_path: Path, timestamp: Any) -> None:
    record = event("t1", "listing_view", timestamp, listing_id="L1")
    path = tmp_path / "e.jsonl"
    path.write_text(json.dumps(record) + "\n")  # NaN is written as the JSON extension NaN
    assert compute([path]).rejects == {"bad_timestamp": 1}


def test_compressed_jsonl_and_properties_as_json_text(tmp_path: Path) -> None:
    records = [
        {**event("g1", "lead_phone"), "properties": json.dumps({"listing_id": 1, "seeker_id": 2})},
        event("g2", "listing_view", listing_id=1, seeker_id=2),
    ]
    paths = [
        write_jsonl(tmp_path / "a.jsonl.gz", records[:1]),
        write_jsonl(tmp_path / "b.ndjson.zst", records[1:]),
    ]
    tables = compute(paths)
    assert tables.accepted == 2
    assert ("1", "2") in tables.leads
    assert row(tables, "1", 10)["conversion_rate"] == 100.0


def test_paths_expand_folders_and_globs_in_sorted_order(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    c = write_jsonl(tmp_path / "sub" / "c.jsonl", [])
    a = write_jsonl(tmp_path / "a.json", [])
    b = write_parquet(tmp_path / "b.parquet", [event("x", "listing_view", listing_id="L")])
    (tmp_path / "notes.txt").write_text("not events")
    write_jsonl(tmp_path / ".partial.jsonl", [])  # hidden: skipped in folders
    assert expand_paths([tmp_path]) == [a, b, c]
    assert expand_paths([str(tmp_path / "*.parquet"), b]) == [b]
    with pytest.raises(FileNotFoundError):
        expand_paths([tmp_path / "missing.jsonl"])
    with pytest.raises(ValueError):
        expand_paths([tmp_path / "notes.txt"])


def rich_events() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Two files' worth of events over two listings, several hours and days."""
    first: list[dict[str, Any]] = []
    second: list[dict[str, Any]] = []
    kinds = [
        ("listing_view", {}),
        ("listing_impression", {}),
        ("listing_share", {"platform": "x"}),
        ("listing_save", {}),
        ("lead_phone", {}),
        ("lead_message", {"message_type": "whatsapp"}),
        ("lead_message", {"message_type": "email"}),
        ("lead_appointment", {"appointment_type": "video"}),
        ("lead", {"lead_type": "website"}),
    ]
    for i in range(120):
        name, extra = kinds[i % len(kinds)]
        day = 1 + i % 2
        timestamp = f"2025-05-0{day}T{(i * 7) % 24:02d}:{i % 60:02d}:00.{i:06d}Z"
        record = event(
            f"uuid-{i:04d}",
            name,
            timestamp,
            listing_id=f"L{i % 2}",
            seeker_id=f"S{i % 5}",
            lister_id=f"A{i % 3}",
            lister_type="agent",
            **extra,
        )
        (first if i % 3 else second).append(record)
    second.append(first[5])  # a duplicate across files
    return first, second


def test_write_then_read_back_gives_the_same_canonical_form(tmp_path: Path) -> None:
    first, second = rich_events()
    paths = [
        write_jsonl(tmp_path / "a.jsonl", first),
        write_parquet(tmp_path / "b.parquet", second),
    ]
    tables = compute(paths)
    assert tables.rejects == {"duplicate": 1}
    url = f"sqlite:///{tmp_path / 'out.db'}"
    write(tables, url)

    expected = canonical(tables)
    assert canonical_from_db(url) == expected
    assert len(expected["lead_groups"]) == len(tables.leads) > 0
    assert len(expected["listings"]) == 2

    with sqlite3.connect(tmp_path / "out.db") as db:
        first_action, status_tracker, notes, run_id = db.execute(
            "SELECT first_action_date, status_tracker, notes, run_id FROM leads LIMIT 1"
        ).fetchone()
        day = db.execute("SELECT date FROM listing_analytics LIMIT 1").fetchone()[0]
    assert datetime.strptime(first_action, "%Y-%m-%d %H:%M:%S.%f")
    assert json.loads(status_tracker)[0]["status"] == "new"
    assert json.loads(status_tracker)[0]["by"] == "system"
    assert json.loads(notes) == [] and run_id is None
    assert len(day) == 10

    write(tables, url, replace=True)
    assert canonical_from_db(url) == expected


def test_canonical_from_db_merges_a_groups_records_and_respells_times(tmp_path: Path) -> None:
    path = write_jsonl(
        tmp_path / "e.jsonl",
        [
            event("u1", "lead_phone", ts("10:00:00"), listing_id="L1", seeker_id="S1"),
            event("u2", "lead_phone", ts("11:00:00"), listing_id="L1", seeker_id="S1"),
        ],
    )
    tables = compute([path])
    url = f"sqlite:///{tmp_path / 'out.db'}"
    write(tables, url)
    # Split the one record into two, as two runs would, with another time spelling.
    with sqlite3.connect(tmp_path / "out.db") as db:
        actions = json.loads(db.execute("SELECT lead_actions FROM leads").fetchone()[0])
        db.execute(
            "UPDATE leads SET lead_actions = ?, lead_score = 30, total_actions = 1",
            (json.dumps(actions[1:]),),
        )
        actions[0]["timestamp"] = "2025-05-01T12:00:00+02:00"
        db.execute(
            "INSERT INTO leads (listing_id, seeker_id, lead_actions, total_actions, lead_score,"
            " first_action_date, last_action_date, last_action_type, status, status_tracker,"
            " notes, created_at, updated_at) SELECT listing_id, seeker_id, ?, 1, 30,"
            " first_action_date, last_action_date, last_action_type, status, status_tracker,"
            " notes, created_at, updated_at FROM leads",
            (json.dumps(actions[:1]),),
        )
    assert canonical_from_db(url) == canonical(tables)


def test_cli_prints_a_json_summary(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    first, second = rich_events()
    (tmp_path / "in").mkdir()
    write_jsonl(tmp_path / "in" / "a.jsonl", first)
    write_parquet(tmp_path / "in" / "b.parquet", second)
    database = f"sqlite:///{tmp_path / 'cli.db'}"

    assert main([str(tmp_path / "in"), "--database", database, "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    tables = compute([tmp_path / "in"])
    assert summary["events_read"] == tables.read == 121
    assert summary["accepted"] == tables.accepted == 120
    assert summary["rejects"] == {"duplicate": 1}
    assert summary["leads"] == len(tables.leads)
    assert summary["analytics_rows"] == len(tables.analytics)
    assert summary["listings"] == 2
    for key in ("seconds", "read_seconds", "compute_seconds", "write_seconds"):
        assert summary[key] >= 0
    assert canonical_from_db(database) == canonical(tables)
