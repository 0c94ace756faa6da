"""The HTTP service's bodies and responses: the OpenAPI document is built from these models."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from leadflow.events import LEAD_STATUSES
from leadflow.store.schema import LEADS_BREAKDOWN_KEYS

LeadStatus = StrEnum("LeadStatus", {status: status for status in LEAD_STATUSES})  # type: ignore[misc]
Channel = StrEnum("Channel", {key: key for key in LEADS_BREAKDOWN_KEYS})  # type: ignore[misc]

AT = "2025-05-01T10:42:00.000000Z"


def _examples(*examples: dict[str, Any], populate_by_name: bool = False) -> ConfigDict:
    return ConfigDict(
        json_schema_extra={"examples": list(examples)}, populate_by_name=populate_by_name
    )


# -- errors --------------------------------------------------------------------------------------


class FieldError(BaseModel):
    location: str = Field(description="Where: `query.granularity`, `body.status`, `path.id`, …")
    message: str


class ErrorBody(BaseModel):
    """Every error: a sentence that says what was wrong and what to do."""

    model_config = _examples(
        {"detail": "no lead of seeker 'seeker-9' on listing 'listing-1'"},
        {
            "detail": "query.granularity: Input should be 'hour', 'day', 'week' or 'month'",
            "errors": [
                {
                    "location": "query.granularity",
                    "message": "Input should be 'hour', 'day', 'week' or 'month'",
                }
            ],
        },
    )

    detail: str
    errors: list[FieldError] | None = None


class RunFailedBody(ErrorBody):
    """A run that started and failed; it is recorded in cron_runs under `run_id`."""

    model_config = _examples(
        {
            "detail": "run 7 failed: cannot read the export files: …",
            "run_id": 7,
            "error": "cannot read the export files: …",
        }
    )

    run_id: int
    error: str


# -- cron ----------------------------------------------------------------------------------------


class RunSummaryOut(BaseModel):
    """What a cron run did (as `leadflow run --json` prints it)."""

    model_config = _examples(
        {
            "run_id": 7,
            "status": "succeeded",
            "source": "/data/exports",
            "window_start": "2025-05-01T10:00:00Z",
            "window_end": "2025-05-01T12:00:00Z",
            "files_read": 2,
            "events_read": 1520,
            "events_accepted": 1517,
            "rejected": {"malformed_json": 1, "duplicate": 2},
            "leads_inserted": 12,
            "hours_written": 48,
            "listings_updated": 24,
            "slices": 1,
            "seconds": 0.84,
            "timings": {"read": 0.31, "aggregate": 0.12, "write": 0.2},
            "requests": 0,
            "stopped": None,
            "warnings": [],
        },
        {
            "run_id": 8,
            "status": "succeeded",
            "source": "posthog",
            "window_start": "2025-05-01T11:00:00Z",
            "window_end": "2025-05-01T12:58:00Z",
            "files_read": 0,
            "events_read": 830,
            "events_accepted": 829,
            "rejected": {"missing_listing_id": 1},
            "leads_inserted": 5,
            "hours_written": 26,
            "listings_updated": 17,
            "slices": 1,
            "seconds": 2.4,
            "timings": {"read": 2.1, "aggregate": 0.04, "write": 0.18},
            "requests": 4,
            "stopped": None,
            "warnings": [],
        },
    )

    run_id: int
    status: str
    source: str = Field(description="`posthog`, or the export file, folder or glob read.")
    window_start: datetime | None
    window_end: datetime | None
    files_read: int = Field(description="Export files read (0 for the PostHog source).")
    events_read: int
    events_accepted: int
    rejected: dict[str, int]
    leads_inserted: int
    hours_written: int
    listings_updated: int
    slices: int
    seconds: float
    timings: dict[str, float]
    requests: int = Field(
        description="Requests made to PostHog's Query API (0 for export files).", examples=[4]
    )
    stopped: str | None = Field(
        description="Why the run stopped before the end of its window (PostHog: a spent request "
        "or time budget), or null when it read it all. The run still succeeded with the slices "
        "it committed; the next run continues from there.",
        examples=[
            "stopped after 2 of 5 slices: the run's request budget (100 requests to PostHog) is "
            "spent; the next run continues from 2025-05-01 11:00:00 UTC"
        ],
    )
    warnings: list[str] = Field(
        description="Anything PostHog did that needs a look, such as a cached answer although "
        "leadflow asks for fresh ones (empty for export files).",
        examples=[
            [
                "PostHog answered query 'leadflow census' from its cache although leadflow asks "
                "for a fresh result (refresh=force_blocking); its numbers may be stale"
            ]
        ],
    )


class RunStarted(BaseModel):
    """A run started in the background (`?wait=false`): follow it at `status_url`."""

    model_config = _examples({"run_id": 8, "status": "running", "status_url": "/api/cron/runs/8"})

    run_id: int
    status: Literal["running"] = "running"
    status_url: str


class CronRun(BaseModel):
    """A run as cron_runs records it."""

    model_config = _examples(
        {
            "id": 7,
            "status": "succeeded",
            "started_at": AT,
            "finished_at": "2025-05-01T10:42:01.200000Z",
            "source": "/data/exports",
            "window_start": "2025-05-01T10:00:00Z",
            "window_end": "2025-05-01T12:00:00Z",
            "events_read": 1520,
            "events_accepted": 1517,
            "leads_inserted": 12,
            "analytics_rows_written": 48,
            "listings_updated": 24,
            "slices_done": 1,
            "slices_total": 1,
            "rejects": {"malformed_json": 1, "duplicate": 2},
            "error": None,
        }
    )

    id: int
    status: str = Field(description="running, succeeded or failed")
    started_at: datetime
    finished_at: datetime | None
    source: str | None
    window_start: datetime | None
    window_end: datetime | None
    events_read: int
    events_accepted: int
    leads_inserted: int
    analytics_rows_written: int
    listings_updated: int
    slices_done: int
    slices_total: int
    rejects: dict[str, int]
    error: str | None

    @field_validator("rejects", mode="before")
    @classmethod
    def _rejects(cls, value: Any) -> Any:
        return value if isinstance(value, dict) else {}


class CronRunPage(BaseModel):
    items: list[CronRun]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next (older) page.")


# -- leads ---------------------------------------------------------------------------------------


class LeadAction(BaseModel):
    model_config = ConfigDict(extra="allow")

    event_uuid: str
    action_type: str = Field(description="phone, message, appointment or website")
    timestamp: str
    channel: str = Field(description="phone, whatsapp, direct_message, email, appointment, website")
    message_type: str | None = None
    appointment_type: str | None = None


class StatusChange(BaseModel):
    model_config = ConfigDict(extra="allow")

    status: str
    at: str
    by: str


class Note(BaseModel):
    model_config = ConfigDict(extra="allow")

    text: str
    at: str
    by: str


_GROUP_EXAMPLE: dict[str, Any] = {
    "listing_id": "listing-1",
    "seeker_id": "seeker-1",
    "lister_id": "lister-a",
    "lister_type": "agent",
    "record_ids": [1, 5],
    "actions": [
        {
            "event_uuid": "u1",
            "action_type": "phone",
            "timestamp": "2025-05-01T10:05:00.000000Z",
            "channel": "phone",
        },
        {
            "event_uuid": "u7",
            "action_type": "message",
            "timestamp": "2025-05-02T09:00:00.000000Z",
            "message_type": "whatsapp",
            "channel": "whatsapp",
        },
    ],
    "score": 45,
    "total_actions": 2,
    "first_action_at": "2025-05-01T10:05:00Z",
    "last_action_at": "2025-05-02T09:00:00Z",
    "last_action_type": "message",
    "channels": ["phone", "whatsapp"],
    "status": "contacted",
    "re_engaged": True,
    "note_count": 1,
    "created_at": "2025-05-01T11:00:00Z",
    "updated_at": "2025-05-01T12:30:00Z",
}


class LeadGroupSummary(BaseModel):
    """One lead: a seeker's actions on one listing, over every run's record of them."""

    model_config = _examples(_GROUP_EXAMPLE)

    listing_id: str
    seeker_id: str
    lister_id: str | None
    lister_type: str | None
    record_ids: list[int] = Field(description="The `leads` records of this lead, oldest first.")
    actions: list[LeadAction] = Field(description="Every action of every record, by time.")
    score: int = Field(description="The summed lead score of all actions.")
    total_actions: int
    first_action_at: datetime
    last_action_at: datetime
    last_action_type: str
    channels: list[str]
    status: str
    re_engaged: bool = Field(
        description="New actions arrived after the last status change (status is not new)."
    )
    note_count: int
    created_at: datetime = Field(description="When the lead's first record was written.")
    updated_at: datetime


class LeadGroupOut(LeadGroupSummary):
    """One lead with its whole history: status changes, notes, and where it may move next."""

    model_config = _examples(
        {
            **_GROUP_EXAMPLE,
            "status_tracker": [
                {"status": "new", "at": "2025-05-01T11:00:00.000000Z", "by": "leadflow"},
                {"status": "contacted", "at": "2025-05-01T12:30:00.000000Z", "by": "user-17"},
            ],
            "notes": [{"text": "Called back, wants a viewing", "at": AT, "by": "user-17"}],
            "allowed_moves": [
                "qualified",
                "viewing_scheduled",
                "negotiating",
                "won",
                "lost",
                "spam",
                "archived",
            ],
        }
    )

    status_tracker: list[StatusChange]
    notes: list[Note]
    allowed_moves: list[str] = Field(description="The statuses this lead may move to now.")


class LeadPage(BaseModel):
    items: list[LeadGroupSummary]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page.")


def _clean_text(value: str) -> str:
    value = value.strip()
    if not value:
        raise ValueError("must not be blank")
    if any(ord(c) < 32 and c not in "\n\t" for c in value):
        raise ValueError("must not hold control characters")
    return value


class StatusUpdate(BaseModel):
    """Move a lead along the status pipeline, optionally with a note."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [{"status": "contacted"}, {"status": "lost", "note": "Bought elsewhere"}]
        },
    )

    status: LeadStatus
    note: str | None = Field(default=None, min_length=1, max_length=2000)

    @field_validator("note")
    @classmethod
    def _note(cls, value: str | None) -> str | None:
        return None if value is None else _clean_text(value)


class NoteIn(BaseModel):
    """A note on a lead."""

    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"text": "Asked for the floor plan"}]}
    )

    text: str = Field(min_length=1, max_length=2000)

    @field_validator("text")
    @classmethod
    def _text(cls, value: str) -> str:
        return _clean_text(value)


# -- analytics -----------------------------------------------------------------------------------


class ListingOut(BaseModel):
    """A listing's cumulative totals (all time) and breakdowns."""

    model_config = _examples(
        {
            "listing_id": "listing-1",
            "lister_id": "lister-a",
            "lister_type": "agent",
            "total_views": 1200,
            "unique_views": 830,
            "total_impressions": 9100,
            "total_shares": 14,
            "total_saves": 33,
            "total_leads": 41,
            "phone_leads": 12,
            "message_leads": 20,
            "email_leads": 3,
            "appointment_leads": 4,
            "website_leads": 2,
            "unique_leads": 29,
            "conversion_rate": 3.4167,
            "share_breakdown": {"whatsapp": 9, "facebook": 5},
            "leads_breakdown": {
                "phone": 12,
                "whatsapp": 11,
                "direct_message": 9,
                "email": 3,
                "appointment": 4,
                "website": 2,
            },
            "analytics_updated_at": AT,
        }
    )

    listing_id: str
    lister_id: str | None
    lister_type: str | None
    total_views: int
    unique_views: int
    total_impressions: int
    total_shares: int
    total_saves: int
    total_leads: int
    phone_leads: int
    message_leads: int
    email_leads: int
    appointment_leads: int
    website_leads: int
    unique_leads: int
    conversion_rate: float
    share_breakdown: dict[str, int]
    leads_breakdown: dict[str, int]
    analytics_updated_at: datetime | None

    @field_validator("share_breakdown", "leads_breakdown", mode="before")
    @classmethod
    def _breakdown(cls, value: Any) -> Any:
        return value if isinstance(value, dict) else {}


class Metrics(BaseModel):
    """Counts over a bucket or range: sums of the hours; uniques exact; conversion from sums."""

    total_views: int
    unique_views: int | None = Field(
        description="Distinct viewers over the bucket (null when the store lacks the identities)."
    )
    impressions: int
    shares: int
    saves: int
    total_leads: int
    phone_leads: int
    message_leads: int
    email_leads: int
    appointment_leads: int
    website_leads: int
    unique_leads: int | None = Field(description="Distinct seekers who contacted, over the bucket.")
    conversion_rate: float = Field(description="total_leads / total_views * 100 (0 without views).")


class SeriesBucket(Metrics):
    start: datetime = Field(description="The bucket's start, in the asked time zone.")


_METRICS_EXAMPLE: dict[str, Any] = {
    "total_views": 40,
    "unique_views": 31,
    "impressions": 300,
    "shares": 1,
    "saves": 2,
    "total_leads": 3,
    "phone_leads": 2,
    "message_leads": 1,
    "email_leads": 0,
    "appointment_leads": 0,
    "website_leads": 0,
    "unique_leads": 2,
    "conversion_rate": 7.5,
}


class ListingSeries(BaseModel):
    """A listing's metrics over time, bucketed in a time zone, with the range's totals."""

    model_config = _examples(
        {
            "listing_id": "listing-1",
            "granularity": "day",
            "tz": "Europe/Madrid",
            "from": "2025-05-01T00:00:00+02:00",
            "to": "2025-05-02T00:00:00+02:00",
            "totals": _METRICS_EXAMPLE,
            "buckets": [{"start": "2025-05-01T00:00:00+02:00", **_METRICS_EXAMPLE}],
        },
        populate_by_name=True,
    )

    listing_id: str
    granularity: str
    tz: str
    from_: datetime = Field(alias="from")
    to: datetime
    totals: Metrics
    buckets: list[SeriesBucket]


class TopListing(BaseModel):
    listing_id: str
    total_views: int
    total_leads: int
    conversion_rate: float


class ListerSummary(BaseModel):
    """A lister's results over a range: totals, top listings, leads by channel and by status."""

    model_config = _examples(
        {
            "lister_id": "lister-a",
            "from": "2025-04-01T00:00:00Z",
            "to": "2025-05-01T00:00:00Z",
            "listings": 12,
            "totals": _METRICS_EXAMPLE,
            "leads_by_channel": {
                "phone": 2,
                "whatsapp": 1,
                "direct_message": 0,
                "email": 0,
                "appointment": 0,
                "website": 0,
            },
            "leads_by_status": {"new": 1, "contacted": 1},
            "top_listings": [
                {
                    "listing_id": "listing-1",
                    "total_views": 40,
                    "total_leads": 3,
                    "conversion_rate": 7.5,
                }
            ],
        },
        populate_by_name=True,
    )

    lister_id: str
    from_: datetime = Field(alias="from")
    to: datetime
    listings: int = Field(description="Listings of the lister with activity in the range.")
    totals: Metrics = Field(description="unique_* count distinct seekers over all the listings.")
    leads_by_channel: dict[str, int]
    leads_by_status: dict[str, int] = Field(
        description="Leads (seeker, listing) whose last action is in the range, by status."
    )
    top_listings: list[TopListing] = Field(description="By leads in the range, then by views.")


class Health(BaseModel):
    status: Literal["ok"] = "ok"
