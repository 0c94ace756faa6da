"""`leadflow demo` as a new user meets it: it ends by serving the dashboard and printing a link
that opens it signed in; `--no-serve` stops after the report."""

from __future__ import annotations

import os
import queue
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

import httpx


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def demo_args(tmp_path: Path, *extra: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "leadflow.cli",
        "demo",
        "--events",
        "20000",
        "--dir",
        str(tmp_path / "demo-data"),
        "--database",
        f"sqlite:///{tmp_path / 'leadflow.db'}",
        *extra,
    ]


def environment() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEADFLOW_")}
    return {**env, "PYTHONUNBUFFERED": "1"}


def test_demo_with_no_serve_reports_and_exits(tmp_path):
    result = subprocess.run(
        demo_args(tmp_path, "--no-serve"),
        capture_output=True,
        text=True,
        env=environment(),
        timeout=240,
    )
    assert result.returncode == 0, result.stderr
    assert "Top listings by leads" in result.stdout
    assert "#token=" not in result.stdout


def test_demo_ends_serving_the_dashboard_at_a_link_that_signs_in(tmp_path):
    port = free_port()
    process = subprocess.Popen(
        demo_args(tmp_path, "--port", str(port)),
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=environment(),
    )
    lines: queue.Queue[str] = queue.Queue()

    def read() -> None:
        for line in process.stdout or ():
            lines.put(line)

    threading.Thread(target=read, daemon=True).start()
    try:
        links: list[str] = []
        deadline = time.monotonic() + 240
        while len(links) < 2:
            assert process.poll() is None, "leadflow demo stopped instead of serving"
            assert time.monotonic() < deadline, "leadflow demo printed no dashboard links"
            try:
                line = lines.get(timeout=1).strip()
            except queue.Empty:
                continue
            if "#token=" in line:
                links.append(line)
        admin_link, lister_link = links
        assert admin_link.startswith(f"http://127.0.0.1:{port}/#token=")
        base = f"http://127.0.0.1:{port}"
        page = None
        while page is None:
            assert time.monotonic() < deadline, "the dashboard did not answer"
            try:
                page = httpx.get(f"{base}/")
            except httpx.TransportError:
                time.sleep(0.2)
        assert page.status_code == 200 and "/static/app.js" in page.text
        for link, role in ((admin_link, "admin"), (lister_link, "lister")):
            token = urlsplit(link).fragment.removeprefix("token=")
            me = httpx.get(f"{base}/api/me", headers={"Authorization": f"Bearer {token}"})
            assert me.status_code == 200 and me.json()["role"] == role
    finally:
        process.terminate()
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(15)
        if process.stdout:
            process.stdout.close()


def test_demo_refuses_a_busy_port_before_doing_any_work(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run(
            demo_args(tmp_path, "--port", str(port)),
            capture_output=True,
            text=True,
            env=environment(),
            timeout=60,
        )
    assert result.returncode != 0
    assert "--port" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "demo-data").exists()
