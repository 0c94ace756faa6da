"""Generate a realistic demo PostHog S3 batch export of a listings portal's events into a folder."""

from __future__ import annotations

import gzip
import json
import os
from collections import Counter, defaultdict, deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cache
from itertools import product
from pathlib import Path
from typing import Any, BinaryIO, Literal

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

__all__ = ["FORMATS", "DemoStats", "ExportFormat", "generate_export"]

ExportFormat = Literal["parquet", "jsonl", "jsonl.gz", "jsonl.zst"]
FORMATS: tuple[ExportFormat, ...] = ("parquet", "jsonl", "jsonl.gz", "jsonl.zst")

I64 = npt.NDArray[np.int64]
U64 = npt.NDArray[np.uint64]
F64 = npt.NDArray[np.float64]
Mask = npt.NDArray[np.bool_]

_S = 1_000_000
_H = 3_600 * _S
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# Batches are generated in slices of at most about this many events, which bounds memory
# however many events one batch interval holds.
_SLICE_EVENTS = 100_000
_LISTERS = 300
_MAX_FAVOURITES = 40
_LATE_MAX_H = 72

# Event kinds ("groups") decide which properties an event carries and how it picks a listing.
_IMP, _VIEW, _SHARE, _SAVE, _IGNORED, _LEAD = range(6)

# (event name, % of all events, group). Lead events are drawn separately, per seeker intent.
_NON_LEADS: tuple[tuple[str, float, int], ...] = (
    ("listing_impression", 55.0, _IMP),
    ("property_view", 20.0, _VIEW),
    ("listing_view", 9.0, _VIEW),
    ("$pageview", 7.0, _VIEW),
    ("listing_share", 1.2, _SHARE),
    ("impression_share", 0.8, _SHARE),
    ("listing_save", 1.7, _SAVE),
    ("impression_saved_listing", 1.3, _SAVE),
    ("$autocapture", 1.0, _IGNORED),
    ("$pageview", 0.7, _IGNORED),
    ("search_performed", 0.3, _IGNORED),
)
_LEADS: tuple[tuple[str, float], ...] = (
    ("lead_phone", 0.55),
    ("lead_message", 0.55),
    ("lead_appointment", 0.2),
    ("lead", 0.45),
    ("impression_website_visit", 0.25),
)
_LEAD_SHARE = sum(w for _, w in _LEADS) / 100.0
_V_VIEW = 1
_V_PAGEVIEW_LISTING = 3
_V_SAVED = 7
_V_LEAD0 = len(_NON_LEADS)
_V_LEAD_MESSAGE = _V_LEAD0 + 1
_V_LEAD_APPOINTMENT = _V_LEAD0 + 2
_V_LEAD = _V_LEAD0 + 3
_V_WEBSITE = _V_LEAD0 + 4
_EVENT_NAMES = [name for name, _, _ in _NON_LEADS] + [name for name, _ in _LEADS]
_GROUP = np.array([g for _, _, g in _NON_LEADS] + [_LEAD] * len(_LEADS), dtype=np.int64)
_EXTRA = {
    len(_NON_LEADS) - 3: '"$event_type":"click"',
    len(_NON_LEADS) - 2: '"$pathname":"/search"',
    len(_NON_LEADS) - 1: '"search_type":"map"',
}
_EVENT_NAME_ARRAY = pa.array(_EVENT_NAMES, pa.string())
_EXTRA_CODE = np.array(
    [list(_EXTRA).index(v) if v in _EXTRA else -1 for v in range(len(_EVENT_NAMES))]
)

# Per group: chance that an event is about the session's focus listing, else another favourite;
# the rest are listings met while browsing, drawn by popularity.
_P_FOCUS = np.array([0.3, 0.55, 0.6, 0.6, 0.5, 0.85])
_P_FAVOURITE = np.array([0.5, 0.4, 0.38, 0.38, 0.4, 0.15])

_CONTEXTS = ("search_results", "home_feed", "similar_listings", "map", "listing_page")
# Per group: probability of each context_type; the remainder is "absent".
_CONTEXT_P = np.array(
    [
        [0.60, 0.15, 0.15, 0.10, 0.00],
        [0.35, 0.10, 0.15, 0.05, 0.00],
        [0.00, 0.00, 0.00, 0.00, 0.50],
        [0.30, 0.00, 0.00, 0.00, 0.30],
        [0.00, 0.00, 0.00, 0.00, 0.00],
        [0.15, 0.00, 0.10, 0.00, 0.75],
    ]
)
_CONTEXT_CDF = np.cumsum(_CONTEXT_P, axis=1)
_PLATFORMS = (
    ("whatsapp", 0.45),
    ("facebook", 0.15),
    ("x", 0.05),
    ("email", 0.10),
    ("copy_link", 0.25),
)
# "fax" is never drawn; it is the invalid value of malformed rows.
_MESSAGE_TYPES = (("whatsapp", 0.45), ("direct_message", 0.25), ("email", 0.20), ("fax", 0.0))
_FAX_CODE = 3
_LEAD_TYPES = (("phone", 0.3), ("message", 0.3), ("appointment", 0.1), ("website", 0.2))
_APPOINTMENT_TYPES = (("in_person", 0.7), ("video", 0.3))
_DEVICES = (
    ('"$lib":"web","$device_type":"Desktop"', "Desktop", 0.45),
    ('"$lib":"web","$device_type":"Mobile"', "Mobile", 0.35),
    ('"$lib":"posthog-ios","$device_type":"Mobile"', "Mobile", 0.10),
    ('"$lib":"posthog-android","$device_type":"Mobile"', "Mobile", 0.10),
)
_DEVICE_FRAGS = pa.array([d for d, _, _ in _DEVICES], pa.string())
# The optional properties, each a few values, in the order `_attributes` takes their codes.
_ATTRIBUTES: tuple[tuple[str, ...], ...] = (
    tuple(f'"context_type":"{c}"' for c in (*_CONTEXTS, "lister_profile")),
    tuple(f'"platform":"{v}"' for v, _ in _PLATFORMS),
    ('"action":"save"', '"action":"remove"'),
    tuple(f'"lead_type":"{v}"' for v, _ in _LEAD_TYPES),
    tuple(f'"message_type":"{v}"' for v, _ in _MESSAGE_TYPES),
    tuple(f'"appointment_type":"{v}"' for v, _ in _APPOINTMENT_TYPES),
    tuple(_EXTRA.values()),
)
_LISTER_TYPES = (("developer", 0.15), ("agent", 0.50), ("agency", 0.35))
_P_LOGGED_IN = 0.85
_P_SEEKER_ID_DROPPED = 0.03
_P_LISTER_PROFILE = 0.04

# Share of events by UTC hour of day and by weekday (Monday first): quiet nights, an evening
# peak, busier weekends.
_HOUR_W = np.array(
    [
        *(0.25, 0.15, 0.10, 0.08, 0.08, 0.12, 0.30, 0.55, 0.80, 0.95, 1.00, 1.05),
        *(1.10, 1.05, 1.00, 1.00, 1.05, 1.15, 1.35, 1.60, 1.75, 1.70, 1.30, 0.70),
    ]
)
_WEEKDAY_W = np.array([0.95, 0.92, 0.93, 0.95, 0.90, 1.20, 1.30])

# Malformed row kinds. Parquet has no lines to garble, and its time columns are typed, so a
# bad timestamp there is a null.
_TRUNCATED, _GARBAGE, _BAD_TS, _BAD_PROPS, _NO_LISTING, _LISTING_OBJECT, _FAX, _NO_UUID = range(8)
_MALFORMED_KINDS: dict[str, tuple[int, ...]] = {
    "parquet": (_BAD_TS, _BAD_PROPS, _NO_LISTING, _LISTING_OBJECT, _FAX, _NO_UUID),
    "jsonl": (
        _TRUNCATED,
        _GARBAGE,
        _BAD_TS,
        _BAD_PROPS,
        _NO_LISTING,
        _LISTING_OBJECT,
        _FAX,
        _NO_UUID,
    ),
}
_GARBAGE_LINES = (
    "<html><body><h1>502 Bad Gateway</h1></body></html>",
    '["listing_impression", "listing-00001"]',
    "null",
    "#### export interrupted ####",
)
_BAD_TIMESTAMPS = ("not-a-timestamp", "2025-13-45T25:61:00Z", "yesterday", "")

_PARQUET_SCHEMA = pa.schema(
    [
        ("uuid", pa.string()),
        ("event", pa.string()),
        ("distinct_id", pa.string()),
        ("person_id", pa.string()),
        ("properties", pa.string()),
        ("person_properties", pa.string()),
        ("elements_chain", pa.string()),
        ("timestamp", pa.timestamp("us", tz="UTC")),
        ("created_at", pa.timestamp("us", tz="UTC")),
        ("_inserted_at", pa.timestamp("us", tz="UTC")),
    ]
)


@dataclass(frozen=True)
class DemoStats:
    """What `generate_export` wrote.

    `events` counts every row or line written, duplicate copies and malformed rows included;
    `duplicates` counts the extra copies; `late` counts events ingested an hour or more after
    their event time, each in a later batch file than the one its event time falls in.
    """

    files: int
    events: int
    malformed: int
    duplicates: int
    late: int


def generate_export(
    out_dir: Path,
    *,
    events: int = 2_000_000,
    listings: int = 2_000,
    seekers: int = 50_000,
    days: int = 365,
    end: datetime | None = None,
    seed: int = 7,
    fmt: ExportFormat = "parquet",
    batch_hours: int = 24,
    malformed_rate: float = 0.0005,
    duplicate_rate: float = 0.002,
    late_rate: float = 0.01,
    progress: Callable[[int], None] | None = None,
) -> DemoStats:
    """Write `events` demo events with times in [end - days, end) as PostHog S3 export batches.

    Files hold the events ingested (`created_at`) in their interval, aligned to multiples of
    `batch_hours` since the epoch like PostHog's, named `{start}-{end}.{fmt}`; each is written
    under a temporary name and renamed. `progress` gets the rows written so far after each file.
    """
    if fmt not in FORMATS:
        raise ValueError(f"fmt must be one of {', '.join(FORMATS)}, not {fmt!r}")
    if events < 0 or listings < 1 or seekers < 1 or days < 1 or batch_hours < 1:
        raise ValueError("events must be >= 0; listings, seekers, days, batch_hours >= 1")
    for name, rate in (
        ("malformed_rate", malformed_rate),
        ("duplicate_rate", duplicate_rate),
        ("late_rate", late_rate),
    ):
        if not 0.0 <= rate <= 1.0:
            raise ValueError(f"{name} must be within [0, 1]")
    if end is None:
        end = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    elif end.tzinfo is None:
        end = end.replace(tzinfo=UTC)
    end_us = (end - _EPOCH) // timedelta(microseconds=1)
    start_us = end_us - days * 24 * _H
    batch_us = batch_hours * _H
    out_dir.mkdir(parents=True, exist_ok=True)

    world = _World.build(np.random.default_rng([seed, 0]), listings, seekers, start_us, end_us)
    cfg = _Config(
        fmt=fmt,
        start_us=start_us,
        end_us=end_us,
        batch_us=batch_us,
        last_batch=(end_us - 1) // batch_us,
        malformed_rate=malformed_rate,
        duplicate_rate=duplicate_rate,
        late_rate=late_rate,
        uuid_salt=int(np.random.default_rng([seed, 3]).integers(0, 1 << 62)),
    )
    unit_start, unit_count = _hourly_counts(
        np.random.default_rng([seed, 1]), events, start_us, days
    )
    unit_offset = np.cumsum(unit_count) - unit_count
    slices = _slices(unit_count)

    output = _Output(out_dir, fmt, batch_us, progress)
    stats = Counter[str]()
    # Rows waiting for their batch's file, by batch: about one slice plus the late rows still
    # to land, as the lowest open batch is written out once it holds a slice's worth.
    pending: dict[int, list[Any]] = defaultdict(list)
    current = start_us // batch_us
    try:
        for number, (lo, hi) in enumerate(slices):
            part = _generate_slice(
                world,
                cfg,
                np.random.default_rng([seed, 2, number]),
                unit_start[lo:hi],
                unit_count[lo:hi],
                int(unit_offset[lo]),
            )
            stats["malformed"] += part.malformed
            stats["late"] += part.late
            # Rows come sorted by ingestion time, so each batch's rows are one run.
            targets, first = np.unique(part.batch, return_index=True)
            bounds = [*first.tolist(), len(part.batch)]
            for i, target in enumerate(targets.tolist()):
                pending[target].append(part.table.slice(bounds[i], bounds[i + 1] - bounds[i]))
            if part.duplicate.any():
                # The copy goes into the file after the original's, like an export re-run.
                for target in np.unique(part.batch[part.duplicate]).tolist():
                    chosen = part.duplicate & (part.batch == target)
                    pending[target + 1].append(part.table.filter(pa.array(chosen)))
                    stats["duplicates"] += int(chosen.sum())
            # Later slices start at or after `done`; no row of theirs lands before it.
            done = int(unit_start[hi]) if hi < len(unit_start) else end_us
            last_slice = hi == len(unit_start)
            while current <= cfg.last_batch and ((current + 1) * batch_us <= done or last_slice):
                output.write(current, pending.pop(current, []))
                output.close(current)
                current += 1
            if sum(len(t) for t in pending.get(current, [])) >= _SLICE_EVENTS:
                output.write(current, pending.pop(current))
        output.finish()
    finally:
        output.abort()
    return DemoStats(
        files=output.files,
        events=output.rows,
        malformed=stats["malformed"],
        duplicates=stats["duplicates"],
        late=stats["late"],
    )


@dataclass(frozen=True)
class _Config:
    fmt: ExportFormat
    start_us: int
    end_us: int
    batch_us: int
    last_batch: int
    malformed_rate: float
    duplicate_rate: float
    late_rate: float
    uuid_salt: int


@dataclass(frozen=True)
class _World:
    """Listings, listers and seekers, fixed for the whole export."""

    listing_cdf: F64
    # JSON fragments: '"listing_id":"…"' per listing, then the same again with the id wrapped
    # in an object (a malformed row's wrong type); '"lister_id":"…","lister_type":"…"' per
    # listing; '"seeker_id":"…"' per seeker.
    listing_frag: Any
    lister_frag: Any
    seeker_frag: Any  # null for anonymous seekers
    distinct_id: Any
    person_id: Any
    person_properties: Any
    device: I64
    activity: F64
    active_from: I64
    active_to: I64
    intent: F64
    favourites: npt.NDArray[np.int32]
    n_favourites: I64

    @staticmethod
    def build(
        rng: np.random.Generator, listings: int, seekers: int, start_us: int, end_us: int
    ) -> _World:
        # Zipf-like popularity; the offset keeps the very top listings from taking everything.
        popularity = 1.0 / (rng.permutation(listings) + 5.0) ** 1.05
        listing_cdf = np.cumsum(popularity / popularity.sum())

        n_listers = max(1, min(_LISTERS, listings // 5))
        lister_w = 1.0 / (np.arange(n_listers) + 2.0) ** 0.8
        lister_of = _draw(rng, np.cumsum(lister_w / lister_w.sum()), listings)
        # Every lister owns at least one listing.
        lister_of[rng.permutation(listings)[: min(n_listers, listings)]] = np.arange(
            min(n_listers, listings)
        )
        lister_type = _categorical(rng, [p for _, p in _LISTER_TYPES], n_listers)
        wl = max(5, len(str(listings)))
        wr = max(4, len(str(n_listers)))
        ws = max(6, len(str(seekers)))
        listing_ids = [f"listing-{i + 1:0{wl}d}" for i in range(listings)]
        listing_frag = pa.array(
            [f'"listing_id":"{x}"' for x in listing_ids]
            + [f'"listing_id":{{"id":"{x}"}}' for x in listing_ids],
            pa.string(),
        )
        lister_frag = pa.array(
            [
                f'"lister_id":"lister-{r + 1:0{wr}d}","lister_type":"{_LISTER_TYPES[t][0]}"'
                for r, t in zip(lister_of.tolist(), lister_type[lister_of].tolist(), strict=True)
            ],
            pa.string(),
        )

        # A seeker searches for weeks or months, not all year.
        span = end_us - start_us
        duration = np.clip(rng.lognormal(np.log(45.0), 0.9, seekers), 2.0, span / (24 * _H))
        duration_us = (duration * 24 * _H).astype(np.int64)
        offset = rng.random(seekers) * (span + duration_us)
        active_from: I64 = start_us - duration_us + offset.astype(np.int64)
        logged_in = rng.random(seekers) < _P_LOGGED_IN
        device = _categorical(rng, [p for _, _, p in _DEVICES], seekers)
        seeker_ids = [f"seeker-{i + 1:0{ws}d}" for i in range(seekers)]
        anonymous = _uuid7(
            active_from // 1000, rng.integers(0, 1 << 62, seekers, dtype=np.uint64), rng
        )
        distinct_id = pc.if_else(pa.array(logged_in), pa.array(seeker_ids, pa.string()), anonymous)
        person_properties = [
            (f'{{"seeker_id":"{s}",' if li else "{")
            + f'"$initial_device_type":"{_DEVICES[d][1]}"}}'
            for s, li, d in zip(seeker_ids, logged_in.tolist(), device.tolist(), strict=True)
        ]
        seeker_frag = pa.array(
            [f'"seeker_id":"{s}"' for s in seeker_ids], pa.string(), mask=~logged_in
        )
        intent = rng.lognormal(0.0, 1.0, seekers)
        # Favourites are drawn by popularity; a listing drawn twice is simply liked more.
        favourites = _draw(rng, listing_cdf, seekers * _MAX_FAVOURITES).astype(np.int32)
        n_favourites = np.clip(np.rint(rng.lognormal(np.log(12.0), 0.6, seekers)), 5, 40)
        return _World(
            listing_cdf=listing_cdf,
            listing_frag=listing_frag,
            lister_frag=lister_frag,
            seeker_frag=seeker_frag,
            distinct_id=distinct_id,
            person_id=_uuid4(rng, seekers),
            person_properties=pa.array(person_properties, pa.string()),
            device=device,
            activity=rng.lognormal(0.0, 1.2, seekers),
            active_from=active_from,
            active_to=active_from + duration_us,
            intent=intent / intent.mean(),
            favourites=favourites.reshape(seekers, _MAX_FAVOURITES),
            n_favourites=n_favourites.astype(np.int64),
        )


@dataclass(frozen=True)
class _Part:
    table: Any  # rows in ingestion order
    batch: I64  # ingestion batch of each row
    duplicate: Mask
    malformed: int
    late: int


def _generate_slice(
    world: _World,
    cfg: _Config,
    rng: np.random.Generator,
    unit_start: I64,
    unit_count: I64,
    first_event: int,
) -> _Part:
    """The events of sessions starting in these hours, as rows of the output format."""
    n = int(unit_count.sum())

    # Seekers browse in sessions: bursts of events a few tens of seconds apart.
    sizes = _session_sizes(rng, n)
    ns = len(sizes)
    first = np.cumsum(sizes) - sizes
    sess = np.repeat(np.arange(ns), sizes)
    unit = np.searchsorted(np.cumsum(unit_count), rng.integers(0, n, ns), side="right")
    sess_start = unit_start[unit] + rng.integers(0, _H, ns)
    seeker_of_sess = _active_seekers(world, rng, sess_start, int(unit_start[0]))
    nfav = world.n_favourites[seeker_of_sess]
    focus = world.favourites[seeker_of_sess, (rng.geometric(0.3, ns) - 1) % nfav]
    device = np.where(
        rng.random(ns) < 0.8, world.device[seeker_of_sess], rng.integers(0, len(_DEVICES), ns)
    )
    session_id = _uuid7(sess_start // 1000, rng.integers(0, 1 << 62, ns, dtype=np.uint64), rng)

    gap = rng.exponential(40.0 * _S, n)
    gap[first] = 0.0
    walk = np.cumsum(gap)
    ts = sess_start[sess] + (walk - walk[first][sess]).astype(np.int64)
    # A session running past the export's end wraps back onto its own start, which keeps
    # every event in range and the total exact.
    over = ts >= cfg.end_us
    if over.any():
        s0 = sess_start[sess][over]
        ts[over] = s0 + (ts[over] - s0) % (cfg.end_us - s0)

    seeker = seeker_of_sess[sess]
    # Serious seekers (high intent) contact listers far more often than browsers.
    p_lead = np.minimum(0.5, _LEAD_SHARE * world.intent[seeker])
    lead_v = _V_LEAD0 + _categorical(rng, [w for _, w in _LEADS], n)
    other_v = _categorical(rng, [w for _, w, _ in _NON_LEADS], n)
    variant = np.where(rng.random(n) < p_lead, lead_v, other_v)
    group = _GROUP[variant]
    favourite = world.favourites[seeker, (rng.geometric(0.2, n) - 1) % world.n_favourites[seeker]]
    browsed = _draw(rng, world.listing_cdf, n)
    r = rng.random(n)
    p_focus = _P_FOCUS[group]
    listing = np.where(
        r < p_focus, focus[sess], np.where(r < p_focus + _P_FAVOURITE[group], favourite, browsed)
    )
    lister_profile = (
        (group == _LEAD) & (variant != _V_WEBSITE) & (rng.random(n) < _P_LISTER_PROFILE)
    )

    # Malformed rows are otherwise valid listing events, so each has exactly one defect.
    mal = rng.random(n) < cfg.malformed_rate
    kinds = np.array(_MALFORMED_KINDS["parquet" if cfg.fmt == "parquet" else "jsonl"])
    mal_kind = np.where(mal, kinds[rng.integers(0, len(kinds), n)], -1)
    variant[mal & ((group == _IGNORED) | (variant == _V_PAGEVIEW_LISTING))] = _V_VIEW
    variant[mal_kind == _FAX] = _V_LEAD_MESSAGE
    lister_profile &= ~mal

    # Ingestion: seconds after the event, or for late events hours to days and always in a
    # later batch file; never after the export's end.
    delay = np.clip(rng.lognormal(np.log(1.5), 0.8, n), 0.02, 60.0) * _S
    created = np.minimum(ts + delay.astype(np.int64), cfg.end_us - 1)
    next_batch = (ts // cfg.batch_us + 1) * cfg.batch_us
    earliest = np.maximum(next_batch, ts + _H)
    late = ~mal & (rng.random(n) < cfg.late_rate) & (earliest < cfg.end_us - _S)
    late_delay = np.exp(rng.uniform(np.log(_H), np.log(_LATE_MAX_H * _H), n)).astype(np.int64)
    room = np.clip((cfg.end_us - earliest) // 2, 0, 600 * _S)
    jitter = (rng.random(n) * room).astype(np.int64)
    late_created = np.minimum(np.maximum(ts + late_delay, earliest + jitter), cfg.end_us - 1)
    created = np.where(late, late_created, created)
    lag = np.clip(rng.lognormal(np.log(3.0), 0.7, n), 0.1, 120.0) * _S
    inserted = created + lag.astype(np.int64)

    # From here on rows are in ingestion order; what is drawn below is drawn per row.
    order = np.argsort(created, kind="stable")
    ts, created, inserted, sess, seeker = (a[order] for a in (ts, created, inserted, sess, seeker))
    variant, listing, mal, mal_kind = (a[order] for a in (variant, listing, mal, mal_kind))
    lister_profile = lister_profile[order]
    group = _GROUP[variant]
    batch = created // cfg.batch_us
    duplicate = ~mal & (rng.random(n) < cfg.duplicate_rate) & (batch < cfg.last_batch)

    has_listing = (group != _IGNORED) & ~lister_profile & (mal_kind != _NO_LISTING)
    n_listings = len(world.listing_cdf)
    listing_frag = _take(
        world.listing_frag,
        np.where(mal_kind == _LISTING_OBJECT, listing + n_listings, listing),
        has_listing,
    )
    seeker_frag = _take(world.seeker_frag, seeker, rng.random(n) >= _P_SEEKER_ID_DROPPED)
    lister_frag = _take(world.lister_frag, listing, group == _LEAD)
    context = (rng.random(n)[:, None] >= _CONTEXT_CDF[group]).sum(axis=1)
    context = np.where(lister_profile, len(_CONTEXTS), context)
    lead_type = _categorical(rng, [p for _, p in _LEAD_TYPES], n)
    unified = variant == _V_LEAD
    message_type = np.where(
        mal_kind == _FAX, _FAX_CODE, _categorical(rng, [p for _, p in _MESSAGE_TYPES], n)
    )
    is_message = (variant == _V_LEAD_MESSAGE) | (unified & (lead_type == 1))
    is_appointment = (variant == _V_LEAD_APPOINTMENT) | (unified & (lead_type == 2))
    attributes = _attributes(
        (context, lister_profile | (context < len(_CONTEXTS))),
        (_categorical(rng, [p for _, p in _PLATFORMS], n), group == _SHARE),
        ((rng.random(n) < 0.1).astype(np.int64), variant == _V_SAVED),
        (lead_type, unified & (lead_type >= 0)),
        (message_type, is_message & (message_type >= 0)),
        (_categorical(rng, [p for _, p in _APPOINTMENT_TYPES], n), is_appointment),
        (_EXTRA_CODE[variant], _EXTRA_CODE[variant] >= 0),
    )
    session = _join('"$session_id":"', session_id, '",', _DEVICE_FRAGS.take(pa.array(device))).take(
        pa.array(sess)
    )
    properties = _join(
        "{",
        _join(
            listing_frag,
            seeker_frag,
            lister_frag,
            attributes,
            session,
            sep=",",
            skip_nulls=True,
        ),
        "}",
    )

    # Event uuids are UUIDv7 like PostHog's; their random part is a bijection of the event's
    # number in the export, so they are unique by construction.
    number = np.arange(first_event, first_event + n, dtype=np.uint64)
    no_uuid = mal_kind == _NO_UUID
    uuid = _uuid7(
        ts // 1000,
        _scramble62(number + np.uint64(cfg.uuid_salt)),
        rng,
        missing=no_uuid if cfg.fmt == "parquet" else None,
    )
    names = _EVENT_NAME_ARRAY.take(pa.array(variant))
    distinct_id = world.distinct_id.take(pa.array(seeker))
    person_id = world.person_id.take(pa.array(seeker))
    person_properties = world.person_properties.take(pa.array(seeker))
    garbled = np.flatnonzero(mal_kind == _BAD_PROPS)
    bad_ts = mal_kind == _BAD_TS

    if cfg.fmt == "parquet":
        if len(garbled):
            cut = [s[: len(s) // 2] for s in properties.take(pa.array(garbled)).to_pylist()]
            properties = _replace(properties, garbled, cut)
        table = pa.Table.from_arrays(
            [
                uuid,
                names,
                distinct_id,
                person_id,
                properties,
                person_properties,
                pa.repeat(_lit(""), n),
                _timestamps(ts, bad_ts),
                _timestamps(created, None),
                _timestamps(inserted, None),
            ],
            schema=_PARQUET_SCHEMA,
        )
    else:
        line = _join(
            '{"uuid":"',
            uuid,
            '","event":"',
            names,
            '","distinct_id":"',
            distinct_id,
            '","person_id":"',
            person_id,
            '","properties":',
            properties,
            ',"person_properties":',
            person_properties,
            ',"elements_chain":"","timestamp":"',
            _iso(ts),
            '","created_at":"',
            _iso(created),
            '","_inserted_at":"',
            _iso(inserted),
            '"}\n',
        )
        # The few malformed lines are edited one by one rather than by copying whole columns.
        broken = np.flatnonzero(mal & (mal_kind != _NO_LISTING) & (mal_kind != _LISTING_OBJECT))
        broken = broken[mal_kind[broken] != _FAX]
        if len(broken):
            texts = [
                _break_line(text, kind, pick)
                for text, kind, pick in zip(
                    line.take(pa.array(broken)).to_pylist(),
                    mal_kind[broken].tolist(),
                    rng.integers(0, 1 << 30, len(broken)).tolist(),
                    strict=True,
                )
            ]
            line = _replace(line, broken, texts)
        table = pa.Table.from_arrays([line], names=["line"])
    return _Part(
        table=table,
        batch=batch,
        duplicate=duplicate,
        malformed=int(mal.sum()),
        late=int(late.sum()),
    )


def _break_line(line: str, kind: int, pick: int) -> str:
    """A JSONL line with one defect of this kind."""
    if kind == _TRUNCATED:
        return line[: len(line) // 2] + "\n"
    if kind == _GARBAGE:
        return _GARBAGE_LINES[pick % len(_GARBAGE_LINES)] + "\n"
    event = json.loads(line)
    if kind == _NO_UUID:
        del event["uuid"]
    elif kind == _BAD_TS:
        event["timestamp"] = _BAD_TIMESTAMPS[pick % len(_BAD_TIMESTAMPS)]
    elif kind == _BAD_PROPS:
        # A JSON string that does not hold an object, as a broken client might send.
        text = json.dumps(event["properties"], separators=(",", ":"))
        event["properties"] = text[: len(text) // 2]
    return json.dumps(event, separators=(",", ":")) + "\n"


def _active_seekers(world: _World, rng: np.random.Generator, sess_start: I64, origin: int) -> I64:
    """A seeker for each session, by activity among the seekers active on its day."""
    day = (sess_start - origin) // (24 * _H)
    order = np.argsort(day, kind="stable")
    days, first = np.unique(day[order], return_index=True)
    bounds = [*first.tolist(), len(day)]
    out = np.empty(len(day), dtype=np.int64)
    for i, d in enumerate(days.tolist()):
        lo = origin + d * 24 * _H
        active = (world.active_from < lo + 24 * _H) & (world.active_to > lo)
        weight = np.where(active, world.activity, 0.0)
        if not weight.any():
            weight = world.activity
        chosen = order[bounds[i] : bounds[i + 1]]
        out[chosen] = _draw(rng, np.cumsum(weight), len(chosen))
    return out


class _BatchFile:
    """One export file, written under a hidden temporary name until it is complete."""

    def __init__(self, path: Path, fmt: ExportFormat) -> None:
        self.path = path
        self.tmp = path.with_name(f".{path.name}.tmp")
        self.fmt = fmt
        self.rows = 0
        self._sink: Any = None
        self._raw: BinaryIO | None = None

    def write(self, tables: Sequence[Any]) -> None:
        table = pa.concat_tables([t for t in tables if len(t)] or tables)
        if not len(table):
            return
        if self._sink is None:
            if self.fmt == "parquet":
                self._sink = pq.ParquetWriter(
                    self.tmp,
                    _PARQUET_SCHEMA,
                    compression="zstd",
                    compression_level=1,
                    # Dictionaries only pay off for the columns with few distinct values.
                    use_dictionary=["event", "distinct_id", "person_id", "person_properties"],
                    # Readers prune by time; min/max of the JSON and id columns are never used.
                    write_statistics=["event", "timestamp", "created_at", "_inserted_at"],
                )
            elif self.fmt == "jsonl.gz":
                # Python's zlib at a low level: Arrow's gzip stream has no level and is slow.
                self._raw = self.tmp.open("wb")
                self._sink = gzip.GzipFile(
                    filename="", mode="wb", compresslevel=3, fileobj=self._raw, mtime=0
                )
            else:
                stream = pa.OSFile(str(self.tmp), "wb")
                zstd = self.fmt == "jsonl.zst"
                self._sink = pa.CompressedOutputStream(stream, "zstd") if zstd else stream
        if self.fmt == "parquet":
            self._sink.write_table(table)
        else:
            # The lines, newlines included, lie contiguous in each chunk's data buffer.
            for chunk in table.column("line").chunks:
                offsets = np.frombuffer(
                    chunk.buffers()[1],
                    dtype=np.int32,
                    count=len(chunk) + 1,
                    offset=chunk.offset * 4,
                )
                self._sink.write(chunk.buffers()[2][int(offsets[0]) : int(offsets[-1])])
        self.rows += len(table)

    def close(self) -> int:
        """Publish the file under its name; its rows (0: nothing written, no file)."""
        if self._sink is not None:
            self._close_streams()
            os.replace(self.tmp, self.path)
        return self.rows

    def abort(self) -> None:
        if self._sink is not None:
            self._close_streams()
            self.tmp.unlink(missing_ok=True)

    def _close_streams(self) -> None:
        self._sink.close()
        self._sink = None
        if self._raw is not None:
            self._raw.close()
            self._raw = None


class _Output:
    """The export's files, written in order on one background thread.

    Compressing and writing overlaps with generating the next slice; at most about two
    slices' rows wait to be written, which keeps memory bounded.
    """

    _QUEUE_ROWS = 2 * _SLICE_EVENTS

    def __init__(
        self,
        out_dir: Path,
        fmt: ExportFormat,
        batch_us: int,
        progress: Callable[[int], None] | None,
    ) -> None:
        self.out_dir = out_dir
        self.fmt = fmt
        self.batch_us = batch_us
        self.progress = progress
        self.files = 0
        self.rows = 0
        self._open: dict[int, _BatchFile] = {}
        self._started: list[_BatchFile] = []
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="demo-export")
        self._queue: deque[tuple[Future[int | None], bool, int]] = deque()
        self._queued_rows = 0

    def write(self, batch: int, tables: Sequence[Any]) -> None:
        if not tables:
            return
        file = self._open.get(batch)
        if file is None:
            start, end = batch * self.batch_us, (batch + 1) * self.batch_us
            name = f"{_iso_name(start)}-{_iso_name(end)}.{self.fmt}"
            file = self._open[batch] = _BatchFile(self.out_dir / name, self.fmt)
            self._started.append(file)
        rows = sum(len(t) for t in tables)
        self._submit(lambda: file.write(tables), closing=False, rows=rows)

    def close(self, batch: int) -> None:
        file = self._open.pop(batch, None)
        if file is not None:
            self._submit(file.close, closing=True, rows=0)

    def finish(self) -> None:
        self._drain(-1)

    def abort(self) -> None:
        """Stop writing; a file not yet complete is removed, never published."""
        for future, _, _ in self._queue:
            future.cancel()
        self._pool.shutdown(wait=True)
        self._queue.clear()
        for file in self._started:
            file.abort()
        self._open.clear()
        self._started.clear()

    def _submit(self, task: Callable[[], int | None], *, closing: bool, rows: int) -> None:
        self._queue.append((self._pool.submit(task), closing, rows))
        self._queued_rows += rows
        self._drain(self._QUEUE_ROWS)

    def _drain(self, keep_rows: int) -> None:
        while self._queue and (self._queued_rows > keep_rows or self._queue[0][0].done()):
            future, closing, rows = self._queue.popleft()
            self._queued_rows -= rows
            written = future.result()
            if closing and written:
                self.files += 1
                self.rows += written
                if self.progress is not None:
                    self.progress(self.rows)


def _timestamps(us: I64, missing: Mask | None) -> Any:
    values = pa.array(us, pa.int64(), mask=missing)
    return values.view(pa.timestamp("us", tz="UTC"))


def _hourly_counts(
    rng: np.random.Generator, events: int, start_us: int, days: int
) -> tuple[I64, I64]:
    """The start of every hour of the range and how many events start a session in it."""
    hours = days * 24
    start = start_us + np.arange(hours, dtype=np.int64) * _H
    day = start // (24 * _H)
    weight = _HOUR_W[(start // _H) % 24] * _WEEKDAY_W[(day + 3) % 7]
    # A growing portal, and days that are simply busier or quieter than others.
    weight *= np.linspace(0.8, 1.2, hours)
    weight *= np.repeat(rng.lognormal(0.0, 0.12, days), 24)
    counts = rng.multinomial(events, weight / weight.sum()).astype(np.int64)
    return start, counts


def _slices(unit_count: I64) -> list[tuple[int, int]]:
    """Runs of hours [lo, hi) holding at most about _SLICE_EVENTS events (at least one hour)."""
    out: list[tuple[int, int]] = []
    lo = size = 0
    for i, count in enumerate(unit_count.tolist()):
        if i > lo and size + count > _SLICE_EVENTS:
            out.append((lo, i))
            lo, size = i, 0
        size += count
    if size:
        out.append((lo, len(unit_count)))
    return out


def _session_sizes(rng: np.random.Generator, n: int) -> I64:
    sizes = rng.geometric(1 / 8, n // 8 + 64).astype(np.int64)
    while sizes.sum() < n:
        more = rng.geometric(1 / 8, n // 64 + 64).astype(np.int64)
        sizes = np.concatenate([sizes, more])
    total = np.cumsum(sizes)
    k = int(np.searchsorted(total, n))
    sizes = sizes[: k + 1].copy()
    sizes[-1] -= int(total[k]) - n
    return sizes


def _draw(rng: np.random.Generator, cdf: F64, n: int) -> I64:
    idx = np.searchsorted(cdf, rng.random(n) * cdf[-1], side="right").astype(np.int64)
    out: I64 = np.minimum(idx, len(cdf) - 1)
    return out


def _categorical(rng: np.random.Generator, probs: Sequence[float], n: int) -> I64:
    """Codes drawn with these probabilities; when they sum to p < 1, -1 ("absent") for 1 - p."""
    cdf = np.cumsum(np.asarray(probs, dtype=np.float64))
    if cdf[-1] > 1.0:
        cdf /= cdf[-1]
    code = np.searchsorted(cdf, rng.random(n), side="right")
    return np.where(code >= len(cdf), -1, code).astype(np.int64)


_LITERALS: dict[str, Any] = {}


def _lit(text: str) -> Any:
    """A string scalar, made once: pyarrow converting a str argument costs failed imports."""
    scalar = _LITERALS.get(text)
    if scalar is None:
        scalar = _LITERALS[text] = pa.scalar(text, pa.string())
    return scalar


def _join(*parts: Any, sep: str = "", skip_nulls: bool = False) -> Any:
    """Concatenate string arrays and literals row-wise."""
    args = [_lit(p) if isinstance(p, str) else p for p in parts]
    return pc.binary_join_element_wise(
        *args, _lit(sep), null_handling="skip" if skip_nulls else "emit_null"
    )


@cache
def _attribute_table() -> Any:
    """Every combination of the optional properties as one JSON fragment (null: none)."""
    choices = [(*values, None) for values in _ATTRIBUTES]
    return pa.array(
        [",".join(f for f in combo if f) or None for combo in product(*choices)], pa.string()
    )


def _attributes(*codes: tuple[I64, Mask]) -> Any:
    """The optional properties of each row, from a (value code, present) pair per attribute.

    One lookup in a table of all combinations replaces a column and a join per property.
    """
    index = np.zeros(len(codes[0][0]), dtype=np.int64)
    for values, (code, present) in zip(_ATTRIBUTES, codes, strict=True):
        index = index * (len(values) + 1) + np.where(present, code, len(values))
    return _attribute_table().take(pa.array(index))


def _take(table: Any, idx: npt.NDArray[Any], present: Mask | None) -> Any:
    """table[idx], null where not present."""
    return table.take(pa.array(idx.astype(np.int64), mask=None if present is None else ~present))


def _replace(strings: Any, positions: npt.NDArray[Any], values: list[str]) -> Any:
    mask = np.zeros(len(strings), dtype=bool)
    mask[positions] = True
    return pc.replace_with_mask(strings, pa.array(mask), pa.array(values, pa.string()))


def _fixed_width(chars: npt.NDArray[np.uint8], missing: Mask | None = None) -> Any:
    """A string array from an (n, width) matrix of ASCII bytes, null where `missing`."""
    n, width = chars.shape
    offsets = np.arange(0, (n + 1) * width, width, dtype=np.int32)
    validity = None
    if missing is not None and missing.any():
        validity = pa.py_buffer(np.packbits(~missing, bitorder="little"))
    return pa.Array.from_buffers(
        pa.string(),
        n,
        [validity, pa.py_buffer(offsets), pa.py_buffer(np.ascontiguousarray(chars))],
    )


# Each byte value's two hex digits, as one 16-bit unit.
_HEX_PAIRS = np.frombuffer(b"".join(f"{i:02x}".encode() for i in range(256)), dtype=np.uint16)


def _uuid_text(hi: U64, lo: U64, missing: Mask | None = None) -> Any:
    raw = np.empty((len(hi), 2), dtype=">u8")
    raw[:, 0] = hi
    raw[:, 1] = lo
    digits = _HEX_PAIRS[raw.view(np.uint8).reshape(len(hi), 16)].view(np.uint8)
    out = np.full((len(hi), 36), ord("-"), dtype=np.uint8)
    for start, stop, at in ((0, 8, 0), (8, 12, 9), (12, 16, 14), (16, 20, 19), (20, 32, 24)):
        out[:, at : at + stop - start] = digits[:, start:stop]
    return _fixed_width(out, missing)


_MASK62 = np.uint64((1 << 62) - 1)


def _scramble62(x: U64) -> U64:
    """A bijection of [0, 2**62) that looks random: odd multiplies and xor-shifts mod 2**62."""
    x = (x & _MASK62) * np.uint64(0x9E3779B97F4A7C15) & _MASK62
    x ^= x >> np.uint64(31)
    x = x * np.uint64(0xBF58476D1CE4E5B9) & _MASK62
    x ^= x >> np.uint64(29)
    return x


def _uuid7(ms: I64, rand_b: U64, rng: np.random.Generator, missing: Mask | None = None) -> Any:
    rand_a = rng.integers(0, 1 << 12, len(ms), dtype=np.uint64)
    hi = (ms.astype(np.uint64) << np.uint64(16)) | np.uint64(0x7000) | rand_a
    lo = np.uint64(1 << 63) | (rand_b & np.uint64((1 << 62) - 1))
    return _uuid_text(hi, lo, missing)


def _uuid4(rng: np.random.Generator, n: int) -> Any:
    hi = rng.integers(0, 1 << 64, n, dtype=np.uint64, endpoint=False)
    lo = rng.integers(0, 1 << 64, n, dtype=np.uint64, endpoint=False)
    hi = (hi & ~np.uint64(0xF000)) | np.uint64(0x4000)
    lo = (lo & np.uint64((1 << 62) - 1)) | np.uint64(1 << 63)
    return _uuid_text(hi, lo)


_DECIMAL_PAIRS = np.frombuffer(
    b"".join(f"{i:02d}".encode() for i in range(100)), dtype=np.uint8
).reshape(100, 2)


def _iso(us: I64) -> Any:
    """`YYYY-MM-DDTHH:MM:SS.ffffffZ` for microseconds since the epoch."""
    out = np.empty((len(us), 27), dtype=np.uint8)
    if not len(us):
        return _fixed_width(out)
    days, rest = np.divmod(us, 24 * _H)
    # A slice spans a few weeks: format each day once.
    first = int(days.min())
    dates = "".join(
        (_EPOCH + timedelta(days=d)).strftime("%Y-%m-%dT")
        for d in range(first, int(days.max()) + 1)
    )
    out[:, :11] = np.frombuffer(dates.encode(), dtype=np.uint8).reshape(-1, 11)[days - first]
    seconds, micros = np.divmod(rest, _S)
    for at, value in (
        (11, seconds // 3600),
        (14, seconds // 60 % 60),
        (17, seconds % 60),
        (20, micros // 10_000),
        (22, micros // 100 % 100),
        (24, micros % 100),
    ):
        out[:, at : at + 2] = _DECIMAL_PAIRS[value]
    out[:, [13, 16]] = ord(":")
    out[:, 19] = ord(".")
    out[:, 26] = ord("Z")
    return _fixed_width(out)


def _iso_name(us: int) -> str:
    return (_EPOCH + timedelta(microseconds=us)).strftime("%Y-%m-%dT%H:%M:%SZ")
