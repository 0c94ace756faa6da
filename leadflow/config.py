"""Every setting of leadflow, read from the environment into one typed object."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


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
    engine_threads: int | None = Field(
        default=None, ge=1, description="Threads of the embedded engine (default: all cores)."
    )
    lock_timeout_seconds: int = Field(
        default=3600,
        ge=1,
        description="A run lock not refreshed for this long is taken over by the next run.",
    )
    cron_secret: str | None = None
    jwt_secret: str | None = None


def load_settings(**overrides: object) -> Settings:
    """Settings from the environment, with explicit overrides (e.g. from CLI flags) on top."""
    values = {key: value for key, value in overrides.items() if value is not None}
    return Settings(**values)  # type: ignore[arg-type]
