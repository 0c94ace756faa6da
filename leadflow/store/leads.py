"""Lead groups: the `leads` records of one (listing, seeker), read together and changed together.

A run inserts one record per (listing, seeker) with that run's new actions, so a lead as a lister
sees it is the *group* of its records. The group's state (status, status_tracker, notes) is
written to every record of the group on each change; the group's first record (lowest id) is
the authority, because it existed at every change. A record that a run adds later starts as
`new`; the group keeps its status, and is *re-engaged* while its newest record is younger than
its last status change (and its status is not `new`). The group's next change brings the new
record in line.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from sqlalchemy import (
    ColumnElement,
    Engine,
    Select,
    String,
    and_,
    case,
    false,
    func,
    literal,
    or_,
    select,
    text,
    true,
    tuple_,
    update,
)
from sqlalchemy.engine import Connection

from leadflow.errors import NotFound
from leadflow.status import allowed_moves, check_move
from leadflow.store.schema import UtcDateTime, leads, listings

LeadSort = Literal["score", "last_action", "created"]
SortOrder = Literal["asc", "desc"]

# The channel of an action: the message type for messages, else the action type.
CHANNEL_ACTIONS: dict[str, tuple[str, str | None]] = {
    "phone": ("phone", None),
    "whatsapp": ("message", "whatsapp"),
    "direct_message": ("message", "direct_message"),
    "email": ("message", "email"),
    "appointment": ("appointment", None),
    "website": ("website", None),
}

STATUS_TIME_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"


def action_channel(action: dict[str, Any]) -> str:
    if action.get("action_type") == "message":
        return str(action.get("message_type") or "direct_message")
    return str(action.get("action_type"))


def stamp(moment: datetime) -> str:
    """A time as lead JSON documents hold it (as the pipeline writes it)."""
    return moment.astimezone(UTC).strftime(STATUS_TIME_FORMAT)


def parse_stamp(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


@dataclass(frozen=True)
class LeadQuery:
    """Which lead groups to list, in which order. `scope_lister` None means every lister's."""

    scope_lister: str | None = None
    lister_id: str | None = None
    listing_id: str | None = None
    statuses: tuple[str, ...] = ()
    channels: tuple[str, ...] = ()
    min_score: int | None = None
    max_score: int | None = None
    last_action_from: datetime | None = None
    last_action_to: datetime | None = None
    sort: LeadSort = "last_action"
    order: SortOrder = "desc"


@dataclass
class LeadGroup:
    """One (listing, seeker) lead: every record's actions merged, the group's state."""

    listing_id: str
    seeker_id: str
    lister_id: str | None
    lister_type: str | None
    record_ids: list[int]
    actions: list[dict[str, Any]]
    score: int
    total_actions: int
    first_action_at: datetime
    last_action_at: datetime
    last_action_type: str
    channels: list[str]
    status: str
    status_tracker: list[dict[str, Any]]
    notes: list[dict[str, Any]]
    re_engaged: bool
    created_at: datetime
    updated_at: datetime
    allowed_moves: list[str] = field(default_factory=list)

    @property
    def note_count(self) -> int:
        return len(self.notes)


@dataclass
class LeadPage:
    groups: list[LeadGroup]
    next_cursor: str | None


class BadCursor(ValueError):
    """A pagination cursor that is not one this service gave out for the same query."""


# -- access ------------------------------------------------------------------------------------


def owned_listings(lister_id: str) -> Select[tuple[str]]:
    return select(listings.c.listing_id).where(listings.c.lister_id == lister_id)


def _scope_condition(query: LeadQuery) -> ColumnElement[bool]:
    conditions: list[ColumnElement[bool]] = []
    for lister in (query.scope_lister, query.lister_id):
        if lister is not None:
            conditions.append(leads.c.listing_id.in_(owned_listings(lister)))
    if query.listing_id is not None:
        conditions.append(leads.c.listing_id == query.listing_id)
    return and_(true(), *conditions)


# -- channel filter (JSON, so per dialect) -----------------------------------------------------


def _has_channel(channel: str, dialect: str, table: str = "leads") -> ColumnElement[bool]:
    """Whether a record (of `table`, `leads` or an alias of it, in the FROM) has an action on
    this channel."""
    action_type, message_type = CHANNEL_ACTIONS[channel]
    if dialect == "postgresql":
        wanted: dict[str, str] = {"action_type": action_type}
        if message_type:
            wanted["message_type"] = message_type
        clause = text(f"{table}.lead_actions @> CAST(:channel_{channel} AS JSONB)").bindparams(
            **{f"channel_{channel}": json.dumps([wanted])}
        )
    else:
        condition = f"json_extract(a.value, '$.action_type') = :action_{channel}"
        params = {f"action_{channel}": action_type}
        if message_type:
            condition += f" AND json_extract(a.value, '$.message_type') = :message_{channel}"
            params[f"message_{channel}"] = message_type
        clause = text(
            f"EXISTS (SELECT 1 FROM json_each({table}.lead_actions) a WHERE {condition})"
        ).bindparams(**params)
    return and_(true(), clause)


def _any_channel(
    channels: Sequence[str], dialect: str, table: str = "leads"
) -> ColumnElement[bool]:
    return or_(false(), *(_has_channel(c, dialect, table) for c in sorted(set(channels))))


# -- sort keys and cursors ---------------------------------------------------------------------


def _time_key(column: Any, dialect: str) -> ColumnElement[Any]:
    # SQLite keeps times as text with or without fractions; compare them in one shape.
    if dialect == "sqlite":
        return func.strftime("%Y-%m-%d %H:%M:%f", column)
    return column  # type: ignore[no-any-return]


def _key_param(sort: LeadSort, value: Any, dialect: str) -> ColumnElement[Any]:
    if sort == "last_action":
        if dialect == "sqlite":
            return literal(str(value), String())
        moment = parse_stamp(value)
        if moment is None:
            raise BadCursor("bad cursor")
        return literal(moment, UtcDateTime())
    if not isinstance(value, int) or isinstance(value, bool):
        raise BadCursor("bad cursor")
    return literal(value)


def encode_cursor(query: LeadQuery, key: Any, listing_id: str, seeker_id: str) -> str:
    if isinstance(key, datetime):
        key = stamp(key)
    doc = json.dumps([query.sort, query.order, key, listing_id, seeker_id], separators=(",", ":"))
    return base64.urlsafe_b64encode(doc.encode()).decode().rstrip("=")


def decode_cursor(query: LeadQuery, cursor: str) -> tuple[Any, str, str]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        sort, order, key, listing_id, seeker_id = json.loads(raw)
    except (binascii.Error, ValueError, TypeError) as exc:
        raise BadCursor("bad cursor: pass the next_cursor of the previous page unchanged") from exc
    if (sort, order) != (query.sort, query.order):
        raise BadCursor(
            f"the cursor belongs to sort={sort}&order={order}, not sort={query.sort}"
            f"&order={query.order}: start again without a cursor"
        )
    if not isinstance(listing_id, str) or not isinstance(seeker_id, str):
        raise BadCursor("bad cursor: pass the next_cursor of the previous page unchanged")
    return key, listing_id, seeker_id


# -- reads -------------------------------------------------------------------------------------


def _groups_select(query: LeadQuery, dialect: str, with_status: bool = True) -> Select[Any]:
    """The lead groups matching `query`, one row each with their aggregates and sort key.

    A group's status is its first record's: `with_status=False` leaves that record out when
    the query does not filter by status (then a page joins only its own groups' records)."""
    aggregates = (
        select(
            leads.c.listing_id,
            leads.c.seeker_id,
            func.min(leads.c.id).label("first_id"),
            func.sum(leads.c.lead_score).label("score"),
            func.max(leads.c.last_action_date).label("last_action_at"),
        )
        .where(_scope_condition(query))
        .group_by(leads.c.listing_id, leads.c.seeker_id)
    )
    if query.channels:
        matches = case((_any_channel(query.channels, dialect), 1), else_=0)
        aggregates = aggregates.having(func.sum(matches) > 0)
    groups = aggregates.subquery("groups")
    first = leads.alias("first_record")
    sort_key: ColumnElement[Any] = {
        "score": groups.c.score,
        "last_action": _time_key(groups.c.last_action_at, dialect),
        "created": groups.c.first_id,
    }[query.sort]
    if with_status or query.statuses:
        stmt = (
            select(
                groups.c.listing_id,
                groups.c.seeker_id,
                sort_key.label("sort_key"),
                first.c.status,
            )
            .select_from(groups.join(first, first.c.id == groups.c.first_id))
            .where(true())
        )
    else:
        stmt = select(groups.c.listing_id, groups.c.seeker_id, sort_key.label("sort_key"))
    if query.statuses:
        stmt = stmt.where(first.c.status.in_(query.statuses))
    if query.min_score is not None:
        stmt = stmt.where(groups.c.score >= query.min_score)
    if query.max_score is not None:
        stmt = stmt.where(groups.c.score <= query.max_score)
    if query.last_action_from is not None:
        stmt = stmt.where(groups.c.last_action_at >= query.last_action_from)
    if query.last_action_to is not None:
        stmt = stmt.where(groups.c.last_action_at < query.last_action_to)
    return stmt


# The lead groups of a scope with at least this many records are listed by walking an index in
# the page's order (created: the primary key; last action: ix_leads_last_action_pair), one record
# per group standing for it, until the page is full: a few hundred index entries instead of
# grouping every record of the scope. Smaller scopes, and the score order (a group's score is a
# sum over its records, which no index holds), group the scope's records.
WALK_MIN_RECORDS = 10_000


def list_groups(
    conn: Connection, query: LeadQuery, limit: int, cursor: str | None = None
) -> LeadPage:
    """A page of lead groups, and the cursor of the next page (None on the last one)."""
    after = decode_cursor(query, cursor) if cursor is not None else None
    if query.sort != "score" and _scope_is_large(conn, query):
        rows = _walk_page(conn, query, limit + 1, after)
    else:
        rows = _grouped_page(conn, query, limit + 1, after)
    more = len(rows) > limit
    rows = rows[:limit]
    keys = [(row.listing_id, row.seeker_id) for row in rows]
    by_key = {(g.listing_id, g.seeker_id): g for g in load_groups(conn, keys)}
    next_cursor = None
    if more and rows:
        last = rows[-1]
        next_cursor = encode_cursor(query, last.sort_key, last.listing_id, last.seeker_id)
    return LeadPage([by_key[key] for key in keys if key in by_key], next_cursor)


def _scope_is_large(conn: Connection, query: LeadQuery) -> bool:
    if query.listing_id is not None:
        return False
    if query.scope_lister is None and query.lister_id is None:
        return True
    sample = select(leads.c.id).where(_scope_condition(query)).limit(WALK_MIN_RECORDS).subquery()
    return int(conn.execute(select(func.count()).select_from(sample)).scalar_one()) >= (
        WALK_MIN_RECORDS
    )


def _ordered(stmt: Select[Any], columns: Sequence[Any], order: SortOrder) -> Select[Any]:
    return stmt.order_by(*(c.desc() if order == "desc" else c.asc() for c in columns))


def _after(
    query: LeadQuery, row_key: Sequence[Any], after: tuple[Any, str, str], dialect: str
) -> ColumnElement[bool]:
    key, listing_id, seeker_id = after
    bound = tuple_(_key_param(query.sort, key, dialect), literal(listing_id), literal(seeker_id))
    return tuple_(*row_key) < bound if query.order == "desc" else tuple_(*row_key) > bound


def _grouped_page(
    conn: Connection, query: LeadQuery, size: int, after: tuple[Any, str, str] | None
) -> list[Any]:
    """Up to `size` (listing_id, seeker_id, sort_key) rows by grouping the scope's records."""
    dialect = conn.dialect.name
    stmt = _groups_select(query, dialect, with_status=False).subquery("matching")
    columns = (stmt.c.sort_key, stmt.c.listing_id, stmt.c.seeker_id)
    page = select(stmt.c.listing_id, stmt.c.seeker_id, stmt.c.sort_key)
    if after is not None:
        page = page.where(_after(query, columns, after, dialect))
    return list(conn.execute(_ordered(page, columns, query.order).limit(size)).all())


def _walk_page(
    conn: Connection, query: LeadQuery, size: int, after: tuple[Any, str, str] | None
) -> list[Any]:
    """Up to `size` rows like _grouped_page's, walking the records in the page's order.

    Each group is represented by one record: its first (created order) or the one holding its
    last action (last-action order, ties to the higher id), so the walk meets each group once,
    at its sort key. Filters on the group's state look at its records (a group is a few).
    """
    dialect = conn.dialect.name
    sibling = leads.alias("sibling")
    same_group = and_(
        sibling.c.listing_id == leads.c.listing_id, sibling.c.seeker_id == leads.c.seeker_id
    )
    conditions: list[ColumnElement[bool]] = [_walk_scope(query)]
    if query.sort == "created":
        sort_key: ColumnElement[Any] = leads.c.id
        conditions.append(
            ~select(sibling.c.id).where(same_group, sibling.c.id < leads.c.id).exists()
        )
        status: ColumnElement[Any] | None = leads.c.status
        last_action: ColumnElement[Any] = (
            select(func.max(sibling.c.last_action_date)).where(same_group).scalar_subquery()
        )
    else:
        sort_key = _time_key(leads.c.last_action_date, dialect)
        later = or_(
            sibling.c.last_action_date > leads.c.last_action_date,
            and_(sibling.c.last_action_date == leads.c.last_action_date, sibling.c.id > leads.c.id),
        )
        conditions.append(
            ~select(sibling.c.id).where(same_group, sibling.c.id != leads.c.id, later).exists()
        )
        status = None
        last_action = leads.c.last_action_date
    if query.statuses:
        conditions.append(
            status.in_(query.statuses) if status is not None else _first_status_in(query.statuses)
        )
    if query.min_score is not None or query.max_score is not None:
        score = select(func.sum(sibling.c.lead_score)).where(same_group).scalar_subquery()
        if query.min_score is not None:
            conditions.append(score >= query.min_score)
        if query.max_score is not None:
            conditions.append(score <= query.max_score)
    if query.last_action_from is not None:
        conditions.append(last_action >= query.last_action_from)
    if query.last_action_to is not None:
        conditions.append(last_action < query.last_action_to)
    if query.channels:
        channel = _any_channel(query.channels, dialect, sibling.name)
        conditions.append(select(sibling.c.id).where(same_group, channel).exists())
    row_key = (sort_key, leads.c.listing_id, leads.c.seeker_id)
    if after is not None:
        conditions.append(_after(query, row_key, after, dialect))
        conditions.append(_walk_start(query, after[0], dialect))
    page = select(leads.c.listing_id, leads.c.seeker_id, sort_key.label("sort_key")).where(
        *conditions
    )
    if query.sort == "created":
        # Ids are unique: the id alone orders the page, straight off the primary key.
        return list(conn.execute(_ordered(page, [leads.c.id], query.order).limit(size)).all())
    if dialect != "sqlite":
        index_order = (leads.c.last_action_date, leads.c.listing_id, leads.c.seeker_id)
        return list(conn.execute(_ordered(page, index_order, query.order).limit(size)).all())
    # SQLite's sort key is the stored text cut to milliseconds, an order that the index's (the
    # text's) refines. Walk the index one row past the page: when that row's key is beyond the
    # page's last, no other row shares a key with the page and sorting the walked rows by the
    # key is exact. Otherwise (several records in one millisecond) sort, in SQL, every row from
    # the last walked one's second on: only those can be among the first `size`.
    index_order = (leads.c.last_action_date, leads.c.listing_id, leads.c.seeker_id)
    walked = conn.execute(
        _ordered(page.add_columns(leads.c.last_action_date), index_order, query.order).limit(
            size + 1
        )
    ).all()
    if len(walked) <= size or walked[size].sort_key != walked[size - 1].sort_key:
        rows = sorted(
            walked[:size],
            key=lambda r: (r.sort_key, r.listing_id, r.seeker_id),
            reverse=query.order == "desc",
        )
        return list(rows)
    second = str(walked[size - 1].last_action_date)[:19]
    page = page.where(
        leads.c.last_action_date >= _raw_text(second)
        if query.order == "desc"
        else leads.c.last_action_date <= _raw_text(second + "~")
    )
    return list(conn.execute(_ordered(page, row_key, query.order).limit(size)).all())


def _first_status_in(statuses: Sequence[str]) -> ColumnElement[bool]:
    """Whether the group of the walked record has its first record (its state) in `statuses`.

    An EXISTS, not a scalar subquery's value: PostgreSQL then keeps walking the index instead of
    sorting every record of the date range.
    """
    first = leads.alias("first_record")
    earlier = leads.alias("earlier")
    first_of_group = ~(
        select(earlier.c.id)
        .where(
            earlier.c.listing_id == first.c.listing_id,
            earlier.c.seeker_id == first.c.seeker_id,
            earlier.c.id < first.c.id,
        )
        .exists()
    )
    return (
        select(first.c.id)
        .where(
            first.c.listing_id == leads.c.listing_id,
            first.c.seeker_id == leads.c.seeker_id,
            first.c.status.in_(statuses),
            first_of_group,
        )
        .exists()
    )


def _raw_text(value: str) -> ColumnElement[Any]:
    """A literal compared with SQLite's stored time text as text (not through UtcDateTime)."""
    return literal(value, String())


def _walk_scope(query: LeadQuery) -> ColumnElement[bool]:
    """_scope_condition as a per-record test, so that the walk keeps its index order."""
    conditions: list[ColumnElement[bool]] = []
    for lister in (query.scope_lister, query.lister_id):
        if lister is not None:
            conditions.append(
                select(listings.c.listing_id)
                .where(listings.c.listing_id == leads.c.listing_id, listings.c.lister_id == lister)
                .exists()
            )
    if query.listing_id is not None:
        conditions.append(leads.c.listing_id == query.listing_id)
    return and_(true(), *conditions)


def _walk_start(query: LeadQuery, key: Any, dialect: str) -> ColumnElement[bool]:
    """Where in its index the walk resumes after a cursor (the exact bound is _after's)."""
    if query.sort == "created":
        bound = _key_param(query.sort, key, dialect)
        return leads.c.id <= bound if query.order == "desc" else leads.c.id >= bound
    if dialect != "sqlite":
        return true()  # the row comparison on (last_action_date, listing, seeker) is the bound
    second = str(key)[:19]
    return (
        leads.c.last_action_date <= _raw_text(second + "~")
        if query.order == "desc"
        else leads.c.last_action_date >= _raw_text(second)
    )


def iter_groups(engine: Engine, query: LeadQuery, batch: int = 500) -> Iterator[LeadGroup]:
    """Every lead group matching `query`, page by page (each page on its own connection)."""
    cursor: str | None = None
    while True:
        with engine.connect() as conn:
            page = list_groups(conn, query, batch, cursor)
        yield from page.groups
        if page.next_cursor is None:
            return
        cursor = page.next_cursor


def load_groups(conn: Connection, keys: Sequence[tuple[str, str]]) -> list[LeadGroup]:
    """The lead groups of these (listing, seeker) keys, built from all their records."""
    groups: list[LeadGroup] = []
    for start in range(0, len(keys), 100):
        chunk = keys[start : start + 100]
        if not chunk:
            continue
        records = conn.execute(
            select(leads, listings.c.lister_id.label("listing_lister_id"))
            .select_from(leads.outerjoin(listings, listings.c.listing_id == leads.c.listing_id))
            .where(
                or_(
                    *(
                        and_(leads.c.listing_id == listing, leads.c.seeker_id == seeker)
                        for listing, seeker in chunk
                    )
                )
            )
            .order_by(leads.c.listing_id, leads.c.seeker_id, leads.c.id)
        ).all()
        by_key: dict[tuple[str, str], list[Any]] = {}
        for record in records:
            by_key.setdefault((record.listing_id, record.seeker_id), []).append(record)
        groups.extend(build_group(by_key[key]) for key in chunk if key in by_key)
    return groups


def _json_list(value: Any) -> list[Any]:
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            return []
    return list(value) if isinstance(value, list) else []


def build_group(records: Sequence[Any]) -> LeadGroup:
    """A lead group from its records (rows of `leads`, oldest first)."""
    first = records[0]
    actions: list[dict[str, Any]] = []
    for record in records:
        actions.extend(a for a in _json_list(record.lead_actions) if isinstance(a, dict))
    actions.sort(key=lambda a: (str(a.get("timestamp", "")), str(a.get("event_uuid", ""))))
    for action in actions:
        action["channel"] = action_channel(action)
    tracker = [e for e in _json_list(first.status_tracker) if isinstance(e, dict)]
    notes = [n for n in _json_list(first.notes) if isinstance(n, dict)]
    status = str(first.status)
    last_change = parse_stamp(tracker[-1].get("at")) if tracker else None
    newest_record = max(r.created_at for r in records)
    re_engaged = status != "new" and last_change is not None and newest_record > last_change
    newest_lister = next((r for r in reversed(records) if r.lister_id is not None), None)
    channels = sorted({a["channel"] for a in actions})
    last_record = max(records, key=lambda r: (r.last_action_date, r.id))
    return LeadGroup(
        listing_id=first.listing_id,
        seeker_id=first.seeker_id,
        lister_id=first.listing_lister_id
        or (newest_lister.lister_id if newest_lister is not None else None),
        lister_type=newest_lister.lister_type if newest_lister is not None else None,
        record_ids=[int(r.id) for r in records],
        actions=actions,
        score=sum(int(r.lead_score) for r in records),
        total_actions=sum(int(r.total_actions) for r in records),
        first_action_at=min(r.first_action_date for r in records),
        last_action_at=max(r.last_action_date for r in records),
        last_action_type=str(last_record.last_action_type),
        channels=channels,
        status=status,
        status_tracker=tracker,
        notes=notes,
        re_engaged=re_engaged,
        created_at=first.created_at,
        updated_at=max(r.updated_at for r in records),
        allowed_moves=list(allowed_moves(status, [str(e.get("status")) for e in tracker])),
    )


def get_group(
    conn: Connection, listing_id: str, seeker_id: str, scope_lister: str | None
) -> LeadGroup:
    """One lead group; NotFound when it does not exist or is not the scope lister's."""
    query = LeadQuery(scope_lister=scope_lister, listing_id=listing_id)
    visible = conn.execute(
        select(leads.c.id).where(_scope_condition(query), leads.c.seeker_id == seeker_id).limit(1)
    ).first()
    if visible is None:
        raise NotFound(_not_found(listing_id, seeker_id))
    (group,) = load_groups(conn, [(listing_id, seeker_id)])
    return group


def _not_found(listing_id: str, seeker_id: str) -> str:
    return f"no lead of seeker {seeker_id!r} on listing {listing_id!r}"


def status_counts(
    conn: Connection,
    scope_lister: str | None,
    last_action_from: datetime | None,
    last_action_to: datetime | None,
) -> dict[str, int]:
    """How many lead groups are in each status (groups with a last action in the range)."""
    query = LeadQuery(
        scope_lister=scope_lister,
        last_action_from=last_action_from,
        last_action_to=last_action_to,
    )
    matching = _groups_select(query, conn.dialect.name).subquery("matching")
    rows = conn.execute(select(matching.c.status, func.count()).group_by(matching.c.status)).all()
    return {str(status): int(count) for status, count in rows}


# -- changes -----------------------------------------------------------------------------------


def _change_group(
    engine: Engine,
    listing_id: str,
    seeker_id: str,
    scope_lister: str | None,
    change: Any,
) -> LeadGroup:
    """Apply `change(first_record) -> values` to every record of the group, in one transaction."""
    query = LeadQuery(scope_lister=scope_lister, listing_id=listing_id)
    with (
        engine.connect().execution_options(sqlite_begin="IMMEDIATE") as conn,
        conn.begin(),
    ):
        records = conn.execute(
            select(leads)
            .where(_scope_condition(query), leads.c.seeker_id == seeker_id)
            .order_by(leads.c.id)
            .with_for_update()
        ).all()
        if not records:
            raise NotFound(_not_found(listing_id, seeker_id))
        values = change(records[0])
        conn.execute(update(leads).where(leads.c.id.in_([r.id for r in records])).values(**values))
        (group,) = load_groups(conn, [(listing_id, seeker_id)])
    return group


def change_status(
    engine: Engine,
    listing_id: str,
    seeker_id: str,
    status: str,
    by: str,
    scope_lister: str | None,
    note: str | None = None,
    now: datetime | None = None,
) -> LeadGroup:
    """Move a lead group to `status` (InvalidStatusMove when the pipeline forbids it)."""
    moment = now or datetime.now(UTC)

    def change(first: Any) -> dict[str, Any]:
        tracker = [e for e in _json_list(first.status_tracker) if isinstance(e, dict)]
        check_move(str(first.status), status, [str(e.get("status")) for e in tracker])
        notes = [n for n in _json_list(first.notes) if isinstance(n, dict)]
        if note:
            notes.append({"text": note, "at": stamp(moment), "by": by})
        return {
            "status": status,
            "status_tracker": [*tracker, {"status": status, "at": stamp(moment), "by": by}],
            "notes": notes,
            "updated_at": moment,
        }

    return _change_group(engine, listing_id, seeker_id, scope_lister, change)


def add_note(
    engine: Engine,
    listing_id: str,
    seeker_id: str,
    note: str,
    by: str,
    scope_lister: str | None,
    now: datetime | None = None,
) -> LeadGroup:
    """Append a note `{text, at, by}` to a lead group."""
    moment = now or datetime.now(UTC)

    def change(first: Any) -> dict[str, Any]:
        notes = [n for n in _json_list(first.notes) if isinstance(n, dict)]
        return {
            "status": first.status,
            "status_tracker": _json_list(first.status_tracker),
            "notes": [*notes, {"text": note, "at": stamp(moment), "by": by}],
            "updated_at": moment,
        }

    return _change_group(engine, listing_id, seeker_id, scope_lister, change)
