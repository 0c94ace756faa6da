"""Benchmark: the dashboard's reads on a large store (10,000 listings, 1,000,000 leads).

    python -m bench.dashboard                       # 10,000 listings, 1,000,000 leads, a year
    python -m bench.dashboard --listings 2000 --leads 100000
    python -m bench.dashboard --lead-pages --postgres   # the leads board's pages, both stores

The store is synthesised straight into SQLite (cached under bench/data/): the demo generator
would need some 80 million events for a million leads. Listings belong to listers with a
skewed (Zipf) share, so the busiest lister holds about a tenth of everything; each listing has
hourly analytics rows over the year and lead records of one to four actions. It then times,
in process (no network), every request a dashboard page makes, for the busiest lister and an
admin, and prints the slowest of them against the one-second budget of a page.
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

DATA = Path(__file__).parent / "data"
END = datetime(2026, 11, 1, tzinfo=UTC)
CHANNELS = (
    ("phone", "phone", None, 30),
    ("whatsapp", "message", "whatsapp", 15),
    ("direct_message", "message", "direct_message", 20),
    ("email", "message", "email", 10),
    ("appointment", "appointment", None, 40),
    ("website", "website", None, 10),
)
PLATFORMS = ("whatsapp", "facebook", "email", "copy_link", "x")
SECRET = "bench-dashboard-secret-0123456789abcdef"


def _stamp(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S.%f")


def build(path: Path, listings: int, leads: int, listers: int, days: int, seed: int) -> None:
    """A store with `listings` listings of `listers` listers and `leads` lead records."""
    from leadflow.store.db import create_store_engine, upgrade

    engine = create_store_engine(f"sqlite:///{path}")
    upgrade(engine)
    engine.dispose()
    rng = np.random.default_rng(seed)
    start = END - timedelta(days=days)
    weights = 1.0 / np.arange(1, listers + 1)
    owner = rng.choice(listers, size=listings, p=weights / weights.sum())
    listing_ids = [f"listing-{i:06d}" for i in range(listings)]
    now = _stamp(END)
    db = sqlite3.connect(path)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=OFF")

    # Hourly analytics: each listing active in ~3 % of the year's hours.
    hours = days * 24
    analytics: list[tuple[Any, ...]] = []
    breakdown: list[tuple[Any, ...]] = []
    totals = np.zeros((listings, 7), dtype=np.int64)
    for index, listing in enumerate(listing_ids):
        active = np.sort(rng.choice(hours, size=max(1, int(hours * 0.03)), replace=False))
        views = rng.poisson(3, active.size) + 1
        impressions = views * 3 + rng.poisson(2, active.size)
        saves = rng.binomial(1, 0.1, active.size)
        shares = rng.binomial(1, 0.08, active.size)
        channel = rng.integers(0, len(CHANNELS), active.size)
        lead = rng.binomial(1, 0.15, active.size)
        for h, v, im, sv, sh, ch, ld in zip(
            active.tolist(),
            views.tolist(),
            impressions.tolist(),
            saves.tolist(),
            shares.tolist(),
            channel.tolist(),
            lead.tolist(),
            strict=True,
        ):
            moment = start + timedelta(hours=h)
            day, hour = moment.date().isoformat(), moment.hour
            kind = CHANNELS[ch]
            counters = dict.fromkeys(("phone", "message", "email", "appointment", "website"), 0)
            if ld:
                counters[
                    {"whatsapp": "message", "direct_message": "message"}.get(kind[0], kind[0])
                ] = 1
                breakdown.append((listing, day, hour, "lead_channel", kind[0], 1))
            if sh:
                breakdown.append(
                    (listing, day, hour, "share_platform", PLATFORMS[h % len(PLATFORMS)], 1)
                )
            analytics.append(
                (
                    listing,
                    day,
                    hour,
                    v,
                    max(1, v - 1),
                    im,
                    sh,
                    sv,
                    ld,
                    *counters.values(),
                    ld,
                    100.0 * ld / v,
                    now,
                )
            )
        totals[index] = [
            views.sum(),
            impressions.sum(),
            shares.sum(),
            saves.sum(),
            lead.sum(),
            0,
            0,
        ]
    db.executemany(
        "INSERT INTO listing_analytics (listing_id, date, hour, total_views, unique_views, "
        "impressions, shares, saves, total_leads, phone_leads, message_leads, email_leads, "
        "appointment_leads, website_leads, unique_leads, conversion_rate, updated_at) "
        "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
        analytics,
    )
    db.executemany("INSERT INTO listing_analytics_breakdown VALUES (?,?,?,?,?,?)", breakdown)
    db.executemany(
        "INSERT INTO listings (listing_id, lister_id, lister_type, total_views, unique_views, "
        "total_impressions, total_shares, total_saves, total_leads, unique_leads, "
        "conversion_rate, share_breakdown, leads_breakdown, analytics_updated_at) "
        "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
        [
            (
                listing,
                f"lister-{owner[i] + 1:04d}",
                "agency",
                int(totals[i][0]),
                int(totals[i][0]) // 2,
                int(totals[i][1]),
                int(totals[i][2]),
                int(totals[i][3]),
                int(totals[i][4]),
                int(totals[i][4]),
                100.0 * totals[i][4] / max(1, totals[i][0]),
                "{}",
                "{}",
                now,
            )
            for i, listing in enumerate(listing_ids)
        ],
    )

    # Lead records: a popular listing gets more of them (the same skew as the listers').
    popularity = 1.0 / np.arange(1, listings + 1) ** 0.6
    on = rng.choice(listings, size=leads, p=popularity / popularity.sum())
    seekers = rng.integers(0, max(leads // 5, 1), size=leads)
    first_offsets = rng.integers(0, days * 86_400, size=leads)
    action_counts = rng.integers(1, 5, size=leads)
    channel_ids = rng.integers(0, len(CHANNELS), size=(leads, 4))
    batch: list[tuple[Any, ...]] = []
    tracker = json.dumps(
        [{"status": "new", "at": END.strftime("%Y-%m-%dT%H:%M:%S.%fZ"), "by": "leadflow"}]
    )
    for n in range(leads):
        first = start + timedelta(seconds=int(first_offsets[n]))
        actions = []
        score = 0
        for a in range(int(action_counts[n])):
            _, action_type, message_type, points = CHANNELS[int(channel_ids[n][a])]
            moment = first + timedelta(minutes=37 * a)
            action = {
                "event_uuid": f"{n}-{a}",
                "action_type": action_type,
                "timestamp": moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
            }
            if message_type:
                action["message_type"] = message_type
            actions.append(action)
            score += points
        last = first + timedelta(minutes=37 * (len(actions) - 1))
        batch.append(
            (
                listing_ids[on[n]],
                f"seeker-{seekers[n]:07d}",
                f"lister-{owner[on[n]] + 1:04d}",
                "agency",
                json.dumps(actions, separators=(",", ":")),
                len(actions),
                score,
                _stamp(first),
                _stamp(last),
                actions[-1]["action_type"],
                "new",
                tracker,
                "[]",
                1,
                now,
                now,
            )
        )
        if len(batch) == 100_000:
            _insert_leads(db, batch)
            batch = []
    _insert_leads(db, batch)
    db.commit()
    db.execute("ANALYZE")
    db.close()


def _insert_leads(db: sqlite3.Connection, batch: list[tuple[Any, ...]]) -> None:
    db.executemany(
        "INSERT INTO leads (listing_id, seeker_id, lister_id, lister_type, lead_actions, "
        "total_actions, lead_score, first_action_date, last_action_date, last_action_type, "
        "status, status_tracker, notes, run_id, created_at, updated_at) "
        "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
        batch,
    )


def time_requests(path: Path) -> list[tuple[str, str, float, int]]:
    """(who, request, best of 3 in seconds, bytes) for every request the pages make."""
    from fastapi.testclient import TestClient

    from leadflow.api import create_app
    from leadflow.api.auth import mint_token
    from leadflow.config import Settings

    app = create_app(Settings(database_url=f"sqlite:///{path}", jwt_secret=SECRET))
    client = TestClient(app)
    admin = {"Authorization": f"Bearer {mint_token(SECRET, 'bench', role='admin')}"}
    busiest = client.get("/api/listers", params={"limit": 1}, headers=admin).json()["items"][0]
    lister = busiest["lister_id"]
    own = {"Authorization": f"Bearer {mint_token(SECRET, 'bench', lister_id=lister)}"}
    month = {"from": (END - timedelta(days=30)).date().isoformat(), "to": END.date().isoformat()}
    year = {"from": (END - timedelta(days=365)).date().isoformat(), "to": END.date().isoformat()}
    listing = client.get(
        f"/api/listers/{lister}/listings", params={**month, "limit": 1}, headers=own
    ).json()["items"][0]["listing_id"]
    base = f"/api/listers/{lister}"
    requests: list[tuple[str, dict[str, str], str, dict[str, Any]]] = [
        ("admin", admin, "/api/me", {}),
        ("admin", admin, "/api/listers", {"limit": 1}),
        ("admin", admin, "/api/leads", {"limit": 25}),
        ("admin", admin, "/api/leads", {"limit": 25, "sort": "score"}),
        ("admin", admin, "/api/leads", {"limit": 25, "lister_id": lister}),
    ]
    for label, span in (("30 days", month), ("a year", year)):
        for path_, params in (
            (f"{base}/summary", {**span, "top": 1}),
            (f"{base}/series", {**span, "granularity": "day" if label == "30 days" else "week"}),
            (f"{base}/listings", {**span, "limit": 10}),
            (f"{base}/listings", {**span, "limit": 10, "sort": "conversion", "offset": 1000}),
            (f"{base}/shares", span),
            (f"/api/listings/{listing}/analytics", {**span, "granularity": "day"}),
        ):
            requests.append((f"lister, {label}", own, path_, params))
    requests += [
        ("lister", own, "/api/leads", {"limit": 25}),
        ("lister", own, "/api/leads", {"limit": 25, "channel": "phone", "sort": "score"}),
        ("lister", own, "/api/leads", {"limit": 10, "listing_id": listing}),
        ("lister", own, f"/api/listings/{listing}", {}),
    ]
    results = []
    for who, headers, url, params in requests:
        best = float("inf")
        size = 0
        for _ in range(3):
            started = time.perf_counter()
            response = client.get(url, params=params, headers=headers)
            best = min(best, time.perf_counter() - started)
            assert response.status_code == 200, (url, response.text)
            size = len(response.content)
        query = "&".join(f"{k}={v}" for k, v in params.items())
        results.append((who, f"{url}{'?' + query if query else ''}", best, size))
    app.state.engine.dispose()
    return results


def lead_page_queries(lister: str, listing: str) -> dict[str, Any]:
    """The leads board's first pages: each sort, typical filters, for the lister and an admin."""
    from leadflow.store.leads import LeadQuery

    month_ago = END - timedelta(days=30)
    return {
        "lister, last action": LeadQuery(scope_lister=lister),
        "lister, last action asc": LeadQuery(scope_lister=lister, order="asc"),
        "lister, created": LeadQuery(scope_lister=lister, sort="created"),
        "lister, score": LeadQuery(scope_lister=lister, sort="score"),
        "lister, phone by score": LeadQuery(scope_lister=lister, channels=("phone",), sort="score"),
        "lister, new in 30 days": LeadQuery(
            scope_lister=lister, statuses=("new",), last_action_from=month_ago, last_action_to=END
        ),
        "lister, score 60-100": LeadQuery(scope_lister=lister, min_score=60, max_score=100),
        "lister, one listing": LeadQuery(scope_lister=lister, listing_id=listing),
        "admin, last action": LeadQuery(),
        "admin, created": LeadQuery(sort="created"),
        "admin, score": LeadQuery(sort="score"),
        "admin, one lister": LeadQuery(lister_id=lister),
        "admin, phone or whatsapp": LeadQuery(channels=("phone", "whatsapp")),
        "admin, new in 30 days": LeadQuery(
            statuses=("new",), last_action_from=month_ago, last_action_to=END
        ),
    }


def time_lead_pages(url: str, lister: str, listing: str) -> list[tuple[str, float, float]]:
    """(query, first page, second page) in seconds, best of 3, through store/leads.py."""
    from leadflow.store.db import create_store_engine, ensure_schema
    from leadflow.store.leads import list_groups

    engine = create_store_engine(url)
    ensure_schema(engine)
    results = []
    for name, query in lead_page_queries(lister, listing).items():
        timings = []
        for _ in range(3):
            with engine.connect() as conn:
                started = time.perf_counter()
                page = list_groups(conn, query, 25)
                first = time.perf_counter() - started
                second = 0.0
                if page.next_cursor is not None:
                    started = time.perf_counter()
                    list_groups(conn, query, 25, page.next_cursor)
                    second = time.perf_counter() - started
            timings.append((first, second))
        results.append((name, min(t[0] for t in timings), min(t[1] for t in timings)))
    engine.dispose()
    return results


def copy_to_postgres(path: Path, url: str) -> None:
    """The SQLite store's listings, leads and analytics, copied into a migrated PostgreSQL one."""
    import psycopg
    from sqlalchemy.engine import make_url

    from leadflow.store.db import create_store_engine, upgrade

    engine = create_store_engine(url)
    upgrade(engine)
    engine.dispose()
    target = make_url(url)
    db = sqlite3.connect(path)
    with psycopg.connect(
        host=target.host,
        port=target.port,
        user=target.username,
        password=target.password,
        dbname=target.database,
    ) as pg:
        for table in ("listings", "leads", "listing_analytics", "listing_analytics_breakdown"):
            columns = ",".join(r[1] for r in db.execute(f"PRAGMA table_info({table})"))
            with pg.cursor() as cursor, cursor.copy(f"COPY {table} ({columns}) FROM STDIN") as copy:
                for row in db.execute(f"SELECT {columns} FROM {table}"):
                    copy.write_row(row)
        pg.execute(
            "SELECT setval(pg_get_serial_sequence('leads', 'id'), (SELECT max(id) FROM leads))"
        )
        pg.commit()
        pg.autocommit = True
        pg.execute("VACUUM ANALYZE")
    db.close()


def print_lead_pages(store: str, results: list[tuple[str, float, float]]) -> None:
    for name, first, second in results:
        flag = "  over 200 ms" if first > 0.2 else ""
        print(
            f"{store:>10}  {name:<26} {first * 1000:7.0f} ms  page 2 {second * 1000:7.0f} ms{flag}"
        )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--listings", type=int, default=10_000)
    parser.add_argument("--leads", type=int, default=1_000_000)
    parser.add_argument("--listers", type=int, default=1_000)
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--seed", type=int, default=5)
    parser.add_argument(
        "--lead-pages", action="store_true", help="time only the leads board's pages"
    )
    parser.add_argument(
        "--postgres", action="store_true", help="also on PostgreSQL (a throwaway cluster)"
    )
    args = parser.parse_args(argv)
    folder = DATA / f"dashboard-{args.listings}-{args.leads}-{args.listers}-{args.days}"
    path = folder / "leadflow.db"
    if not (folder / ".complete").exists():
        folder.mkdir(parents=True, exist_ok=True)
        path.unlink(missing_ok=True)
        started = time.perf_counter()
        build(path, args.listings, args.leads, args.listers, args.days, args.seed)
        (folder / ".complete").write_text("ok")
        print(f"built {path} in {time.perf_counter() - started:.0f} s")
    db = sqlite3.connect(path)
    counts = {
        table: db.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
        for table in ("listings", "leads", "listing_analytics")
    }
    busiest = db.execute(
        "SELECT lister_id, count(*), sum(total_leads) FROM listings GROUP BY lister_id "
        "ORDER BY 3 DESC LIMIT 1"
    ).fetchone()
    busiest_leads = db.execute(
        "SELECT count(*) FROM leads WHERE lister_id = ?", (busiest[0],)
    ).fetchone()[0]
    db.close()
    print(
        f"store: {counts['listings']:,} listings, {counts['leads']:,} lead records, "
        f"{counts['listing_analytics']:,} hourly rows; busiest lister {busiest[0]}: "
        f"{busiest[1]:,} listings, {busiest_leads:,} lead records"
    )
    lister = busiest[0]
    listing = "listing-002594" if args.listings == 10_000 else "listing-000000"
    print_lead_pages("sqlite", time_lead_pages(f"sqlite:///{path}", lister, listing))
    if args.postgres:
        from bench.postgres import postgres_database

        with postgres_database(None) as database:
            url = database("dashboard")
            copy_to_postgres(path, url)
            print_lead_pages("postgresql", time_lead_pages(url, lister, listing))
    if args.lead_pages:
        return
    results = time_requests(path)
    width = max(len(url) for _, url, _, _ in results)
    for who, url, seconds, size in results:
        flag = "  over 1 s" if seconds > 1 else ""
        print(f"{who:>17}  {url:<{width}}  {seconds * 1000:7.0f} ms  {size / 1024:7.1f} KiB{flag}")
    slowest = max(results, key=lambda r: r[2])
    print(f"slowest: {slowest[1]} ({slowest[0]}) in {slowest[2] * 1000:.0f} ms")


if __name__ == "__main__":
    main()
