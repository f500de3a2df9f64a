"""The simulator's own queue: pending prompts by number, and the running one."""

from __future__ import annotations

import asyncio
import heapq
import itertools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


@dataclass(order=True)
class QueueItem:
    """One submitted prompt; `row()` is the 5-tuple /queue and history show."""

    number: float
    sequence: int
    prompt_id: str = field(compare=False)
    prompt: dict[str, Any] = field(compare=False)
    extra_data: dict[str, Any] = field(compare=False)
    outputs: list[str] = field(compare=False)

    @property
    def client_id(self) -> str | None:
        value = self.extra_data.get("client_id")
        return str(value) if value else None

    def row(self) -> list[Any]:
        return [self.number, self.prompt_id, self.prompt, self.extra_data, self.outputs]


class PromptQueue:
    """Pending prompts (lowest number first) and the one the worker runs.

    Every change calls `on_change`, which broadcasts the `status` message.
    """

    def __init__(self, on_change: Callable[[], None]) -> None:
        self.pending: list[QueueItem] = []
        self.running: QueueItem | None = None
        self.counter = 0
        self.sequence = itertools.count()
        self.on_change = on_change
        self.wakeup = asyncio.Event()

    def next_number(self, explicit: Any, front: bool) -> float | int:
        """ComfyUI's numbering: explicit wins, else the counter (negated for front)."""
        if explicit is not None:
            return float(explicit)
        number = self.counter
        self.counter += 1
        return -number if front else number

    def put(
        self,
        number: float,
        prompt_id: str,
        prompt: dict[str, Any],
        extra_data: dict[str, Any],
        outputs: list[str],
    ) -> None:
        item = QueueItem(
            number, next(self.sequence), prompt_id, prompt, extra_data, outputs
        )
        heapq.heappush(self.pending, item)
        self.wakeup.set()
        self.on_change()

    async def get(self) -> QueueItem:
        while not self.pending:
            self.wakeup.clear()
            await self.wakeup.wait()
        self.running = heapq.heappop(self.pending)
        self.on_change()
        return self.running

    def done(self) -> None:
        self.running = None
        self.on_change()

    def remaining(self) -> int:
        return len(self.pending) + (self.running is not None)

    def delete(self, prompt_ids: list[str]) -> None:
        """Drop pending prompts; the running one is untouched."""
        wanted = {str(prompt_id) for prompt_id in prompt_ids}
        kept = [item for item in self.pending if item.prompt_id not in wanted]
        if len(kept) != len(self.pending):
            self.pending = kept
            heapq.heapify(self.pending)
            self.on_change()

    def clear(self) -> None:
        self.pending = []
        self.on_change()

    def snapshot(self) -> dict[str, list[list[Any]]]:
        running = [self.running.row()] if self.running else []
        return {
            "queue_running": running,
            "queue_pending": [item.row() for item in self.pending],
        }
