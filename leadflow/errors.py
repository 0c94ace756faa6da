"""leadflow's exceptions: each one a message a user can act on."""

from __future__ import annotations


class LeadflowError(Exception):
    """Base of every error leadflow reports to its user."""


class ConfigError(LeadflowError):
    """A setting is missing or wrong (a bad database URL, an unknown source)."""


class SourceError(LeadflowError):
    """Events could not be read from the source (a missing or unreadable file, a refused request)."""


class StoreError(LeadflowError):
    """The store could not be opened or written."""


class RunLocked(LeadflowError):
    """Another run holds the lock; this trigger is refused, not queued."""


class RunFailed(LeadflowError):
    """A run started, failed, and was recorded as failed in cron_runs."""

    def __init__(self, run_id: int, message: str) -> None:
        super().__init__(f"run {run_id} failed: {message}")
        self.run_id = run_id


class InvalidStatusMove(LeadflowError):
    """A lead cannot move from its status to the one asked (see leadflow.status)."""


class NotFound(LeadflowError):
    """A lead group, listing, lister or run that does not exist (or that the caller may not see)."""
