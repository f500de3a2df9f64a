"""Where uploads and outputs live, and how long they stay there.

Uploads sit in one folder under bridge-made names, a job's outputs in a folder
named by its job id. Retention deletes files, never job records: an output whose
file is gone stays in its job marked expired, and its URL answers 410.

An upload is never deleted while a job that is not finished names it, whatever
its age; the bridge holds `Retention.lock` from checking a new job's uploads to
recording the job, so a sweep cannot delete one in between.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass
from pathlib import Path

from comfy_bridge.jobs import Job, now_ms
from comfy_bridge.store import Store, UploadRow

logger = logging.getLogger(__name__)

# The counter holding the end time up to which finished jobs were swept: each
# sweep reads only the jobs that ended since, not the whole table.
OUTPUTS_SWEPT = "retention_outputs_swept_until_ms"
BATCH = 500
PARTIAL = ".part"


@dataclass
class Freed:
    """What one sweep deleted."""

    jobs: int = 0
    outputs: int = 0
    uploads: int = 0
    bytes: int = 0

    def add(self, other: Freed) -> None:
        self.jobs += other.jobs
        self.outputs += other.outputs
        self.uploads += other.uploads
        self.bytes += other.bytes

    def __bool__(self) -> bool:
        return bool(self.outputs or self.uploads)


class Files:
    """The folders of uploads and outputs; blocking, so called in a thread."""

    def __init__(self, uploads_dir: Path, outputs_dir: Path) -> None:
        self.uploads_dir = uploads_dir
        self.outputs_dir = outputs_dir

    def prepare(self) -> None:
        for directory in (self.uploads_dir, self.outputs_dir):
            directory.mkdir(parents=True, exist_ok=True)

    def upload_path(self, filename: str) -> Path:
        return self.uploads_dir / filename

    def job_dir(self, job_id: str) -> Path:
        return self.outputs_dir / job_id

    def delete_uploads(self, filenames: Iterable[str]) -> Freed:
        freed = Freed()
        for filename in filenames:
            size = _unlink(self.upload_path(filename))
            if size is not None:
                freed.uploads += 1
                freed.bytes += size
        return freed

    def delete_job_outputs(self, job_id: str) -> Freed:
        directory = self.job_dir(job_id)
        files = [path for path in directory.glob("*") if path.is_file()]
        if not files:
            return Freed()
        freed = Freed(jobs=1, outputs=len(files))
        freed.bytes = sum(path.stat().st_size for path in files)
        shutil.rmtree(directory, ignore_errors=True)
        return freed

    def delete_leftovers(self, recorded_uploads: Collection[str]) -> Freed:
        """Files a killed process left: partial ones, and uploads never recorded.

        Only safe before anything is received, so only at start.
        """
        partial = [*self.uploads_dir.glob(f"*{PARTIAL}")]
        partial += self.outputs_dir.glob(f"*/*{PARTIAL}")
        unrecorded = [
            path
            for path in self.uploads_dir.iterdir()
            if path.is_file() and path.name not in recorded_uploads
        ]
        freed = Freed()
        for path in {*partial, *unrecorded}:
            freed.bytes += _unlink(path) or 0
            freed.uploads += 1
        return freed


def _unlink(path: Path) -> int | None:
    """Delete a file; its size, or None if it was not there."""
    with contextlib.suppress(FileNotFoundError):
        size = path.stat().st_size
        path.unlink()
        return size
    return None


class Retention:
    """Deletes outputs and uploads whose time is up; the bridge runs its sweep."""

    def __init__(
        self,
        store: Store,
        files: Files,
        *,
        outputs_s: float,
        uploads_s: float,
        interval_s: float,
        referenced: Callable[[], set[str]],
        forget: Callable[[list[str]], None] = lambda job_ids: None,
    ) -> None:
        self.store = store
        self.forget = forget
        self.files = files
        self.outputs_ms = int(outputs_s * 1000)
        self.uploads_ms = int(uploads_s * 1000)
        self.interval_s = interval_s
        self.referenced = referenced
        self.lock = asyncio.Lock()

    async def remove_leftovers(self) -> None:
        recorded = await self.store.upload_filenames()
        freed = await asyncio.to_thread(self.files.delete_leftovers, recorded)
        if freed:
            logger.info(
                "removed %d files an earlier run left unfinished (%d bytes)",
                freed.uploads,
                freed.bytes,
            )

    async def sweep_forever(self) -> None:
        while True:
            await asyncio.sleep(self.interval_s)
            try:
                freed = await self.sweep()
            except Exception:
                # The next sweep tries again; files only stay a little longer.
                logger.exception("retention sweep failed")
                continue
            if freed:
                logger.info(
                    "retention: deleted %d outputs of %d jobs and %d uploads, %d bytes",
                    freed.outputs,
                    freed.jobs,
                    freed.uploads,
                    freed.bytes,
                )

    async def sweep(self) -> Freed:
        freed = Freed()
        now = now_ms()
        if self.outputs_ms:
            freed.add(await self.sweep_outputs(now - self.outputs_ms))
        if self.uploads_ms:
            freed.add(await self.sweep_uploads(now - self.uploads_ms))
        return freed

    async def sweep_outputs(self, cutoff_ms: int) -> Freed:
        """Delete the files of jobs that ended before the cutoff."""
        freed = Freed()
        since = await self.store.counter(OUTPUTS_SWEPT)
        after: tuple[int, str] | None = None
        while jobs := await self.store.finished_jobs(
            since, cutoff_ms, after=after, limit=BATCH
        ):
            freed.add(await self.expire(jobs))
            last = jobs[-1]
            after = (last.finished_at_ms or 0, last.id)
        await self.store.raise_counter(OUTPUTS_SWEPT, cutoff_ms)
        return freed

    async def expire(self, jobs: list[Job]) -> Freed:
        # Marked first: a crash in between leaves files to delete again, never
        # a job pointing at a file that is gone.
        live = [job.id for job in jobs if any(not o.expired_at_ms for o in job.outputs)]
        if live:
            await self.store.expire_outputs(live, now_ms())
            self.forget(live)
        freed = Freed()
        for job in jobs:
            freed.add(await asyncio.to_thread(self.files.delete_job_outputs, job.id))
        return freed

    async def sweep_uploads(self, cutoff_ms: int) -> Freed:
        """Delete uploads made before the cutoff that no waiting job needs."""
        freed = Freed()
        after: tuple[int, str] | None = None
        while rows := await self.store.old_uploads(cutoff_ms, after=after, limit=BATCH):
            freed.add(await self.delete_uploads({row.id for row in rows}))
            after = (rows[-1].created_at_ms, rows[-1].id)
        return freed

    async def delete_uploads(self, upload_ids: Collection[str]) -> Freed:
        """Delete these uploads, except those a job that is not finished names."""
        async with self.lock:
            unused = set(upload_ids) - self.referenced()
            rows: list[UploadRow] = []
            if unused:
                rows = await self.store.delete_uploads(unused)
        names = [row.filename for row in rows]
        return await asyncio.to_thread(self.files.delete_uploads, names)
