"""One attempt: one placement of a job on one backend.

upload inputs → bind → submit → follow → collect outputs. The attempt reports
how it ended; the bridge decides what that means for the job (record, retry).
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from comfy_bridge import comfy
from comfy_bridge.backends import Backend
from comfy_bridge.exceptions import (
    BackendError,
    BackendTimeout,
    BackendUnavailable,
    BridgeError,
    PromptRejected,
    UnsafeFile,
)
from comfy_bridge.jobs import Job, JobOutput
from comfy_bridge.safety import SafetyPolicy, receive_output
from comfy_bridge.workflows import Workflow, bind

logger = logging.getLogger(__name__)


class Outcome(enum.StrEnum):
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    RETRY = "retry"
    CANCELLED = "cancelled"


@dataclass
class AttemptResult:
    outcome: Outcome
    outputs: list[JobOutput] = field(default_factory=list)
    error: dict[str, Any] | None = None


@dataclass
class AttemptContext:
    """What an attempt needs from the bridge, and how it reports back."""

    upload_path: Callable[[str], Awaitable[Path]]
    outputs_dir: Path
    output_policy: SafetyPolicy
    timeout_silence_s: float
    timeout_stop_s: float
    on_submitted: Callable[[Job], Awaitable[None]]
    on_progress: Callable[[Job, dict[str, Any]], None]


def new_prompt_id() -> str:
    # Chosen by the bridge, one per attempt, so an attempt can be found on its
    # backend even if the answer to the submission was lost.
    return str(uuid.uuid4())


class Attempt:
    """Runs one job once on one backend, and stops it there when asked."""

    def __init__(
        self,
        job: Job,
        workflow: Workflow,
        backend: Backend,
        ctx: AttemptContext,
        *,
        prompt_id: str | None = None,
    ) -> None:
        self.job = job
        self.workflow = workflow
        self.backend = backend
        self.ctx = ctx
        self.prompt_id = prompt_id or new_prompt_id()
        # Set once the prompt may have reached the backend: from then on a
        # cancel must stop it there, not only here.
        self.sent = False
        self.cancel_reason: str | None = None
        self.stopped_how = ""
        self._finished = asyncio.Event()
        self._deleted = asyncio.Event()
        self._progress = Progress(len(workflow.graph))

    async def run(self) -> AttemptResult:
        """Upload, submit, follow and collect: the whole attempt."""
        return await self._settle(self._run())

    async def resume(self) -> AttemptResult:
        """Follow a prompt submitted before the bridge restarted, to its end.

        Still queued or running: watched again. Finished: its outputs are
        collected from the history. Unknown to the backend: lost, so retried.
        """
        return await self._settle(self._resume())

    async def _run(self) -> AttemptResult:
        graph = await self.prepare()
        finished = await self.submit_and_follow(graph)
        return await self.conclude(finished)

    async def _resume(self) -> AttemptResult:
        self.sent = True
        async with self.backend.client.watch(self.prompt_id, submitted=True) as watch:
            # Ask the backend now: the prompt may have ended while we were away.
            watch.resync()
            await self.ctx.on_submitted(self.job)
            finished = await self.follow_to_end(watch)
        return await self.conclude(finished)

    async def _settle(self, steps: Awaitable[AttemptResult]) -> AttemptResult:
        try:
            return await steps
        except Deleted:
            return self.cancelled()
        except PromptRejected as exc:
            return _failed(exc.code, exc.detail, **exc.extra)
        except UnsafeFile as exc:
            return _failed("unsafe_output", f"{exc.code}: {exc.detail}", rule=exc.code)
        except BackendError as exc:
            return AttemptResult(Outcome.RETRY, error=_error(exc.code, exc.detail))

    async def prepare(self) -> dict[str, Any]:
        """Upload the job's files to this backend and bind the graph."""
        names: dict[str, str] = {}
        for spec in self.workflow.inputs:
            upload_id = self.job.inputs.get(spec.name)
            if spec.type != "image" or not upload_id:
                continue
            path = await self.ctx.upload_path(upload_id)
            uploaded = await self.backend.client.upload_image(path, name=path.name)
            names[spec.name] = uploaded.name
        return bind(self.workflow, self.job.inputs, names)

    async def submit_and_follow(self, graph: dict[str, Any]) -> comfy.PromptFinished:
        client = self.backend.client
        async with client.watch(self.prompt_id) as watch:
            self.sent = True
            await client.submit(graph, prompt_id=self.prompt_id)
            await self.ctx.on_submitted(self.job)
            return await self.follow_to_end(watch)

    async def follow_to_end(self, watch: comfy.PromptWatch) -> comfy.PromptFinished:
        messages = aiter(watch)
        while True:
            message = await self.next_message(messages)
            if isinstance(message, comfy.PromptFinished):
                self._finished.set()
                return message
            self.follow(message)

    async def next_message(
        self, messages: AsyncIterator[comfy.Message]
    ) -> comfy.Message:
        silence_s = self.ctx.timeout_silence_s
        try:
            async with asyncio.timeout(silence_s):
                message: comfy.Message | None = await _first(
                    anext(messages, None), self._deleted.wait()
                )
        except TimeoutError:
            await self.stop()
            raise BackendTimeout(
                f"no word from the backend about job {self.job.id} for {silence_s:g} s",
                backend_id=self.backend.id,
            ) from None
        if self._deleted.is_set():
            raise Deleted
        if message is None:
            raise BackendUnavailable(
                "the connection to the backend was closed", backend_id=self.backend.id
            )
        return message

    def follow(self, message: comfy.Message) -> None:
        event = self._progress.update(message)
        if event is not None:
            self.ctx.on_progress(self.job, event)

    async def conclude(self, finished: comfy.PromptFinished) -> AttemptResult:
        if self.cancel_reason is not None:
            if finished.status is comfy.PromptStatus.INTERRUPTED:
                self.stopped_how = "interrupted on its backend"
            else:
                self.stopped_how = "it ended before the stop reached it"
            return self.cancelled()
        if finished.status is comfy.PromptStatus.SUCCESS:
            if not finished.output_nodes and self.expects_output():
                return _failed(
                    "no_outputs",
                    "the backend reported success without any output, though "
                    "the workflow has output nodes",
                )
            return await self.collect(finished)
        if finished.status is comfy.PromptStatus.ERROR and finished.error:
            error = finished.error
            return _failed(
                "execution_error",
                error.message,
                node_id=error.node_id,
                node_type=error.node_type,
            )
        # Interrupted without our asking (the owner pressed cancel) or lost
        # (the backend restarted): not the job's fault, so it runs again.
        return AttemptResult(
            Outcome.RETRY, error=_error(str(finished.status), "the backend stopped it")
        )

    def expects_output(self) -> bool:
        """Whether some output node of the graph keeps what it makes."""
        return any(
            self.workflow.graph[node]["class_type"] not in STREAMED_OUTPUTS
            for node in self.workflow.output_nodes
        )

    def cancelled(self) -> AttemptResult:
        reason = self.cancel_reason or "client"
        return AttemptResult(
            Outcome.CANCELLED, error=cancelled(reason, self.stopped_how)
        )

    async def cancel(self, reason: str) -> bool:
        """Stop the prompt on its backend; False if it never left the bridge.

        Returns once the backend confirmed the stop (the prompt left its queue,
        or the interrupted outcome arrived), or after `timeout_stop_s`.
        """
        self.cancel_reason = reason
        if not self.sent:
            self.stopped_how = "it had not reached a backend"
            return False
        try:
            async with asyncio.timeout(self.ctx.timeout_stop_s):
                await self.stop_on_backend()
        except (TimeoutError, BridgeError) as exc:
            logger.warning(
                "job %s: backend %s did not confirm the stop (%s)",
                self.job.id,
                self.backend.id,
                exc,
            )
            self.stopped_how = "the backend did not confirm the stop"
            self._deleted.set()
        return True

    async def stop_on_backend(self) -> None:
        """Delete it if it waits; interrupt it, and only it, if it runs."""
        client = self.backend.client
        await client.delete_pending([self.prompt_id])
        queue = await client.queue()
        if self.prompt_id not in queue:
            await self.confirm_gone()
            return
        # It started between the delete and the read: stop it where it runs.
        await client.interrupt(self.prompt_id)
        if await _wait(self._finished, CONFIRM_TARGETED_S):
            return
        # A backend that ignores targeted interrupts: stop it only if it is
        # still the one running.
        await client.interrupt_if_running(self.prompt_id)
        await self._finished.wait()

    async def confirm_gone(self) -> None:
        """Neither queued nor running: deleted, unless it had just ended."""
        if self._finished.is_set():
            return
        if await self.backend.client.history(self.prompt_id) is None:
            self.stopped_how = "deleted from its backend's queue"
            self._deleted.set()
            return
        await self._finished.wait()

    async def stop(self) -> None:
        """Best effort: delete or interrupt this prompt, never another."""
        if not self.sent:
            return
        client = self.backend.client
        try:
            await client.delete_pending([self.prompt_id])
            await client.interrupt(self.prompt_id)
        except BridgeError as exc:
            logger.warning(
                "job %s: could not stop prompt on backend %s: %s",
                self.job.id,
                self.backend.id,
                exc.detail,
            )

    async def collect(self, finished: comfy.PromptFinished) -> AttemptResult:
        """Fetch every output file, check it, and keep it under our own name."""
        directory = self.ctx.outputs_dir / self.job.id
        directory.mkdir(parents=True, exist_ok=True)
        outputs = []
        for index, file in enumerate(finished.files):
            outputs.append(await self.fetch_output(index, file, directory))
        return AttemptResult(Outcome.SUCCEEDED, outputs=outputs)

    async def fetch_output(
        self, index: int, file: comfy.OutputFile, directory: Path
    ) -> JobOutput:
        """Stream one file from the backend through the safety check."""
        chunks = self.backend.client.output_chunks(
            file, limit_bytes=self.ctx.output_policy.max_bytes
        )
        async with contextlib.aclosing(chunks):
            checked = await receive_output(
                chunks,
                directory=directory,
                filename=file.filename,
                declared_type=None,
                policy=self.ctx.output_policy,
            )
        final = checked.path.rename(directory / f"{index}{checked.extension}")
        return JobOutput(
            index=index,
            node_id=file.node_id,
            kind=file.kind,
            filename=checked.display_name,
            content_type=checked.content_type,
            size=checked.size,
            path=str(final),
        )


class Progress:
    """Nodes done (executed or cached) over nodes to run, plus the running step."""

    def __init__(self, total_nodes: int) -> None:
        self.total = max(total_nodes, 1)
        self.done: set[str] = set()
        self.current: str | None = None
        self.fraction = 0.0

    def update(self, message: comfy.Message) -> dict[str, Any] | None:
        if isinstance(message, comfy.ExecutionCached):
            self.done.update(message.nodes)
        elif isinstance(message, comfy.Executing):
            if self.current is not None:
                self.done.add(self.current)
            self.current, self.fraction = message.node, 0.0
        elif isinstance(message, comfy.Progress):
            self.fraction = message.value / message.max if message.max else 0.0
            self.current = message.node or self.current
        elif isinstance(message, comfy.Executed):
            self.done.add(message.node)
        else:
            return None
        return {"progress": self.value(), "node": self.current}

    def value(self) -> float:
        running = self.fraction if self.current not in self.done else 0.0
        # Never 1 before the outputs are in: 1 means the job is done.
        return min((len(self.done) + running) / self.total, 0.99)


class Deleted(Exception):
    """The prompt was deleted from its backend's queue: no message will come."""


# Output nodes that send what they make over the socket and keep nothing.
STREAMED_OUTPUTS = frozenset({"SaveImageWebsocket"})

# How long a targeted interrupt gets to show its effect before the bridge
# concludes that the backend cannot target one.
CONFIRM_TARGETED_S = 2.0


async def _first(*awaitables: Awaitable[Any]) -> Any:
    """The result of whichever finishes first; the others are cancelled."""
    tasks = [asyncio.ensure_future(a) for a in awaitables]
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        return next(iter(done)).result()
    finally:
        for task in tasks:
            task.cancel()


async def _wait(event: asyncio.Event, timeout_s: float) -> bool:
    try:
        async with asyncio.timeout(timeout_s):
            await event.wait()
    except TimeoutError:
        return False
    return True


def cancelled(reason: str, how: str) -> dict[str, Any]:
    message = f"cancelled by {reason}" + (f": {how}" if how else "")
    return {"code": "cancelled", "reason": reason, "message": message, "stopped": how}


def _error(code: str, message: str, **details: Any) -> dict[str, Any]:
    error = {"code": code, "message": message}
    error.update({k: v for k, v in details.items() if v is not None})
    return error


def _failed(code: str, message: str, **details: Any) -> AttemptResult:
    return AttemptResult(Outcome.FAILED, error=_error(code, message, **details))
