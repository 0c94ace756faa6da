"""store/leads.py's two ways to a page of lead groups: walking an index (large scopes) and
grouping the scope's records (small scopes, the score order) give the same pages."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import insert

from leadflow.store import leads as lead_store
from leadflow.store.db import ensure_schema
from leadflow.store.leads import LeadQuery
from leadflow.store.schema import leads, listings

T0 = datetime(2026, 5, 1, tzinfo=UTC)
CHANNELS = (("phone", None, 30), ("message", "whatsapp", 15), ("message", "email", 10))


def fill_store(engine, seed: int) -> None:
    """Groups of one to three records, later records `new` under a moved group, last actions
    that share a millisecond, and one listing whose records name a lister that lost it."""
    rng = random.Random(seed)
    ensure_schema(engine)
    owners = {f"listing-{n}": f"lister-{n % 3}" for n in range(8)}
    records = []
    for n in range(260):
        listing = f"listing-{rng.randrange(8)}"
        seeker = f"seeker-{rng.randrange(25)}"
        action_type, message_type, points = rng.choice(CHANNELS)
        # Whole seconds, or one of two moments a microsecond apart (one millisecond for SQLite).
        moment = T0 + timedelta(seconds=rng.randrange(40) * 3600 + rng.choice([0, 0, 1e-6, 0.5]))
        action = {"event_uuid": f"e{n}", "action_type": action_type, "timestamp": str(moment)}
        if message_type:
            action["message_type"] = message_type
        status = rng.choice(["new", "new", "contacted", "won"])
        records.append(
            {
                "listing_id": listing,
                "seeker_id": seeker,
                "lister_id": "lister-old" if listing == "listing-7" else owners[listing],
                "lister_type": "agent",
                "lead_actions": [action],
                "total_actions": 1,
                "lead_score": points,
                "first_action_date": moment,
                "last_action_date": moment,
                "last_action_type": action_type,
                "status": status,
                "status_tracker": [{"status": status, "at": "2026-05-01T00:00:00.000000Z"}],
                "notes": [],
                "run_id": 1,
                "created_at": T0,
                "updated_at": T0,
            }
        )
    with engine.begin() as conn:
        conn.execute(
            insert(listings),
            [{"listing_id": k, "lister_id": v, "lister_type": "agent"} for k, v in owners.items()],
        )
        conn.execute(insert(leads), records)


QUERIES = [
    LeadQuery(sort=sort, order=order, **filters)
    for sort in ("last_action", "created")
    for order in ("desc", "asc")
    for filters in (
        {},
        {"scope_lister": "lister-1"},
        {"lister_id": "lister-2", "statuses": ("new", "won")},
        {"statuses": ("contacted",)},
        {"min_score": 40, "max_score": 70},
        {"channels": ("email", "phone")},
        {"last_action_from": T0 + timedelta(hours=5), "last_action_to": T0 + timedelta(hours=30)},
    )
]


def pages(conn, query: LeadQuery, limit: int) -> list[list[tuple[str, str]]]:
    out, cursor = [], None
    while True:
        page = lead_store.list_groups(conn, query, limit, cursor)
        out.append([(g.listing_id, g.seeker_id) for g in page.groups])
        if page.next_cursor is None:
            return out
        cursor = page.next_cursor


@pytest.mark.parametrize("limit", [1, 7, 50])
def test_walking_an_index_gives_the_pages_that_grouping_gives(store, monkeypatch, limit):
    fill_store(store.engine, seed=limit)
    with store.engine.connect() as conn:
        for query in QUERIES:
            monkeypatch.setattr(lead_store, "_scope_is_large", lambda conn, query: False)
            grouped = pages(conn, query, limit)
            monkeypatch.setattr(lead_store, "_scope_is_large", lambda conn, query: True)
            walked = pages(conn, query, limit)
            assert walked == grouped, query
            assert sum(len(p) for p in grouped) > 0 or query.statuses, query


def test_a_lister_with_many_records_is_walked_and_one_with_few_is_grouped(store, monkeypatch):
    fill_store(store.engine, seed=3)
    monkeypatch.setattr(lead_store, "WALK_MIN_RECORDS", 60)
    with store.engine.connect() as conn:
        assert lead_store._scope_is_large(conn, LeadQuery(scope_lister="lister-1"))
        assert not lead_store._scope_is_large(conn, LeadQuery(listing_id="listing-1"))
        monkeypatch.setattr(lead_store, "WALK_MIN_RECORDS", 10_000)
        assert not lead_store._scope_is_large(conn, LeadQuery(scope_lister="lister-1"))
        assert lead_store._scope_is_large(conn, LeadQuery())
