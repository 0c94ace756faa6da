"""Leads over HTTP: one per (seeker, listing) over every run's records, status pipeline, notes."""

from __future__ import annotations

import csv
import io

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.apidata import at
from tests.eventfiles import event

pytest_plugins = ("tests.apiserver",)

A = {"lister_id": "lister-a", "lister_type": "agent"}


def lead_of(client, seeker: str, listing: str) -> dict:
    response = client.get(f"/api/leads/{seeker}/{listing}")
    assert response.status_code == 200, response.text
    return response.json()


def move(client, seeker: str, listing: str, status: str, **extra):
    return client.patch(f"/api/leads/{seeker}/{listing}/status", json={"status": status, **extra})


def test_a_lead_merges_the_records_of_every_run_in_time_order(api):
    # The standard set gave seeker-1 two calls and a WhatsApp message on listing-1 (one run).
    api.seed(
        [
            event(
                "late-email",
                "lead_message",
                at(30),
                "listing-1",
                "seeker-1",
                message_type="email",
                **A,
            )
        ]
    )
    lister = api.lister("lister-a")
    lead = lead_of(lister, "seeker-1", "listing-1")

    assert len(lead["record_ids"]) == 2 and lead["record_ids"] == sorted(lead["record_ids"])
    assert [a["event_uuid"] for a in lead["actions"]] == ["l1", "l2", "l3", "late-email"]
    assert [a["channel"] for a in lead["actions"]] == ["phone", "phone", "whatsapp", "email"]
    assert lead["score"] == 30 + 30 + 15 + 10 and lead["total_actions"] == 4
    assert lead["first_action_at"] == "2025-05-01T10:06:00Z"
    assert lead["last_action_at"] == "2025-05-02T16:00:00Z"
    assert lead["last_action_type"] == "message"
    assert lead["channels"] == ["email", "phone", "whatsapp"]
    assert lead["status"] == "new" and not lead["re_engaged"]
    assert lead["lister_id"] == "lister-a" and lead["note_count"] == 0

    listed = lister.get("/api/leads").json()["items"]
    assert [(i["seeker_id"], i["listing_id"]) for i in listed] == [
        ("seeker-1", "listing-1"),  # last action 2025-05-02 16:00
        ("seeker-2", "listing-2"),
    ]
    assert listed[0]["record_ids"] == lead["record_ids"] and listed[0]["score"] == 85


def test_the_seed_example_two_calls_in_an_hour_are_one_lead_scored_60(api_factory):
    api = api_factory()
    api.seed(
        [
            event("u1", "lead_phone", at(0.1), "listing-9", "seeker-9", **A),
            event("u2", "lead_phone", at(0.7), "listing-9", "seeker-9", **A),
        ]
    )
    (lead,) = api.lister("lister-a").get("/api/leads").json()["items"]
    assert (lead["score"], lead["total_actions"], len(lead["record_ids"])) == (60, 2, 1)


def test_filters_select_leads_by_status_score_channel_listing_and_time(api):
    admin = api.admin()

    def keys(**params) -> list[tuple[str, str]]:
        response = admin.get("/api/leads", params=params)
        assert response.status_code == 200, response.text
        return sorted((i["seeker_id"], i["listing_id"]) for i in response.json()["items"])

    every = keys()
    assert every == [
        ("seeker-1", "listing-1"),
        ("seeker-1", "listing-3"),
        ("seeker-2", "listing-2"),
        ("seeker-3", "listing-3"),
    ]
    assert keys(lister_id="lister-b") == [("seeker-1", "listing-3"), ("seeker-3", "listing-3")]
    assert keys(listing_id="listing-2") == [("seeker-2", "listing-2")]
    assert keys(min_score=40) == [("seeker-1", "listing-1"), ("seeker-2", "listing-2")]
    assert keys(max_score=30) == [("seeker-1", "listing-3"), ("seeker-3", "listing-3")]
    assert keys(min_score=40, max_score=40) == [("seeker-2", "listing-2")]
    assert keys(channel="whatsapp") == [("seeker-1", "listing-1")]
    assert keys(channel=["email", "appointment"]) == [
        ("seeker-1", "listing-3"),
        ("seeker-2", "listing-2"),
    ]
    assert keys(channel="website") == []
    # last action in [from, to): seeker-1 on listing-1 last acted a day later.
    assert keys(**{"from": "2025-05-02T00:00:00Z"}) == [("seeker-1", "listing-1")]
    assert keys(to="2025-05-01T12:30:00Z") == [("seeker-1", "listing-3"), ("seeker-3", "listing-3")]
    assert keys(to="2025-05-01T12:00:00Z") == [("seeker-3", "listing-3")]
    assert keys(**{"from": "2025-05-01T14:30:00+02:00", "to": "2025-05-01T13:30:00"}) == [
        ("seeker-2", "listing-2")
    ]
    assert move(admin, "seeker-3", "listing-3", "contacted").status_code == 200
    assert keys(status="contacted") == [("seeker-3", "listing-3")]
    assert keys(status=["new", "contacted"]) == every
    assert keys(status="won") == []


def test_sorts_by_score_last_action_or_creation(api):
    api.seed([event("later", "lead_phone", at(40), "listing-3", "seeker-4", lister_id="lister-b")])
    admin = api.admin()

    def order(**params) -> list[tuple[str, str]]:
        items = admin.get("/api/leads", params=params).json()["items"]
        return [(i["seeker_id"], i["listing_id"]) for i in items]

    by_score = admin.get("/api/leads", params={"sort": "score"}).json()["items"]
    assert [i["score"] for i in by_score] == [75, 40, 30, 30, 10]
    assert order(sort="score", order="asc")[0] == ("seeker-1", "listing-3")
    assert order(sort="last_action")[0] == ("seeker-4", "listing-3")
    assert order(sort="created")[0] == ("seeker-4", "listing-3")
    assert order(sort="created", order="asc")[-1] == ("seeker-4", "listing-3")


@settings(
    max_examples=8,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    limit=st.integers(1, 4),
    sort=st.sampled_from(["score", "last_action", "created"]),
    order=st.sampled_from(["asc", "desc"]),
)
def test_paging_with_the_cursor_visits_every_lead_once_in_order(api, limit, sort, order):
    admin = api.admin()
    everything = admin.get("/api/leads", params={"sort": sort, "order": order}).json()["items"]
    seen: list[dict] = []
    cursor = None
    while True:
        params = {"sort": sort, "order": order, "limit": limit}
        if cursor:
            params["cursor"] = cursor
        page = admin.get("/api/leads", params=params).json()
        assert len(page["items"]) <= limit
        seen.extend(page["items"])
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert [(i["seeker_id"], i["listing_id"]) for i in seen] == [
        (i["seeker_id"], i["listing_id"]) for i in everything
    ]
    assert len(everything) == 4


def test_a_cursor_from_another_sort_or_a_forged_one_is_a_422(api):
    admin = api.admin()
    cursor = admin.get("/api/leads", params={"limit": 1}).json()["next_cursor"]
    response = admin.get("/api/leads", params={"limit": 1, "cursor": cursor, "sort": "score"})
    assert response.status_code == 422
    assert "start again without a cursor" in response.json()["detail"]
    for forged in ("not-a-cursor", "WzEsMiwzXQ", "e30"):
        response = admin.get("/api/leads", params={"cursor": forged})
        assert response.status_code == 422, forged
        assert response.json()["detail"].startswith("query.cursor")


def test_a_lead_moves_forward_along_the_pipeline_and_records_who_moved_it(api):
    lister = api.lister("lister-a")
    response = move(lister, "seeker-1", "listing-1", "contacted")
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "contacted"
    # Skipping steps forward is allowed.
    lead = move(lister, "seeker-1", "listing-1", "negotiating", note="Offer sent").json()
    assert lead["status"] == "negotiating"
    tracker = lead["status_tracker"]
    assert [e["status"] for e in tracker] == ["new", "contacted", "negotiating"]
    assert tracker[0]["by"] == "leadflow" and tracker[-1]["by"] == "user-of-lister-a"
    assert tracker[-1]["at"].endswith("Z") and tracker[-1]["at"] > tracker[0]["at"]
    assert lead["notes"][-1]["text"] == "Offer sent" and lead["note_count"] == 1
    assert lead["allowed_moves"] == ["won", "lost", "spam", "archived"]
    assert move(lister, "seeker-1", "listing-1", "won").json()["allowed_moves"] == ["archived"]
    # Every record of the lead carries its state.
    for record in api.store.rows("leads"):
        if (record["seeker_id"], record["listing_id"]) == ("seeker-1", "listing-1"):
            assert record["status"] == "won" and len(record["status_tracker"]) == 4


@pytest.mark.parametrize(
    ("path", "refused", "because"),
    [
        (["contacted"], "new", "from 'contacted' it can move to 'qualified'"),
        (["qualified"], "contacted", "from 'qualified' it can move to"),
        (["won"], "lost", "from 'won' it can move to 'archived'"),
        (["lost"], "negotiating", "from 'lost' it can move to 'archived'"),
        (["contacted"], "contacted", "the lead is already 'contacted'"),
        (["spam"], "won", "from 'spam' it can move to 'new', 'archived'"),
        (["contacted", "archived"], "qualified", "from 'archived' it can move to 'contacted'"),
    ],
)
def test_invalid_moves_are_refused_with_a_422_that_says_what_is_allowed(
    api, path, refused, because
):
    admin = api.admin()
    for status in path:
        assert move(admin, "seeker-2", "listing-2", status).status_code == 200
    before = lead_of(admin, "seeker-2", "listing-2")
    response = move(admin, "seeker-2", "listing-2", refused)
    assert response.status_code == 422
    assert because in response.json()["detail"]
    assert lead_of(admin, "seeker-2", "listing-2") == before


def test_archived_and_spam_leads_can_be_restored_to_their_status_before(api):
    admin = api.admin()
    for status in ("qualified", "archived"):
        move(admin, "seeker-2", "listing-2", status)
    assert move(admin, "seeker-2", "listing-2", "qualified").json()["status"] == "qualified"
    move(admin, "seeker-2", "listing-2", "spam")
    assert lead_of(admin, "seeker-2", "listing-2")["allowed_moves"] == ["qualified", "archived"]
    move(admin, "seeker-2", "listing-2", "archived")
    assert lead_of(admin, "seeker-2", "listing-2")["allowed_moves"] == ["spam"]


def test_an_unknown_status_or_a_bad_body_is_a_422_naming_the_field(api):
    admin = api.admin()
    url = "/api/leads/seeker-2/listing-2/status"
    cases = [
        ({"status": "sold"}, "body.status"),
        ({}, "body.status: Field required"),
        ({"status": "contacted", "extra": 1}, "body.extra"),
        ({"status": "contacted", "note": "   "}, "body.note"),
        ([1, 2], "body"),
    ]
    for body, needle in cases:
        response = admin.patch(url, json=body)
        assert response.status_code == 422, body
        assert needle in response.json()["detail"], response.json()
    response = admin.patch(url, content=b"{not json", headers={"content-type": "application/json"})
    assert response.status_code == 422
    assert "not valid JSON" in response.json()["detail"]
    assert admin.patch(url).status_code == 422


def test_notes_are_appended_with_who_wrote_them(api):
    lister = api.lister("lister-a")
    url = "/api/leads/seeker-2/listing-2/notes"
    first = lister.post(url, json={"text": "Asked for the floor plan"})
    assert first.status_code == 201, first.text
    second = lister.post(url, json={"text": "  Sent it  "}).json()
    assert [n["text"] for n in second["notes"]] == ["Asked for the floor plan", "Sent it"]
    assert {n["by"] for n in second["notes"]} == {"user-of-lister-a"}
    assert second["note_count"] == 2 and second["status"] == "new"
    listed = lister.get("/api/leads", params={"listing_id": "listing-2"}).json()["items"]
    assert listed[0]["note_count"] == 2
    for bad in ({"text": ""}, {"text": " \n "}, {"text": "x" * 2001}, {"note": "hi"}):
        assert lister.post(url, json=bad).status_code == 422, bad


def test_new_actions_after_handling_flag_the_lead_re_engaged_without_losing_its_status(api):
    lister = api.lister("lister-a")
    move(lister, "seeker-2", "listing-2", "contacted")
    assert not lead_of(lister, "seeker-2", "listing-2")["re_engaged"]

    api.seed([event("again", "lead_phone", at(50), "listing-2", "seeker-2", **A)])
    lead = lead_of(lister, "seeker-2", "listing-2")
    assert lead["re_engaged"] and lead["status"] == "contacted"
    assert len(lead["record_ids"]) == 2 and lead["score"] == 70
    listed = lister.get("/api/leads", params={"status": "contacted"}).json()["items"]
    assert [(i["seeker_id"], i["re_engaged"]) for i in listed] == [("seeker-2", True)]

    handled = move(lister, "seeker-2", "listing-2", "qualified").json()
    assert not handled["re_engaged"] and handled["status"] == "qualified"
    statuses = {r["status"] for r in api.store.rows("leads") if r["listing_id"] == "listing-2"}
    assert statuses == {"qualified"}


def test_a_new_lead_is_not_re_engaged_by_later_runs(api):
    api.seed([event("more", "lead_phone", at(60), "listing-2", "seeker-2", **A)])
    assert not lead_of(api.admin(), "seeker-2", "listing-2")["re_engaged"]


def test_a_missing_lead_is_a_404_that_names_it(api):
    response = api.admin().get("/api/leads/seeker-9/listing-1")
    assert response.status_code == 404
    assert response.json()["detail"] == "no lead of seeker 'seeker-9' on listing 'listing-1'"
    assert move(api.admin(), "seeker-9", "listing-1", "contacted").status_code == 404
    assert (
        api.admin().post("/api/leads/seeker-9/listing-1/notes", json={"text": "x"}).status_code
        == 404
    )


def test_leads_export_as_csv_with_the_same_filters(api):
    api.seed([event("=cmd", "lead_phone", at(5), "listing-2", "=HYPERLINK(1)", **A)])
    response = api.lister("lister-a").get("/api/leads.csv", params={"sort": "score"})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/csv")
    assert "attachment" in response.headers["content-disposition"]
    rows = list(csv.DictReader(io.StringIO(response.text)))
    assert [(r["seeker_id"], r["score"]) for r in rows] == [
        ("seeker-1", "75"),
        ("seeker-2", "40"),
        ("'=HYPERLINK(1)", "30"),  # a spreadsheet shows it as text, never runs it
    ]
    assert rows[0]["channels"] == "phone;whatsapp" and rows[0]["status"] == "new"
    filtered = api.lister("lister-a").get("/api/leads.csv", params={"channel": "appointment"})
    assert [r["seeker_id"] for r in csv.DictReader(io.StringIO(filtered.text))] == ["seeker-2"]
