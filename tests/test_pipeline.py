"""The cron run over export files, by example: DESIGN.md's seed case, formats, rejects, ledger."""

from __future__ import annotations

import gzip
import json
import os
import shutil
import sqlite3
from contextlib import closing
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from bench.baseline import canonical, compute
from leadflow import pipeline
from leadflow.errors import RunFailed, SourceError
from tests.eventfiles import event, write_jsonl, write_parquet

T0 = datetime(2025, 5, 1, 10, 0, tzinfo=UTC)

# A small batch is read into Arrow pieces before it is classified; a larger one straight from
# its files, and a larger one still is staged in a DuckDB file rather than in memory. Every
# reading must agree with the independent one.
READINGS = {
    "arrow pieces": (pipeline.SPLIT_BATCH_MAX_BYTES, None),
    "files": (0, None),
    "files, engine on disk": (0, "0"),
}


@pytest.fixture(params=list(READINGS))
def reading(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    split_max_bytes, in_memory_max_bytes = READINGS[request.param]
    monkeypatch.setattr(pipeline, "SPLIT_BATCH_MAX_BYTES", split_max_bytes)
    if in_memory_max_bytes is not None:
        monkeypatch.setenv("LEADFLOW_ENGINE_IN_MEMORY_MAX_BYTES", in_memory_max_bytes)
    return str(request.param)


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def test_two_calls_in_one_hour_make_one_lead_with_score_60(store, tmp_path):
    path = write_jsonl(
        tmp_path / "calls.jsonl",
        [
            event("u1", "lead_phone", at(5), "listing-1", "seeker-1", lister_id="lister-1"),
            event("u2", "lead_phone", at(40), "listing-1", "seeker-1", lister_id="lister-1"),
        ],
    )
    summary = store.run(path)

    (lead,) = store.rows("leads")
    assert lead["total_actions"] == 2
    assert lead["lead_score"] == 60
    assert [a["event_uuid"] for a in lead["lead_actions"]] == ["u1", "u2"]
    assert lead["status"] == "new" and lead["last_action_type"] == "phone"
    (hour,) = store.rows("listing_analytics")
    assert (hour["phone_leads"], hour["total_leads"], hour["unique_leads"]) == (2, 2, 1)
    assert (hour["date"].isoformat(), hour["hour"]) == ("2025-05-01", 10)
    assert summary.leads_inserted == 1 and summary.events_accepted == 2


def test_every_reject_reason_is_counted_and_nothing_vanishes(store, tmp_path, reading):
    lines = [
        event("ok-1", "property_view", at(1), "listing-1"),
        "this is not json",
        '["a", "list"]',
        {k: v for k, v in event("x", "property_view", at(1), "listing-1").items() if k != "uuid"},
        {**event("no-name", "property_view", at(1), "listing-1"), "event": None},
        event("ignored", "$autocapture", at(1), "listing-1"),
        event("pageview-no-listing", "$pageview", at(1)),
        event("unsave", "listing_save", at(1), "listing-1", action="remove"),
        {**event("bad-props", "property_view", at(1), "listing-1"), "properties": [1, 2]},
        event("bad-ts", "property_view", "yesterday-ish", "listing-1"),
        event("profile-contact", "lead_phone", at(1), None, context_type="lister_profile"),
        {
            **event("no-seeker", "property_view", at(1), "listing-1", seeker=None),
            "distinct_id": None,
        },
        event("object-listing", "property_view", at(1), {"id": 1}),
        event("fax", "lead_message", at(1), "listing-1", message_type="fax"),
        event("ok-1", "property_view", at(1), "listing-1"),
    ]
    summary = store.run(write_jsonl(tmp_path / "mixed.jsonl", lines))

    assert summary.rejected == {
        "bad_properties": 1,
        "bad_timestamp": 1,
        "duplicate": 1,
        "ignored_event": 3,
        "invalid_value": 1,
        "malformed_json": 2,
        "missing_event": 1,
        "missing_listing_id": 1,
        "missing_seeker": 1,
        "missing_uuid": 1,
        "wrong_type": 1,
    }
    assert (
        summary.events_read
        == len(lines)
        == summary.events_accepted + sum(summary.rejected.values())
    )
    (run,) = store.rows("cron_runs")
    assert run["rejects"] == summary.rejected and run["status"] == "succeeded"


@pytest.mark.parametrize(
    "name", ["events.jsonl", "events.jsonl.gz", "events.jsonl.zst", "events.jsonl.br"]
)
def test_jsonl_plain_and_compressed_give_the_same_tables(store, tmp_path, name):
    events = [
        event("a", "listing_view", at(1), "listing-1", "s1"),
        event("b", "lead_message", at(2), "listing-1", "s1", message_type="whatsapp"),
        event("c", "listing_share", at(3), 42, "s2", platform="facebook"),
    ]
    path = write_jsonl(tmp_path / name, events)
    store.run(path)
    assert store.snapshot() == canonical(compute([path]))


@pytest.mark.parametrize("zone", [None, "UTC"])
def test_parquet_nanosecond_times_are_floored_to_the_microsecond(store, tmp_path, reading, zone):
    events = [
        event("a", "property_view", at(59), "L", "s1"),
        event("b", "lead_phone", at(59), "L", "s2"),
        event("c", "property_view", at(59), "L", "s3"),
    ]
    path = write_parquet(tmp_path / "ns.parquet", events)
    table = pq.read_table(path)
    last_nanosecond = int((T0 + timedelta(hours=1)).timestamp()) * 10**9 - 1
    before_epoch = -1_500  # 1969-12-31T23:59:59.9999985Z
    times = pa.array([last_nanosecond, last_nanosecond, before_epoch], pa.int64())
    column = times.cast(pa.timestamp("ns", tz=zone))
    pq.write_table(
        table.set_column(table.schema.get_field_index("timestamp"), "timestamp", column), path
    )
    store.run(path)
    assert store.snapshot() == canonical(compute([path]))
    hours = sorted((str(r["date"]), r["hour"]) for r in store.rows("listing_analytics"))
    assert hours == [("1969-12-31", 23), ("2025-05-01", 10)]
    (lead,) = store.rows("leads")
    assert lead["lead_actions"][0]["timestamp"] == "2025-05-01T10:59:59.999999Z"


@pytest.mark.parametrize("times", ["timestamp", "int", "string"])
def test_parquet_with_each_time_encoding(store, tmp_path, times):
    events = [
        event("a", "property_view", at(1), "listing-1", "s1"),
        event("b", "lead_appointment", at(70), "listing-1", "s2", appointment_type="video"),
        event("c", "impression_saved_listing", at(80), "listing-2", "s1"),
        event("d", "lead", at(90), "listing-2", "s3", lead_type="phone"),
        event("e", "lead", at(91), "listing-2", "s3"),
    ]
    path = write_parquet(tmp_path / "events.parquet", events, times=times)
    summary = store.run(path)
    assert summary.events_accepted == 5
    assert store.snapshot() == canonical(compute([path]))
    groups = {(g[0], g[1]): g for g in store.snapshot()["lead_groups"]}
    assert groups[("listing-2", "s3")][2] == 40  # phone 30 + website 10


def test_a_posthog_export_prefix_is_read_as_posthog_names_its_files(store, tmp_path):
    """PostHog adds the compression's extension to every file's name, a Parquet file's too
    (compressed inside, read as it is), and sends a manifest.json listing the files."""
    day = [
        event("a", "property_view", at(1), "listing-1", "s1"),
        event("b", "lead_phone", at(2), "listing-1", "s1"),
        event("c", "lead_message", at(65), "listing-2", "s2", message_type="email"),
    ]
    prefix = tmp_path / "exports"
    interval = "2025-05-01T10:00:00+00:00-2025-05-01T11:00:00+00:00"
    files = [write_jsonl(prefix / f"{interval}.jsonl.br", day[:1])]
    for n, (suffix, codec) in enumerate([(".zst", "zstd"), (".lz4", "lz4"), (".sz", "snappy")]):
        name = f"{interval}-{n + 1}.parquet{suffix}"
        files.append(write_parquet(prefix / name, day[1:2] if n == 0 else [], codec=codec))
    (prefix / f"{interval}_manifest.json").write_text(
        json.dumps({"files": [f.name for f in files]})
    )
    (prefix / "manifest.json").write_text(json.dumps({"files": [f.name for f in files]}))
    (prefix / "notes.txt").write_text("not events")
    write_jsonl(prefix / "events.jsonl.lz4", day)  # no codec PostHog uses for JSONL

    summary = store.run(prefix)
    assert (summary.files_read, summary.events_read, summary.rejected) == (4, 2, {})
    (warning,) = summary.warnings
    assert warning.startswith("2 file(s) not named as export files were not read")
    assert "events.jsonl.lz4" in warning and "notes.txt" in warning and "manifest" not in warning
    store.run(write_jsonl(tmp_path / "late" / "late.jsonl.br", day[2:]))
    assert store.snapshot() == canonical(compute([prefix, tmp_path / "late"]))


def test_a_truncated_brotli_file_is_a_clear_source_error(store, tmp_path):
    path = write_jsonl(
        tmp_path / "events.jsonl.br", [event("a", "property_view", at(1), "listing-1", "s1")]
    )
    path.write_bytes(path.read_bytes()[:-3])
    with pytest.raises(RunFailed, match=r"events\.jsonl\.br: cannot read the export file"):
        store.run(path)
    assert store.rows("listing_analytics") == []


@pytest.mark.parametrize(
    "encoding",
    ["binary", "uuid_bytes", "uuid_logical", "large_string", "dictionary", "time_units"],
)
def test_parquet_columns_of_other_types_are_read_as_documented(store, tmp_path, encoding):
    """Text columns as binary (UTF-8 inside, or not), uuids as 16 bytes or Parquet's UUID type,
    large strings, string views, dictionaries, times in other units and zones: as
    docs/events.md reads them."""
    import uuid

    import pyarrow as pa
    import pyarrow.parquet as pq

    n = 4
    props = [
        json.dumps({"listing_id": "L1", "seeker_id": f"s{i}", "platform": "café"}) for i in range(n)
    ]
    columns: dict[str, pa.Array] = {
        "uuid": pa.array([f"u{i}" for i in range(n)]),
        "event": pa.array(["lead_phone", "property_view", "listing_share", "lead_message"]),
        "distinct_id": pa.array([f"d{i}" for i in range(n)]),
        "properties": pa.array(props),
        "timestamp": pa.array(
            [1_746_093_600_000_000 + i * 1_234_567_891 for i in range(n)], pa.int64()
        ).cast(pa.timestamp("us", tz="UTC")),
    }
    if encoding == "binary":
        for name in ("event", "distinct_id", "properties"):
            values = [v.encode() for v in columns[name].to_pylist()]
            values[1] = b"\xff\xfe" if name != "event" else values[1]  # not UTF-8
            columns[name] = pa.array(values, pa.binary())
    elif encoding == "uuid_bytes":
        columns["uuid"] = pa.array([uuid.UUID(int=i + 1).bytes for i in range(n)], pa.binary(16))
    elif encoding == "uuid_logical":
        columns["uuid"] = pa.array([uuid.UUID(int=i + 1).bytes for i in range(n)], pa.uuid())
    elif encoding == "large_string":
        columns = {
            k: v.cast(pa.large_string()) if k != "timestamp" else v for k, v in columns.items()
        }
        columns["event"] = columns["event"].cast(pa.string_view())
    elif encoding == "dictionary":  # as pandas writes its categoricals
        columns = {k: v.dictionary_encode() if k != "timestamp" else v for k, v in columns.items()}
    else:
        stamps = columns["timestamp"].cast(pa.int64()).to_pylist()
        columns["timestamp"] = pa.array([t * 1000 for t in stamps], pa.int64()).cast(
            pa.timestamp("ns", tz="Europe/Paris")
        )
    path = tmp_path / "events.parquet"
    pq.write_table(pa.table(columns), path)
    summary = store.run(path)
    assert summary.events_read == n
    assert store.snapshot() == canonical(compute([path]))
    if encoding.startswith("uuid"):
        uuids = [a[0] for g in store.snapshot()["lead_groups"] for a in g[3]]
        assert uuids[0] == "00000000-0000-0000-0000-000000000001"


def test_parquet_missing_optional_columns_and_extra_columns(store, tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.table(
        {
            "uuid": ["a", "b"],
            "event": ["property_view", "lead_phone"],
            "distinct_id": ["s1", "s2"],
            "properties": [json.dumps({"listing_id": "L"}), json.dumps({"listing_id": "L"})],
            "timestamp": pa.array([1_746_093_600_000_000, 1_746_093_660_000_000]).cast(
                pa.timestamp("us")
            ),
            "some_future_column": [1, 2],
        }
    )
    path = tmp_path / "slim.parquet"
    pq.write_table(table, path)
    summary = store.run(path)
    assert summary.events_accepted == 2 and summary.rejected == {}
    (hour,) = store.rows("listing_analytics")
    assert (hour["total_views"], hour["phone_leads"], hour["conversion_rate"]) == (1, 1, 100.0)


def test_a_second_run_over_the_same_files_changes_nothing(store, tmp_path):
    path = write_jsonl(
        tmp_path / "store" / "a.jsonl",
        [event(f"e{i}", "lead_phone", at(i * 17), "listing-1", f"s{i % 3}") for i in range(12)],
    )
    store.run(path.parent)
    before = store.snapshot()
    again = store.run(path.parent)
    assert again.events_read == 0 and again.leads_inserted == 0
    assert store.snapshot() == before
    assert store.count("leads") == 3


def test_late_events_in_a_new_file_recompute_their_old_hour(store, tmp_path):
    folder = tmp_path / "export"
    write_jsonl(folder / "1.jsonl", [event("v1", "property_view", at(1), "L", "s1")])
    store.run(folder)
    write_jsonl(
        folder / "2.jsonl",
        [
            event("v2", "property_view", at(2), "L", "s2"),  # late, same hour
            event("v1", "property_view", at(1), "L", "s1"),  # duplicate across batches
            event("v3", "property_view", at(200), "L", "s1"),
        ],
    )
    summary = store.run(folder)
    assert summary.rejected == {"duplicate": 1}
    hours = {
        (r["hour"]): (r["total_views"], r["unique_views"]) for r in store.rows("listing_analytics")
    }
    assert hours == {10: (2, 2), 13: (1, 1)}
    (listing,) = store.rows("listings")
    assert (listing["total_views"], listing["unique_views"]) == (3, 2)


# A copy delivered again with its time corrected a little differently, across an hour boundary.
ACROSS_AN_HOUR = {
    "a view": [
        [event("v", "property_view", at(59.9), "L", "s1")],
        [event("v", "property_view", at(60.1), "L", "s1")],
    ],
    "a lead": [
        [event("c", "lead_phone", at(59.9), "L", "s1")],
        [event("c", "lead_phone", at(60.1), "L", "s1"), event("w", "property_view", at(61), "L")],
    ],
    "both copies in one file, the later first": [
        [
            event("v", "property_view", at(60.1), "L", "s1"),
            event("v", "property_view", at(59.9), "L", "s1"),
        ],
        [event("w", "property_view", at(90), "L", "s2")],
    ],
    "both copies in one file, then that hour again": [
        [
            event("v", "property_view", at(59.9), "L", "s1"),
            event("v", "property_view", at(60.1), "L", "s1"),
        ],
        [event("w", "property_view", at(90), "L", "s2")],
    ],
}


@pytest.mark.parametrize("case", ACROSS_AN_HOUR)
def test_a_copy_in_the_next_hour_is_a_duplicate_in_any_split(make_store, tmp_path, case):
    staged = [
        write_jsonl(tmp_path / "staged" / f"{i}.jsonl", events)
        for i, events in enumerate(ACROSS_AN_HOUR[case])
    ]
    expected = canonical(compute(staged))
    single = make_store()
    single.run(tmp_path / "staged")
    assert single.snapshot() == expected

    # The same files arriving one per run.
    split = make_store()
    folder = tmp_path / "export"
    folder.mkdir()
    for path in staged:
        shutil.copy(path, folder / path.name)
        split.run(folder)
    assert split.snapshot() == expected


def test_files_that_grew_since_they_were_read_are_read_again(store, tmp_path, monkeypatch):
    """A file whose size or time changed is read again whole, and the ledger keeps one row for
    it (its old row is replaced, a few paths per statement)."""
    monkeypatch.setattr(pipeline, "LEDGER_CHUNK", 2)
    folder = tmp_path / "export"
    first = [event(f"a{i}", "lead_phone", at(i), "L", f"s{i % 2}") for i in range(3)]
    more = [event(f"b{i}", "property_view", at(70 + i), "L", f"s{i}") for i in range(3)]
    for name in ("1", "2", "3", "4", "5"):
        write_jsonl(folder / f"{name}.jsonl", first if name == "1" else more[:1])
    store.run(folder)
    # Three files grow (a redelivery that appended to them), two stay as they were.
    for name in ("1", "3", "5"):
        write_jsonl(folder / f"{name}.jsonl", (first if name == "1" else more[:1]) + more[1:])
    summary = store.run(folder)
    assert summary.files_read == 3
    assert sorted(Path(r["path"]).name for r in store.rows("source_files")) == [
        f"{n}.jsonl" for n in "12345"
    ]
    assert store.snapshot() == canonical(compute(sorted(folder.iterdir())))


def test_recompute_opens_only_files_whose_time_range_covers_touched_hours(store, tmp_path):
    folder = tmp_path / "export"
    write_jsonl(
        folder / "jan.jsonl", [event("j", "property_view", "2025-01-05T10:00:00Z", "L", "s1")]
    )
    write_jsonl(folder / "may.jsonl", [event("m", "property_view", at(1), "L", "s1")])
    store.run(folder)
    # The January file goes away: a run touching only May must not need it …
    (folder / "jan.jsonl").unlink()
    write_jsonl(folder / "may-late.jsonl", [event("m2", "property_view", at(3), "L", "s2")])
    summary = store.run(folder)
    assert summary.events_read == 1 and summary.rejected == {}
    # … but a run touching January does, and says so.
    write_jsonl(
        folder / "jan-late.jsonl", [event("j2", "property_view", "2025-01-05T10:30:00Z", "L", "s2")]
    )
    with pytest.raises(RunFailed, match=r"jan\.jsonl.*missing"):
        store.run(folder)


def test_unique_views_over_all_time_are_distinct_seekers_not_sums(store, tmp_path):
    events = [event(f"v{i}", "property_view", at(i * 60), "L", "same-seeker") for i in range(5)]
    store.run(write_jsonl(tmp_path / "v.jsonl", events))
    assert sum(r["unique_views"] for r in store.rows("listing_analytics")) == 5
    (listing,) = store.rows("listings")
    assert listing["unique_views"] == 1 and listing["total_views"] == 5


def test_breakdowns_and_lister_of_a_listing(store, tmp_path):
    events = [
        event("s1", "listing_share", at(1), "L", "a", platform="whatsapp", lister_id="old"),
        event("s2", "impression_share", at(2), "L", "b", platform="whatsapp"),
        event("s3", "listing_share", at(3), "L", "c", lister_id="new", lister_type="agent"),
        event("l1", "lead_message", at(4), "L", "a", message_type="email"),
        event("l2", "impression_website_visit", at(5), "L", "b"),
    ]
    store.run(write_jsonl(tmp_path / "b.jsonl", events))
    (listing,) = store.rows("listings")
    assert listing["share_breakdown"] == {"whatsapp": 2, "unknown": 1}
    assert listing["leads_breakdown"] == {
        "phone": 0,
        "whatsapp": 0,
        "direct_message": 0,
        "email": 1,
        "appointment": 0,
        "website": 1,
    }
    assert (listing["lister_id"], listing["lister_type"]) == ("new", "agent")
    assert (listing["email_leads"], listing["website_leads"], listing["total_leads"]) == (1, 1, 2)


def test_long_windows_are_written_in_slices_each_committed(store, tmp_path):
    events = [event(f"e{i}", "property_view", at(i * 600), "L", f"s{i}") for i in range(40)]
    summary = store.run(write_jsonl(tmp_path / "long.jsonl", events), slice_events=7)
    assert summary.slices == 6
    (run,) = store.rows("cron_runs")
    assert (run["slices_done"], run["slices_total"]) == (6, 6)
    assert store.snapshot() == canonical(compute([tmp_path / "long.jsonl"]))


def test_a_folder_is_read_with_its_links_resolved(store, tmp_path):
    """Files are known by their real path: a link to a file is read once, as its target; a link
    to a folder inside the export folder is not followed; hidden files are left alone."""
    outside = write_jsonl(
        tmp_path / "elsewhere" / "b.jsonl", [event("b", "lead_phone", at(2), "L", "s")]
    )
    real = tmp_path / "real-export"
    files = [write_jsonl(real / "day" / "a.jsonl", [event("a", "property_view", at(1), "L", "s")])]
    os.symlink(outside, real / "day" / "b-link.jsonl")
    os.symlink(tmp_path / "elsewhere", real / "linked-folder")
    write_jsonl(real / ".hidden.jsonl", [event("h", "property_view", at(3), "L", "s")])
    os.symlink(real, tmp_path / "export")

    summary = store.run(tmp_path / "export")
    assert (summary.files_read, summary.events_read, summary.warnings) == (2, 2, [])
    paths = sorted(r["path"] for r in store.rows("source_files"))
    assert paths == sorted([str(files[0].resolve()), str(outside.resolve())])
    assert store.snapshot() == canonical(compute([files[0], outside]))
    # The same files named through their real folder, or the target alone: already read.
    assert store.run(real).events_read == 0
    assert store.run(outside).events_read == 0


def test_paths_with_spaces_quotes_and_glob_characters_are_read(store, tmp_path):
    """A folder or file that exists is read as itself, whatever characters its name holds."""
    folder = tmp_path / "exports [old] it's"
    files = [
        write_jsonl(folder / "a b's.jsonl", [event("a", "lead_phone", at(1), "L1", "s1")]),
        write_parquet(folder / "ev[1].parquet", [event("b", "property_view", at(2), "L1", "s2")]),
        write_jsonl(folder / "q?*.jsonl.gz", [event("c", "lead_message", at(3), "L2", "s1")]),
    ]
    summary = store.run(folder)
    assert (summary.files_read, summary.events_read, summary.rejected) == (3, 3, {})
    assert store.snapshot() == canonical(compute(files))
    assert store.run(files[1]).events_read == 0  # one of them named alone: already read


def test_missing_path_is_a_clear_source_error(store, tmp_path):
    with pytest.raises(SourceError, match="no such file or folder"):
        store.run(tmp_path / "nope.jsonl")


def test_unreadable_parquet_fails_the_run_and_writes_nothing(store, tmp_path):
    """Nothing of the folder is recorded as read, so that the next run reads it all once the
    damaged file is replaced (as a file still being copied is, once it is whole)."""
    good = write_jsonl(
        tmp_path / "export" / "good.jsonl", [event("v1", "property_view", at(1), "L1")]
    )
    bad = tmp_path / "export" / "bad.parquet"
    bad.write_bytes(b"PAR1 definitely not parquet")
    with pytest.raises(RunFailed, match=r"bad\.parquet"):
        store.run(good.parent)
    (run,) = store.rows("cron_runs")
    assert run["status"] == "failed" and "bad.parquet" in run["error"]
    assert store.count("source_files") == 0 and store.count("listing_analytics") == 0

    bad.unlink()
    write_parquet(bad, [event("v2", "property_view", at(2), "L1", "s2")])
    summary = store.run(good.parent)
    assert (summary.files_read, summary.events_accepted) == (2, 2)
    (hour,) = store.rows("listing_analytics")
    assert hour["total_views"] == 2


@pytest.mark.parametrize("name", ["day.jsonl", "day.jsonl.gz"])
def test_lines_that_are_not_readable_text_are_counted_malformed(store, tmp_path, reading, name):
    """A line that is not UTF-8, or longer than 16 MiB, is one malformed event of its file, not
    a failed run; a long line within the limit is an event like any other. Read again as an old
    file of a recomputed hour, the file's lines are not counted again."""
    good = [
        event("a", "property_view", at(1), "listing-1", "s1"),
        event("b", "lead_phone", at(2), "listing-1", "s1", note="n" * 3_000_000),
        event("c", "lead_message", at(3), "listing-2", "s2"),
    ]
    lines = [json.dumps(e).encode() for e in good]
    not_utf8 = b'{"uuid": "x", "event": "property_view", "properties": {"listing_id": "L\xff"}}'
    too_long = json.dumps(
        event("y", "property_view", at(4), "listing-1", "s3", pad="p" * 17_000_000)
    )
    data = b"\n".join([lines[0], not_utf8, lines[1], too_long.encode(), lines[2]]) + b"\n"
    path = tmp_path / "exports" / name
    path.parent.mkdir()
    path.write_bytes(gzip.compress(data, compresslevel=1) if name.endswith(".gz") else data)

    summary = store.run(path.parent)
    assert (summary.events_read, summary.events_accepted) == (5, 3)
    assert summary.rejected == {"malformed_json": 2}
    assert store.snapshot() == canonical(compute([path]))

    late = write_jsonl(
        tmp_path / "exports" / "late.jsonl", [event("d", "property_view", at(5), "listing-1", "s4")]
    )
    again = store.run(path.parent)
    assert (again.events_read, again.rejected, again.events_accepted) == (1, {}, 1)
    assert store.snapshot() == canonical(compute([path, late]))


def test_events_at_the_first_and_last_hours_a_time_can_hold(store, tmp_path):
    """Parseable times are events wherever they fall, year 1 or 9999 (the last hour's slice
    ends at the last moment a time can hold), and a late event recomputes those hours too."""
    first = [
        event("a", "property_view", "0001-01-01T00:00:00Z", "L1", "s1"),
        event("b", "lead_phone", "9999-12-31T23:59:59.999999Z", "L1", "s1"),
    ]
    early = write_jsonl(tmp_path / "exports" / "a.jsonl", first)
    summary = store.run(early.parent)
    assert (summary.events_accepted, summary.rejected) == (2, {})
    late = write_jsonl(
        tmp_path / "exports" / "b.jsonl",
        [event("c", "lead_phone", "9999-12-31T23:10:00Z", "L1", "s2")],
    )
    again = store.run(early.parent)
    assert (again.events_read, again.events_accepted) == (1, 1)
    assert store.snapshot() == canonical(compute([early, late]))


def test_half_a_surrogate_pair_is_not_text(store, tmp_path):
    """JSON may escape half a UTF-16 surrogate pair (`"\\ud800"` alone), which is no text a
    store can hold: such a line is malformed, while an escaped pair is the character it spells."""
    line = (
        '{"uuid": "%s", "event": "lead_phone", "timestamp": "2025-05-01T10:00:00Z", '
        '"properties": {"listing_id": "%s", "seeker_id": "s"}}'
    )
    lone, pair = line % ("a", "L\\ud800"), line % ("b", "L\\ud83d\\ude00")
    path = write_jsonl(tmp_path / "e.jsonl", [lone, pair])
    summary = store.run(path)
    assert summary.rejected == {"malformed_json": 1} and summary.events_accepted == 1
    assert store.snapshot() == canonical(compute([path]))
    assert store.rows("listing_analytics")[0]["listing_id"] == "L\U0001f600"


def test_jsonl_lines_end_at_any_line_end(store, tmp_path, reading):
    """A line ends at a line feed, a carriage return and line feed, or a lone carriage return
    (old Mac line ends), in one file mixing them too."""
    lines = [json.dumps(event(f"e{i}", "lead_phone", at(i), "L1", f"s{i % 3}")) for i in range(6)]
    more = [json.dumps(event(f"m{i}", "property_view", at(i), "L2", f"s{i}")) for i in range(6)]
    mixed = lines[0] + "\r\n" + lines[1] + "\r" + lines[2] + "\n\r\n" + "\r".join(lines[3:]) + "\r"
    paths = [tmp_path / "mixed.jsonl", tmp_path / "mac.jsonl.gz"]
    paths[0].write_bytes(mixed.encode())
    paths[1].write_bytes(gzip.compress(("\r".join(more) + "\r").encode()))
    summary = store.run(tmp_path)
    assert (summary.events_read, summary.rejected) == (12, {})
    assert store.snapshot() == canonical(compute(paths))


def test_jsonl_lines_of_every_shape_are_events_malformed_or_blank(store, tmp_path, reading):
    """Whitespace around an object is allowed; a line of spaces and tabs is blank (skipped); a
    valid JSON value that is not an object is a malformed event."""
    doc = json.dumps(event("a", "lead_phone", at(1), "L1", "s1"))
    lines = [
        doc,
        "  " + json.dumps(event("b", "lead_phone", at(2), "L1", "s2")) + " \t",
        "\t" + json.dumps(event("c", "property_view", at(3), "L1", "s3")),
        "   ",
        "\t \t",
        "[1, 2]",
        ' ["a"]',
        '"{not an object}"',
        "42",
        "null",
        "{",
        "{} trailing",
    ]
    path = tmp_path / "shapes.jsonl"
    path.write_text("\n".join(lines) + "\n")
    summary = store.run(path)
    assert (summary.events_read, summary.events_accepted) == (10, 3)
    assert summary.rejected == {"malformed_json": 7}
    assert store.snapshot() == canonical(compute([path]))


def test_long_ids_and_keys_are_stored_as_they_are(store, tmp_path):
    """Nothing in DESIGN.md bounds an id's length: a long listing, seeker, lister, uuid or share
    platform is stored whole on both stores, not a failed run."""
    listing, seeker, lister = "L" * 300, "s" * 400, "a" * 300
    lines = [
        event(
            "u" * 100, "lead_phone", at(1), listing, seeker, lister_id=lister, lister_type="t" * 60
        ),
        event("v" * 100, "listing_share", at(2), listing, seeker, platform="p" * 100),
        event("w" * 100, "property_view", at(3), listing, seeker),
    ]
    path = write_jsonl(tmp_path / "long.jsonl", lines)
    summary = store.run(path)
    assert (summary.events_accepted, summary.rejected) == (3, {})
    assert store.snapshot() == canonical(compute([path]))


def test_edge_cases_agree_with_the_independent_reading(store, tmp_path, reading):
    lines = [
        event("p1", "listing_view", at(1), "L", "s1", platform=["x"]),  # unused property: fine
        event("p2", "$pageview", at(1), {"id": 1}, "s1"),  # no usable listing id: ignored
        event("p3", "$pageview", at(1), "", "s1"),
        event("p4", "lead", at(1), "L", "s1", lead_type="fax", appointment_type=5),
        event("p5", "lead", at(1), "L", "s1", lead_type="appointment", appointment_type=5),
        event("p6", "lead", at(1), "L", "s1", lead_type="message", message_type=""),
        {**event("p7", "property_view", at(1), "L", "s1"), "timestamp": 1_746_093_600_000_000.7},
        event("p8", "property_view", "2025-05-01 10:00 Europe/Paris", "L", "s1"),
        event("p9", "property_view", "2025-05-01T12:00:00+02:00", "L", "s1"),
        event("p10", "property_view", "2025-05-01T10:00:00", "L", "s1"),
        event("p11", "listing_share", at(1), "L", "s1", platform=""),
        "\t ",
        event("p12", "lead_phone", at(1), 12345678901234, "s1", lister_id=7),
        event("p13", "property_view", "2025-05-01T24:00:00Z", "L", "s1"),  # no hour 24
        event("p14", "property_view", "2025-05-01T10:00:00+0530", "L", "s1"),
        event("p15", "property_view", "2025-02-29T10:00:00Z", "L", "s1"),  # no such day
        event("p16", "property_view", "2025-05-01T10:00:00+24:00", "L", "s1"),  # a day: no
        event("p17", "property_view", "2025-05-01T10:00:00+00:99", "L", "s1"),  # 99 minutes
        event("p18", "property_view", "2025-05-01T10:00:00-23:59", "L", "s1"),
        event("p19", "property_view", "0000-05-01T10:00:00Z", "L", "s1"),  # no year 0
    ]
    # The properties as every JSON type, and absent.
    props = event("q", "property_view", at(1), "L", "s1")["properties"]
    for n, value in enumerate([json.dumps(props), "not json", None, 5, 1.5, True, [props], {}]):
        lines.append({**event(f"q{n}", "property_view", at(1), "L", "s1"), "properties": value})
    lines.append(
        {k: v for k, v in event("q-", "lead_phone", at(1), "L", "s1").items() if k != "properties"}
    )
    path = write_jsonl(tmp_path / "edges.jsonl", lines)
    summary = store.run(path)
    expected = compute([path])
    assert summary.rejected == expected.rejects
    assert summary.events_read == expected.read == len(lines) - 1
    assert store.snapshot() == canonical(expected)


def test_a_nul_character_in_kept_text_is_rejected_where_the_store_cannot_keep_it(store, tmp_path):
    lines = [
        event("a", "property_view", at(1), "L\u0000x", "s1"),
        event("b", "lead_message", at(1), "L", "s\u0000", message_type="email"),
        event("c", "listing_share", at(1), "L", "s1", platform="w\u0000"),
        event("d\u0000", "property_view", at(1), "L", "s1"),
        event("e", "lead_appointment", at(1), "L", "s2", appointment_type="v\u0000"),
        event("f", "property_view", at(1), "L", "s3", lister_id="x\u0000"),
        event("g", "property_view", at(1), "L", "s3", distinct_id="d\u0000"),  # not kept
    ]
    path = write_jsonl(tmp_path / "nul.jsonl", lines)
    summary = store.run(path)
    if store.kind == "postgresql":
        # PostgreSQL's text and jsonb hold no NUL: such events are counted, not a failed run.
        assert summary.rejected == {"unstorable_text": 6}
        assert summary.events_accepted == 1 and store.count("listing_analytics") == 1
    else:
        assert summary.rejected == {}
        assert store.snapshot() == canonical(compute([path]))


def test_runs_leave_no_scratch_files_and_no_attached_stores(store, tmp_path, monkeypatch):
    """SQLite slices go through scratch database files: each is detached and deleted."""
    import tempfile

    scratch = tmp_path / "tmp"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    for index in range(3):
        path = write_jsonl(
            tmp_path / f"batch-{index}.jsonl",
            [event(f"u{index}", "property_view", at(90 * index), "listing-1", f"s{index}")],
        )
        store.run(path, slice_events=1)
    assert list(scratch.iterdir()) == []
    if store.engine.dialect.name == "sqlite":
        with store.engine.connect() as conn:
            attached = {row[1] for row in conn.exec_driver_sql("PRAGMA database_list")}
        assert attached <= {"main", "temp"}


def test_a_run_deletes_the_folders_of_runs_that_died_and_keeps_live_ones(
    store, tmp_path, monkeypatch
):
    """A run killed (SIGKILL, out of memory) cannot delete its scratch folder, whose DuckDB
    file can hold gigabytes: the next run on the machine deletes it. Folders of live runs, and
    folders not named by leadflow with a process id, are left alone."""
    import subprocess
    import sys
    import tempfile

    scratch = tmp_path / "tmp"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    dead_folder = scratch / f"{pipeline.RUN_FOLDER_PREFIX}{int(dead.stdout)}-abc123"
    live_folder = scratch / f"{pipeline.RUN_FOLDER_PREFIX}{os.getpid()}-def456"
    other = scratch / f"{pipeline.RUN_FOLDER_PREFIX}unnumbered"
    for folder in (dead_folder, live_folder, other):
        folder.mkdir()
        (folder / "run.duckdb").write_bytes(b"x" * 1000)

    store.run(write_jsonl(tmp_path / "e.jsonl", [event("u", "property_view", at(1), "L1")]))

    assert sorted(p.name for p in scratch.iterdir()) == sorted([live_folder.name, other.name])


def test_a_run_copies_its_write_ahead_log_unless_its_caller_will(tmp_path):
    """SQLite: a run's commits leave the write-ahead log to the run, which copies it into the
    database file before each slice and at its end; `defer_checkpoint` leaves the last copy to
    the caller (the service makes it after answering)."""
    from leadflow.pipeline import run
    from leadflow.store.db import checkpoint
    from tests.conftest import Store

    database = tmp_path / "leadflow.db"
    store = Store(f"sqlite:///{database}", "sqlite")

    def files_in_database_file() -> int:
        """The ledger's files as the database file alone holds them (without its log)."""
        copy = tmp_path / "file-only" / "copy.db"
        copy.parent.mkdir(exist_ok=True)
        shutil.copyfile(database, copy)
        with closing(sqlite3.connect(copy)) as db:
            (count,) = db.execute("SELECT count(*) FROM source_files").fetchone()
        shutil.rmtree(copy.parent)
        return int(count)

    # Enough hours that the log passes SQLite's automatic checkpoint (1000 pages).
    events = [
        event(f"e{i}", "property_view", at(i), f"listing-{i % 3000}", f"s{i}")
        for i in range(30_000)
    ]
    store.run(write_jsonl(tmp_path / "first.jsonl", events))
    assert files_in_database_file() == 1

    later = [{**e, "uuid": "late-" + e["uuid"]} for e in events]
    second = write_jsonl(tmp_path / "second.jsonl", later)
    summary = run(store.settings(), str(second), engine=store.engine, defer_checkpoint=True)
    assert summary.hours_written > 0
    assert files_in_database_file() == 1  # the run's commits are in the log only
    checkpoint(store.engine)
    assert files_in_database_file() == 2
    store.engine.dispose()


def test_a_checkpoint_that_fails_is_logged_not_raised(tmp_path, caplog):
    """The run's outcome (or the service's answer) is never replaced by a failed checkpoint."""
    from sqlalchemy import create_engine

    from leadflow.store.db import checkpoint

    engine = create_engine(f"sqlite:///{tmp_path / 'no-such-folder' / 'leadflow.db'}")
    with caplog.at_level("WARNING", logger="leadflow.store"):
        checkpoint(engine)
    assert "checkpoint failed" in caplog.text
    engine.dispose()
