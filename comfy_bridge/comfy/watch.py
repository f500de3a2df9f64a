"""Following one prompt to its end, over the socket or, failing that, by asking.

A watch is registered before its prompt is submitted, so it buffers every
message from the first one on. It never trusts the socket alone: after a
reconnect, or when its prompt has been silent for a while, it reads the
backend's history and queue, so a lost completion message cannot hang a job.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from types import TracebackType
from typing import Protocol

from comfy_bridge.comfy.messages import (
    Executed,
    Executing,
    ExecutionError,
    ExecutionInterrupted,
    ExecutionSuccess,
    Message,
    PromptFinished,
)
from comfy_bridge.comfy.options import WatchSettings
from comfy_bridge.comfy.outputs import (
    HistoryEntry,
    OutputFile,
    PromptError,
    PromptStatus,
)
from comfy_bridge.comfy.results import QueueState
from comfy_bridge.exceptions import BackendError, BackendUnavailable

logger = logging.getLogger(__name__)


class PromptLookup(Protocol):
    """What a watch needs to ask a backend about a prompt."""

    async def history(self, prompt_id: str) -> HistoryEntry | None: ...

    async def queue(self) -> QueueState: ...


class _Resync:
    """Queued to make the watch ask the backend instead of waiting."""


_RESYNC = _Resync()


class PromptWatch:
    """An async iterator over one prompt's messages, ending with PromptFinished.

    Use it as `async with client.watch(prompt_id) as watch:`, submit, then
    `async for message in watch`. `PromptFinished.status` is LOST when the
    backend no longer knows the prompt (it restarted, or dropped it).
    """

    def __init__(
        self,
        prompt_id: str,
        *,
        lookup: PromptLookup,
        settings: WatchSettings,
        on_close: Callable[[PromptWatch], None],
        submitted: bool = False,
    ) -> None:
        self.prompt_id = prompt_id
        self._lookup = lookup
        self._settings = settings
        self._on_close = on_close
        self._submitted = submitted
        self._items: asyncio.Queue[Message | _Resync] = asyncio.Queue()
        self._closed = False
        self._completion_seen = False
        self._resolve_next = False
        self._outcome: tuple[PromptStatus, PromptError | None] | None = None
        self._files: list[OutputFile] = []
        self._output_nodes: set[str] = set()
        self._last_contact = asyncio.get_running_loop().time()

    def deliver(self, message: Message) -> None:
        """Hand the watch a message routed to its prompt (never blocks)."""
        if not self._closed:
            self._items.put_nowait(message)

    def resync(self) -> None:
        """Make the watch check the backend now (after a reconnect)."""
        if not self._closed:
            self._items.put_nowait(_RESYNC)

    def mark_submitted(self) -> None:
        """From now on, a prompt unknown to the backend counts as lost."""
        self._submitted = True

    def close(self) -> None:
        """Stop watching; an iteration waiting for a message ends."""
        if not self._closed:
            self._closed = True
            self._items.put_nowait(_RESYNC)
            self._on_close(self)

    async def outcome(self) -> PromptFinished:
        """Consume the remaining messages and return how the prompt ended."""
        async for message in self:
            if isinstance(message, PromptFinished):
                return message
        raise BackendUnavailable(
            f"prompt {self.prompt_id}: watch closed before the prompt ended"
        )

    async def __aenter__(self) -> PromptWatch:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __aiter__(self) -> PromptWatch:
        return self

    async def __anext__(self) -> Message:
        if self._closed:
            raise StopAsyncIteration
        if self._resolve_next:
            self._resolve_next = False
            if finished := await self._try_resolve():
                return self._finish(finished)
        while True:
            item = await self._next_item()
            if self._closed:
                raise StopAsyncIteration
            if not isinstance(item, _Resync):
                self._note(item)
                return item
            if finished := await self._try_resolve():
                return self._finish(finished)

    async def _next_item(self) -> Message | _Resync:
        try:
            async with asyncio.timeout(self._settings.silence_s):
                return await self._items.get()
        except TimeoutError:
            return _RESYNC

    def _note(self, message: Message) -> None:
        self._last_contact = asyncio.get_running_loop().time()
        if isinstance(message, Executed):
            self._files.extend(message.files)
            self._output_nodes.add(message.node)
        elif isinstance(message, ExecutionSuccess):
            self._outcome = (PromptStatus.SUCCESS, None)
        elif isinstance(message, ExecutionError | ExecutionInterrupted):
            status = (
                PromptStatus.ERROR
                if isinstance(message, ExecutionError)
                else PromptStatus.INTERRUPTED
            )
            self._outcome = (status, message.error)
        elif isinstance(message, Executing) and message.node is None:
            # The history entry is written before this message is sent.
            self._completion_seen = True
            self._resolve_next = True

    def _finish(self, finished: PromptFinished) -> PromptFinished:
        self.close()
        return finished

    async def _try_resolve(self) -> PromptFinished | None:
        if not self._submitted:
            return None
        loop = asyncio.get_running_loop()
        try:
            finished = await self._resolve()
        except BackendError as exc:
            silent_s = loop.time() - self._last_contact
            if silent_s > self._settings.unreachable_s:
                raise
            logger.debug("prompt %s: check failed: %s", self.prompt_id, exc.detail)
            return None
        self._last_contact = loop.time()
        return finished

    async def _resolve(self) -> PromptFinished | None:
        """The prompt's end as the backend knows it; None while it is pending."""
        entry = await self._lookup.history(self.prompt_id)
        if entry is None and not self._completion_seen:
            if self.prompt_id in await self._lookup.queue():
                return None
            # It may have ended between the two reads.
            entry = await self._lookup.history(self.prompt_id)
        if entry is not None:
            return PromptFinished(
                self.prompt_id,
                entry.status,
                entry.files,
                entry.error,
                frozenset(entry.node_outputs),
            )
        if self._outcome is not None:
            status, error = self._outcome
            return PromptFinished(
                self.prompt_id,
                status,
                tuple(self._files),
                error,
                frozenset(self._output_nodes),
            )
        logger.warning("prompt %s: neither queued nor in history", self.prompt_id)
        return PromptFinished(self.prompt_id, PromptStatus.LOST)
