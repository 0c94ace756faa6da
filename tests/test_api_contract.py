"""The contract: the OpenAPI document is complete, and no input gets a 5xx (schemathesis)."""

from __future__ import annotations

import re
from urllib.parse import quote

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, settings

from leadflow.api import create_app
from leadflow.config import Settings
from tests.apidata import CRON_SECRET

pytest_plugins = ("tests.apiserver",)

# Requests valid by the schema may still be refused for what a schema cannot say: a range
# whose end is before its start, a status move the pipeline forbids, a lead that does not exist.
ACCEPTED_FOR_VALID_INPUT = ["2xx", "401", "403", "404", "409", "422"]
MAX_EXAMPLES = 10


def _document() -> dict:
    """The service's OpenAPI document (the served one is checked equal to it below)."""
    return create_app(Settings(database_url="sqlite://")).openapi()


def _schema(coverage: bool) -> schemathesis.schemas.BaseSchema:
    return schemathesis.openapi.from_dict(
        _document(),
        config=schemathesis.Config.from_dict(
            {
                "generation": {"max-examples": MAX_EXAMPLES},
                "phases": {"coverage": {"enabled": coverage}},
                "checks": {
                    "positive_data_acceptance": {"expected-statuses": ACCEPTED_FOR_VALID_INPUT},
                },
            }
        ),
    )


def _call(case: schemathesis.Case, api) -> None:
    if case.path.startswith("/api/cron"):
        token = CRON_SECRET
    else:
        token = api.token(role="admin", sub="fuzzer")
    case.call_and_validate(base_url=api.url, headers={"Authorization": f"Bearer {token}"})


FUZZ_SETTINGS = settings(
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

# Every operation, with schemathesis's boundary values of every parameter (its coverage phase)
# and random inputs. One service per operation, shared by its examples.
contract = _schema(coverage=True)


@pytest.mark.stores("sqlite")
@contract.parametrize()
@FUZZ_SETTINGS
def test_no_input_gets_a_5xx_and_every_answer_matches_the_schema(case, api):
    _call(case, api)


# On PostgreSQL (stricter about text: no NUL characters, …) random inputs only, to keep the
# suite's time: the boundary values are the same SQL on both stores.
fuzz = _schema(coverage=False)


@pytest.mark.stores("postgresql")
@fuzz.parametrize()
@FUZZ_SETTINGS
def test_no_random_input_gets_a_5xx_on_postgresql(case, api):
    _call(case, api)


def test_the_fuzzed_document_is_the_served_one(api):
    assert httpx.get(f"{api.url}/openapi.json").json() == _document()


def test_every_operation_documents_its_bodies_answers_errors_and_security(api):
    document = httpx.get(f"{api.url}/openapi.json").json()
    schemas = document["components"]["schemas"]
    assert set(document["components"]["securitySchemes"]) == {"PortalToken", "CronSecret"}
    for path, item in document["paths"].items():
        for method, operation in item.items():
            where = f"{method.upper()} {path}"
            assert operation.get("summary") and operation.get("description"), where
            responses = operation["responses"]
            success = [code for code in responses if code.startswith("2")]
            assert success, where
            for code, response in responses.items():
                content = response.get("content")
                assert content, f"{where} {code} has no body schema"
                for body in content.values():
                    assert body.get("schema"), f"{where} {code}"
            if path == "/api/health":
                continue
            assert operation.get("security"), where
            assert {"401", "422"} <= set(responses), where
            if "{" in path:
                assert "404" in responses, where
            if "requestBody" in operation:
                (body,) = operation["requestBody"]["content"].values()
                ref = body["schema"]["$ref"].rsplit("/", 1)[-1]
                assert schemas[ref].get("examples"), f"{where}: the body has no example"
    for name in (
        "LeadGroupOut",
        "LeadGroupSummary",
        "ListingSeries",
        "ListerSummary",
        "RunSummaryOut",
        "CronRun",
        "ErrorBody",
        "ListingOut",
        "RunStarted",
    ):
        assert schemas[name].get("examples"), f"{name} has no example"


def test_unknown_paths_methods_and_parameters_get_json_errors(api):
    missing = httpx.get(f"{api.url}/api/nothing-here")
    assert missing.status_code == 404 and missing.json() == {"detail": "Not Found"}
    wrong = httpx.delete(f"{api.url}/api/cron/analytics")
    assert wrong.status_code == 405 and wrong.json()["detail"] == "Method Not Allowed"
    assert wrong.headers["allow"] == "GET, POST"
    # A misspelt filter is refused, not silently ignored.
    typo = api.admin().get("/api/leads", params={"stauts": "new"})
    assert typo.status_code == 422
    assert typo.json()["detail"].startswith("query.stauts: unknown parameter")
    assert "status" in typo.json()["detail"]
    garbled = api.admin().patch(
        "/api/leads/seeker-1/listing-1/status",
        content=b"\xff\xfe{",
        headers={"content-type": "application/json"},
    )
    assert garbled.status_code in (400, 422) and garbled.json()["detail"].startswith("body")
    assert httpx.get(f"{api.url}/api/health").json() == {"status": "ok"}


# Bodies a route that takes one accepts, so that only the parameter under test is wrong.
BODIES = {"patch": {"status": "contacted"}, "post": {"text": "Called back"}}


def test_a_nul_character_in_any_path_or_query_parameter_is_a_422_that_names_it(api):
    # PostgreSQL refuses NUL in text (a query carrying one failed with a 500): every parameter
    # of every operation is refused before any query, with the same answer on every store.
    document = httpx.get(f"{api.url}/openapi.json").json()
    admin, cron = api.admin(), api.cron()
    checked = 0
    for path, item in document["paths"].items():
        for method, operation in item.items():
            for parameter in operation.get("parameters", []):
                name, where = parameter["name"], parameter["in"]
                url, params = path, {}
                for other in re.findall(r"\{(\w+)\}", path):
                    value = "a\x00b" if (where, name) == ("path", other) else "x"
                    url = url.replace(f"{{{other}}}", quote(value, safe=""))
                if where == "query":
                    params[name] = "a\x00b"
                client = cron if path.startswith("/api/cron") else admin
                response = client.request(
                    method, url, params=params, json=BODIES.get(method) if method != "get" else None
                )
                where_name = f"{method.upper()} {path} {where}.{name}"
                assert response.status_code == 422, (where_name, response.text)
                detail = response.json()["detail"]
                assert detail.startswith(f"{where}.{name}: must not contain a NUL character"), (
                    where_name,
                    detail,
                )
                checked += 1
    assert checked >= 30  # every parameter of the document, not a handful
    # The bug this guards: a search with a NUL reached PostgreSQL's LIKE.
    assert admin.get("/api/listers", params={"q": "lister-a"}).status_code == 200
    assert admin.get("/api/listers", params={"q": "lister\x00"}).status_code == 422
    assert api.store.count("cron_runs") == 1  # the fixture's run; no trigger ran one
