"""The HTTP service: `create_app(settings)` builds the FastAPI app that `leadflow serve` runs."""

from __future__ import annotations

import logging
import re
from typing import Any

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy import Engine
from sqlalchemy.exc import DataError, OperationalError, SQLAlchemyError
from starlette.exceptions import HTTPException as StarletteHTTPException

from leadflow.api import analytics, cron, leads, web
from leadflow.api.auth import TokenVerifier
from leadflow.api.deps import reject_nul_characters, reject_unknown_query
from leadflow.api.schemas import ErrorBody, FieldError, Health
from leadflow.config import Settings
from leadflow.errors import (
    ConfigError,
    InvalidStatusMove,
    NotFound,
    RunLocked,
    SourceError,
    StoreError,
)
from leadflow.store.db import create_store_engine, ensure_schema

log = logging.getLogger("leadflow.api")

DESCRIPTION = """\
leadflow's HTTP service: the cron endpoint the portal's scheduler calls, and the lead
management and listing analytics APIs its frontend calls.

- **Cron** (`/api/cron/…`): `Authorization: Bearer <LEADFLOW_CRON_SECRET>`.
- **Everything else**: `Authorization: Bearer <JWT>`, a portal user's token (HS256 with
  `LEADFLOW_JWT_SECRET`, or a key of `LEADFLOW_JWT_JWKS_URL`) with claims `sub`, `exp`,
  `role` (`lister` or `admin`) and, for a lister, `lister_id`. A lister sees and changes only
  the leads and analytics of their own listings (others' are 404); an admin sees all.

Every error is JSON `{"detail": "…"}` saying what was wrong.
"""

TAGS = [
    {"name": "cron", "description": "Run the pipeline; follow runs."},
    {"name": "leads", "description": "Leads (one per seeker and listing), status and notes."},
    {"name": "analytics", "description": "Listing totals, time series, lister summaries."},
    {"name": "service", "description": "Liveness."},
]


def _location(loc: tuple[Any, ...] | list[Any]) -> str:
    return ".".join(str(part) for part in loc) or "request"


def _validation_message(error: dict[str, Any]) -> str:
    message = str(error.get("msg", "invalid"))
    if error.get("type") == "missing" and tuple(error.get("loc", ())) == ("body",):
        return "a JSON body is required"
    if error.get("type") == "json_invalid":
        return f"the body is not valid JSON ({error.get('ctx', {}).get('error', 'parse error')})"
    return message


def _error(status: int, detail: str, **extra: Any) -> JSONResponse:
    headers = extra.pop("headers", None)
    body = ErrorBody(detail=detail, **extra).model_dump(mode="json", exclude_none=True)
    return JSONResponse(body, status_code=status, headers=headers)


def _allowed_methods(app: FastAPI, request: Request) -> list[str]:
    """Every method the API takes at this path (a 405's Allow header), from its OpenAPI paths."""
    methods: set[str] = set()
    for template, operations in app.openapi()["paths"].items():
        pattern = "".join(
            "[^/]+" if part.startswith("{") else re.escape(part)
            for part in re.split(r"(\{[^}]+\})", template)
        )
        if re.fullmatch(pattern, request.url.path):
            methods |= {method.upper() for method in operations}
    return sorted(methods)


def install_error_handlers(app: FastAPI) -> None:
    """Every error as `{"detail": "…"}` with the right status; never a bare 500 for bad input."""

    @app.exception_handler(RequestValidationError)
    async def _invalid(_request: Request, exc: RequestValidationError) -> JSONResponse:
        fields = [
            FieldError(location=_location(e.get("loc", ())), message=_validation_message(e))
            for e in exc.errors()
        ]
        detail = "; ".join(f"{f.location}: {f.message}" for f in fields) or "invalid request"
        return _error(422, detail, errors=fields)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        headers = dict(getattr(exc, "headers", None) or {})
        detail = str(exc.detail)
        if exc.status_code == 405:
            headers["Allow"] = ", ".join(_allowed_methods(app, request))
        elif exc.status_code == 400 and detail == "There was an error parsing the body":
            detail = "body: the body could not be read: send UTF-8 JSON"
        return _error(exc.status_code, detail, headers=headers or None)

    @app.exception_handler(NotFound)
    async def _not_found(_request: Request, exc: NotFound) -> JSONResponse:
        return _error(404, str(exc))

    @app.exception_handler(InvalidStatusMove)
    async def _bad_move(_request: Request, exc: InvalidStatusMove) -> JSONResponse:
        return _error(422, str(exc))

    @app.exception_handler(RunLocked)
    async def _locked(_request: Request, exc: RunLocked) -> JSONResponse:
        return _error(409, str(exc))

    async def _unavailable(_request: Request, exc: Exception) -> JSONResponse:
        return _error(503, str(exc))

    for kind in (ConfigError, SourceError, StoreError):
        app.add_exception_handler(kind, _unavailable)

    @app.exception_handler(OperationalError)
    async def _store_down(_request: Request, exc: OperationalError) -> JSONResponse:
        log.warning("store unavailable: %s", exc)
        return _error(503, f"the store is unavailable or busy, try again: {exc.orig}")

    @app.exception_handler(DataError)
    async def _bad_value(_request: Request, exc: DataError) -> JSONResponse:
        # The store refused a value taken from the request (NUL characters never get this far:
        # reject_nul_characters answers them first).
        reason = str(exc.orig).splitlines()[0] if exc.orig else type(exc).__name__
        return _error(422, f"a value of the request cannot be used: {reason}")

    @app.exception_handler(SQLAlchemyError)
    async def _store_error(_request: Request, exc: SQLAlchemyError) -> JSONResponse:
        log.exception("store error")
        return _error(500, f"unexpected store error ({type(exc).__name__}); see the server log")

    @app.exception_handler(Exception)
    async def _unexpected(_request: Request, exc: Exception) -> JSONResponse:
        log.exception("unexpected error")
        return _error(500, f"unexpected error ({type(exc).__name__}); see the server log")


def create_app(settings: Settings, engine: Engine | None = None) -> FastAPI:
    """The HTTP service over the store of `settings` (created or upgraded here if needed)."""
    engine = engine or create_store_engine(settings.database_url)
    ensure_schema(engine)
    app = FastAPI(
        title="leadflow",
        version="0.1.0",
        description=DESCRIPTION,
        openapi_tags=TAGS,
        dependencies=[Depends(reject_nul_characters), Depends(reject_unknown_query)],
    )
    app.state.settings = settings
    app.state.engine = engine
    app.state.verifier = TokenVerifier(settings)
    app.state.cron = cron.CronRunner(settings, engine)
    install_error_handlers(app)
    app.include_router(cron.router)
    app.include_router(leads.router)
    app.include_router(analytics.router)
    app.include_router(web.router)

    @app.get("/api/health", response_model=Health, tags=["service"], summary="Liveness")
    def health() -> Health:
        """Answers 200 while the service runs (no credentials needed)."""
        return Health()

    return app
