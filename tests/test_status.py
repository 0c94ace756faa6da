"""The lead status pipeline's rule, as a table."""

from __future__ import annotations

import pytest

from leadflow.errors import InvalidStatusMove
from leadflow.events import LEAD_STATUSES
from leadflow.status import allowed_moves, check_move


@pytest.mark.parametrize(
    ("status", "history", "moves"),
    [
        (
            "new",
            ["new"],
            [
                "contacted",
                "qualified",
                "viewing_scheduled",
                "negotiating",
                "won",
                "lost",
                "spam",
                "archived",
            ],
        ),
        ("viewing_scheduled", [], ["negotiating", "won", "lost", "spam", "archived"]),
        ("negotiating", [], ["won", "lost", "spam", "archived"]),
        ("won", [], ["archived"]),
        ("lost", [], ["archived"]),
        ("spam", ["new", "contacted", "spam"], ["contacted", "archived"]),
        ("archived", ["new", "won", "archived"], ["won"]),
        ("archived", ["new", "spam", "archived"], ["spam"]),
        ("spam", ["new", "spam", "archived", "spam"], ["new", "archived"]),
        ("archived", [], []),
    ],
)
def test_allowed_moves(status, history, moves):
    assert list(allowed_moves(status, history)) == moves


def test_no_status_moves_backwards_or_to_itself():
    for status in LEAD_STATUSES:
        for target in allowed_moves(status, ["new", status]):
            assert target != status
    with pytest.raises(InvalidStatusMove, match="already 'won'"):
        check_move("won", "won")
    with pytest.raises(InvalidStatusMove, match="unknown status 'sold'"):
        check_move("new", "sold")
