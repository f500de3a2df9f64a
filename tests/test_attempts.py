"""The races of stopping one prompt on a shared backend, played out exactly.

A real backend cannot be made to lose these races on cue, so a stand-in client
plays the backend's side of each one, step by step.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from types import SimpleNamespace, TracebackType
from typing import Any

from comfy_bridge import comfy
from comfy_bridge.attempts import Attempt, AttemptContext, Outcome
from comfy_bridge.comfy import PromptFinished, PromptStatus
from comfy_bridge.jobs import Job
from comfy_bridge.safety import SafetyPolicy
from comfy_bridge.workflows import build_workflow

GRAPH = {
    "1": {"class_type": "EmptyImage", "inputs": {"width": 8, "height": 8}},
    "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0]}},
}


class Watch:
    def __init__(self) -> None:
        self.messages: asyncio.Queue[comfy.Message] = asyncio.Queue()

    async def __aenter__(self) -> Watch:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        return None

    def __aiter__(self) -> AsyncIterator[comfy.Message]:
        return self

    async def __anext__(self) -> comfy.Message:
        return await self.messages.get()


class Backend:
    """Plays a backend; `running` and `pending` are what /queue reads."""

    def __init__(self) -> None:
        self.watch = Watch()
        self.calls: list[tuple[str, Any]] = []
        self.running: list[str] = []
        self.pending: list[str] = []
        self.history_of: dict[str, object] = {}
        self.on_delete: Any = None
        self.on_interrupt: Any = None
        self.on_queue: Any = None
        self.submitted = asyncio.Event()

    def watch_prompt(self, prompt_id: str) -> Watch:
        return self.watch

    async def submit(self, graph: dict[str, Any], *, prompt_id: str) -> None:
        self.calls.append(("submit", prompt_id))
        self.pending.append(prompt_id)
        self.submitted.set()

    async def delete_pending(self, prompt_ids: list[str]) -> None:
        self.calls.append(("delete", list(prompt_ids)))
        if self.on_delete:
            self.on_delete()
        else:
            self.pending = [p for p in self.pending if p not in prompt_ids]

    async def queue(self) -> comfy.QueueState:
        self.calls.append(("queue", None))
        if self.on_queue:
            self.on_queue()
        return comfy.QueueState(list(self.running), list(self.pending))

    async def interrupt(self, prompt_id: str) -> None:
        self.calls.append(("interrupt", prompt_id))
        if self.on_interrupt:
            self.on_interrupt(prompt_id)

    async def interrupt_if_running(self, prompt_id: str) -> bool:
        if (await self.queue()).running != [prompt_id]:
            return False
        self.calls.append(("bare interrupt", None))
        self.finish(prompt_id, PromptStatus.INTERRUPTED)
        return True

    async def history(self, prompt_id: str) -> object | None:
        return self.history_of.get(prompt_id)

    def finish(self, prompt_id: str, status: PromptStatus) -> None:
        self.running = [p for p in self.running if p != prompt_id]
        self.history_of[prompt_id] = object()
        self.watch.messages.put_nowait(PromptFinished(prompt_id, status))

    def start_next(self) -> None:
        self.running, self.pending = self.pending[:1], self.pending[1:]


def attempt_on(backend: Backend, tmp_path: Path) -> Attempt:
    client = SimpleNamespace(
        watch=backend.watch_prompt,
        submit=backend.submit,
        delete_pending=backend.delete_pending,
        queue=backend.queue,
        interrupt=backend.interrupt,
        interrupt_if_running=backend.interrupt_if_running,
        history=backend.history,
    )

    async def on_submitted(job: Job) -> None:
        return None

    async def no_upload(upload_id: str) -> Path:
        raise AssertionError("no uploads here")

    ctx = AttemptContext(
        upload_path=no_upload,
        outputs_dir=tmp_path,
        output_policy=SafetyPolicy(),
        timeout_silence_s=30,
        timeout_stop_s=10,
        on_submitted=on_submitted,
        on_progress=lambda job, event: None,
    )
    workflow = build_workflow("w", GRAPH)
    job = Job(workflow="w", inputs={})
    fake = SimpleNamespace(id="b-test", client=client)
    return Attempt(job, workflow, fake, ctx)  # type: ignore[arg-type]


async def started(attempt: Attempt, backend: Backend) -> asyncio.Task[Any]:
    task = asyncio.create_task(attempt.run())
    await backend.submitted.wait()
    return task


async def test_a_pending_prompt_that_starts_as_it_is_deleted_is_interrupted(
    tmp_path: Path,
) -> None:
    backend = Backend()
    attempt = attempt_on(backend, tmp_path)
    task = await started(attempt, backend)
    backend.on_delete = backend.start_next
    backend.on_interrupt = lambda p: backend.finish(p, PromptStatus.INTERRUPTED)

    assert await attempt.cancel("client")
    result = await task

    assert result.outcome is Outcome.CANCELLED
    assert result.outputs == []
    assert result.error and result.error["stopped"] == "interrupted on its backend"
    assert ("interrupt", attempt.prompt_id) in backend.calls


async def test_a_prompt_that_ended_just_before_the_stop_stops_nothing_else(
    tmp_path: Path,
) -> None:
    backend = Backend()
    attempt = attempt_on(backend, tmp_path)
    task = await started(attempt, backend)
    backend.start_next()
    # It ends, and the next prompt (someone else's) starts, before our delete.
    backend.pending.append("someone-else")
    backend.finish(attempt.prompt_id, PromptStatus.SUCCESS)
    backend.start_next()

    assert await attempt.cancel("client")
    result = await task

    assert result.outcome is Outcome.CANCELLED
    assert result.outputs == []
    assert result.error and "ended before the stop" in result.error["stopped"]
    assert not [call for call in backend.calls if "interrupt" in call[0]]


async def test_no_blind_stop_when_ours_ended_on_a_backend_that_cannot_target(
    tmp_path: Path,
) -> None:
    backend = Backend()
    attempt = attempt_on(backend, tmp_path)
    task = await started(attempt, backend)
    backend.start_next()
    backend.pending.append("someone-else")

    def ends_instead(prompt_id: str) -> None:
        # The targeted interrupt is ignored; ours ends and the next starts.
        backend.finish(prompt_id, PromptStatus.SUCCESS)
        backend.start_next()

    backend.on_interrupt = ends_instead

    assert await attempt.cancel("client")
    result = await task

    assert result.outcome is Outcome.CANCELLED
    assert ("bare interrupt", None) not in backend.calls
    assert backend.running == ["someone-else"]


async def test_a_deleted_prompt_ends_the_attempt_without_any_message(
    tmp_path: Path,
) -> None:
    backend = Backend()
    attempt = attempt_on(backend, tmp_path)
    task = await started(attempt, backend)

    assert await attempt.cancel("lease")
    result = await task

    assert result.outcome is Outcome.CANCELLED
    assert result.error and result.error["reason"] == "lease"
    assert result.error["stopped"] == "deleted from its backend's queue"
    assert [c[0] for c in backend.calls] == ["submit", "delete", "queue"]


async def test_an_interrupt_nobody_asked_for_runs_the_job_again(
    tmp_path: Path,
) -> None:
    backend = Backend()
    attempt = attempt_on(backend, tmp_path)
    task = await started(attempt, backend)

    backend.finish(attempt.prompt_id, PromptStatus.INTERRUPTED)
    result = await task

    assert result.outcome is Outcome.RETRY
    assert result.error and result.error["code"] == "interrupted"
