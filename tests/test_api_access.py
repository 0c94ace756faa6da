"""Access: every endpoint keeps a lister to their own listings; tokens are checked strictly."""

from __future__ import annotations

import csv
import io
import json
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.apidata import JWT_SECRET

pytest_plugins = ("tests.apiserver",)

# Whose data is whose in the standard set.
OWN = {
    "lister-a": {"listings": ["listing-1", "listing-2"], "lead": ("seeker-1", "listing-1")},
    "lister-b": {"listings": ["listing-3"], "lead": ("seeker-3", "listing-3")},
}


def _lead_keys(response: httpx.Response) -> set[str]:
    if response.headers["content-type"].startswith("text/csv"):
        return {row["listing_id"] for row in csv.DictReader(io.StringIO(response.text))}
    return {item["listing_id"] for item in response.json()["items"]}


# Each operation of the API → how an intruder (a lister) tries it on the victim lister's data,
# and what must come back. `victim` is the lister whose data is tried.
Attempt = Callable[[httpx.Client, str], None]


def _listing_scoped(method: str, path: str, body: Any = None) -> Attempt:
    def attempt(client: httpx.Client, victim: str) -> None:
        seeker, listing = OWN[victim]["lead"]
        url = path.format(seeker_id=seeker, listing_id=listing, lister_id=victim)
        response = client.request(method, url, json=body)
        assert response.status_code == 404, (method, url, response.text)
        assert "detail" in response.json()

    return attempt


def _lead_list(path: str) -> Attempt:
    def attempt(client: httpx.Client, victim: str) -> None:
        theirs = set(OWN[victim]["listings"])
        for params in (
            {},
            {"lister_id": victim},
            {"listing_id": OWN[victim]["listings"][0]},
            {"status": "new", "sort": "score"},
        ):
            response = client.get(path, params=params)
            assert response.status_code == 200, response.text
            assert not (_lead_keys(response) & theirs), (path, params)

    return attempt


def _me(client: httpx.Client, victim: str) -> None:
    response = client.get("/api/me")
    assert response.status_code == 200 and response.json()["lister_id"] != victim


def _listers(client: httpx.Client, victim: str) -> None:
    for params in ({}, {"q": victim}):
        response = client.get("/api/listers", params=params)
        assert response.status_code == 200, response.text
        assert victim not in {item["lister_id"] for item in response.json()["items"]}


def _cron(method: str, path: str, status: int) -> Attempt:
    def attempt(client: httpx.Client, victim: str) -> None:
        response = client.request(method, path.format(run_id=1))
        assert response.status_code == status, (method, path, response.text)

    return attempt


ATTEMPTS: dict[tuple[str, str], Attempt] = {
    ("GET", "/api/leads"): _lead_list("/api/leads"),
    ("GET", "/api/leads.csv"): _lead_list("/api/leads.csv"),
    ("GET", "/api/leads/{seeker_id}/{listing_id}"): _listing_scoped(
        "GET", "/api/leads/{seeker_id}/{listing_id}"
    ),
    ("PATCH", "/api/leads/{seeker_id}/{listing_id}/status"): _listing_scoped(
        "PATCH", "/api/leads/{seeker_id}/{listing_id}/status", {"status": "spam"}
    ),
    ("POST", "/api/leads/{seeker_id}/{listing_id}/notes"): _listing_scoped(
        "POST", "/api/leads/{seeker_id}/{listing_id}/notes", {"text": "mine now"}
    ),
    ("GET", "/api/listings/{listing_id}"): _listing_scoped("GET", "/api/listings/{listing_id}"),
    ("GET", "/api/listings/{listing_id}/analytics"): _listing_scoped(
        "GET", "/api/listings/{listing_id}/analytics"
    ),
    ("GET", "/api/listings/{listing_id}/analytics.csv"): _listing_scoped(
        "GET", "/api/listings/{listing_id}/analytics.csv"
    ),
    ("GET", "/api/listers/{lister_id}/summary"): _listing_scoped(
        "GET", "/api/listers/{lister_id}/summary"
    ),
    # The dashboard's reads.
    ("GET", "/api/me"): _me,
    ("GET", "/api/listers"): _listers,
    **{
        ("GET", f"/api/listers/{{lister_id}}/{view}"): _listing_scoped(
            "GET", f"/api/listers/{{lister_id}}/{view}"
        )
        for view in ("series", "listings", "shares")
    },
    # A user token is not the cron secret, and run history is for the scheduler and admins.
    ("POST", "/api/cron/analytics"): _cron("POST", "/api/cron/analytics", 401),
    ("GET", "/api/cron/analytics"): _cron("GET", "/api/cron/analytics", 401),
    ("GET", "/api/cron/runs"): _cron("GET", "/api/cron/runs", 403),
    ("GET", "/api/cron/runs/{run_id}"): _cron("GET", "/api/cron/runs/{run_id}", 403),
}
PUBLIC = {("GET", "/api/health")}


def operations(api) -> set[tuple[str, str]]:
    document = httpx.get(f"{api.url}/openapi.json").json()
    return {(method.upper(), path) for path, item in document["paths"].items() for method in item}


def test_every_operation_of_the_api_has_an_access_check(api):
    assert operations(api) == set(ATTEMPTS) | PUBLIC


@pytest.mark.parametrize(
    ("intruder", "victim"), [("lister-b", "lister-a"), ("lister-a", "lister-b")]
)
def test_a_lister_can_neither_read_nor_change_another_listers_data(api, intruder, victim):
    before = api.store.rows("leads")
    client = api.lister(intruder)
    for attempt in ATTEMPTS.values():
        attempt(client, victim)
    assert api.store.rows("leads") == before, "a refused change changed the store"
    # …while the victim does see their own.
    own = api.lister(victim)
    seeker, listing = OWN[victim]["lead"]
    assert own.get(f"/api/leads/{seeker}/{listing}").status_code == 200
    assert own.get(f"/api/listings/{listing}/analytics").status_code == 200
    assert own.get(f"/api/listers/{victim}/summary").status_code == 200
    assert _lead_keys(own.get("/api/leads")) == set(OWN[victim]["listings"])


def test_an_admin_sees_every_listers_data(api):
    admin = api.admin()
    assert _lead_keys(admin.get("/api/leads")) == {"listing-1", "listing-2", "listing-3"}
    for lister, own in OWN.items():
        seeker, listing = own["lead"]
        assert admin.get(f"/api/leads/{seeker}/{listing}").status_code == 200
        assert admin.get(f"/api/listers/{lister}/summary").status_code == 200
        assert admin.get(f"/api/listings/{listing}").status_code == 200


# -- tokens ----------------------------------------------------------------------------------------

USER_REQUESTS = [
    ("GET", "/api/leads"),
    ("GET", "/api/leads.csv"),
    ("GET", "/api/leads/seeker-1/listing-1"),
    ("PATCH", "/api/leads/seeker-1/listing-1/status"),
    ("POST", "/api/leads/seeker-1/listing-1/notes"),
    ("GET", "/api/listings/listing-1"),
    ("GET", "/api/listings/listing-1/analytics"),
    ("GET", "/api/listings/listing-1/analytics.csv"),
    ("GET", "/api/listers/lister-a/summary"),
]


def _claims(**overrides: Any) -> dict[str, Any]:
    now = datetime.now(UTC)
    claims = {
        "sub": "u1",
        "role": "lister",
        "lister_id": "lister-a",
        "exp": now + timedelta(hours=1),
    }
    claims.update(overrides)
    return {k: v for k, v in claims.items() if v is not None}


BAD_TOKENS: dict[str, tuple[str | None, str]] = {
    "missing": (None, "missing"),
    "garbage": ("not-a-jwt", "not a JWT"),
    "expired": (
        jwt.encode(_claims(exp=datetime.now(UTC) - timedelta(minutes=5)), JWT_SECRET, "HS256"),
        "expired",
    ),
    "badly signed": (
        jwt.encode(_claims(), "another-secret-of-32-bytes-or-more!!", "HS256"),
        "signature",
    ),
    "unsigned": (jwt.encode(_claims(), None, algorithm="none"), "'none'"),
    "without exp": (jwt.encode(_claims(exp=None), JWT_SECRET, "HS256"), "exp"),
    "without sub": (jwt.encode(_claims(sub=None), JWT_SECRET, "HS256"), "sub"),
}


@pytest.mark.parametrize("kind", list(BAD_TOKENS))
def test_missing_expired_or_badly_signed_tokens_get_401_on_every_endpoint(api, kind):
    token, needle = BAD_TOKENS[kind]
    client = api.client(token)
    for method, path in USER_REQUESTS:
        response = client.request(method, path, json={"status": "spam", "text": "x"})
        assert response.status_code == 401, (kind, method, path, response.text)
        assert needle in response.json()["detail"], (kind, response.json())
        assert response.headers["www-authenticate"].startswith("Bearer")


def test_a_token_that_names_no_lister_or_an_unknown_role_gets_403(api):
    for claims, needle in (
        (_claims(lister_id=None), "names no lister"),
        (_claims(role="superuser"), "neither 'admin' nor 'lister'"),
    ):
        client = api.client(jwt.encode(claims, JWT_SECRET, "HS256"))
        response = client.get("/api/leads")
        assert response.status_code == 403 and needle in response.json()["detail"]


def test_user_endpoints_refuse_every_token_when_no_verification_is_configured(api_factory):
    api = api_factory(jwt_secret=None)
    response = api.client(jwt.encode(_claims(), JWT_SECRET, "HS256")).get("/api/leads")
    assert response.status_code == 503
    assert "LEADFLOW_JWT_SECRET" in response.json()["detail"]


class _Jwks:
    """The portal's JWKS, served on loopback."""

    def __init__(self, document: dict[str, Any]) -> None:
        body = json.dumps(document).encode()

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/.well-known/jwks.json"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def jwks() -> Iterator[tuple[_Jwks, Any]]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key()))
    served = _Jwks({"keys": [{**public, "kid": "portal-1", "use": "sig", "alg": "RS256"}]})
    yield served, key
    served.close()


def test_tokens_signed_with_a_key_of_the_portals_jwks_are_accepted(api_factory, jwks):
    served, key = jwks
    api = api_factory(jwt_secret=None, jwt_jwks_url=served.url)
    good = jwt.encode(_claims(role="admin"), key, "RS256", headers={"kid": "portal-1"})
    assert api.client(good).get("/api/leads").status_code == 200

    stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    forged = jwt.encode(_claims(role="admin"), stranger, "RS256", headers={"kid": "portal-1"})
    response = api.client(forged).get("/api/leads")
    assert response.status_code == 401 and "signature" in response.json()["detail"]
    unknown = jwt.encode(_claims(), key, "RS256", headers={"kid": "portal-9"})
    assert api.client(unknown).get("/api/leads").status_code == 401
    # An HS256 token is refused when only the JWKS is configured (no algorithm confusion).
    hs = jwt.encode(_claims(), JWT_SECRET, "HS256")
    response = api.client(hs).get("/api/leads")
    assert response.status_code == 401 and "RS256" in response.json()["detail"]


def test_an_unreachable_jwks_is_a_503_not_a_500(api_factory, jwks):
    served, key = jwks
    url = served.url
    served.close()
    api = api_factory(jwt_secret=None, jwt_jwks_url=url)
    token = jwt.encode(_claims(), key, "RS256", headers={"kid": "portal-1"})
    response = api.client(token).get("/api/leads")
    assert response.status_code == 503 and "JWKS" in response.json()["detail"]
