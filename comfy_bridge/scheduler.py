"""The bridge's queue and the placement policy: pure logic, no I/O.

Jobs wait here, not in a backend's queue (late binding): a job is bound to a
backend only when that backend has a free slot, so a queued job can still be
cancelled for free and go to whichever backend frees first.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Protocol, TypeVar


class Placeable(Protocol):
    @property
    def id(self) -> str: ...

    @property
    def accepts_jobs(self) -> bool: ...

    @property
    def in_flight(self) -> set[str]: ...

    @property
    def queue_remaining(self) -> int: ...


B = TypeVar("B", bound=Placeable)


@dataclass(order=True)
class _Entry:
    priority: int
    sequence: int
    job_id: str = field(compare=False)


class JobQueue:
    """Queued job ids: higher priority first, then first come, first served."""

    def __init__(self) -> None:
        self._heap: list[_Entry] = []
        self._queued: set[str] = set()
        self._sequence = itertools.count()

    def __len__(self) -> int:
        return len(self._queued)

    def __contains__(self, job_id: object) -> bool:
        return job_id in self._queued

    def push(self, job_id: str, priority: int = 0) -> None:
        if job_id in self._queued:
            return
        self._queued.add(job_id)
        heapq.heappush(self._heap, _Entry(-priority, next(self._sequence), job_id))

    def remove(self, job_id: str) -> bool:
        """Forget a job; its heap entry is skipped when it comes up."""
        if job_id not in self._queued:
            return False
        self._queued.discard(job_id)
        return True

    def pop(self) -> str | None:
        while self._heap:
            entry = heapq.heappop(self._heap)
            if entry.job_id in self._queued:
                self._queued.discard(entry.job_id)
                return entry.job_id
        return None

    def position(self, job_id: str) -> int | None:
        if job_id not in self._queued:
            return None
        ahead = [e for e in self._heap if e.job_id in self._queued]
        return sorted(ahead).index(next(e for e in ahead if e.job_id == job_id))


def choose_backend(backends: Iterable[B]) -> B | None:
    """The backend with a free slot and the least work ahead of a new job."""
    eligible = [backend for backend in backends if backend.accepts_jobs]
    if not eligible:
        return None
    return min(eligible, key=lambda b: (len(b.in_flight), b.queue_remaining, b.id))
