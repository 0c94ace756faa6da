"""The HTTP service under test: a real uvicorn server on loopback over the test's store.

Used as a pytest plugin by the tests/test_api_*.py modules (`pytest_plugins`). The server runs
in a thread of the test process, on a socket bound to 127.0.0.1 with a free port, and is
stopped in the fixture's teardown. Its store is the `store` fixture's (SQLite here; whatever
backend conftest.py's `store` gives).
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

from leadflow.api import create_app
from leadflow.api.auth import mint_token
from leadflow.config import Settings
from tests.apidata import CRON_SECRET, JWT_SECRET, standard_events
from tests.eventfiles import write_jsonl


class ServerThread:
    """uvicorn serving `app` on 127.0.0.1 in a daemon thread."""

    def __init__(self, app: Any) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.port = int(self.sock.getsockname()[1])
        self.base_url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(app, log_level="warning", lifespan="off", access_log=False)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(
            target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True
        )

    def start(self) -> ServerThread:
        self.thread.start()
        deadline = time.monotonic() + 15
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("the test server did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(15)
        self.sock.close()


@dataclass
class Api:
    """A running service, its store, and clients with the credentials of each kind of caller."""

    server: ServerThread
    store: Any
    settings: Settings
    source: Path
    app: Any
    clients: list[httpx.Client] = field(default_factory=list)

    @property
    def url(self) -> str:
        return self.server.base_url

    def client(self, token: str | None = None, timeout: float = 60.0) -> httpx.Client:
        headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
        made = httpx.Client(base_url=self.url, headers=headers, timeout=timeout)
        self.clients.append(made)
        return made

    def token(self, lister: str | None = None, role: str = "lister", **claims: Any) -> str:
        return mint_token(JWT_SECRET, claims.pop("sub", f"user-of-{lister or role}"), role, lister)  # type: ignore[arg-type]

    def lister(self, lister_id: str) -> httpx.Client:
        return self.client(self.token(lister_id))

    def admin(self) -> httpx.Client:
        return self.client(self.token(role="admin", sub="admin-1"))

    def cron(self) -> httpx.Client:
        return self.client(CRON_SECRET)

    def seed(self, events: Sequence[dict[str, Any]]) -> None:
        """Write `events` as a new export file in the service's source folder and run the pipeline."""
        self.write(events)
        self.store.run(self.source)

    def write(self, events: Sequence[dict[str, Any]]) -> Path:
        """Write `events` as a new export file in the service's source folder."""
        index = len(list(self.source.glob("*.jsonl")))
        return write_jsonl(self.source / f"batch-{index:03d}.jsonl", events)

    def close(self) -> None:
        for made in self.clients:
            made.close()
        self.server.stop()
        self.app.state.engine.dispose()


@pytest.fixture
def api_factory(store: Any, tmp_path: Path) -> Iterator[Callable[..., Api]]:
    """Start services over the test's store: `api_factory(**settings_overrides)`."""
    started: list[Api] = []

    def start(**overrides: Any) -> Api:
        source = tmp_path / f"exports-{len(started)}"
        source.mkdir()
        values: dict[str, Any] = {
            "source": f"file:{source}",
            "cron_secret": CRON_SECRET,
            "jwt_secret": JWT_SECRET,
        }
        values.update(overrides)
        settings = store.settings(**values)
        app = create_app(settings)
        made = Api(ServerThread(app).start(), store, settings, source, app)
        started.append(made)
        return made

    yield start
    for made in started:
        made.close()


@pytest.fixture
def api(api_factory: Callable[..., Api]) -> Api:
    """A service over a store holding the standard data set."""
    made = api_factory()
    made.seed(standard_events())
    return made
