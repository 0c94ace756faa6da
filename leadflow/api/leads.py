"""Lead management: leads as (seeker, listing) groups, their status pipeline and notes."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from datetime import UTC, date, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query, Response
from fastapi.responses import StreamingResponse

from leadflow.api.auth import User
from leadflow.api.deps import ID_PATTERN, Moment, StoreEngine, errors, invalid, moment_at
from leadflow.api.schemas import (
    Channel,
    LeadGroupOut,
    LeadGroupSummary,
    LeadPage,
    LeadStatus,
    NoteIn,
    StatusUpdate,
)
from leadflow.store import leads as lead_store
from leadflow.store.leads import BadCursor, LeadGroup, LeadQuery

router = APIRouter(prefix="/api", tags=["leads"])


class CSVResponse(Response):
    media_type = "text/csv"


ListingId = Annotated[
    str,
    Path(min_length=1, max_length=128, pattern=ID_PATTERN, examples=["listing-1"]),
]
SeekerId = Annotated[
    str,
    Path(min_length=1, max_length=256, pattern=ID_PATTERN, examples=["seeker-1"]),
]


def _optional_id(description: str, max_length: int = 128) -> Any:
    return Query(min_length=1, max_length=max_length, pattern=ID_PATTERN, description=description)


ListerFilter = Annotated[str | None, _optional_id("Only leads on this lister's listings.")]
ListingFilter = Annotated[str | None, _optional_id("Only leads on this listing.")]
StatusFilter = Annotated[
    list[LeadStatus] | None,
    Query(description="Only leads in these statuses (repeat the parameter for several)."),
]
ChannelFilter = Annotated[
    list[Channel] | None,
    Query(description="Only leads with an action on one of these channels (repeatable)."),
]
MinScore = Annotated[int | None, Query(ge=0, le=1_000_000_000, description="Lowest summed score.")]
MaxScore = Annotated[int | None, Query(ge=0, le=1_000_000_000, description="Highest summed score.")]
From = Annotated[
    Moment | None,
    Query(
        alias="from",
        description="Only leads whose last action is at or after this time: an ISO 8601 "
        "date-time (UTC when it has no offset) or date.",
        examples=["2025-05-01T00:00:00Z"],
    ),
]
To = Annotated[
    Moment | None,
    Query(
        description="Only leads whose last action is before this time (read like `from`).",
        examples=["2025-06-01"],
    ),
]
Sort = Annotated[
    Literal["score", "last_action", "created"],
    Query(description="Order by summed score, last action time, or when the lead was created."),
]
Order = Annotated[Literal["desc", "asc"], Query(description="Descending (default) or ascending.")]


def _query(
    user: User,
    lister_id: str | None,
    listing_id: str | None,
    status: list[Any] | None,
    channel: list[Any] | None,
    min_score: int | None,
    max_score: int | None,
    from_: datetime | date | None,
    to: datetime | date | None,
    sort: Literal["score", "last_action", "created"],
    order: Literal["desc", "asc"],
) -> LeadQuery:
    start, end = moment_at(from_, "from", UTC), moment_at(to, "to", UTC)
    if start is not None and end is not None and start >= end:
        raise invalid("query.from", "must be before `to`")
    if min_score is not None and max_score is not None and min_score > max_score:
        raise invalid("query.min_score", "must not be above max_score")
    return LeadQuery(
        scope_lister=user.scope,
        lister_id=lister_id,
        listing_id=listing_id,
        statuses=tuple(str(s.value) for s in status or ()),
        channels=tuple(str(c.value) for c in channel or ()),
        min_score=min_score,
        max_score=max_score,
        last_action_from=start,
        last_action_to=end,
        sort=sort,
        order=order,
    )


def summary_out(group: LeadGroup) -> LeadGroupSummary:
    return LeadGroupSummary.model_validate(_fields(group, LeadGroupSummary))


def group_out(group: LeadGroup) -> LeadGroupOut:
    return LeadGroupOut.model_validate(_fields(group, LeadGroupOut))


def _fields(group: LeadGroup, model: type[LeadGroupSummary]) -> dict[str, Any]:
    values = {**vars(group), "note_count": group.note_count}
    return {name: values[name] for name in model.model_fields}


@router.get(
    "/leads",
    response_model=LeadPage,
    responses=errors(401, 403, 422, 503),
    summary="List leads (one per seeker and listing)",
)
def list_leads(
    engine: StoreEngine,
    user: User,
    lister_id: ListerFilter = None,
    listing_id: ListingFilter = None,
    status: StatusFilter = None,
    channel: ChannelFilter = None,
    min_score: MinScore = None,
    max_score: MaxScore = None,
    from_: From = None,
    to: To = None,
    sort: Sort = "last_action",
    order: Order = "desc",
    limit: Annotated[int, Query(ge=1, le=200, description="Leads per page.")] = 50,
    cursor: Annotated[
        str | None,
        Query(max_length=2000, description="The `next_cursor` of the previous page."),
    ] = None,
) -> LeadPage:
    """Leads of the caller's listings (all listings for an admin), one per (seeker, listing).

    Each lead merges every record the runs wrote for it: all actions in time order, the summed
    score, the records' ids, and the lead's status and note count.
    """
    query = _query(
        user, lister_id, listing_id, status, channel, min_score, max_score, from_, to, sort, order
    )
    try:
        with engine.connect() as conn:
            page = lead_store.list_groups(conn, query, limit, cursor)
    except BadCursor as exc:
        raise invalid("query.cursor", str(exc)) from exc
    return LeadPage(items=[summary_out(g) for g in page.groups], next_cursor=page.next_cursor)


CSV_COLUMNS = (
    "listing_id",
    "seeker_id",
    "lister_id",
    "status",
    "re_engaged",
    "score",
    "total_actions",
    "channels",
    "first_action_at",
    "last_action_at",
    "last_action_type",
    "note_count",
    "record_ids",
    "created_at",
)


def csv_cell(value: Any) -> str:
    """A CSV cell that a spreadsheet shows as text, never runs as a formula."""
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat().replace("+00:00", "Z")
    if isinstance(value, list):
        value = ";".join(str(v) for v in value)
    text = "" if value is None else str(value)
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def csv_lines(header: tuple[str, ...], rows: Iterator[dict[str, Any]]) -> Iterator[str]:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(header)
    yield buffer.getvalue()
    for row in rows:
        buffer.seek(0)
        buffer.truncate()
        writer.writerow([csv_cell(row.get(column)) for column in header])
        yield buffer.getvalue()


@router.get(
    "/leads.csv",
    response_class=CSVResponse,
    responses={
        200: {"content": {"text/csv": {"schema": {"type": "string"}}}, "description": "CSV"},
        **errors(401, 403, 422, 503, media_type="text/csv"),
    },
    summary="Export leads as CSV",
)
def export_leads(
    engine: StoreEngine,
    user: User,
    lister_id: ListerFilter = None,
    listing_id: ListingFilter = None,
    status: StatusFilter = None,
    channel: ChannelFilter = None,
    min_score: MinScore = None,
    max_score: MaxScore = None,
    from_: From = None,
    to: To = None,
    sort: Sort = "last_action",
    order: Order = "desc",
) -> StreamingResponse:
    """Every lead `GET /api/leads` would list with the same filters, one CSV row each."""
    query = _query(
        user, lister_id, listing_id, status, channel, min_score, max_score, from_, to, sort, order
    )
    rows = ({**vars(g), "note_count": g.note_count} for g in lead_store.iter_groups(engine, query))
    return StreamingResponse(
        csv_lines(CSV_COLUMNS, rows),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": 'attachment; filename="leads.csv"'},
    )


@router.get(
    "/leads/{seeker_id}/{listing_id}",
    response_model=LeadGroupOut,
    responses=errors(401, 403, 404, 422, 503),
    summary="One lead with its whole history",
)
def get_lead(
    engine: StoreEngine, user: User, seeker_id: SeekerId, listing_id: ListingId
) -> LeadGroupOut:
    """The lead of a seeker on a listing: all its actions, status history, notes and the
    statuses it may move to. 404 when there is none, or the listing is not the caller's."""
    with engine.connect() as conn:
        group = lead_store.get_group(conn, listing_id, seeker_id, user.scope)
    return group_out(group)


@router.patch(
    "/leads/{seeker_id}/{listing_id}/status",
    response_model=LeadGroupOut,
    responses=errors(400, 401, 403, 404, 422, 503),
    summary="Move a lead along the status pipeline",
)
def change_status(
    engine: StoreEngine,
    user: User,
    seeker_id: SeekerId,
    listing_id: ListingId,
    body: StatusUpdate,
) -> LeadGroupOut:
    """Move the lead to `status`, recording `{status, at, by}` in its status history.

    new → contacted → qualified → viewing_scheduled → negotiating → won | lost: forward (skipping
    allowed) from an open status, or to lost, spam or archived; won and lost can only be
    archived; spam and archived can be restored to the status before. Other moves get 422.
    """
    group = lead_store.change_status(
        engine,
        listing_id,
        seeker_id,
        str(body.status.value),
        by=user.subject,
        scope_lister=user.scope,
        note=body.note,
    )
    return group_out(group)


@router.post(
    "/leads/{seeker_id}/{listing_id}/notes",
    response_model=LeadGroupOut,
    status_code=201,
    responses=errors(400, 401, 403, 404, 422, 503),
    summary="Add a note to a lead",
)
def add_note(
    engine: StoreEngine,
    user: User,
    seeker_id: SeekerId,
    listing_id: ListingId,
    body: NoteIn,
) -> LeadGroupOut:
    """Append `{text, at, by}` to the lead's notes."""
    group = lead_store.add_note(
        engine, listing_id, seeker_id, body.text, by=user.subject, scope_lister=user.scope
    )
    return group_out(group)
