"""Lead management: leads as (seeker, listing) groups, their status pipeline and notes."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query
from fastapi.responses import StreamingResponse

from leadflow.api.auth import User
from leadflow.api.deps import StoreEngine, errors, invalid
from leadflow.api.exports import CSVResponse, csv_download, csv_responses
from leadflow.api.params import (
    ID_PATTERN,
    ListingId,
    Moment,
    Order,
    SeekerId,
    moment_at,
    page_size,
)
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


def lead_query(
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
) -> LeadQuery:
    """The filters and order of `GET /api/leads` and of its CSV export, checked, as a store
    query in the caller's scope."""
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


LeadFilters = Annotated[LeadQuery, Depends(lead_query)]


@dataclass(frozen=True)
class LeadPageRequest:
    limit: int
    cursor: str | None


def lead_page_request(
    limit: Annotated[int, page_size("Leads")] = 50,
    cursor: Annotated[
        str | None,
        Query(max_length=2000, description="The `next_cursor` of the previous page."),
    ] = None,
) -> LeadPageRequest:
    """Which page of leads: its size, and where the previous page ended.

    A dependency rather than parameters of `list_leads`, so that the document lists the page's
    parameters after the filters (FastAPI lists a route's own parameters first).
    """
    return LeadPageRequest(limit, cursor)


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
    query: LeadFilters,
    page_request: Annotated[LeadPageRequest, Depends(lead_page_request)],
) -> LeadPage:
    """Leads of the caller's listings (all listings for an admin), one per (seeker, listing).

    Each lead merges every record the runs wrote for it: all actions in time order, the summed
    score, the records' ids, and the lead's status and note count.
    """
    try:
        with engine.connect() as conn:
            page = lead_store.list_groups(conn, query, page_request.limit, page_request.cursor)
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


@router.get(
    "/leads.csv",
    response_class=CSVResponse,
    responses=csv_responses(401, 403, 422, 503),
    summary="Export leads as CSV",
)
def export_leads(engine: StoreEngine, query: LeadFilters) -> StreamingResponse:
    """Every lead `GET /api/leads` would list with the same filters, one CSV row each."""
    rows = ({**vars(g), "note_count": g.note_count} for g in lead_store.iter_groups(engine, query))
    return csv_download(CSV_COLUMNS, rows, "leads.csv")


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
