"""`leadflow serve` and `leadflow token` as a new user meets them (the README's walk-through)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from click.testing import Result
from typer.testing import CliRunner

from leadflow.cli import app
from tests.apidata import standard_events
from tests.eventfiles import write_jsonl

SECRETS = {
    "LEADFLOW_CRON_SECRET": "cli-cron-secret",
    "LEADFLOW_JWT_SECRET": "cli-jwt-secret-0123456789abcdef0123",
}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def token(*args: str, env: dict[str, str]) -> Result:
    """`leadflow token …`, in this process (the command is a few lines over PyJWT)."""
    return CliRunner().invoke(app, ["token", *args], env=env)


@pytest.fixture
def served(store, tmp_path: Path) -> Iterator[tuple[str, dict[str, str]]]:
    """`leadflow serve` in its own process over the test's store, stopped afterwards."""
    exports = tmp_path / "exports"
    write_jsonl(exports / "batch-1.jsonl", standard_events())
    env = {
        **os.environ,
        **SECRETS,
        "LEADFLOW_DATABASE_URL": store.url,
        "LEADFLOW_SOURCE": f"file:{exports}",
    }
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "leadflow.cli", "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{url}/api/health").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert process.poll() is None, process.stderr.read() if process.stderr else ""
            assert time.monotonic() < deadline, "leadflow serve did not start"
            time.sleep(0.1)
        yield url, env
    finally:
        process.terminate()
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(15)
        if process.stderr:
            process.stderr.close()


def test_serve_trigger_the_cron_then_manage_leads_with_two_listers_tokens(served):
    url, env = served
    assert httpx.post(f"{url}/api/cron/analytics").status_code == 401
    run = httpx.post(
        f"{url}/api/cron/analytics",
        headers={"Authorization": f"Bearer {SECRETS['LEADFLOW_CRON_SECRET']}"},
        timeout=60,
    )
    assert run.status_code == 200, run.text
    assert run.json()["leads_inserted"] == 4

    minted = token("--lister", "lister-a", env=env)
    assert minted.exit_code == 0, minted.output
    lister_a = {"Authorization": f"Bearer {minted.stdout.strip()}"}
    lister_b = {"Authorization": f"Bearer {token('--lister', 'lister-b', env=env).stdout.strip()}"}

    leads_a = httpx.get(f"{url}/api/leads", headers=lister_a).json()["items"]
    assert {lead["listing_id"] for lead in leads_a} == {"listing-1", "listing-2"}
    leads_b = httpx.get(f"{url}/api/leads", headers=lister_b).json()["items"]
    assert {lead["listing_id"] for lead in leads_b} == {"listing-3"}

    moved = httpx.patch(
        f"{url}/api/leads/seeker-1/listing-1/status", json={"status": "contacted"}, headers=lister_a
    )
    assert moved.status_code == 200 and moved.json()["status"] == "contacted"
    assert moved.json()["status_tracker"][-1]["by"] == "dev-lister-a"
    refused = httpx.patch(
        f"{url}/api/leads/seeker-1/listing-1/status", json={"status": "spam"}, headers=lister_b
    )
    assert refused.status_code == 404
    noted = httpx.post(
        f"{url}/api/leads/seeker-1/listing-1/notes", json={"text": "Called back"}, headers=lister_a
    )
    assert noted.status_code == 201


def test_token_explains_what_it_needs():
    result = token("--lister", "x", env={"LEADFLOW_JWT_SECRET": ""})
    assert result.exit_code != 0 and "LEADFLOW_JWT_SECRET" in result.stderr
    with_secret = {"LEADFLOW_JWT_SECRET": SECRETS["LEADFLOW_JWT_SECRET"]}
    result = token(env=with_secret)
    assert result.exit_code != 0 and "--lister" in result.stderr
    result = token("--role", "root", env=with_secret)
    assert result.exit_code != 0 and "unknown role" in result.stderr
    admin = token("--role", "admin", "--hours", "1", env=with_secret)
    assert admin.exit_code == 0 and admin.stdout.count(".") == 2


def test_serve_reports_a_bad_database_url_in_one_line():
    result = subprocess.run(
        [sys.executable, "-m", "leadflow.cli", "serve", "--database", "mysql://nowhere/db"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert "Traceback" not in result.stderr and "unsupported database" in result.stderr
