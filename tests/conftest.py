"""Shared fixtures: a fresh store per test, and a way to run the pipeline into it."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, func, select

from bench.canonical import canonical_from_db
from leadflow import pipeline
from leadflow.config import Settings
from leadflow.store.db import create_store_engine
from leadflow.store.schema import metadata


class Store:
    """A leadflow store in a temporary SQLite file, with the pipeline wired to it."""

    def __init__(self, folder: Path) -> None:
        self.url = f"sqlite:///{folder / 'leadflow.db'}"
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


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    folder = tmp_path / "store"
    folder.mkdir()
    made = Store(folder)
    yield made
    made.engine.dispose()


@pytest.fixture
def make_store(tmp_path: Path) -> Iterator[Callable[[], Store]]:
    """For tests that compare several stores (single run vs split runs)."""
    made: list[Store] = []

    def factory() -> Store:
        folder = tmp_path / f"store-{len(made)}"
        folder.mkdir()
        made.append(Store(folder))
        return made[-1]

    yield factory
    for s in made:
        s.engine.dispose()
