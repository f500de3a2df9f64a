"""The bridge's queue and the placement policy: pure logic, no I/O.

Jobs wait here, not in a backend's queue (late binding): a job is bound to a
backend only when that backend has a free slot, so a queued job can still be
cancelled for free and go to whichever backend frees first.

Placement (`Placement.plan`) walks the queue in its fair order and gives each job,
on paper, to the eligible backend expected to finish it soonest (its work in hand,
the job's measured run time there, a checkpoint switch if it needs one). Only the
jobs that land on a backend with a free slot are bound now; the others wait for
the backend they were meant for, so a long queue still fills slow backends while
the tail of it waits for fast ones. The two baseline policies (`least_queue`,
`round_robin`) exist for the scheduling benchmark: they bind every job at once,
as load balancers in front of ComfyUI do.
"""

from __future__ import annotations

import bisect
import enum
import itertools
import math
import statistics
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

from comfy_bridge.workflows import Requirements

Model = tuple[str, str]

# Weight of the newest run in a moving average of run times.
RUN_TIME_WEIGHT = 0.3
# A job running longer than expected is assumed to need this share of it still.
OVERRUN_SHARE = 0.1
# How many queued jobs one planning pass looks at, so a pass stays cheap.
PLAN_SCAN_LIMIT = 2000


class Policy(enum.StrEnum):
    OURS = "ours"
    LEAST_QUEUE = "least_queue"
    ROUND_ROBIN = "round_robin"


@dataclass(frozen=True)
class Missing:
    """What one backend lacks to run a graph."""

    node_classes: tuple[str, ...] = ()
    models: tuple[Model, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.node_classes or self.models)

    def __len__(self) -> int:
        return len(self.node_classes) + len(self.models)

    def public(self) -> dict[str, list[str]]:
        return {
            "node_classes": list(self.node_classes),
            "models": [f"{folder}/{name}" for folder, name in self.models],
        }

    def describe(self) -> str:
        return ", ".join([*self.node_classes, *(f"{f}/{n}" for f, n in self.models)])


@dataclass(frozen=True)
class Capabilities:
    """A backend's node classes and model files, as its object_info lists them."""

    node_classes: frozenset[str] = frozenset()
    models: frozenset[Model] = frozenset()
    known: bool = False

    def missing(self, needs: Requirements) -> Missing:
        return Missing(
            tuple(sorted(needs.node_classes - self.node_classes)),
            tuple(sorted(needs.models - self.models)),
        )

    def runs(self, needs: Requirements) -> bool:
        return needs.node_classes <= self.node_classes and needs.models <= self.models


def checkpoint_of(needs: Requirements) -> str | None:
    """The checkpoint a graph loads, if it loads one."""
    names = sorted(name for folder, name in needs.models if folder == "checkpoints")
    return names[0] if names else None


@dataclass(frozen=True)
class QueuedJob:
    """What placement needs to know of one waiting job."""

    job_id: str
    workflow: str
    needs: Requirements
    client: str | None = None
    priority: int = 0
    queued_at_s: float = 0.0

    @property
    def checkpoint(self) -> str | None:
        return checkpoint_of(self.needs)


@dataclass(order=True)
class _Entry:
    rank: tuple[int, int, int]
    job: QueuedJob = field(compare=False)


class JobQueue:
    """Queued jobs: higher priority first, then clients interleaved fairly.

    Each job gets a tag one past its client's previous one, but never below the
    tag at the head of the queue: a client's burst takes tags 1..100 while a
    newcomer's single job takes the head's tag, so it runs next but one.
    """

    def __init__(self) -> None:
        self._entries: list[_Entry] = []
        self._by_id: dict[str, _Entry] = {}
        self._last_tag: dict[str | None, int] = {}
        self._per_client: Counter[str | None] = Counter()
        self._clock = 0
        self._sequence = itertools.count()

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, job_id: object) -> bool:
        return job_id in self._by_id

    def push(self, job: QueuedJob, *, again: bool = False) -> None:
        """Queue a job; `again` (a retry) puts it at the head of its priority."""
        if job.job_id in self._by_id:
            return
        head = self._virtual_now()
        if again:
            tag = head
        else:
            tag = max(self._last_tag.get(job.client, head - 1) + 1, head)
            self._last_tag[job.client] = tag
        entry = _Entry((-job.priority, tag, next(self._sequence)), job)
        bisect.insort(self._entries, entry)
        self._by_id[job.job_id] = entry
        self._per_client[job.client] += 1

    def remove(self, job_id: str) -> QueuedJob | None:
        """Take a job out (bound or cancelled); None if it was not queued."""
        entry = self._by_id.pop(job_id, None)
        if entry is None:
            return None
        self._entries.pop(bisect.bisect_left(self._entries, entry))
        self._clock = max(self._clock, entry.rank[1])
        client = entry.job.client
        self._per_client[client] -= 1
        if self._per_client[client] <= 0:
            del self._per_client[client]
            self._last_tag.pop(client, None)
        return entry.job

    def pop(self) -> QueuedJob | None:
        if not self._entries:
            return None
        return self.remove(self._entries[0].job.job_id)

    def position(self, job_id: str) -> int | None:
        entry = self._by_id.get(job_id)
        if entry is None:
            return None
        return bisect.bisect_left(self._entries, entry)

    def ordered(self, limit: int = PLAN_SCAN_LIMIT) -> list[QueuedJob]:
        return [entry.job for entry in self._entries[:limit]]

    def _virtual_now(self) -> int:
        return self._entries[0].rank[1] if self._entries else self._clock


class RunTimes:
    """Moving averages of a workflow's run time on each backend.

    A pair never measured is estimated from the workflow's runs elsewhere (or
    of any workflow, or else the prior) scaled by the backend's measured slowness
    relative to the others.
    Kept in memory: a restarted bridge learns them again within a few jobs.
    """

    def __init__(self, prior_s: float, weight: float = RUN_TIME_WEIGHT) -> None:
        self.prior_s = prior_s
        self.weight = weight
        self._average: dict[str, dict[str, float]] = {}

    def record(self, workflow: str, backend_id: str, seconds: float) -> None:
        runs = self._average.setdefault(workflow, {})
        old = runs.get(backend_id)
        runs[backend_id] = (
            seconds if old is None else old + self.weight * (seconds - old)
        )

    def measured(self, workflow: str, backend_id: str) -> float | None:
        return self._average.get(workflow, {}).get(backend_id)

    def estimate(self, workflow: str, backend_id: str) -> float:
        known = self.measured(workflow, backend_id)
        if known is not None:
            return known
        runs = self._average.get(workflow) or {
            # Never run anywhere: any measured workflow says more than the prior.
            b: s
            for other in self._average.values()
            for b, s in other.items()
        }
        base = (
            statistics.fmean(s / self.slowness(b) for b, s in runs.items())
            if runs
            else self.prior_s
        )
        return base * self.slowness(backend_id)

    def slowness(self, backend_id: str) -> float:
        """Geometric mean of this backend's run times over the workflows' means."""
        ratios = [
            runs[backend_id] / statistics.fmean(runs.values())
            for runs in self._average.values()
            if backend_id in runs and len(runs) > 1
        ]
        if not ratios:
            return 1.0
        return math.exp(statistics.fmean(math.log(r) for r in ratios))


def remaining_s(
    bound: Sequence[tuple[float, float]], idle_since_s: float, now: float
) -> float:
    """Expected seconds of work a backend has in hand.

    `bound` holds (estimate, bound at) of its jobs; it runs them one at a time,
    so the oldest started when it was bound or when the backend last went idle.
    """
    if not bound:
        return 0.0
    ordered = sorted(bound, key=lambda item: item[1])
    estimate, bound_at = ordered[0]
    elapsed = now - max(bound_at, idle_since_s)
    head = max(estimate - elapsed, estimate * OVERRUN_SHARE)
    return head + sum(estimate for estimate, _ in ordered[1:])


@dataclass(frozen=True)
class BackendView:
    """A backend that is up, as placement sees it."""

    id: str
    free_slots: int
    capabilities: Capabilities
    busy_s: float = 0.0
    in_flight: int = 0
    checkpoint: str | None = None
    degraded: bool = False


@dataclass
class Plan:
    """Jobs to bind now, and jobs that waited too long for any backend."""

    bindings: list[tuple[str, str]] = field(default_factory=list)
    stranded: list[str] = field(default_factory=list)


class Placement:
    """Decides which queued job goes to which backend; keeps no I/O."""

    def __init__(
        self,
        runtimes: RunTimes,
        *,
        policy: Policy = Policy.OURS,
        switch_s: float = 5.0,
        wait_limit_s: float = 600.0,
    ) -> None:
        self.runtimes = runtimes
        self.policy = policy
        self.switch_s = switch_s
        self.wait_limit_s = wait_limit_s
        self._turn = 0

    def plan(
        self, queue: Sequence[QueuedJob], backends: Sequence[BackendView], now: float
    ) -> Plan:
        plan = Plan()
        runnable = []
        for job in queue:
            eligible = [b for b in backends if b.capabilities.runs(job.needs)]
            if eligible:
                runnable.append((job, eligible))
            elif now - job.queued_at_s > self.wait_limit_s:
                plan.stranded.append(job.job_id)
        if self.policy is Policy.OURS:
            plan.bindings = self._soonest_finish(runnable, backends)
        elif self.policy is Policy.LEAST_QUEUE:
            plan.bindings = _least_queue(runnable)
        else:
            plan.bindings = self._round_robin(runnable)
        return plan

    def _soonest_finish(
        self,
        runnable: list[tuple[QueuedJob, list[BackendView]]],
        backends: Sequence[BackendView],
    ) -> list[tuple[str, str]]:
        free = {b.id: b.free_slots for b in backends}
        busy = {b.id: b.busy_s for b in backends}
        loaded = {b.id: b.checkpoint for b in backends}
        bindings = []
        for job, eligible in runnable:
            if not any(free.values()):
                break

            # A degraded backend is used last: only while no sound one has room.
            sound_free = any(free[b.id] > 0 and not b.degraded for b in eligible)

            def finish(
                b: BackendView, job: QueuedJob = job, sound_free: bool = sound_free
            ) -> tuple[bool, float, bool, str]:
                switch = job.checkpoint is not None and loaded[b.id] != job.checkpoint
                # Only evicting another checkpoint costs time the job would not
                # spend anyway: an empty backend loads its first one regardless,
                # so leaving it idle to wait for a warm one gains nothing.
                evicts = switch and loaded[b.id] is not None
                run_s = self.runtimes.estimate(job.workflow, b.id)
                finish_s = busy[b.id] + run_s + self.switch_s * evicts
                return b.degraded and sound_free, finish_s, switch, b.id

            best = min(eligible, key=finish)
            busy[best.id] = finish(best)[1]
            loaded[best.id] = job.checkpoint or loaded[best.id]
            if free[best.id] > 0:
                free[best.id] -= 1
                bindings.append((job.job_id, best.id))
        return bindings

    def _round_robin(
        self, runnable: list[tuple[QueuedJob, list[BackendView]]]
    ) -> list[tuple[str, str]]:
        bindings = []
        for job, eligible in runnable:
            ordered = sorted(eligible, key=lambda b: b.id)
            bindings.append((job.job_id, ordered[self._turn % len(ordered)].id))
            self._turn += 1
        return bindings


def _least_queue(
    runnable: list[tuple[QueuedJob, list[BackendView]]],
) -> list[tuple[str, str]]:
    queued: Counter[str] = Counter()
    bindings = []
    for job, eligible in runnable:
        best = min(eligible, key=lambda b: (b.in_flight + queued[b.id], b.id))
        queued[best.id] += 1
        bindings.append((job.job_id, best.id))
    return bindings
