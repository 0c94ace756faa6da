"""Screenshots of the dashboard for the README, at laptop and phone widths.

    .venv/bin/leadflow demo --no-serve            # once: the demo store, leadflow.db
    .venv/bin/python scripts/screenshots.py [--database sqlite:///leadflow.db] [--out docs/screenshots]

Copies the store (the pages change a lead, the copy takes it), serves the copy on a free
loopback port, opens each page in headless Chromium (Debian's `chromium`, driven by Playwright)
at 1280x800 and 390x844, and writes {overview,listing,leads,lead}-{laptop,phone}.png.
"""

from __future__ import annotations

import argparse
import shutil
import socket
import sqlite3
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from playwright.sync_api import Page, sync_playwright
from sqlalchemy.engine import make_url

from leadflow.api import create_app
from leadflow.api.auth import mint_token
from leadflow.config import Settings

SECRET = "screenshots-only-secret-0123456789abcdef"
ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
    "--hide-scrollbars",
]
SIZES = {"laptop": (1280, 800), "phone": (390, 844)}


def copy_store(url: str, folder: Path) -> str:
    """A consistent copy of a SQLite store (SQLite's online backup), as a URL."""
    source = make_url(url).database
    if not source or not Path(source).is_file():
        sys.exit(
            f"no SQLite store at {url}: run `leadflow demo --no-serve` first, or pass --database"
        )
    target = folder / "leadflow.db"
    with sqlite3.connect(source) as src, sqlite3.connect(target) as dst:
        src.backup(dst)
    return f"sqlite:///{target}"


def serve(settings: Settings) -> tuple[str, uvicorn.Server, threading.Thread]:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(create_app(settings), log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    return f"http://127.0.0.1:{sock.getsockname()[1]}", server, thread


def settle(page: Page) -> None:
    page.wait_for_load_state("networkidle")
    page.wait_for_timeout(300)


def shoot(page: Page, path: Path) -> None:
    page.evaluate("() => window.scrollTo(0, 0)")
    page.screenshot(path=str(path))
    print(f"wrote {path} ({path.stat().st_size // 1024} KiB)")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database", default="sqlite:///leadflow.db")
    parser.add_argument("--out", type=Path, default=Path("docs/screenshots"))
    parser.add_argument("--chromium", default=shutil.which("chromium") or "/usr/bin/chromium")
    parser.add_argument("--tz", default="Europe/Madrid", help="The browser's time zone.")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)

    with tempfile.TemporaryDirectory() as folder:
        settings = Settings(database_url=copy_store(args.database, Path(folder)), jwt_secret=SECRET)
        base, server, thread = serve(settings)
        admin = mint_token(SECRET, "ana (admin)", role="admin")
        api = httpx.Client(base_url=base, headers={"Authorization": f"Bearer {admin}"})
        lister = api.get("/api/listers", params={"limit": 1}).json()["items"][0]["lister_id"]
        top = api.get(f"/api/listers/{lister}/listings", params={"limit": 1}).json()
        listing = top["items"][0]["listing_id"]
        agent = mint_token(SECRET, f"agent of {lister}", lister_id=lister)
        lead = httpx.get(
            f"{base}/api/leads",
            params={"sort": "score", "limit": 1},
            headers={"Authorization": f"Bearer {agent}"},
        ).json()["items"][0]
        lead_path = f"/api/leads/{lead['seeker_id']}/{lead['listing_id']}"
        lead_api = httpx.Client(base_url=base, headers={"Authorization": f"Bearer {agent}"})
        lead_api.patch(f"{lead_path}/status", json={"status": "contacted", "note": "Called back"})
        lead_api.post(f"{lead_path}/notes", json={"text": "Wants a viewing on Saturday morning"})
        lead_api.patch(f"{lead_path}/status", json={"status": "viewing_scheduled"})

        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=args.chromium, args=ARGS)
            for name, (width, height) in SIZES.items():
                context = browser.new_context(
                    viewport={"width": width, "height": height},
                    locale="en-US",
                    timezone_id=args.tz,
                    device_scale_factor=1,
                )
                page: Any = context.new_page()
                page.goto(f"{base}/#token={agent}")
                page.wait_for_selector("table.listings tbody tr[data-listing]")
                settle(page)
                shoot(page, args.out / f"overview-{name}.png")
                page.evaluate("l => { location.hash = `#/listings/${l}` }", listing)
                page.wait_for_selector("[data-chart=listing-views] canvas")
                settle(page)
                shoot(page, args.out / f"listing-{name}.png")
                page.evaluate("() => { location.hash = '#/leads?sort=score' }")
                page.wait_for_selector("table.leads-table tbody tr[data-seeker]")
                settle(page)
                shoot(page, args.out / f"leads-{name}.png")
                page.locator("table.leads-table tbody tr button.link").first.click()
                page.wait_for_selector("dialog.lead .timeline")
                settle(page)
                page.screenshot(path=str(args.out / f"lead-{name}.png"))
                print(f"wrote {args.out / f'lead-{name}.png'}")
                context.close()
            browser.close()
        api.close()
        lead_api.close()
        server.should_exit = True
        thread.join(10)


if __name__ == "__main__":
    main()
