"""The tables: every job's truth lives here, not only in memory."""

from __future__ import annotations

from typing import Any

from sqlalchemy import JSON, BigInteger, Index, Integer, LargeBinary, String
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    type_annotation_map = {
        dict[str, Any]: JSON,
        list[Any]: JSON,
        int: BigInteger,
    }


class JobRow(Base):
    __tablename__ = "jobs"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    workflow: Mapped[str] = mapped_column(String(128), index=True)
    owner: Mapped[str | None] = mapped_column(String(128), index=True)
    status: Mapped[str] = mapped_column(String(16), index=True)
    priority: Mapped[int] = mapped_column(default=0)
    inputs: Mapped[dict[str, Any]]
    progress: Mapped[float] = mapped_column(default=0.0)
    error: Mapped[dict[str, Any] | None]
    outputs: Mapped[list[Any]]
    backend_id: Mapped[str | None] = mapped_column(String(64))
    prompt_id: Mapped[str | None] = mapped_column(String(64))
    attempts: Mapped[int] = mapped_column(default=0)
    created_at_ms: Mapped[int]
    updated_at_ms: Mapped[int]
    # Retention's sweep reads the jobs that ended since its last run.
    finished_at_ms: Mapped[int | None] = mapped_column(index=True)
    lease_s: Mapped[float | None]
    seen_at_ms: Mapped[int]

    __table_args__ = (Index("ix_jobs_owner_created", "owner", "created_at_ms"),)


class AttemptRow(Base):
    __tablename__ = "attempts"

    # SQLite numbers rows itself only for a plain INTEGER primary key.
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    job_id: Mapped[str] = mapped_column(String(64), index=True)
    number: Mapped[int]
    backend_id: Mapped[str] = mapped_column(String(64))
    prompt_id: Mapped[str] = mapped_column(String(64))
    started_at_ms: Mapped[int]
    ended_at_ms: Mapped[int | None]
    outcome: Mapped[str | None] = mapped_column(String(32))
    reason: Mapped[str | None]


class WorkflowRow(Base):
    __tablename__ = "workflows"

    alias: Mapped[str] = mapped_column(String(128), primary_key=True)
    description: Mapped[str] = mapped_column(default="")
    graph: Mapped[dict[str, Any]]
    declarations: Mapped[list[Any]]
    thumbnail: Mapped[bytes | None] = mapped_column(LargeBinary)
    # The operator's options: time limit, size limits, whether the graph is public.
    options: Mapped[dict[str, Any]]
    created_at_ms: Mapped[int]
    updated_at_ms: Mapped[int]


class BackendRow(Base):
    __tablename__ = "backends"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    url: Mapped[str] = mapped_column(String(512), unique=True)
    slots: Mapped[int | None]
    created_at_ms: Mapped[int]


class UploadRow(Base):
    __tablename__ = "uploads"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    owner: Mapped[str | None] = mapped_column(String(128), index=True)
    filename: Mapped[str] = mapped_column(String(255))
    display_name: Mapped[str] = mapped_column(String(255))
    content_type: Mapped[str] = mapped_column(String(128))
    size: Mapped[int]
    sha256: Mapped[str] = mapped_column(String(64))
    created_at_ms: Mapped[int]


class CounterRow(Base):
    __tablename__ = "counters"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[int] = mapped_column(default=0)


class LegacyClientRow(Base):
    """The original API's session: a client's own id and the job it generated."""

    __tablename__ = "legacy_clients"

    client_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    job_id: Mapped[str] = mapped_column(String(64))
    created_at_ms: Mapped[int]


class ApiKeyRow(Base):
    """An API key: its SHA-256 only, never the key itself."""

    __tablename__ = "api_keys"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(128))
    role: Mapped[str] = mapped_column(String(16))
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at_ms: Mapped[int]
    last_used_at_ms: Mapped[int | None]
    revoked: Mapped[bool] = mapped_column(default=False)
