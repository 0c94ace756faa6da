"""The cron endpoint: one pipeline run per trigger (one at a time), and the runs' history."""

from __future__ import annotations

import logging
import threading
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request, Response
from fastapi.responses import JSONResponse
from sqlalchemy import Engine

from leadflow import pipeline
from leadflow.api.auth import require_cron_or_admin, require_cron_secret
from leadflow.api.deps import StoreEngine, errors
from leadflow.api.params import page_size
from leadflow.api.schemas import CronRun, CronRunPage, RunFailedBody, RunStarted, RunSummaryOut
from leadflow.config import Settings
from leadflow.errors import ConfigError, NotFound, RunFailed, RunLocked
from leadflow.store import reads
from leadflow.store.db import checkpoint

log = logging.getLogger("leadflow.api")

# How long a trigger that does not wait waits for its run to be recorded (lock, file listing).
START_TIMEOUT_SECONDS = 120


def configured_source(settings: Settings) -> str:
    """What the service's runs read, by the rule of `leadflow run` without `--source`:
    LEADFLOW_SOURCE (`posthog`, or `file:PATH` for an export file, folder or glob), else PostHog
    when POSTHOG_HOST, POSTHOG_PROJECT_ID and POSTHOG_PERSONAL_API_KEY are all set.

    Returns `pipeline.POSTHOG` or the export path; ConfigError (503) when there is neither.
    """
    found = settings.configured_source()
    if found is not None:
        return found
    configured = settings.source or ""
    what = (
        f"LEADFLOW_SOURCE={configured!r} is neither 'posthog' nor 'file:PATH'"
        if configured
        else "the service has no source to read"
    )
    raise ConfigError(
        f"{what}: set LEADFLOW_SOURCE=posthog (with POSTHOG_HOST, POSTHOG_PROJECT_ID and "
        "POSTHOG_PERSONAL_API_KEY) or LEADFLOW_SOURCE=file:PATH (an export file, folder or glob), "
        "and restart the service"
    )


class CronRunner:
    """Starts the service's runs: one at a time in this process, and in the store (run lock)."""

    def __init__(self, settings: Settings, engine: Engine) -> None:
        self.settings = settings
        self.engine = engine
        self._busy = threading.Lock()
        self.current_run: int | None = None

    def _refuse(self) -> RunLocked:
        which = f"run {self.current_run}" if self.current_run is not None else "a run"
        return RunLocked(f"{which} is in progress; this trigger is refused, try again later")

    def _started(self, run_id: int) -> None:
        self.current_run = run_id

    def run(self) -> pipeline.RunSummary:
        """One run, waited for. RunLocked while another holds the lock; RunFailed on failure."""
        source = configured_source(self.settings)
        if not self._busy.acquire(blocking=False):
            raise self._refuse()
        try:
            summary = pipeline.run(
                self.settings,
                source,
                engine=self.engine,
                on_started=self._started,
                defer_checkpoint=True,
            )
        finally:
            self.current_run = None
            self._busy.release()
            # Copy the run's write-ahead log into the database once the trigger has its answer.
            threading.Thread(
                target=checkpoint, args=(self.engine,), name="leadflow-checkpoint", daemon=True
            ).start()
        return summary

    def start(self) -> int:
        """Start a run in the background and return its id once it is recorded."""
        source = configured_source(self.settings)
        if not self._busy.acquire(blocking=False):
            raise self._refuse()
        started = threading.Event()
        outcome: dict[str, Any] = {}

        def on_started(run_id: int) -> None:
            self.current_run = outcome["run_id"] = run_id
            started.set()

        def work() -> None:
            try:
                pipeline.run(self.settings, source, engine=self.engine, on_started=on_started)
            except RunFailed as exc:
                log.warning("%s", exc)
            except Exception as exc:
                outcome["error"] = exc
                if "run_id" in outcome:
                    log.exception("run %s failed", outcome["run_id"])
            finally:
                self.current_run = None
                self._busy.release()
                started.set()

        threading.Thread(target=work, name="leadflow-cron-run", daemon=True).start()
        if not started.wait(START_TIMEOUT_SECONDS):
            raise ConfigError(f"the run did not start within {START_TIMEOUT_SECONDS} s")
        if "run_id" in outcome:
            return int(outcome["run_id"])
        error = outcome.get("error")
        if isinstance(error, Exception):
            raise error
        raise ConfigError("the run ended before it started")  # pragma: no cover


router = APIRouter(prefix="/api/cron", tags=["cron"])

TRIGGER_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"model": RunSummaryOut, "description": "The run finished: its summary."},
    202: {"model": RunStarted, "description": "`wait=false`: the run started in the background."},
    500: {"model": RunFailedBody, "description": "The run failed; it is recorded in cron_runs."},
    **errors(401, 409, 422, 503),
}

Wait = Annotated[
    bool,
    Query(
        description="Wait for the run to finish (default). `false`: answer 202 with the run id at "
        "once and let the run go on; follow it at /api/cron/runs/{id}."
    ),
]


def _trigger(request: Request, wait: bool) -> Response:
    runner: CronRunner = request.app.state.cron
    if not wait:
        run_id = runner.start()
        body = RunStarted(run_id=run_id, status_url=f"/api/cron/runs/{run_id}")
        return JSONResponse(
            body.model_dump(mode="json"),
            status_code=202,
            headers={"Location": body.status_url},
        )
    try:
        summary = runner.run()
    except RunFailed as exc:
        message = str(exc).split(": ", 1)[-1]
        return JSONResponse(
            RunFailedBody(detail=str(exc), run_id=exc.run_id, error=message).model_dump(
                mode="json", exclude_none=True
            ),
            status_code=500,
        )
    return JSONResponse(RunSummaryOut.model_validate(summary.to_dict()).model_dump(mode="json"))


@router.post(
    "/analytics",
    dependencies=[Depends(require_cron_secret)],
    responses=TRIGGER_RESPONSES,
    summary="Run the cron job once",
    response_model=RunSummaryOut,
)
def trigger_run(request: Request, wait: Wait = True) -> Response:
    """Read the new events (from PostHog or export files, as LEADFLOW_SOURCE and the POSTHOG_*
    settings say), write leads and listing analytics, and answer the run's summary.

    Needs `Authorization: Bearer <LEADFLOW_CRON_SECRET>`. A trigger while another run holds
    the lock is refused (409), not queued.
    """
    return _trigger(request, wait)


@router.get(
    "/analytics",
    dependencies=[Depends(require_cron_secret)],
    responses=TRIGGER_RESPONSES,
    summary="Run the cron job once (GET, for schedulers such as Vercel Cron)",
    response_model=RunSummaryOut,
)
def trigger_run_get(request: Request, wait: Wait = True) -> Response:
    """The same as `POST /api/cron/analytics`, for schedulers that send GET."""
    return _trigger(request, wait)


@router.get(
    "/runs",
    response_model=CronRunPage,
    responses=errors(401, 403, 422, 503),
    summary="The runs, newest first",
)
def list_runs(
    engine: StoreEngine,
    _caller: Annotated[str, Depends(require_cron_or_admin)],
    limit: Annotated[int, page_size("Runs")] = 20,
    cursor: Annotated[
        str | None,
        Query(pattern=r"^[0-9]{1,18}$", description="The `next_cursor` of the previous page."),
    ] = None,
) -> CronRunPage:
    """The cron runs, newest first (scheduler's secret or an admin's token)."""
    with engine.connect() as conn:
        rows = reads.cron_run_page(conn, limit + 1, int(cursor) if cursor else None)
    more = len(rows) > limit
    rows = rows[:limit]
    return CronRunPage(
        items=[CronRun.model_validate(row) for row in rows],
        next_cursor=str(rows[-1]["id"]) if more and rows else None,
    )


@router.get(
    "/runs/{run_id}",
    response_model=CronRun,
    responses=errors(401, 403, 404, 422, 503),
    summary="One run: its status and counts",
)
def get_run(
    engine: StoreEngine,
    _caller: Annotated[str, Depends(require_cron_or_admin)],
    run_id: Annotated[int, Path(ge=1, le=2**62, description="The run's id.")],
) -> CronRun:
    """A run's status (running, succeeded, failed), window, counts and error."""
    with engine.connect() as conn:
        row = reads.cron_run(conn, run_id)
    if row is None:
        raise NotFound(f"no run {run_id}")
    return CronRun.model_validate(row)
