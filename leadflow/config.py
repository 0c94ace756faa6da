"""Every setting of leadflow, read from the environment into one typed object."""

from __future__ import annotations

from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

POSTHOG_SOURCE = "posthog"  # the source name of PostHog's Query API (LEADFLOW_SOURCE, --source)


class Settings(BaseSettings):
    """leadflow's settings; each field reads `LEADFLOW_<NAME>` unless it names another variable."""

    model_config = SettingsConfigDict(env_prefix="LEADFLOW_", extra="ignore")

    database_url: str = Field(
        default="sqlite:///leadflow.db",
        description="SQLAlchemy URL of the store: sqlite:///PATH or postgresql+psycopg://…",
    )
    source: str | None = Field(
        default=None,
        description="`posthog`, or `file:PATH` for an export file, folder or glob.",
    )
    slice_events: int = Field(
        default=3_000_000,
        ge=1,
        description="A run commits its work in slices of about this many events.",
    )
    slice_max_days: int = Field(
        default=92,
        ge=1,
        description="…and of at most this many days of event time.",
    )
    engine_memory_limit: str = Field(
        default="1GB",
        description="Memory the embedded engine (DuckDB) may use before it spills to disk.",
    )
    engine_in_memory_max_bytes: int = Field(
        default=64 * 1024 * 1024,
        ge=0,
        description="A run whose new export files total at most this many bytes stages them in "
        "memory; a larger one in an engine database file that spills to disk.",
    )
    engine_threads: int | None = Field(
        default=None, ge=1, description="Threads of the embedded engine (default: all cores)."
    )
    lock_timeout_seconds: int = Field(
        default=3600,
        ge=1,
        description="A run lock not refreshed for this long is taken over by the next run.",
    )
    cron_secret: str | None = Field(
        default=None,
        description="Bearer secret of the cron endpoint; without it the endpoint refuses to run.",
    )
    jwt_secret: str | None = Field(
        default=None, description="HS256 secret of the portal's user tokens (JWT)."
    )
    jwt_jwks_url: str | None = Field(
        default=None,
        description="URL of the portal's JWKS, for user tokens signed with a public key (RS256…).",
    )
    serve_host: str = Field(default="127.0.0.1", description="Address `leadflow serve` binds.")
    serve_port: int = Field(
        default=8000, ge=1, le=65535, description="Port `leadflow serve` listens on."
    )

    # The PostHog source (docs/posthog.md).
    posthog_host: str | None = Field(
        default=None,
        validation_alias=AliasChoices("POSTHOG_HOST", "posthog_host"),
        description="PostHog's address: https://us.posthog.com, https://eu.posthog.com or yours.",
    )
    posthog_project_id: str | None = Field(
        default=None,
        validation_alias=AliasChoices("POSTHOG_PROJECT_ID", "posthog_project_id"),
        description="The PostHog project's id (Project settings → Project ID).",
    )
    posthog_personal_api_key: str | None = Field(
        default=None,
        validation_alias=AliasChoices("POSTHOG_PERSONAL_API_KEY", "posthog_personal_api_key"),
        description="A personal API key (phx_…) or project secret key with the query:read scope.",
    )
    posthog_overlap_minutes: int = Field(
        default=60,
        ge=0,
        description="Each run reads again this much ingestion time before the watermark.",
    )
    posthog_settle_seconds: int = Field(
        default=120,
        ge=0,
        description="A run reads events ingested up to this long before it starts.",
    )
    posthog_backfill_days: int = Field(
        default=365, ge=1, description="How far back the first run reads (ingestion time)."
    )
    posthog_lateness_days: int = Field(
        default=7,
        ge=0,
        description="How far an event's time may lie before its ingestion and still be read.",
    )
    posthog_slice_events: int = Field(
        default=1_000_000,
        ge=1,
        description="A PostHog run commits its work in slices of about this many events.",
    )
    posthog_page_rows: int = Field(
        default=50_000, ge=1, le=50_000, description="Rows per page (PostHog's cap: 50,000)."
    )
    posthog_time_budget_seconds: float = Field(
        default=1800.0,
        gt=0,
        description="A run stops cleanly (after its last committed slice) past this long.",
    )
    posthog_request_budget: int = Field(
        default=100,
        ge=1,
        description="Requests to PostHog per run at most (projects may have 120 queries/hour).",
    )
    posthog_timeout_seconds: float = Field(
        default=60.0,
        gt=0,
        description="Read timeout of a query (PostHog: up to 30 s queued, 10 s executing).",
    )
    posthog_max_retries: int = Field(
        default=6, ge=0, description="Retries of a failed request (5xx, timeout, dropped)."
    )
    posthog_backoff_seconds: float = Field(
        default=1.0, ge=0, description="First retry's wait; doubled each retry, with jitter."
    )

    def source_file(self) -> str | None:
        """The export path of LEADFLOW_SOURCE=file:PATH, if that is what it says."""
        configured = self.source or ""
        path = configured.removeprefix("file:")
        return path if configured.startswith("file:") and path else None

    def configured_source(self) -> str | None:
        """What a run reads when nothing names a source (`leadflow run` without `--source`, the
        cron endpoint): LEADFLOW_SOURCE (`posthog`, or `file:PATH` → PATH), else PostHog when
        POSTHOG_HOST, POSTHOG_PROJECT_ID and POSTHOG_PERSONAL_API_KEY are all set, else None."""
        if self.source == POSTHOG_SOURCE:
            return POSTHOG_SOURCE
        path = self.source_file()
        if path is not None:
            return path
        if self.posthog_host and self.posthog_project_id and self.posthog_personal_api_key:
            return POSTHOG_SOURCE
        return None


def load_settings(**overrides: object) -> Settings:
    """Settings from the environment, with explicit overrides (e.g. from CLI flags) on top."""
    values = {key: value for key, value in overrides.items() if value is not None}
    return Settings(**values)  # type: ignore[arg-type]
