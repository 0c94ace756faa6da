"""Shared fixtures: a fresh store per test, on SQLite and on a real PostgreSQL server.

Every test that takes `store` or `make_store` runs once per store kind: `sqlite` (a temporary
file) and `postgresql` (a database of its own on a throwaway cluster that this session starts on
127.0.0.1, see tests/pgcluster.py; under pytest-xdist each worker is a session with its own
cluster, on a free port). `--store sqlite` (or `--store postgresql`) runs one kind
only. Without the PostgreSQL server binaries the postgresql cases are skipped, except on CI
(CI=true), where that is a failure.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import hypothesis
import pytest
from sqlalchemy import Engine, func, select

from bench.canonical import canonical_from_db
from leadflow import pipeline
from leadflow.config import Settings
from leadflow.store.db import create_store_engine, upgrade
from leadflow.store.schema import metadata
from tests.pgcluster import PostgresCluster, find_bindir

STORE_KINDS = ("sqlite", "postgresql")
TEMPLATE = "leadflow_template"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--store",
        choices=("all", *STORE_KINDS),
        default=os.environ.get("LEADFLOW_TEST_STORE", "all"),
        help="run the store tests on this store kind only (default: all; env LEADFLOW_TEST_STORE)",
    )


def store_kinds(config: pytest.Config) -> list[str]:
    chosen = config.getoption("--store")
    return list(STORE_KINDS) if chosen == "all" else [chosen]


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "stores(*kinds): run this test on these store kinds only (of those selected)"
    )


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "store_kind" in metafunc.fixturenames:
        kinds = store_kinds(metafunc.config)
        if marker := metafunc.definition.get_closest_marker("stores"):
            kinds = [kind for kind in kinds if kind in marker.args]
        metafunc.parametrize("store_kind", kinds)


def on_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("true", "1")


class Store:
    """A leadflow store (a SQLite file or a PostgreSQL database), with the pipeline wired to it."""

    def __init__(self, url: str, kind: str) -> None:
        self.url = url
        self.kind = kind
        self.engine: Engine = create_store_engine(self.url)

    def settings(self, **overrides: Any) -> Settings:
        return Settings(database_url=self.url, **overrides)

    def run(
        self,
        source: Path | str,
        fault: Callable[[str], None] | None = None,
        **overrides: Any,
    ) -> pipeline.RunSummary:
        return pipeline.run(
            self.settings(**overrides), str(source), engine=self.engine, fault=fault
        )

    def snapshot(self) -> dict[str, list[tuple[Any, ...]]]:
        """leadflow's tables in the oracle's canonical form (leads grouped per seeker+listing)."""
        return canonical_from_db(self.engine)

    def count(self, table: str) -> int:
        with self.engine.connect() as conn:
            return int(
                conn.execute(select(func.count()).select_from(metadata.tables[table])).scalar_one()
            )

    def rows(self, table: str) -> list[dict[str, Any]]:
        with self.engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(select(metadata.tables[table]))]


class PostgresServer:
    """The session's throwaway cluster, handing out one fresh database per store."""

    def __init__(self, cluster: PostgresCluster) -> None:
        self.cluster = cluster
        self._names = (f"store_{n}" for n in itertools.count())
        url = cluster.create_database(TEMPLATE)
        engine = create_store_engine(url)
        upgrade(engine)
        engine.dispose()

    def new_database(self, migrated: bool = True) -> tuple[str, str]:
        """(name, URL) of a new database: a copy of the migrated template, or an empty one."""
        name = next(self._names)
        url = self.cluster.create_database(name, template=TEMPLATE if migrated else None)
        return name, url

    def drop_database(self, name: str) -> None:
        self.cluster.drop_database(name)


@pytest.fixture(scope="session")
def postgres(request: pytest.FixtureRequest) -> Iterator[PostgresServer]:
    """The PostgreSQL server of this test session (started on first use, stopped at the end)."""
    if "postgresql" not in store_kinds(request.config):
        pytest.skip("PostgreSQL not selected (--store)")
    if find_bindir() is None:
        message = (
            "PostgreSQL server binaries (initdb, pg_ctl) not found: apt-get install postgresql, "
            "or set PG_BINDIR"
        )
        if on_ci():
            pytest.fail(f"{message} (on CI a missing PostgreSQL is a failure)")
        pytest.skip(message)
    cluster = PostgresCluster.start(settings={"max_connections": "300"})
    try:
        yield PostgresServer(cluster)
    finally:
        cluster.stop()


# The properties (hypothesis) run every example on SQLite and this share of them on PostgreSQL:
# the two stores share every line above the store, so PostgreSQL's examples check its own SQL,
# and the whole suite stays within minutes on a 2-core machine. (Hypothesis keeps a test's
# settings on the test function; the fixture swaps them for the PostgreSQL case's duration.)
POSTGRES_EXAMPLES_SHARE = 0.4


@pytest.fixture(autouse=True)
def _fewer_examples_on_postgresql(request: pytest.FixtureRequest) -> Iterator[None]:
    test = getattr(request, "function", None)
    callspec = getattr(request.node, "callspec", None)
    chosen = getattr(test, "_hypothesis_internal_use_settings", None)
    if chosen is None or callspec is None or callspec.params.get("store_kind") != "postgresql":
        yield
        return
    fewer = max(3, round(chosen.max_examples * POSTGRES_EXAMPLES_SHARE))
    test._hypothesis_internal_use_settings = hypothesis.settings(chosen, max_examples=fewer)
    try:
        yield
    finally:
        test._hypothesis_internal_use_settings = chosen


@pytest.fixture
def make_store(
    store_kind: str, tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[Callable[..., Store]]:
    """Fresh stores of this test's kind (for tests that compare several, or want an empty one).

    `make_store()` is at the newest migration (PostgreSQL) or will be on its first run (SQLite);
    `make_store(migrated=False)` is an empty database on both.
    """
    made: list[Store] = []
    databases: list[str] = []

    def factory(migrated: bool = True, folder_name: str | None = None) -> Store:
        if store_kind == "sqlite":
            folder = tmp_path / (folder_name or f"store-{len(made)}")
            folder.mkdir()
            made.append(Store(f"sqlite:///{folder / 'leadflow.db'}", store_kind))
        else:
            server: PostgresServer = request.getfixturevalue("postgres")
            name, url = server.new_database(migrated)
            databases.append(name)
            made.append(Store(url, store_kind))
        return made[-1]

    yield factory
    for s in made:
        s.engine.dispose()
    if databases:
        server = request.getfixturevalue("postgres")
        for name in databases:
            server.drop_database(name)


@pytest.fixture
def store(make_store: Callable[..., Store]) -> Store:
    return make_store(folder_name="store")
