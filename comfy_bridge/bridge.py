"""The core every front end calls: submit, watch, cancel, upload, register.

Jobs wait in the bridge's queue; the dispatcher binds one to a backend only when
that backend has a free slot, runs one attempt at a time per job, and records
each state change in the store before anyone is told about it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import Counter, OrderedDict
from collections.abc import AsyncIterable, AsyncIterator, Coroutine, Sequence
from pathlib import Path
from typing import Any

from comfy_bridge.attempts import (
    Attempt,
    AttemptContext,
    AttemptResult,
    Outcome,
    cancelled,
)
from comfy_bridge.auth import ADMIN_OWNER, Keys, same_party
from comfy_bridge.backends import Backend, BackendPool, BackendState
from comfy_bridge.config import Settings
from comfy_bridge.events import EventHub, Subscription
from comfy_bridge.exceptions import (
    BackendExists,
    BackendNotFound,
    InputInvalid,
    JobNotFound,
    JobStateConflict,
    NoBackendAvailable,
    OutputExpired,
    OutputNotFound,
    Unrunnable,
    UnsafeFile,
    UploadNotFound,
    WorkflowNotFound,
)
from comfy_bridge.files import Files, Retention
from comfy_bridge.jobs import Job, JobOutput, JobStatus, new_job_id, now_ms
from comfy_bridge.limits import ClientLimits, ClientLimitSettings
from comfy_bridge.registry import WorkflowRegistry
from comfy_bridge.safety import SafetyPolicy, read_multipart, receive_output
from comfy_bridge.safety.policy import SVG
from comfy_bridge.scheduler import (
    BackendView,
    JobQueue,
    Missing,
    Placement,
    QueuedJob,
    RunTimes,
    remaining_s,
)
from comfy_bridge.state_file import StateFile
from comfy_bridge.store import BackendRow, Store, UploadRow
from comfy_bridge.workflows import (
    InputType,
    Requirements,
    Workflow,
    bind,
    check_limits,
    requirements,
    validate_values,
)

logger = logging.getLogger(__name__)

GENERATIONS = "generations"
# Placement runs on every change, and at least this often.
PLAN_TICK_S = 1.0
# Failures that say more about the backend than about the job, when the same
# workflow succeeds on other backends.
BACKEND_FAULTS = frozenset({"execution_error", "no_outputs", "unsafe_output"})
# Ended jobs kept in memory for the reads that follow their end.
RECENT_JOBS = 1024
# How often leases are checked: a lapsed one is noticed within this.
LEASE_CHECK_S = 0.25
# Room for multipart boundaries and part headers around the files themselves.
MULTIPART_OVERHEAD = 64 * 1024
OUTPUT_TYPES = {
    "image/png": (".png",),
    "image/jpeg": (".jpg", ".jpeg"),
    "image/webp": (".webp",),
    "image/gif": (".gif",),
}


class Bridge:
    """Jobs, backends, workflows and files, behind one small interface."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.store = Store(settings.database)
        self.events = EventHub()
        self.pool = BackendPool(
            slots=settings.backend_slots,
            probe_interval_s=settings.backend_probe_interval_s,
            on_change=self._backends_changed,
            bridge_id=settings.bridge_id,
        )
        self.workflows = WorkflowRegistry(
            self.store, settings.workflows_dir, settings.alias_file
        )
        self.upload_policy = SafetyPolicy(
            max_bytes=settings.limit_upload_bytes,
            allowed={k: tuple(v) for k, v in settings.allowed_types.items()},
            max_pixels=settings.limit_pixels,
            max_frames=settings.limit_frames,
            # Listing SVG in the allowlist is the explicit opt-in it needs.
            allow_svg=SVG in settings.allowed_types,
        )
        self.output_policy = SafetyPolicy(
            max_bytes=settings.limit_output_bytes,
            allowed=OUTPUT_TYPES,
            max_pixels=settings.limit_pixels,
            max_frames=settings.limit_frames,
            strip_metadata=not settings.outputs_keep_metadata,
        )
        self.queue = JobQueue()
        self.runtimes = RunTimes(settings.placement_prior_run_s)
        self.placement = Placement(
            self.runtimes,
            policy=settings.placement,
            switch_s=settings.placement_switch_s,
            wait_limit_s=settings.timeout_placement_s,
        )
        self.keys = Keys(self.store, settings)
        self.limits = ClientLimits(
            client_limits(settings), exempt=frozenset({ADMIN_OWNER})
        )
        self.state_file = (
            StateFile(settings.state_file) if settings.state_file else None
        )
        self.files = Files(settings.uploads_dir, settings.outputs_dir)
        self.retention = Retention(
            self.store,
            self.files,
            outputs_s=settings.retention_outputs_s,
            uploads_s=settings.retention_uploads_s,
            interval_s=settings.retention_sweep_interval_s,
            referenced=self._referenced_uploads,
            forget=self._forget_recent,
        )
        self.accepting = False
        self._active: dict[str, Job] = {}
        self._recent: OrderedDict[str, Job] = OrderedDict()
        self._admitting: Counter[str | None] = Counter()
        self._stopping = asyncio.Event()
        self._attempts: dict[str, Attempt] = {}
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._cancel_reasons: dict[str, str] = {}
        self._background: set[asyncio.Task[None]] = set()
        self._wake = asyncio.Event()
        self._dispatcher: asyncio.Task[None] | None = None
        self._leases: asyncio.Task[None] | None = None
        self._sweeper: asyncio.Task[None] | None = None
        self._known_capabilities = 0

    async def start(self) -> None:
        self.files.prepare()
        await self.store.open()
        await self.retention.remove_leftovers()
        await self.workflows.load(self.pool.object_info())
        for url in self.settings.backends:
            await self.pool.add(url)
        for row in await self.store.backends():
            if self.pool.find_url(row.url) is None:
                await self.pool.add(row.url, slots=row.slots, backend_id=row.id)
        await self._recover()
        await self._seed_generations()
        self._dispatcher = asyncio.create_task(self._dispatch_forever())
        self._leases = asyncio.create_task(self._expire_leases_forever())
        self._sweeper = asyncio.create_task(self.retention.sweep_forever())
        self.accepting = True
        if self.settings.open:
            logger.warning(
                "OPEN MODE: anyone who can reach %s:%d runs workflows without a "
                "key; for local use only",
                self.settings.host,
                self.settings.port,
            )
        logger.info(
            "bridge started: %d backends, %d workflows, %d jobs waiting",
            len(self.pool),
            len(self.workflows.all()),
            len(self.queue),
        )

    def stop_accepting(self) -> None:
        """A stop was asked for: take no new job and dispatch none."""
        if not self.accepting:
            return
        self.accepting = False
        if self._dispatcher is not None:
            self._dispatcher.cancel()
        self._stopping.set()
        logger.info(
            "bridge stopping: no new jobs; %d wait for the next start", len(self.queue)
        )

    async def aclose(self) -> None:
        self.stop_accepting()
        for loop_task in (self._dispatcher, self._leases, self._sweeper):
            if loop_task is not None:
                loop_task.cancel()
        running = list(self._tasks.values())
        for task in running:
            task.cancel()
        await asyncio.gather(*running, return_exceptions=True)
        await self.pool.aclose()
        await self.store.aclose()
        logger.info("bridge stopped: %d attempts were stopped", len(running))

    async def _recover(self) -> None:
        """Pick up every job a previous run left unfinished.

        Queued ones wait again. Submitted ones (or about to be) are found on
        their backend by prompt id and followed to their end; one whose backend
        is gone runs again elsewhere.
        """
        for job in await self.store.unfinished_jobs():
            self._active[job.id] = job
            backend = self.pool.get(job.backend_id or "")
            if job.status is JobStatus.QUEUED:
                self.queue.push(self._queued(job))
            elif backend is None or job.prompt_id is None:
                job.move_to(JobStatus.QUEUED)
                ended = ("retry", "its backend is gone")
                await self.store.save_job(job, attempt_ended=ended)
                self.queue.push(self._queued(job))
            else:
                backend.claim(job.id)
                task = asyncio.create_task(self._run(job, backend, resume=True))
                self._tasks[job.id] = task

    def _backends_changed(self) -> None:
        object_info = self.pool.object_info()
        if len(object_info) != self._known_capabilities:
            self._known_capabilities = len(object_info)
            self.workflows.refresh(object_info)
        self._wake.set()

    async def submit(
        self,
        alias: str,
        inputs: dict[str, Any],
        *,
        owner: str | None = None,
        priority: int = 0,
        lease_s: float | None = None,
        legacy_client: str | None = None,
    ) -> Job:
        """Validate the values and queue a job; nothing reaches a backend yet.

        With `lease_s`, the job is cancelled once nobody has polled or streamed
        it for that long.
        """
        if not self.accepting:
            raise NoBackendAvailable("the bridge is shutting down")
        # Jobs still on their way in count too: a burst of concurrent
        # submissions must not slip past the limit before any is recorded.
        waiting = self._count(owner, {JobStatus.QUEUED}) + self._admitting[owner]
        self.limits.admit_job(owner, waiting)
        self._admitting[owner] += 1
        try:
            return await self._admit(
                alias, inputs, owner, priority, lease_s, legacy_client
            )
        finally:
            self._admitting[owner] -= 1

    async def _admit(
        self,
        alias: str,
        inputs: dict[str, Any],
        owner: str | None,
        priority: int,
        lease_s: float | None,
        legacy_client: str | None,
    ) -> Job:
        workflow = self.workflows.get(alias)
        values = validate_values(workflow, inputs)
        check_limits(workflow, values, self.workflows.options(alias).limits)
        needs = self._needs(workflow, values)
        self._check_runnable(alias, needs)
        job = Job(
            workflow=alias,
            inputs=values,
            owner=owner,
            priority=priority,
            lease_s=lease_s,
        )
        # From the check to the record: no sweep may delete an upload between.
        async with self.retention.lock:
            await self._check_uploads(workflow, values, owner)
            await self.store.insert_job(
                job, counter=GENERATIONS, legacy_client=legacy_client
            )
            self._active[job.id] = job
        if self.state_file is not None:
            await self.state_file.write_count(await self.generation_count())
        self.queue.push(self._queued(job, needs))
        logger.info("job %s queued (workflow %s)", job.id, alias)
        self._publish_status(job)
        self._wake.set()
        return job

    def _needs(self, workflow: Workflow, values: dict[str, Any]) -> Requirements:
        """The node classes and models this job's own graph names."""
        # A model can be an input, so read the graph with the job's values;
        # file inputs hold upload ids here, which name no model.
        files = {
            spec.name: str(values[spec.name])
            for spec in workflow.inputs
            if spec.type is InputType.IMAGE and spec.name in values
        }
        return requirements(bind(workflow, values, files), self.pool.object_info())

    def _queued(self, job: Job, needs: Requirements | None = None) -> QueuedJob:
        if needs is None:
            try:
                needs = self._needs(self.workflows.get(job.workflow), job.inputs)
            except (WorkflowNotFound, InputInvalid):
                # Changed since it was queued: its attempt will fail it clearly.
                needs = Requirements(frozenset(), frozenset())
        return QueuedJob(
            job_id=job.id,
            workflow=job.workflow,
            needs=needs,
            client=job.owner,
            priority=job.priority,
            queued_at_s=time.monotonic(),
        )

    def _check_runnable(self, alias: str, needs: Requirements) -> None:
        """Refuse a job no registered backend could ever run.

        Backends that are down still count (the job waits for them); one never
        heard from might have anything, so it keeps the job too.
        """
        backends = [b for b in self.pool if b.state is not BackendState.DRAINING]
        if not backends:
            raise NoBackendAvailable("no backend is configured")
        if any(not b.capabilities.known for b in backends):
            return
        lacks = [(b.capabilities.missing(needs), b.id) for b in backends]
        nearest, backend_id = min(lacks, key=lambda item: (len(item[0]), item[1]))
        if nearest:
            raise Unrunnable(
                f"no backend can run workflow {alias!r}; the nearest one, "
                f"{backend_id}, lacks {nearest.describe()}",
                backend_id=backend_id,
                missing=nearest.public(),
            )

    def workflow_backends(self, workflow: Workflow) -> list[tuple[Backend, Missing]]:
        """Each backend with what it lacks to run the workflow (nothing: it can)."""
        return [(b, b.capabilities.missing(workflow.requirements)) for b in self.pool]

    async def _check_uploads(
        self, workflow: Workflow, values: dict[str, Any], owner: str | None
    ) -> None:
        # Someone else's upload is refused exactly like one that does not exist.
        for spec in workflow.inputs:
            upload_id = values.get(spec.name)
            if spec.type == "image" and upload_id:
                row = await self.store.get_upload(str(upload_id))
                if row is None or not same_party(row.owner, owner):
                    raise InputInvalid(
                        f"input {spec.name!r}: expected the id of an upload, "
                        f"got {upload_id!r}, which is no upload",
                        input=spec.name,
                    )

    async def get_job(self, job_id: str) -> Job:
        job = (
            self._active.get(job_id)
            or self._recent.get(job_id)
            or await self.store.get_job(job_id)
        )
        if job is None:
            raise JobNotFound(f"no job {job_id!r}", job_id=job_id)
        return job

    async def wait(self, job_id: str, timeout_s: float) -> Job:
        """The job once it ends, or as it is when the wait runs out."""
        with self.events.subscribe(job_id) as subscription:
            job = await self.get_job(job_id)
            deadline = time.monotonic() + timeout_s
            while not job.status.terminal:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                if not await self._next_event(subscription, remaining):
                    break
        # The job object is the one the runner changes: no need to read it again.
        return job

    async def _next_event(self, subscription: Subscription, timeout_s: float) -> bool:
        """Wait for the job's next event; False once the wait or the bridge ends."""
        event = asyncio.ensure_future(subscription.get())
        stopping = asyncio.ensure_future(self._stopping.wait())
        done, pending = await asyncio.wait(
            {event, stopping}, timeout=timeout_s, return_when=asyncio.FIRST_COMPLETED
        )
        for task in pending:
            task.cancel()
        return event in done

    async def cancel(self, job_id: str, reason: str = "client") -> Job:
        """Stop a job, whatever its state and whoever asks; one path for all.

        Queued: dropped, nothing reaches a backend. Dispatched: stopped on its
        backend only (deleted if waiting there, interrupted if running) and
        ended once the backend confirms. The job's error says who and how.
        """
        job = await self.get_job(job_id)
        if job.status.terminal:
            raise JobStateConflict(
                f"job {job_id} has already ended ({job.status})", job_id=job_id
            )
        if self.queue.remove(job_id):
            error = cancelled(reason, "dropped from the bridge's queue")
            await self._finish(job, JobStatus.CANCELLED, error=error)
            return job
        task = self._tasks.get(job_id)
        if task is None:
            return await self.get_job(job_id)
        self._cancel_reasons[job_id] = reason
        attempt = self._attempts.get(job_id)
        if attempt is None or not await attempt.cancel(reason):
            task.cancel()
        await asyncio.wait({task})
        return await self.get_job(job_id)

    def touch(self, job_id: str) -> None:
        """Someone asked about the job: its lease starts again."""
        job = self._active.get(job_id)
        if job is not None:
            job.seen_at_ms = now_ms()

    async def _expire_leases_forever(self) -> None:
        while True:
            await asyncio.sleep(LEASE_CHECK_S)
            now = now_ms()
            for job in tuple(self._active.values()):
                if self.events.subscribers(job.id):
                    job.seen_at_ms = now
                elif job.lease_expired(now):
                    self._cancel_soon(job.id, "lease")

    def abandoned(self, job_id: str) -> None:
        """A watcher left; cancel the job after the grace unless one came back."""
        task = asyncio.create_task(self._cancel_if_unwatched(job_id))
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _cancel_if_unwatched(self, job_id: str) -> None:
        await asyncio.sleep(self.settings.ws_cancel_grace_s)
        if not self.events.subscribers(job_id):
            await self._cancel_quietly(job_id, "disconnect")

    async def _dispatch_forever(self) -> None:
        while True:
            # Also on a tick: expectations move with time, and waits run out.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(PLAN_TICK_S):
                    await self._wake.wait()
            self._wake.clear()
            self._dispatch_ready()

    def _dispatch_ready(self) -> None:
        # No await between planning and claiming: a slot is never given twice.
        if not len(self.queue):
            return
        now = time.monotonic()
        startable = self._startable(self.queue.ordered())
        plan = self.placement.plan(startable, self._views(now), now)
        for job_id, backend_id in plan.bindings:
            backend = self.pool.get(backend_id)
            queued = self.queue.remove(job_id)
            if backend is None or queued is None:
                continue
            backend.claim(job_id, queued.workflow, queued.checkpoint)
            task = asyncio.create_task(self._run(self._active[job_id], backend))
            self._tasks[job_id] = task
        for job_id in plan.stranded:
            if self.queue.remove(job_id) is not None:
                self._spawn(self._strand(self._active[job_id]))

    def _startable(self, queued: Sequence[QueuedJob]) -> list[QueuedJob]:
        """The queued jobs whose client is under its limit of running jobs."""
        running = Counter(
            job.owner
            for job in self._active.values()
            if job.status in (JobStatus.DISPATCHING, JobStatus.RUNNING)
        )
        startable = []
        for job in queued:
            if self.limits.may_start(job.client, running[job.client]):
                # Counted as started, so one plan cannot bind past the limit.
                running[job.client] += 1
                startable.append(job)
        return startable

    def _count(self, owner: str | None, statuses: set[JobStatus]) -> int:
        return sum(
            1
            for job in self._active.values()
            if job.owner == owner and job.status in statuses
        )

    def _views(self, now: float) -> list[BackendView]:
        return [
            BackendView(
                id=b.id,
                free_slots=b.free_slots,
                capabilities=b.capabilities,
                busy_s=remaining_s(
                    [
                        (self.runtimes.estimate(workflow, b.id), bound_at)
                        for workflow, bound_at in b.bound.values()
                    ],
                    b.idle_since_s,
                    now,
                ),
                in_flight=len(b.in_flight),
                checkpoint=b.checkpoint,
                degraded=b.degraded,
            )
            for b in self.pool
            if b.state is BackendState.UP
        ]

    def _spawn(self, coroutine: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(coroutine)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _strand(self, job: Job) -> None:
        limit_s = self.settings.timeout_placement_s
        logger.warning("job %s: no backend that can run it came up", job.id)
        error = {
            "code": "no_backend",
            "message": f"no backend that can run it was up for {limit_s:g} s",
        }
        await self._finish(job, JobStatus.FAILED, error=error)

    async def _run(self, job: Job, backend: Backend, resume: bool = False) -> None:
        try:
            await self._run_attempt(job, backend, resume)
        except Exception:
            # A fault of ours must still end the job, never leave it hanging.
            logger.exception("job %s: attempt failed unexpectedly", job.id)
            error = {"code": "internal_error", "message": "the bridge failed this job"}
            # Its attempt row, if it got one, ends in the same write.
            started = job.status in (JobStatus.DISPATCHING, JobStatus.RUNNING)
            ended = ("failed", "internal_error") if started else None
            await self._finish(job, JobStatus.FAILED, error=error, attempt_ended=ended)
        finally:
            run_s = backend.release(job.id)
            if job.status is JobStatus.SUCCEEDED and job.backend_id == backend.id:
                self.runtimes.record(job.workflow, backend.id, run_s)
            self._tasks.pop(job.id, None)
            self._attempts.pop(job.id, None)
            self._wake.set()

    async def _run_attempt(self, job: Job, backend: Backend, resume: bool) -> None:
        workflow = self.workflows.get(job.workflow)
        attempt = Attempt(
            job,
            workflow,
            backend,
            self._attempt_context(),
            prompt_id=job.prompt_id if resume else None,
        )
        self._attempts[job.id] = attempt
        if not resume:
            job.attempts += 1
            job.backend_id, job.prompt_id = backend.id, attempt.prompt_id
            await self._transition(job, JobStatus.DISPATCHING, attempt_started=True)
        limit = asyncio.get_running_loop().call_later(
            self.workflows.options(job.workflow).time_limit_s
            or self.settings.timeout_job_s,
            self._cancel_soon,
            job.id,
            "time_limit",
        )
        try:
            result = await (attempt.resume() if resume else attempt.run())
        except asyncio.CancelledError:
            await asyncio.shield(self._record_cancel(job, attempt))
            raise
        finally:
            limit.cancel()
        await self._record(job, attempt, result)

    def _cancel_soon(self, job_id: str, reason: str) -> None:
        task = asyncio.create_task(self._cancel_quietly(job_id, reason))
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _cancel_quietly(self, job_id: str, reason: str) -> None:
        try:
            await self.cancel(job_id, reason)
        except (JobNotFound, JobStateConflict):
            return

    async def _record_cancel(self, job: Job, attempt: Attempt) -> None:
        reason = self._cancel_reasons.pop(job.id, "shutdown")
        if reason == "shutdown":
            # Not the client's wish: the prompt goes on at its backend and the
            # attempt is followed again after the restart.
            return
        if attempt.sent:
            # Cancelled while its submission was in flight: it may be queued.
            await attempt.stop()
        error = cancelled(reason, attempt.stopped_how)
        await self._finish(
            job, JobStatus.CANCELLED, error=error, attempt_ended=("cancelled", reason)
        )

    async def _record(self, job: Job, attempt: Attempt, result: AttemptResult) -> None:
        ended = (str(result.outcome), (result.error or {}).get("message"))
        if result.outcome is Outcome.SUCCEEDED:
            attempt.backend.succeeded()
            job.outputs = result.outputs
            await self._finish(job, JobStatus.SUCCEEDED, attempt_ended=ended)
        elif result.outcome is Outcome.FAILED:
            self._judge_backend(job, attempt.backend, result.error or {})
            await self._finish(
                job, JobStatus.FAILED, error=result.error, attempt_ended=ended
            )
        elif result.outcome is Outcome.CANCELLED:
            self._cancel_reasons.pop(job.id, None)
            await self._finish(
                job, JobStatus.CANCELLED, error=result.error, attempt_ended=ended
            )
        elif job.attempts < self.settings.limit_attempts:
            await self._retry(job, attempt.backend, result.error or {}, ended)
        else:
            error = {**(result.error or {}), "code": "backend_lost"}
            await self._finish(job, JobStatus.FAILED, error=error, attempt_ended=ended)

    def _judge_backend(self, job: Job, backend: Backend, error: dict[str, Any]) -> None:
        """Count a failure against the backend if the workflow runs elsewhere."""
        if error.get("code") not in BACKEND_FAULTS:
            return
        elsewhere = any(
            self.runtimes.measured(job.workflow, other.id) is not None
            for other in self.pool
            if other.id != backend.id
        )
        if elsewhere:
            backend.struck()

    async def _retry(
        self,
        job: Job,
        backend: Backend,
        error: dict[str, Any],
        ended: tuple[str, str | None],
    ) -> None:
        logger.warning(
            "job %s: attempt %d on backend %s ended (%s); queued again",
            job.id,
            job.attempts,
            backend.id,
            error.get("message"),
        )
        if error.get("code") in ("backend_unavailable", "backend_timeout", "lost"):
            self.pool.mark_down(backend, str(error.get("message")))
        job.progress = 0.0
        await self._transition(job, JobStatus.QUEUED, attempt_ended=ended)
        self.queue.push(self._queued(job), again=True)

    def _attempt_context(self) -> AttemptContext:
        return AttemptContext(
            upload_path=self.upload_path,
            outputs_dir=self.settings.outputs_dir,
            output_policy=self.output_policy,
            timeout_silence_s=self.settings.timeout_silence_s,
            timeout_stop_s=self.settings.timeout_stop_s,
            on_submitted=self._submitted,
            on_progress=self._progressed,
        )

    async def _submitted(self, job: Job) -> None:
        if job.status is not JobStatus.RUNNING:
            await self._transition(job, JobStatus.RUNNING)

    def _progressed(self, job: Job, event: dict[str, Any]) -> None:
        if job.advance(event["progress"]):
            self.events.publish(
                job.id,
                {"type": "progress", "progress": job.progress, "node": event["node"]},
            )

    async def _transition(
        self,
        job: Job,
        status: JobStatus,
        *,
        attempt_started: bool = False,
        attempt_ended: tuple[str, str | None] | None = None,
    ) -> None:
        old = job.move_to(status)
        await self.store.save_job(
            job, attempt_started=attempt_started, attempt_ended=attempt_ended
        )
        elapsed_s = (job.updated_at_ms - job.created_at_ms) / 1000
        logger.info(
            "job %s %s -> %s backend=%s elapsed=%.3fs",
            job.id,
            old,
            status,
            job.backend_id,
            elapsed_s,
        )
        self._publish_status(job)

    async def _finish(
        self,
        job: Job,
        status: JobStatus,
        error: dict[str, Any] | None = None,
        attempt_ended: tuple[str, str | None] | None = None,
    ) -> None:
        job.error = error
        if status is JobStatus.SUCCEEDED:
            job.progress = 1.0
        await self._transition(job, status, attempt_ended=attempt_ended)
        self._active.pop(job.id, None)
        self._remember(job)
        if not self.settings.uploads_keep_after_job:
            self._spawn(self._release_uploads(job))

    def _remember(self, job: Job) -> None:
        # Clients fetch a job and its outputs right after it ends: keep the
        # newest ended jobs at hand instead of reading each back from the store.
        self._recent[job.id] = job
        while len(self._recent) > RECENT_JOBS:
            self._recent.popitem(last=False)

    def _forget_recent(self, job_ids: list[str]) -> None:
        """Their outputs expired: read them from the store from now on."""
        for job_id in job_ids:
            self._recent.pop(job_id, None)

    async def _release_uploads(self, job: Job) -> None:
        """Delete the files the job used, unless another job still needs them."""
        try:
            workflow = self.workflows.get(job.workflow)
        except WorkflowNotFound:
            return
        upload_ids = {
            str(job.inputs[spec.name])
            for spec in workflow.inputs
            if spec.type is InputType.IMAGE and job.inputs.get(spec.name)
        }
        if upload_ids:
            freed = await self.retention.delete_uploads(upload_ids)
            logger.debug("job %s: %d uploads deleted", job.id, freed.uploads)

    def _referenced_uploads(self) -> set[str]:
        # Any text value may be an upload id: keeping too much is harmless here.
        return {
            value
            for job in self._active.values()
            for value in job.inputs.values()
            if isinstance(value, str)
        }

    def _publish_status(self, job: Job) -> None:
        # Told only once recorded, and before the last status ends the stream.
        if job.status is JobStatus.SUCCEEDED:
            for output in job.outputs:
                self.events.publish(job.id, {"type": "output", **output.public(job.id)})
        event: dict[str, Any] = {"type": "status", "status": str(job.status)}
        if job.status.terminal:
            event["job"] = job.public()
        self.events.publish(job.id, event)

    def output(self, job: Job, index: int) -> tuple[JobOutput, Path]:
        if job.status is not JobStatus.SUCCEEDED or not 0 <= index < len(job.outputs):
            raise OutputNotFound(f"job {job.id} has no output {index}", job_id=job.id)
        output = job.outputs[index]
        path = Path(output.path)
        if output.expired_at_ms or not path.is_file():
            raise OutputExpired(
                f"output {index} of job {job.id} was deleted after its retention "
                f"time ({self.settings.retention_outputs_s:g} s)",
                job_id=job.id,
            )
        return output, path

    async def receive_uploads(
        self,
        stream: AsyncIterable[bytes],
        *,
        content_type: str,
        content_length: str | None,
        max_parts: int,
        owner: str | None = None,
    ) -> list[tuple[str, UploadRow]]:
        """Check a client's files while they stream in; keep them under our names."""
        limit = self.upload_policy.max_bytes * max_parts + MULTIPART_OVERHEAD
        declared_text = content_length or ""
        declared = int(declared_text) if declared_text.isdigit() else 0
        if declared > limit:
            raise UnsafeFile(
                "too_large",
                f"the body is {content_length} bytes; at most "
                f"{self.upload_policy.max_bytes} bytes a file are accepted",
                status_code=413,
            )
        self.limits.admit_upload(owner, declared)
        parts = await read_multipart(
            stream,
            content_type,
            directory=self.settings.uploads_dir,
            policy=self.upload_policy,
            max_parts=max_parts,
        )
        self.limits.record_upload(owner, sum(checked.size for _, checked in parts))
        uploads = []
        for field_name, checked in parts:
            row = UploadRow(
                id=new_job_id(),
                owner=owner,
                filename=Path(checked.path).name,
                display_name=checked.display_name,
                content_type=checked.content_type,
                size=checked.size,
                sha256=checked.sha256,
                created_at_ms=now_ms(),
            )
            await self.store.add_upload(row)
            uploads.append((field_name, row))
        return uploads

    async def checked_image(self, data: bytes) -> bytes:
        """An image an admin sent inline, through the uploads' check, stripped."""

        async def chunks() -> AsyncIterator[bytes]:
            yield data

        checked = await receive_output(
            chunks(),
            directory=self.settings.uploads_dir,
            filename=None,
            declared_type=None,
            policy=self.upload_policy,
        )
        try:
            return await asyncio.to_thread(checked.path.read_bytes)
        finally:
            checked.path.unlink(missing_ok=True)

    async def upload_path(self, upload_id: str) -> Path:
        row = await self.store.get_upload(upload_id)
        if row is None:
            raise UploadNotFound(f"no upload {upload_id!r}")
        return self.files.upload_path(row.filename)

    async def add_backend(self, url: str, slots: int | None = None) -> Backend:
        if self.pool.find_url(url) is not None:
            raise BackendExists(f"backend {url} is already registered")
        backend = await self.pool.add(url, slots=slots)
        await self.store.add_backend(
            BackendRow(
                id=backend.id, url=backend.url, slots=slots, created_at_ms=now_ms()
            )
        )
        return backend

    async def refresh_backend(self, backend_id: str) -> Backend:
        """Read a backend's node classes and models again (new files, new nodes)."""
        backend = self.pool.get(backend_id)
        if backend is None:
            raise BackendNotFound(f"no backend {backend_id!r}")
        await self.pool.refresh(backend)
        return backend

    async def remove_backend(self, backend_id: str) -> Backend:
        backend = await self.pool.remove(backend_id)
        if backend is None:
            raise BackendNotFound(f"no backend {backend_id!r}")
        await self.store.delete_backend(backend_id)
        return backend

    async def generation_count(self) -> int:
        """Jobs submitted since the first start (the original bridge's count)."""
        return await self.store.counter(GENERATIONS)

    async def _seed_generations(self) -> None:
        if self.state_file is not None:
            seen = await self.state_file.read_count()
            count = await self.store.raise_counter(GENERATIONS, seen)
            await self.state_file.write_count(count)

    async def free_memory(self, backend_id: str | None = None) -> int:
        """Ask one backend, or every one that is up, to unload models and free memory.

        Returns how many backends were asked.
        """
        if backend_id is None:
            backends = [b for b in self.pool if b.state is BackendState.UP]
        else:
            backend = self.pool.get(backend_id)
            if backend is None:
                raise BackendNotFound(f"no backend {backend_id!r}")
            backends = [backend]
        await asyncio.gather(
            *(b.client.free(unload_models=True, free_memory=True) for b in backends)
        )
        return len(backends)

    def backends_up(self) -> int:
        return sum(1 for b in self.pool if b.state is BackendState.UP)


def client_limits(settings: Settings) -> ClientLimitSettings:
    return ClientLimitSettings(
        jobs_per_minute=settings.limit_client_jobs_per_minute,
        jobs_burst=settings.limit_client_jobs_burst,
        queued_jobs=settings.limit_client_queued_jobs,
        running_jobs=settings.limit_client_running_jobs,
        upload_bytes_per_hour=settings.limit_client_upload_bytes_per_hour,
    )
