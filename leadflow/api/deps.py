"""What the routes share: the store's engine, strict parameters, and the documented errors."""

from __future__ import annotations

import re
from datetime import date, datetime, time, tzinfo
from typing import Annotated, Any

from fastapi import Depends, HTTPException, Request
from pydantic import BeforeValidator
from sqlalchemy import Engine

from leadflow.api.schemas import ErrorBody


def store_engine(request: Request) -> Engine:
    engine: Engine = request.app.state.engine
    return engine


StoreEngine = Annotated[Engine, Depends(store_engine)]

ERROR_DESCRIPTIONS: dict[int, str] = {
    400: "The body could not be read: it is not UTF-8 JSON.",
    401: "No credentials, or wrong ones (a missing, expired or badly signed token).",
    403: "The credentials are valid but do not allow this.",
    404: "No such resource, or not one the caller may see.",
    409: "Another run holds the run lock; try again when it finishes.",
    422: "A parameter or the body is wrong: the message says which and why.",
    503: "The service is not configured for this (a missing secret or source) or the store is "
    "unavailable.",
}


def errors(*codes: int, media_type: str = "application/json") -> dict[int | str, dict[str, Any]]:
    """The `responses` of a route for these error status codes, all JSON ErrorBody.

    Routes whose own answers are not JSON (CSV exports) still answer errors in JSON: their
    error responses name the content type explicitly.
    """
    if media_type == "application/json":
        return {
            code: {"model": ErrorBody, "description": ERROR_DESCRIPTIONS[code]} for code in codes
        }
    schema = {"$ref": "#/components/schemas/ErrorBody"}
    return {
        code: {
            "description": ERROR_DESCRIPTIONS[code],
            "content": {"application/json": {"schema": schema}},
        }
        for code in codes
    }


def invalid(location: str, message: str) -> HTTPException:
    """A 422 for one bad parameter, shaped like the validation errors."""
    return HTTPException(status_code=422, detail=f"{location}: {message}")


def _query_names(dependant: Any) -> set[str]:
    names = {str(param.alias) for param in getattr(dependant, "query_params", ())}
    for sub in getattr(dependant, "dependencies", ()):
        names |= _query_names(sub)
    return names


def reject_unknown_query(request: Request) -> None:
    """Refuse query parameters a route does not know (a misspelt filter would be ignored)."""
    route = request.scope.get("route")
    dependant = getattr(route, "dependant", None)
    if dependant is None:
        return
    known = _query_names(dependant)
    unknown = sorted(set(request.query_params) - known)
    if unknown:
        expected = ", ".join(sorted(known)) or "none"
        raise invalid(f"query.{unknown[0]}", f"unknown parameter (this endpoint takes: {expected})")


# Ids as the store keeps them: printable text of bounded length (a listing id is at most 128
# characters, a seeker id at most 256).
ID_PATTERN = r"^[^\x00-\x1f\x7f]+$"

EARLIEST_YEAR, LATEST_YEAR = 1970, 2200
_ISO_START = re.compile(r"^\d{4}-\d{2}-\d{2}")


def _iso_only(value: Any) -> Any:
    if isinstance(value, str) and not _ISO_START.match(value):
        raise ValueError(
            "expected an ISO 8601 date or date-time, such as 2025-05-01 or 2025-05-01T10:00:00Z"
        )
    return value


# A time in a query: an ISO 8601 date-time (with or without offset) or a date.
Moment = Annotated[datetime | date, BeforeValidator(_iso_only)]


def moment_at(value: datetime | date | None, name: str, zone: tzinfo) -> datetime | None:
    """A query's time as an aware datetime: a date is its midnight, and times without an
    offset are read in `zone`. Years the service cannot place on a calendar are refused."""
    if value is None:
        return None
    if not EARLIEST_YEAR <= value.year <= LATEST_YEAR:
        raise invalid(f"query.{name}", f"must be between {EARLIEST_YEAR} and {LATEST_YEAR}")
    if not isinstance(value, datetime):
        value = datetime.combine(value, time(0))
    return value.replace(tzinfo=zone) if value.tzinfo is None else value.astimezone(zone)
