"""The dashboard in a real browser: Debian's Chromium, driven headless by Playwright, against a
real server on loopback over a small demo store (the demo generator, then the pipeline).

The numbers the pages show are checked against what the API answers for the same range; the
lead changes made in the page are checked in the store after a reload; a lister's pages are
checked to receive nothing of another lister's.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import urllib.parse
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest

from leadflow import pipeline
from leadflow.api import create_app
from leadflow.api.auth import mint_token
from leadflow.config import Settings
from leadflow.sources.demo import generate_export
from tests.apidata import JWT_SECRET

# The API's test server (ServerThread), loaded as the API tests load it.
pytest_plugins = ("tests.apiserver",)

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
]
LAPTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}
ADMIN_SUB = "admin-e2e"


def on_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("true", "1")


# -- the server and the browser ------------------------------------------------------------------


@dataclass
class Dashboard:
    """The service over the demo store, and API clients to check the pages against."""

    url: str
    server: Any
    clients: list[httpx.Client] = field(default_factory=list)

    def token(self, lister: str | None = None, sub: str | None = None) -> str:
        if lister is None:
            return mint_token(JWT_SECRET, sub or ADMIN_SUB, role="admin")
        return mint_token(JWT_SECRET, sub or f"agent-of-{lister}", lister_id=lister)

    def api(self, token: str) -> httpx.Client:
        client = httpx.Client(
            base_url=self.url, headers={"Authorization": f"Bearer {token}"}, timeout=30
        )
        self.clients.append(client)
        return client

    def admin(self) -> httpx.Client:
        return self.api(self.token())

    def listers(self) -> list[str]:
        """Every lister, busiest (most leads) first."""
        page = self.admin().get("/api/listers", params={"limit": 200}).json()
        return [item["lister_id"] for item in page["items"]]

    def largest_lister(self) -> str:
        """The lister with the most listings."""
        page = self.admin().get("/api/listers", params={"limit": 200}).json()
        return str(max(page["items"], key=lambda item: item["listings"])["lister_id"])

    def listings_of(self, lister: str) -> set[str]:
        page = self.admin().get(f"/api/listers/{lister}/listings", params={"limit": 200})
        assert page.status_code == 200, page.text
        return {item["listing_id"] for item in page.json()["items"]}


@pytest.fixture(scope="module")
def dashboard(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Dashboard]:
    from tests.apiserver import ServerThread

    folder = tmp_path_factory.mktemp("dashboard")
    generate_export(folder / "export", events=100_000, listings=300, seekers=4_000, days=90, seed=3)
    settings = Settings(database_url=f"sqlite:///{folder / 'leadflow.db'}", jwt_secret=JWT_SECRET)
    pipeline.run(settings, str(folder / "export"))
    app = create_app(settings)
    server = ServerThread(app).start()
    made = Dashboard(server.base_url, server)
    yield made
    for client in made.clients:
        client.close()
    server.stop()
    app.state.engine.dispose()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        missing = "Playwright not installed: pip install -e '.[test]'"
    else:
        missing = "" if Path(CHROMIUM).exists() else "Chromium not found: apt-get install chromium"
    if missing:
        if on_ci():
            pytest.fail(f"{missing} (on CI a missing browser is a failure; .ci/run installs it)")
        pytest.skip(missing)
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


@dataclass
class Tab:
    """A browser page on the dashboard, with what went wrong in it (console errors, failed or
    foreign requests) and every API answer it received."""

    page: Any
    base: str
    problems: list[str] = field(default_factory=list)
    answers: list[tuple[str, Any]] = field(default_factory=list)
    requested: list[str] = field(default_factory=list)

    def go(self, route: str) -> None:
        self.page.evaluate("route => { window.location.hash = route }", route)

    def text(self, selector: str) -> str:
        return str(self.page.inner_text(selector)).strip()

    def number(self, selector: str) -> int:
        return int(re.sub(r"[^\d]", "", self.text(selector)))

    def wait_overview(self) -> None:
        self.page.wait_for_selector(".kpi[data-metric=unique_views] dd:not(.pending)")
        self.page.wait_for_function(
            "() => { const c = [...document.querySelectorAll('figure.chart canvas')];"
            " return c.length >= 4 && c.every(x => window.Chart.getChart(x)); }"
        )
        self.page.wait_for_selector("table.listings tbody tr[data-listing]")

    def chart(self, key: str) -> dict[str, Any]:
        """A drawn chart's axis titles and its datasets' labels and sums."""
        return dict(
            self.page.evaluate(
                """key => {
                const chart = Chart.getChart(document.querySelector(`[data-chart="${key}"] canvas`));
                const titles = Object.fromEntries(Object.entries(chart.options.scales)
                    .map(([id, s]) => [id, s.title && s.title.display ? s.title.text : '']));
                return {
                    titles,
                    labels: chart.data.labels,
                    sums: Object.fromEntries(chart.data.datasets.map(d =>
                        [d.label, d.data.reduce((a, b) => a + (b || 0), 0)])),
                    values: chart.data.datasets.map(d => d.data),
                };
            }""",
                key,
            )
        )

    def assert_clean(self, allow: tuple[str, ...] = ()) -> None:
        foreign = [url for url in self.requested if not url.startswith(("data:", self.base))]
        assert not foreign, f"requests left the server: {foreign}"
        problems = [p for p in self.problems if not any(a in p for a in allow)]
        assert not problems, problems


@pytest.fixture
def open_tab(browser: Any, dashboard: Dashboard) -> Iterator[Callable[..., Tab]]:
    """`open_tab(token, viewport=LAPTOP)`: a fresh browser context signed in with `token`."""
    contexts: list[Any] = []

    def open_(
        token: str | None, viewport: dict[str, int] = LAPTOP, hash_: str | None = None
    ) -> Tab:
        context = browser.new_context(viewport=viewport, locale="en-US", timezone_id="UTC")
        context.set_default_timeout(15_000)
        contexts.append(context)
        page = context.new_page()
        tab = Tab(page, dashboard.url)

        def on_console(message: Any) -> None:
            if message.type in ("error", "warning"):
                tab.problems.append(f"console {message.type}: {message.text}")

        def on_response(response: Any) -> None:
            if "/api/" in response.url and "json" in (response.headers.get("content-type") or ""):
                # A body may be gone if the page navigated away before reading it.
                with contextlib.suppress(Exception):
                    tab.answers.append((response.url, response.json()))

        page.on("console", on_console)
        page.on("pageerror", lambda error: tab.problems.append(f"page error: {error}"))
        page.on("requestfailed", lambda r: tab.problems.append(f"failed: {r.url} {r.failure}"))
        page.on("request", lambda r: tab.requested.append(r.url))
        page.on("response", on_response)
        fragment = hash_ if hash_ is not None else f"#token={token}"
        page.goto(f"{dashboard.url}/{fragment}")
        return tab

    yield open_
    for context in contexts:
        context.close()


def custom_range(days: int = 30) -> dict[str, str]:
    """A fixed range ending today (UTC): the page's `from`/`to` (inclusive) and the API's."""
    today = datetime.now(UTC).date()
    first = today - timedelta(days=days - 1)
    return {
        "from": first.isoformat(),
        "to": today.isoformat(),
        "api_to": (today + timedelta(days=1)).isoformat(),
    }


# -- the page and its files ----------------------------------------------------------------------


def test_the_page_and_its_chart_library_ship_with_the_package(dashboard):
    page = httpx.get(f"{dashboard.url}/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    # A link to the page may carry a query string (the API's strict one is for the API).
    assert httpx.get(f"{dashboard.url}/", params={"utm_source": "mail"}).status_code == 200
    assert "script-src 'self'" in page.headers["content-security-policy"]
    for name in ("app.js", "styles.css", "vendor/chart.umd.min.js", "vendor/chart.js-LICENSE.md"):
        assert f"/static/{name}" in page.text or name.startswith("vendor/chart.js-")
        served = httpx.get(f"{dashboard.url}/static/{name}", headers={"accept-encoding": "gzip"})
        assert served.status_code == 200, name
        again = httpx.get(
            f"{dashboard.url}/static/{name}", headers={"if-none-match": served.headers["etag"]}
        )
        assert again.status_code == 304, name
    assert "Chart.js v4" in httpx.get(f"{dashboard.url}/static/vendor/chart.umd.min.js").text
    for outside in ("../../api/__init__.py", "..%2F..%2Fcli.py", "nothing.js", "vendor"):
        assert httpx.get(f"{dashboard.url}/static/{outside}").status_code == 404, outside


# -- the overview --------------------------------------------------------------------------------


def as_shown(value: float) -> str:
    """`value` with two decimals as the dashboard shows it: the browser's number format rounds
    the number's shortest decimal form half up (6.395 shows as 6.40), where Python's format
    rounds the binary value (6.39499… gives 6.39)."""
    return str(Decimal(repr(value)).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP))


def test_the_overview_shows_the_listers_totals_and_charts_that_add_up_to_them(dashboard, open_tab):
    busiest, lister = dashboard.listers()[:2]
    span = custom_range(30)
    tab = open_tab(dashboard.token())
    tab.wait_overview()
    assert tab.page.input_value("#lister-input") == busiest, "an admin starts on the busiest"
    tab.go(f"#/overview?range=custom&from={span['from']}&to={span['to']}&tz=UTC")
    tab.page.wait_for_function("() => document.querySelector('#range-preset')?.value === 'custom'")
    tab.wait_overview()
    # The admin picks another lister in the top bar; the range stays.
    tab.page.fill("#lister-input", lister)
    tab.page.keyboard.press("Enter")
    tab.page.wait_for_function(
        "lister => document.querySelector('.page-head .subtitle')?.textContent.includes(lister)",
        arg=lister,
    )
    tab.wait_overview()
    assert f"from={span['from']}" in tab.page.url
    api = dashboard.admin()
    query = {"from": span["from"], "to": span["api_to"], "tz": "UTC"}
    summary = api.get(f"/api/listers/{lister}/summary", params=query).json()
    totals = summary["totals"]
    assert totals["total_leads"] > 0, "the demo store should give the busiest lister leads"

    assert tab.number("[data-metric=total_views] dd") == totals["total_views"]
    assert tab.number("[data-metric=total_leads] dd") == totals["total_leads"]
    for unique in ("unique_views", "unique_leads"):
        shown = tab.text(f"[data-metric={unique}] dd")
        if totals[unique] is None:
            assert shown.startswith("—")
        else:
            assert int(re.sub(r"[^\d]", "", shown)) == totals[unique]
    conversion = tab.text("[data-metric=conversion_rate] dd")
    assert conversion == f"{as_shown(totals['conversion_rate'])} %"

    by_channel = tab.chart("leads-by-channel")
    assert sum(by_channel["sums"].values()) == totals["total_leads"]
    assert by_channel["titles"]["y"] == "Leads (count)"
    assert by_channel["titles"]["x"] == "Day, UTC" and len(by_channel["labels"]) == 30
    both = tab.chart("views-and-leads")
    assert both["sums"] == {"Views": totals["total_views"], "Leads": totals["total_leads"]}
    assert both["titles"] == {"x": "Day, UTC", "y": "Views (count)", "y2": "Leads (count)"}
    channels = tab.chart("channels")
    assert channels["values"][0] == list(summary["leads_by_channel"].values())
    shares = api.get(f"/api/listers/{lister}/shares", params=query).json()
    assert sum(tab.chart("platforms")["values"][0]) == shares["total"]

    # The listings table is the API's first page, by leads.
    table = api.get(f"/api/listers/{lister}/listings", params={**query, "limit": 10}).json()
    rows = tab.page.locator("table.listings tbody tr")
    assert rows.count() == len(table["items"])
    first = table["items"][0]
    assert rows.first.get_attribute("data-listing") == first["listing_id"]
    assert (
        tab.number("table.listings tbody tr >> nth=0 >> [data-col=leads]") == first["total_leads"]
    )
    assert f"of {table['total']} listings" in tab.text(".pager .page-info")
    tab.assert_clean()


def test_the_overview_paints_at_once_and_loads_nothing_from_elsewhere(dashboard, open_tab):
    tab = open_tab(dashboard.token())
    tab.wait_overview()
    paint = tab.page.evaluate(
        "() => performance.getEntriesByName('first-contentful-paint')[0]?.startTime"
    )
    ready = tab.page.evaluate("() => performance.now()")
    assert paint is not None and paint < 1000, f"first contentful paint at {paint} ms"
    assert ready < 5000, f"the overview took {ready} ms to fill in"
    assert all(url.startswith(dashboard.url) for url in tab.requested)
    # The token left the address bar as soon as it was read.
    assert "token" not in tab.page.url
    tab.assert_clean()


def test_sorting_and_paging_the_listings_table_happen_on_the_server(dashboard, open_tab):
    lister = dashboard.largest_lister()
    tab = open_tab(dashboard.token(lister))
    tab.wait_overview()
    assert tab.page.get_by_role("button", name="Next →").is_enabled(), "one page only"
    views_header = tab.page.locator("table.listings th", has_text="Views")
    views_header.locator("button").focus()
    tab.page.keyboard.press("Enter")
    tab.page.wait_for_selector("table.listings th[aria-sort=descending] >> text=Views")
    shown = [
        int(re.sub(r"[^\d]", "", v))
        for v in tab.page.locator("table.listings tbody [data-col=views]").all_inner_texts()
    ]
    assert shown == sorted(shown, reverse=True)
    with tab.page.expect_response(lambda r: f"/api/listers/{lister}/listings" in r.url) as answer:
        tab.page.get_by_role("button", name="Next →").first.click()
    # The second page starts at the 11th listing (how many it shows depends on the lister's
    # listings in the range, which moves with the clock: the demo data ends now).
    tab.page.wait_for_selector("text=/^11\u2013\\d+ of \\d+ listings/")
    request = urllib.parse.parse_qs(urllib.parse.urlparse(answer.value.url).query)
    assert (request["sort"], request["offset"]) == (["views"], ["10"])
    # The page shows what the server returned for that page, in the server's order …
    ids = tab.page.locator("table.listings tbody tr").evaluate_all(
        "rows => rows.map(r => r.dataset.listing)"
    )
    assert ids == [item["listing_id"] for item in answer.value.json()["items"]]
    # … which is the API's own answer to the same question.
    listed = dashboard.api(dashboard.token(lister)).get(
        f"/api/listers/{lister}/listings", params={k: v[0] for k, v in request.items()}
    )
    assert ids == [item["listing_id"] for item in listed.json()["items"]]
    tab.assert_clean()


# -- the listing page ----------------------------------------------------------------------------


def test_the_listing_page_shows_its_series_in_the_chosen_zone_and_granularity(dashboard, open_tab):
    lister = dashboard.listers()[0]
    api = dashboard.admin()
    span = custom_range(14)
    query = {"from": span["from"], "to": span["api_to"], "tz": "Asia/Kolkata"}
    listing = api.get(f"/api/listers/{lister}/listings", params={**query, "limit": 1}).json()[
        "items"
    ][0]["listing_id"]
    tab = open_tab(dashboard.token(lister))
    tab.wait_overview()
    tab.go(
        f"#/listings/{listing}?range=custom&from={span['from']}&to={span['to']}"
        "&tz=Asia/Kolkata&granularity=day"
    )
    tab.page.wait_for_selector("[data-chart=listing-views] canvas")
    tab.page.wait_for_function(
        "() => Chart.getChart(document.querySelector('[data-chart=listing-views] canvas'))"
    )
    series = api.get(
        f"/api/listings/{listing}/analytics", params={**query, "granularity": "day"}
    ).json()
    totals = series["totals"]
    for metric in ("impressions", "total_views", "total_leads", "saves", "shares"):
        assert tab.number(f"[data-metric={metric}] dd") == totals[metric], metric
    assert [tab.number(f".funnel [data-step={s}] .count") for s in ("impressions", "views")] == [
        totals["impressions"],
        totals["total_views"],
    ]
    drawn = tab.chart("listing-views")
    assert len(drawn["labels"]) == len(series["buckets"]) == 14
    assert drawn["titles"]["x"] == "Day, Asia/Kolkata"
    assert drawn["sums"]["Views"] == totals["total_views"]
    assert sum(tab.chart("listing-lead-types")["sums"].values()) == totals["total_leads"]

    # Hourly, by keyboard: the choice goes into the address, and the chart has 14 days of 24 hours.
    tab.page.focus("#range-granularity")
    tab.page.select_option("#range-granularity", "hour")
    tab.page.wait_for_function("() => location.hash.includes('granularity=hour')")
    tab.page.wait_for_function(
        "() => { const c = document.querySelector('[data-chart=listing-views] canvas');"
        " return c && Chart.getChart(c) && Chart.getChart(c).data.labels.length === 336; }"
    )
    leads_listed = tab.page.locator(".card:has(h2:text('Leads on this listing')) tbody tr")
    leads_listed.first.wait_for()
    tab.assert_clean()


# -- the leads board -----------------------------------------------------------------------------


def test_the_leads_board_filters_and_sorts_on_the_server(dashboard, open_tab):
    lister = dashboard.listers()[0]
    tab = open_tab(dashboard.token())
    tab.wait_overview()
    tab.go(f"#/leads?lister={lister}&channel=phone&sort=score")
    tab.page.wait_for_selector("table.leads-table tbody tr[data-seeker]")
    api = dashboard.admin()
    expected = api.get(
        "/api/leads",
        params={"lister_id": lister, "channel": "phone", "sort": "score", "limit": 25},
    ).json()
    shown = tab.page.locator("table.leads-table tbody tr").evaluate_all(
        "rows => rows.map(r => [r.dataset.seeker, r.dataset.listing])"
    )
    assert shown == [[i["seeker_id"], i["listing_id"]] for i in expected["items"]]
    scores = [
        int(s) for s in tab.page.locator("table.leads-table [data-col=score]").all_inner_texts()
    ]
    # The export has the board's filters, and every matching lead.
    with tab.page.expect_download() as download:
        tab.page.get_by_role("button", name="Download CSV").click()
    exported = Path(download.value.path()).read_text().splitlines()
    assert exported[0].startswith("listing_id,seeker_id")
    assert {tuple(line.split(",")[:2]) for line in exported[1:26]} == {
        (i["listing_id"], i["seeker_id"]) for i in expected["items"]
    }
    assert scores == sorted(scores, reverse=True)
    assert all(
        "Phone" in chips for chips in tab.page.locator("table.leads-table .chips").all_inner_texts()
    )
    if expected["next_cursor"]:
        second = api.get(
            "/api/leads",
            params={
                "lister_id": lister,
                "channel": "phone",
                "sort": "score",
                "limit": 25,
                "cursor": expected["next_cursor"],
            },
        ).json()
        tab.page.get_by_role("button", name="Next →").click()
        tab.page.wait_for_selector("text=Page 2")
        shown = tab.page.locator("table.leads-table tbody tr").evaluate_all(
            "rows => rows.map(r => r.dataset.seeker)"
        )
        assert shown == [i["seeker_id"] for i in second["items"]]
    tab.assert_clean()


def test_a_leads_status_change_and_note_persist(dashboard, open_tab):
    lister = dashboard.listers()[1]
    token = dashboard.token(lister, sub="agent-e2e")
    tab = open_tab(token)
    tab.wait_overview()
    tab.go("#/leads?status=new")
    first = tab.page.locator("table.leads-table tbody tr[data-seeker]").first
    seeker, listing = first.get_attribute("data-seeker"), first.get_attribute("data-listing")
    row = f"table.leads-table tr[data-seeker='{seeker}'][data-listing='{listing}']"

    # Open it from the keyboard, as a keyboard user would.
    tab.page.locator(f"{row} button.link").focus()
    tab.page.keyboard.press("Enter")
    dialog = tab.page.locator("dialog.lead")
    dialog.locator(".timeline").wait_for()
    dialog.locator("#lead-move").select_option("contacted")
    dialog.locator("#lead-move-note").fill("Called back: wants a viewing")
    dialog.get_by_role("button", name="Move").click()
    dialog.locator("text=Moved to Contacted.").wait_for()
    assert dialog.locator("[data-field=status]").inner_text().strip() == "Contacted"
    dialog.locator("#lead-note").fill("Prefers Saturday mornings")
    dialog.get_by_role("button", name="Add note").click()
    dialog.locator("text=Note added.").wait_for()
    notes = dialog.locator(".timeline [data-kind=note]").all_inner_texts()
    assert any("Prefers Saturday mornings" in n and "agent-e2e" in n for n in notes)
    tab.page.keyboard.press("Escape")
    dialog.wait_for(state="detached")
    assert tab.text(f"{row} [data-col=status]") == "Contacted"
    assert tab.text(f"{row} [data-col=notes]") == "2"

    # Both persist: in the store (through the API), and in the page after a reload.
    stored = dashboard.api(token).get(f"/api/leads/{seeker}/{listing}").json()
    assert stored["status"] == "contacted"
    assert stored["status_tracker"][-1]["by"] == "agent-e2e"
    assert [n["text"] for n in stored["notes"]] == [
        "Called back: wants a viewing",
        "Prefers Saturday mornings",
    ]
    tab.page.reload()
    tab.go("#/leads?status=contacted")
    tab.page.locator(f"{row} button.link").click()
    dialog.locator(".timeline").wait_for()
    assert dialog.locator("[data-field=status]").inner_text().strip() == "Contacted"
    timeline = dialog.locator(".timeline").inner_text()
    assert "Called back: wants a viewing" in timeline and "Prefers Saturday mornings" in timeline
    assert "Status: Contacted" in timeline
    tab.assert_clean()


# -- access --------------------------------------------------------------------------------------


def _ids(document: Any, key: str) -> set[Any]:
    """Every value of `key` anywhere in a JSON document."""
    found: set[Any] = set()
    if isinstance(document, dict):
        for name, value in document.items():
            if name == key and not isinstance(value, (dict, list)):
                found.add(value)
            found |= _ids(value, key)
    elif isinstance(document, list):
        for value in document:
            found |= _ids(value, key)
    return found


def test_a_lister_never_sees_another_listers_data(dashboard, open_tab):
    own, other = dashboard.listers()[:2]
    mine, theirs = dashboard.listings_of(own), dashboard.listings_of(other)
    assert mine and theirs and not (mine & theirs)
    tab = open_tab(dashboard.token(own))
    tab.wait_overview()
    assert tab.page.locator(".lister-picker").is_hidden()
    assert own in tab.text(".page-head .subtitle")

    # Every page a lister can reach, and every way of asking for the other lister's data.
    their_listing = sorted(theirs)[0]
    tab.go(f"#/overview?lister={other}")
    tab.wait_overview()
    assert own in tab.text(".page-head .subtitle") and other not in tab.text("main")
    tab.go(f"#/listings/{sorted(mine)[0]}")
    tab.page.wait_for_selector("[data-metric=total_views] dd")
    tab.go(f"#/listings/{their_listing}")
    tab.page.wait_for_selector(f"main .alert >> text=no listing '{their_listing}'")
    tab.go("#/leads")
    tab.page.wait_for_selector("table.leads-table tbody tr[data-seeker]")
    tab.go(f"#/leads?listing={their_listing}")
    tab.page.wait_for_selector("text=No leads match.")
    tab.go(f"#/leads?lister={other}")
    tab.page.wait_for_selector("table.leads-table tbody tr[data-seeker]")
    probe = tab.page.evaluate(
        """async other => (await fetch(`/api/listers/${other}/series`, {headers: {
            Authorization: `Bearer ${sessionStorage.getItem('leadflow.token')}`}})).status""",
        other,
    )
    assert probe == 404

    answers = [document for _, document in tab.answers]
    assert len(answers) > 10
    seen_listings = set().union(*(_ids(a, "listing_id") for a in answers))
    seen_listers = set().union(*(_ids(a, "lister_id") for a in answers))
    assert seen_listings <= mine | {their_listing}, seen_listings - mine
    assert seen_listers <= {own, None}, seen_listers
    # The one mention of their listing is the page's own request, answered 404.
    assert all(their_listing not in str(a) or "no listing" in str(a) for a in answers)
    tab.assert_clean(allow=("404",))


def test_a_refused_token_says_why_and_a_good_one_signs_in(dashboard, open_tab):
    tab = open_tab(None, hash_="#token=not-a-token")
    tab.page.wait_for_selector(".signin .alert")
    assert "not a JWT" in tab.text(".signin .alert")
    expired = mint_token(JWT_SECRET, "late", role="admin", ttl=timedelta(seconds=-120))
    tab.page.fill("#token", expired)
    tab.page.keyboard.press("Enter")
    tab.page.wait_for_selector(".signin .alert >> text=expired")
    tab.page.fill("#token", dashboard.token())
    tab.page.get_by_role("button", name="Sign in").click()
    tab.wait_overview()
    assert "admin-e2e" in tab.text(".whoami")
    tab.page.get_by_role("button", name="Sign out").click()
    tab.page.wait_for_selector(".signin")
    assert tab.page.evaluate("() => sessionStorage.getItem('leadflow.token')") is None
    tab.assert_clean(allow=("401",))


# -- phones and keyboards ------------------------------------------------------------------------


def test_every_page_fits_a_phone_and_works_from_the_keyboard(dashboard, open_tab):
    lister = dashboard.listers()[0]
    tab = open_tab(dashboard.token(lister), viewport=PHONE)
    tab.wait_overview()
    listing = tab.page.locator("table.listings tbody tr").first.get_attribute("data-listing")
    fits = "() => document.documentElement.scrollWidth <= window.innerWidth"
    assert tab.page.evaluate(fits), "the overview scrolls sideways on a phone"
    tab.go(f"#/listings/{listing}")
    tab.page.wait_for_selector("[data-chart=listing-views] canvas")
    assert tab.page.evaluate(fits), "the listing page scrolls sideways on a phone"
    tab.go("#/leads")
    tab.page.wait_for_selector("table.leads-table tbody tr[data-seeker]")
    assert tab.page.evaluate(fits), "the leads board scrolls sideways on a phone"

    # From the top of the board, Tab reaches the first lead, Enter opens it, Escape closes it.
    tab.page.locator("main").focus()
    for _ in range(40):
        tab.page.keyboard.press("Tab")
        if tab.page.evaluate("() => document.activeElement.matches('.leads-table button.link')"):
            break
    else:
        pytest.fail("Tab never reached a lead")
    tab.page.keyboard.press("Enter")
    tab.page.locator("dialog.lead .timeline").wait_for()
    assert tab.page.evaluate(fits)
    tab.page.keyboard.press("Escape")
    tab.page.locator("dialog.lead").wait_for(state="detached")
    assert tab.page.evaluate("() => document.activeElement.matches('.leads-table button.link')")
    tab.assert_clean()
