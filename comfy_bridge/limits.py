"""Per-client limits: submission rate, queued and running jobs, upload bytes.

Pure logic over a clock passed in, so tests drive time by hand. The state lives
in this process's memory: several bridge replicas would each count on their
own, so a client could go up to N times over; they would need these counters in
the shared store (or a shared cache) instead.

A limit of 0 means no limit. Going over raises `RateLimited`, whose
`retry_after_s` says when the same request would be accepted again.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from comfy_bridge.exceptions import RateLimited

Clock = Callable[[], float]
HOUR_S = 3600.0
# A queue only shrinks as jobs run: this is a hint, not a promise.
QUEUE_RETRY_S = 5.0


class TokenBucket:
    """`capacity` tokens, refilled at `rate_per_s`; one request takes one."""

    def __init__(self, rate_per_s: float, capacity: float, now: float) -> None:
        self.rate_per_s = rate_per_s
        self.capacity = capacity
        self.tokens = capacity
        self.updated = now

    def take(self, now: float) -> float:
        """Take a token; returns 0, or the seconds until one is there (none taken)."""
        elapsed = max(0.0, now - self.updated)
        self.tokens = min(self.capacity, self.tokens + elapsed * self.rate_per_s)
        self.updated = now
        if self.tokens >= 1:
            self.tokens -= 1
            return 0.0
        return (1 - self.tokens) / self.rate_per_s


class SlidingWindow:
    """Amounts recorded over the last `window_s` seconds, and their sum."""

    def __init__(self, window_s: float) -> None:
        self.window_s = window_s
        self.entries: deque[tuple[float, int]] = deque()
        self.total = 0

    def used(self, now: float) -> int:
        while self.entries and self.entries[0][0] <= now - self.window_s:
            _, amount = self.entries.popleft()
            self.total -= amount
        return self.total

    def add(self, now: float, amount: int) -> None:
        self.used(now)
        self.entries.append((now, amount))
        self.total += amount

    def wait_for(self, now: float, room: int, limit: int) -> float:
        """Seconds until `room` more fits under `limit` (0: it fits now)."""
        excess = self.used(now) + room - limit
        for at, amount in self.entries:
            if excess <= 0:
                break
            excess -= amount
            if excess <= 0:
                return at + self.window_s - now
        return 0.0 if excess <= 0 else self.window_s


@dataclass(frozen=True)
class ClientLimitSettings:
    jobs_per_minute: float = 0
    jobs_burst: int = 0
    queued_jobs: int = 0
    running_jobs: int = 0
    upload_bytes_per_hour: int = 0


class ClientLimits:
    """Every client's counters, keyed by owner; owners in `exempt` are not limited."""

    def __init__(
        self,
        settings: ClientLimitSettings,
        *,
        exempt: frozenset[str] = frozenset(),
        clock: Clock = time.monotonic,
    ) -> None:
        self.settings = settings
        self.exempt = exempt
        self.clock = clock
        self._buckets: dict[str, TokenBucket] = {}
        self._uploads: dict[str, SlidingWindow] = {}

    def limited(self, owner: str | None) -> bool:
        return owner is not None and owner not in self.exempt

    def admit_job(self, owner: str | None, queued: int) -> None:
        """Refuse a submission over the rate, or one too many waiting in the queue."""
        if not self.limited(owner):
            return
        assert owner is not None
        limit = self.settings.queued_jobs
        if limit and queued >= limit:
            raise RateLimited(
                f"you have {queued} jobs waiting, the most allowed; submit again "
                "when one has started",
                retry_after_s=QUEUE_RETRY_S,
                limit="queued_jobs",
            )
        self._take_submission(owner)

    def _take_submission(self, owner: str) -> None:
        per_minute = self.settings.jobs_per_minute
        if not per_minute:
            return
        now = self.clock()
        burst = self.settings.jobs_burst or max(1, math.ceil(per_minute))
        bucket = self._buckets.setdefault(
            owner, TokenBucket(per_minute / 60, burst, now)
        )
        wait_s = bucket.take(now)
        if wait_s:
            raise RateLimited(
                f"at most {per_minute:g} jobs a minute (bursts of {burst}); "
                f"try again in {math.ceil(wait_s)} s",
                retry_after_s=wait_s,
                limit="jobs_per_minute",
            )

    def may_start(self, owner: str | None, running: int) -> bool:
        """Whether another of this owner's jobs may go to a backend now."""
        limit = self.settings.running_jobs
        return not (self.limited(owner) and limit and running >= limit)

    def admit_upload(self, owner: str | None, size: int) -> None:
        """Refuse an upload that would go over the client's bytes for the hour."""
        limit = self.settings.upload_bytes_per_hour
        if not (self.limited(owner) and limit):
            return
        assert owner is not None
        window = self._uploads.setdefault(owner, SlidingWindow(HOUR_S))
        wait_s = window.wait_for(self.clock(), size, limit)
        if wait_s:
            raise RateLimited(
                f"at most {limit} upload bytes an hour; this {size}-byte upload "
                f"fits again in {math.ceil(wait_s)} s",
                retry_after_s=wait_s,
                limit="upload_bytes_per_hour",
            )

    def record_upload(self, owner: str | None, size: int) -> None:
        if self.limited(owner) and self.settings.upload_bytes_per_hour:
            assert owner is not None
            window = self._uploads.setdefault(owner, SlidingWindow(HOUR_S))
            window.add(self.clock(), size)
