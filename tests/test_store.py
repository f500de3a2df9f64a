"""The store's schema comes from its migrations, and they match the models."""

from __future__ import annotations

from pathlib import Path

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, inspect

from comfy_bridge.store import Store
from comfy_bridge.store.models import Base


async def test_a_new_database_gets_every_table(tmp_path: Path) -> None:
    store = Store(f"sqlite+aiosqlite:///{tmp_path / 'bridge.sqlite3'}")
    await store.open()
    await store.aclose()

    engine = create_engine(f"sqlite:///{tmp_path / 'bridge.sqlite3'}")
    tables = set(inspect(engine).get_table_names())
    engine.dispose()
    assert set(Base.metadata.tables) | {"alembic_version"} == tables


async def test_the_migrations_describe_the_models_exactly(tmp_path: Path) -> None:
    store = Store(f"sqlite+aiosqlite:///{tmp_path / 'bridge.sqlite3'}")
    await store.open()
    await store.aclose()

    engine = create_engine(f"sqlite:///{tmp_path / 'bridge.sqlite3'}")
    with engine.connect() as connection:
        differences = compare_metadata(
            MigrationContext.configure(connection), Base.metadata
        )
    engine.dispose()
    # A model changed without a migration shows up here.
    assert differences == []


async def test_opening_twice_changes_nothing(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'bridge.sqlite3'}"
    for _ in range(2):
        store = Store(url)
        await store.open()
        await store.aclose()
