"""Persistence: SQLAlchemy over SQLite by default (PostgreSQL for several replicas)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Collection, Sequence
from contextlib import asynccontextmanager
from dataclasses import asdict
from typing import Any

from sqlalchemy import delete, event, func, insert, select, tuple_, update
from sqlalchemy.engine import Engine
from sqlalchemy.ext.asyncio import (
    AsyncConnection,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from comfy_bridge.jobs import Job, JobOutput, JobStatus, now_ms
from comfy_bridge.store import migrations
from comfy_bridge.store.models import (
    ApiKeyRow,
    AttemptRow,
    BackendRow,
    CounterRow,
    JobRow,
    LegacyClientRow,
    UploadRow,
    WorkflowRow,
)

__all__ = ["Store", "ApiKeyRow", "BackendRow", "UploadRow", "WorkflowRow"]


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # WAL lets readers go on while a job's state is written; NORMAL sync is still
    # crash-safe in WAL mode (a commit is atomic, at worst the last one is lost).
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=5000")
    cursor.close()


class Store:
    """The bridge's state: jobs, attempts, workflows, backends, uploads, counters."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._engine = create_async_engine(url)
        if url.startswith("sqlite"):
            event.listen(self._engine.sync_engine, "connect", _sqlite_pragmas)
        self._sessions = async_sessionmaker(self._engine, expire_on_commit=False)

    @property
    def sync_engine(self) -> Engine:
        return self._engine.sync_engine

    async def open(self) -> None:
        """Create or upgrade the schema to the newest migration."""
        async with self._engine.begin() as connection:
            await connection.run_sync(migrations.upgrade)

    async def aclose(self) -> None:
        await self._engine.dispose()

    async def ping(self) -> None:
        async with self._session() as session:
            await session.execute(select(1))

    @asynccontextmanager
    async def _session(self) -> AsyncIterator[AsyncSession]:
        async with self._sessions() as session, session.begin():
            yield session

    async def insert_job(
        self,
        job: Job,
        *,
        counter: str | None = None,
        legacy_client: str | None = None,
    ) -> None:
        """Insert a new job and, in the same transaction, count it and link it
        to the original-API client that asked for it."""
        async with self._engine.begin() as connection:
            await connection.execute(insert(JobRow).values(**_job_columns(job)))
            if counter is not None:
                await _increment(connection, counter, 1)
            if legacy_client is not None:
                await _link_legacy_client(connection, legacy_client, job.id)

    async def save_job(
        self,
        job: Job,
        *,
        attempt_started: bool = False,
        attempt_ended: tuple[str, str | None] | None = None,
    ) -> None:
        """Write the job's state, and the start or end of its current attempt.

        One transaction: a crash leaves the old state or the new, never half.
        """
        async with self._engine.begin() as connection:
            await connection.execute(
                update(JobRow).where(JobRow.id == job.id).values(**_job_state(job))
            )
            if attempt_started:
                await connection.execute(insert(AttemptRow).values(**_attempt(job)))
            if attempt_ended is not None and job.prompt_id is not None:
                await _end_attempt(connection, job.prompt_id, *attempt_ended)

    async def get_job(self, job_id: str) -> Job | None:
        async with self._session() as session:
            row = await session.get(JobRow, job_id)
        return _job_from_row(row) if row else None

    async def list_jobs(
        self,
        *,
        owner: str | None = None,
        status: str | None = None,
        workflow: str | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> tuple[list[Job], int]:
        query = select(JobRow)
        if owner is not None:
            query = query.where(JobRow.owner == owner)
        if status is not None:
            query = query.where(JobRow.status == status)
        if workflow is not None:
            query = query.where(JobRow.workflow == workflow)
        count = select(func.count()).select_from(query.subquery())
        page = query.order_by(JobRow.created_at_ms.desc()).limit(limit).offset(offset)
        async with self._session() as session:
            total = (await session.execute(count)).scalar_one()
            rows = (await session.execute(page)).scalars().all()
        return [_job_from_row(row) for row in rows], total

    async def unfinished_jobs(self) -> list[Job]:
        terminal = [str(s) for s in JobStatus if s.terminal]
        query = (
            select(JobRow)
            .where(JobRow.status.not_in(terminal))
            .order_by(JobRow.created_at_ms)
        )
        async with self._session() as session:
            rows = (await session.execute(query)).scalars().all()
        return [_job_from_row(row) for row in rows]

    async def end_attempt(
        self, prompt_id: str, outcome: str, reason: str | None = None
    ) -> None:
        async with self._engine.begin() as connection:
            await _end_attempt(connection, prompt_id, outcome, reason)

    async def attempts(self, job_id: str) -> list[AttemptRow]:
        query = (
            select(AttemptRow)
            .where(AttemptRow.job_id == job_id)
            .order_by(AttemptRow.number)
        )
        async with self._session() as session:
            return list((await session.execute(query)).scalars().all())

    async def put_workflow(
        self,
        alias: str,
        *,
        description: str,
        graph: dict[str, Any],
        declarations: Sequence[dict[str, Any]],
        thumbnail: bytes | None,
        options: dict[str, Any],
    ) -> None:
        async with self._session() as session:
            row = await session.get(WorkflowRow, alias)
            if row is None:
                row = WorkflowRow(alias=alias, created_at_ms=now_ms())
                session.add(row)
            row.description = description
            row.graph = graph
            row.declarations = list(declarations)
            row.thumbnail = thumbnail
            row.options = options
            row.updated_at_ms = now_ms()

    async def delete_workflow(self, alias: str) -> bool:
        async with self._session() as session:
            row = await session.get(WorkflowRow, alias)
            if row is None:
                return False
            await session.delete(row)
            return True

    async def workflows(self) -> list[WorkflowRow]:
        async with self._session() as session:
            query = select(WorkflowRow).order_by(WorkflowRow.alias)
            return list((await session.execute(query)).scalars().all())

    async def add_backend(self, row: BackendRow) -> None:
        async with self._session() as session:
            session.add(row)

    async def delete_backend(self, backend_id: str) -> bool:
        async with self._session() as session:
            row = await session.get(BackendRow, backend_id)
            if row is None:
                return False
            await session.delete(row)
            return True

    async def backends(self) -> list[BackendRow]:
        async with self._session() as session:
            query = select(BackendRow).order_by(BackendRow.created_at_ms)
            return list((await session.execute(query)).scalars().all())

    async def add_upload(self, row: UploadRow) -> None:
        async with self._session() as session:
            session.add(row)

    async def get_upload(self, upload_id: str) -> UploadRow | None:
        async with self._session() as session:
            return await session.get(UploadRow, upload_id)

    async def old_uploads(
        self, before_ms: int, *, after: tuple[int, str] | None, limit: int
    ) -> list[UploadRow]:
        """Uploads made before `before_ms`, oldest first, from past `after`."""
        query = select(UploadRow).where(UploadRow.created_at_ms < before_ms)
        if after is not None:
            query = query.where(
                tuple_(UploadRow.created_at_ms, UploadRow.id) > tuple_(*after)
            )
        query = query.order_by(UploadRow.created_at_ms, UploadRow.id).limit(limit)
        async with self._session() as session:
            return list((await session.execute(query)).scalars().all())

    async def delete_uploads(self, upload_ids: Collection[str]) -> list[UploadRow]:
        """Forget these uploads; returns the rows that were there."""
        query = select(UploadRow).where(UploadRow.id.in_(upload_ids))
        async with self._session() as session:
            rows = list((await session.execute(query)).scalars().all())
            await session.execute(delete(UploadRow).where(UploadRow.id.in_(upload_ids)))
        return rows

    async def upload_filenames(self) -> set[str]:
        async with self._session() as session:
            names = (await session.execute(select(UploadRow.filename))).scalars()
            return set(names.all())

    async def finished_jobs(
        self,
        since_ms: int,
        before_ms: int,
        *,
        after: tuple[int, str] | None,
        limit: int,
    ) -> list[Job]:
        """Jobs that ended in [since_ms, before_ms), in order, from past `after`."""
        ended = JobRow.finished_at_ms
        query = select(JobRow).where(ended >= since_ms, ended < before_ms)
        if after is not None:
            query = query.where(tuple_(ended, JobRow.id) > tuple_(*after))
        query = query.order_by(ended, JobRow.id).limit(limit)
        async with self._session() as session:
            rows = (await session.execute(query)).scalars().all()
        return [_job_from_row(row) for row in rows]

    async def expire_outputs(self, job_ids: Collection[str], at_ms: int) -> None:
        """Mark every output of these jobs as deleted by retention."""
        query = select(JobRow).where(JobRow.id.in_(job_ids))
        async with self._session() as session:
            for row in (await session.execute(query)).scalars():
                row.outputs = [
                    {**output, "expired_at_ms": output.get("expired_at_ms") or at_ms}
                    for output in row.outputs
                ]

    async def counter(self, name: str) -> int:
        async with self._session() as session:
            row = await session.get(CounterRow, name)
        return row.value if row else 0

    async def raise_counter(self, name: str, at_least: int) -> int:
        """Lift a counter to `at_least` if it is lower; returns its value."""
        async with self._engine.begin() as connection:
            await _increment(connection, name, 0)
            statement = (
                update(CounterRow)
                .where(CounterRow.name == name, CounterRow.value < at_least)
                .values(value=at_least)
            )
            await connection.execute(statement)
            query = select(CounterRow.value).where(CounterRow.name == name)
            value: int = (await connection.execute(query)).scalar_one()
        return value

    async def legacy_job_id(self, client_id: str) -> str | None:
        """The job an original-API client generated, until it is released."""
        async with self._session() as session:
            row = await session.get(LegacyClientRow, client_id)
        return row.job_id if row else None

    async def release_legacy_client(self, client_id: str) -> None:
        async with self._session() as session:
            row = await session.get(LegacyClientRow, client_id)
            if row is not None:
                await session.delete(row)

    async def add_key(self, row: ApiKeyRow) -> None:
        async with self._session() as session:
            session.add(row)

    async def key_by_hash(self, key_hash: str) -> ApiKeyRow | None:
        query = select(ApiKeyRow).where(ApiKeyRow.key_hash == key_hash)
        async with self._session() as session:
            return (await session.execute(query)).scalar_one_or_none()

    async def keys(self) -> list[ApiKeyRow]:
        query = select(ApiKeyRow).order_by(ApiKeyRow.created_at_ms)
        async with self._session() as session:
            return list((await session.execute(query)).scalars().all())

    async def revoke_key(self, key_id: str) -> ApiKeyRow | None:
        async with self._session() as session:
            row = await session.get(ApiKeyRow, key_id)
            if row is not None:
                row.revoked = True
            return row

    async def touch_key(self, key_id: str, at_ms: int) -> None:
        statement = (
            update(ApiKeyRow)
            .where(ApiKeyRow.id == key_id)
            .values(last_used_at_ms=at_ms)
        )
        async with self._engine.begin() as connection:
            await connection.execute(statement)


async def _increment(connection: AsyncConnection, name: str, by: int) -> None:
    statement = (
        update(CounterRow)
        .where(CounterRow.name == name)
        .values(value=CounterRow.value + by)
    )
    if (await connection.execute(statement)).rowcount == 0:
        await connection.execute(insert(CounterRow).values(name=name, value=by))


async def _link_legacy_client(
    connection: AsyncConnection, client_id: str, job_id: str
) -> None:
    # A client's next generation replaces its last one.
    await connection.execute(
        delete(LegacyClientRow).where(LegacyClientRow.client_id == client_id)
    )
    row = {"client_id": client_id, "job_id": job_id, "created_at_ms": now_ms()}
    await connection.execute(insert(LegacyClientRow).values(**row))


async def _end_attempt(
    connection: AsyncConnection, prompt_id: str, outcome: str, reason: str | None
) -> None:
    statement = (
        update(AttemptRow)
        .where(AttemptRow.prompt_id == prompt_id)
        .values(ended_at_ms=now_ms(), outcome=outcome, reason=reason)
    )
    await connection.execute(statement)


def _attempt(job: Job) -> dict[str, Any]:
    return {
        "job_id": job.id,
        "number": job.attempts,
        "backend_id": job.backend_id,
        "prompt_id": job.prompt_id,
        "started_at_ms": job.updated_at_ms,
    }


def _job_state(job: Job) -> dict[str, Any]:
    """The columns a job's life changes (its inputs and owner never do)."""
    return {
        "status": str(job.status),
        "progress": job.progress,
        "error": job.error,
        "outputs": [asdict(output) for output in job.outputs],
        "backend_id": job.backend_id,
        "prompt_id": job.prompt_id,
        "attempts": job.attempts,
        "updated_at_ms": job.updated_at_ms,
        "finished_at_ms": job.finished_at_ms,
    }


def _job_columns(job: Job) -> dict[str, Any]:
    columns = asdict(job)
    columns["status"] = str(job.status)
    columns["outputs"] = [asdict(output) for output in job.outputs]
    return columns


def _job_from_row(row: JobRow) -> Job:
    return Job(
        id=row.id,
        workflow=row.workflow,
        owner=row.owner,
        status=JobStatus(row.status),
        priority=row.priority,
        inputs=row.inputs,
        progress=row.progress,
        error=row.error,
        outputs=[JobOutput(**output) for output in row.outputs],
        backend_id=row.backend_id,
        prompt_id=row.prompt_id,
        attempts=row.attempts,
        created_at_ms=row.created_at_ms,
        updated_at_ms=row.updated_at_ms,
        finished_at_ms=row.finished_at_ms,
        lease_s=row.lease_s,
        seen_at_ms=row.seen_at_ms,
    )
