"""What every route shares: the store's engine, the documented errors, and the checks of every
request's parameters (no unknown names, no NUL characters)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, HTTPException, Request
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


def reject_nul_characters(request: Request) -> None:
    """Refuse a NUL character in any path or query parameter, before it reaches a query.

    PostgreSQL refuses NUL in any text value, so a query carrying one would fail: every
    parameter is checked here, once for all routes, and answered 422 on every store alike.
    """
    for where, params in (
        ("path", list(request.path_params.items())),
        ("query", request.query_params.multi_items()),
    ):
        for name, value in params:
            if "\x00" in str(name) or "\x00" in str(value):
                raise invalid(
                    f"{where}.{name}",
                    "must not contain a NUL character (\\x00): no text in the store can hold "
                    "one; remove it and try again",
                )
