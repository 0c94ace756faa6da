"""The lead status pipeline: which moves a lead group may make, as plain data and functions.

    new → contacted → qualified → viewing_scheduled → negotiating → won | lost
    (also spam and archived, from any status that is not already closed)

- From an open status (new … negotiating) a lead moves forward, skipping steps if it likes, to
  a later open status or to won, or it is closed as lost, marked spam, or archived.
- won and lost are final: they can only be archived.
- spam and archived are set aside, and can be restored: spam back to the last status it had
  before (or archived); archived back to the last status it had before archiving.
- Anything else (backwards, to itself, to `new`) is refused.
"""

from __future__ import annotations

from collections.abc import Sequence

from leadflow.errors import InvalidStatusMove
from leadflow.events import LEAD_STATUSES

OPEN_STATUSES: tuple[str, ...] = (
    "new",
    "contacted",
    "qualified",
    "viewing_scheduled",
    "negotiating",
)
CLOSED_STATUSES: tuple[str, ...] = ("won", "lost")
SET_ASIDE_STATUSES: tuple[str, ...] = ("spam", "archived")
assert set(OPEN_STATUSES + CLOSED_STATUSES + SET_ASIDE_STATUSES) == set(LEAD_STATUSES)


def restore_target(current: str, history: Sequence[str]) -> str | None:
    """The status a set-aside (spam or archived) lead goes back to: its last one before."""
    for status in reversed(history):
        if status not in (current, "archived"):
            return status
    return None


def allowed_moves(current: str, history: Sequence[str] = ()) -> tuple[str, ...]:
    """The statuses a lead group in `current` may move to; `history` is its statuses so far."""
    if current in OPEN_STATUSES:
        later = OPEN_STATUSES[OPEN_STATUSES.index(current) + 1 :]
        return (*later, "won", "lost", "spam", "archived")
    if current in CLOSED_STATUSES:
        return ("archived",)
    if current in SET_ASIDE_STATUSES:
        moves = [] if current == "archived" else ["archived"]
        back = restore_target(current, history)
        if back is not None and back not in moves:
            moves.insert(0, back)
        return tuple(moves)
    # A status leadflow does not know (written by other code): it may only be archived.
    return ("archived",)


def check_move(current: str, target: str, history: Sequence[str] = ()) -> None:
    """Raise InvalidStatusMove, saying what is allowed, unless current → target is allowed."""
    if target not in LEAD_STATUSES:
        raise InvalidStatusMove(
            f"unknown status {target!r}: expected one of {', '.join(LEAD_STATUSES)}"
        )
    allowed = allowed_moves(current, history)
    if target in allowed:
        return
    if target == current:
        raise InvalidStatusMove(f"the lead is already {current!r}")
    raise InvalidStatusMove(
        f"cannot move a lead from {current!r} to {target!r}: from {current!r} it can move to "
        + (", ".join(repr(s) for s in allowed) or "nothing")
    )
