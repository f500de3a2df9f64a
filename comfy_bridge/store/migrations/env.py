"""Alembic's environment: runs on the connection the store hands it."""

from __future__ import annotations

from alembic import context

from comfy_bridge.store.models import Base

connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    # SQLite alters a table by copying it; batch mode writes migrations that way.
    render_as_batch=True,
)
with context.begin_transaction():
    context.run_migrations()
