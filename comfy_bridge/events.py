"""Per-job event fan-out to any number of subscribers (WebSockets, waits, adapters).

Inside one process for now; the interface (publish, subscribe) is all a caller sees,
so events can later travel between replicas without changing them.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import AsyncIterator
from typing import Any

Event = dict[str, Any]

# A subscriber that falls this far behind loses progress events, never the end.
QUEUE_LIMIT = 256


class Subscription:
    """One subscriber's view of one job's events, in order."""

    def __init__(self, hub: EventHub, job_id: str) -> None:
        self.job_id = job_id
        self._hub = hub
        self._queue: asyncio.Queue[Event] = asyncio.Queue()

    def put(self, event: Event) -> None:
        if self._queue.qsize() >= QUEUE_LIMIT and event.get("type") == "progress":
            return
        self._queue.put_nowait(event)

    async def get(self) -> Event:
        return await self._queue.get()

    def __aiter__(self) -> AsyncIterator[Event]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[Event]:
        while True:
            yield await self._queue.get()

    def close(self) -> None:
        self._hub.unsubscribe(self)

    def __enter__(self) -> Subscription:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()


class EventHub:
    """Routes each job's events to that job's subscribers and to global listeners."""

    def __init__(self) -> None:
        self._subscribers: defaultdict[str, set[Subscription]] = defaultdict(set)
        self._listeners: set[asyncio.Queue[tuple[str, Event]]] = set()

    def publish(self, job_id: str, event: Event) -> None:
        for subscription in tuple(self._subscribers.get(job_id, ())):
            subscription.put(event)
        for listener in tuple(self._listeners):
            listener.put_nowait((job_id, event))

    def subscribe(self, job_id: str) -> Subscription:
        subscription = Subscription(self, job_id)
        self._subscribers[job_id].add(subscription)
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        subscribers = self._subscribers.get(subscription.job_id)
        if subscribers is None:
            return
        subscribers.discard(subscription)
        if not subscribers:
            del self._subscribers[subscription.job_id]

    def subscribers(self, job_id: str) -> int:
        return len(self._subscribers.get(job_id, ()))

    def listen(self) -> asyncio.Queue[tuple[str, Event]]:
        """Every job's events, for adapters that follow many jobs at once."""
        queue: asyncio.Queue[tuple[str, Event]] = asyncio.Queue()
        self._listeners.add(queue)
        return queue

    def unlisten(self, queue: asyncio.Queue[tuple[str, Event]]) -> None:
        self._listeners.discard(queue)
