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
    on_submitted: Callable[[Job], Awaitable[None]]
    on_progress: Callable[[Job, dict[str, Any]], None]


def new_prompt_id() -> str:
    # Chosen by the bridge, one per attempt, so an attempt can be found on its
    # backend even if the answer to the submission was lost.
    return str(uuid.uuid4())


class Attempt:
    """Runs one job once on one backend."""

    def __init__(
        self, job: Job, workflow: Workflow, backend: Backend, ctx: AttemptContext
    ) -> None:
        self.job = job
        self.workflow = workflow
        self.backend = backend
        self.ctx = ctx
        self.prompt_id = new_prompt_id()
        self.submitted = False
        self._progress = Progress(len(workflow.graph))

    async def run(self) -> AttemptResult:
        try:
            graph = await self.prepare()
            finished = await self.submit_and_follow(graph)
            return await self.conclude(finished)
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
            await client.submit(graph, prompt_id=self.prompt_id)
            self.submitted = True
            await self.ctx.on_submitted(self.job)
            messages = aiter(watch)
            while True:
                message = await self.next_message(messages)
                if isinstance(message, comfy.PromptFinished):
                    return message
                self.follow(message)

    async def next_message(
        self, messages: AsyncIterator[comfy.Message]
    ) -> comfy.Message:
        silence_s = self.ctx.timeout_silence_s
        try:
            async with asyncio.timeout(silence_s):
                message = await anext(messages, None)
        except TimeoutError:
            await self.stop()
            raise BackendTimeout(
                f"no word from the backend about job {self.job.id} for {silence_s:g} s",
                backend_id=self.backend.id,
            ) from None
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
        if finished.status is comfy.PromptStatus.SUCCESS:
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

    async def stop(self) -> None:
        """Stop this prompt on its backend, and nothing else there."""
        if not self.submitted:
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


def _error(code: str, message: str, **details: Any) -> dict[str, Any]:
    error = {"code": code, "message": message}
    error.update({k: v for k, v in details.items() if v is not None})
    return error


def _failed(code: str, message: str, **details: Any) -> AttemptResult:
    return AttemptResult(Outcome.FAILED, error=_error(code, message, **details))
