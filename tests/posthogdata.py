"""Test helpers for the PostHog source: events PostHog can hold, the local stand-in, and the
same events run through the file source for comparison."""

from __future__ import annotations

import random
import uuid as uuid_module
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bench.canonical import Canonical, canonical_from_db
from leadflow import pipeline
from leadflow.config import Settings
from leadflow.sources.local_posthog import LocalPostHog
from leadflow.store.db import create_store_engine
from tests.eventfiles import LISTERS, NAMES, event, write_jsonl

NOW = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
START = NOW - timedelta(days=4)

LISTINGS: list[Any] = ["L1", "L2", "L3", 7, 'L"4', "Łódź", None, 7.0, {"x": 1}, ""]


def uid(n: int) -> str:
    return str(uuid_module.UUID(int=n + 1))


def ph_event(
    n: int,
    name: str,
    at: datetime,
    listing: Any = None,
    seeker: str | None = "s1",
    created: datetime | None = None,
    **props: Any,
) -> dict[str, Any]:
    """An event as PostHog holds it: a valid uuid, an ingestion time (`created_at`)."""
    e = event(uid(n), name, at, listing, seeker, **props)
    e["created_at"] = (created or at + timedelta(seconds=30)).isoformat().replace("+00:00", "Z")
    return e


def random_events(
    seed: int, count: int, start: datetime = START, hours: int = 72, late: float = 0.05
) -> list[dict[str, Any]]:
    """Events PostHog can hold, with every kind of reject the classifier gives, some late."""
    rnd = random.Random(seed)
    events: list[dict[str, Any]] = []
    for n in range(count):
        at = start + timedelta(minutes=rnd.randrange(hours * 60))
        props: dict[str, Any] = {}
        for key, values in (
            ("message_type", [None, None, "whatsapp", "direct_message", "email", "fax", 3]),
            ("lead_type", [None, "phone", "message", "appointment", "website", "bogus"]),
            ("appointment_type", [None, "video", "in_person"]),
            ("platform", [None, "whatsapp", "x", 5]),
            ("action", [None, None, "remove"]),
            ("lister_type", [None, None, "agent", 1]),
        ):
            value = rnd.choice(values)
            if value is not None:
                props[key] = value
        listing = rnd.choice(LISTINGS)
        lister = rnd.choice(LISTERS)
        if lister is not None:
            props["lister_id"] = lister
        seeker = rnd.choice(["s1", "s2", "s3", "s4", None, ""])
        created = at + timedelta(seconds=rnd.randrange(1, 120))
        if rnd.random() < late:
            created = at + timedelta(hours=rnd.randrange(2, 48))
        name = rnd.choice(NAMES)
        e = ph_event(n, name, at, listing, seeker, created=min(created, NOW), **props)
        e["distinct_id"] = f"d{n % 5}"
        events.append(e)
    return events


def settings_for(url: str, database_url: str, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "database_url": database_url,
        "posthog_host": url,
        "posthog_project_id": "1",
        "posthog_personal_api_key": "phx_local_stand_in",
        "posthog_settle_seconds": 0,
        "posthog_page_rows": 50,
        "posthog_backoff_seconds": 0.01,
        "posthog_timeout_seconds": 5.0,
    }
    values.update(overrides)
    return Settings(**values)


def run_posthog(
    store: Any,
    local: LocalPostHog,
    fault: Callable[[str], None] | None = None,
    **overrides: Any,
) -> pipeline.RunSummary:
    return pipeline.run(
        settings_for(local.url, store.url, **overrides),
        pipeline.POSTHOG,
        engine=store.engine,
        fault=fault,
    )


def file_canonical(folder: Path, events: Sequence[dict[str, Any]]) -> Canonical:
    """The tables the file source makes of `events` (in one export file), canonically."""
    write_jsonl(folder / "export" / "events.jsonl", events)
    settings = Settings(database_url=f"sqlite:///{folder / 'file.db'}")
    engine = create_store_engine(settings.database_url)
    try:
        pipeline.run(settings, str(folder / "export"), engine=engine)
        return canonical_from_db(engine)
    finally:
        engine.dispose()


@contextmanager
def local_posthog(events: Iterable[dict[str, Any]] = (), **options: Any) -> Iterator[LocalPostHog]:
    with LocalPostHog(**options) as local:
        local.add_events(events)
        yield local
