"""A job: one run of a workflow with a client's input values, and its legal states."""

from __future__ import annotations

import enum
import secrets
import time
from dataclasses import dataclass, field
from typing import Any

from comfy_bridge.exceptions import JobStateConflict
from comfy_bridge.redaction import redact_values


class JobStatus(enum.StrEnum):
    QUEUED = "queued"
    DISPATCHING = "dispatching"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def terminal(self) -> bool:
        return self in TERMINAL


TERMINAL = frozenset({JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED})

# A backend's failure sends a dispatching or running job back to the queue.
TRANSITIONS: dict[JobStatus, frozenset[JobStatus]] = {
    JobStatus.QUEUED: frozenset(
        {JobStatus.DISPATCHING, JobStatus.FAILED, JobStatus.CANCELLED}
    ),
    JobStatus.DISPATCHING: frozenset(
        {JobStatus.RUNNING, JobStatus.QUEUED, JobStatus.FAILED, JobStatus.CANCELLED}
    ),
    JobStatus.RUNNING: frozenset(
        {JobStatus.SUCCEEDED, JobStatus.QUEUED, JobStatus.FAILED, JobStatus.CANCELLED}
    ),
    JobStatus.SUCCEEDED: frozenset(),
    JobStatus.FAILED: frozenset(),
    JobStatus.CANCELLED: frozenset(),
}


def now_ms() -> int:
    return int(time.time() * 1000)


def new_job_id() -> str:
    # Unguessable: a job id is the only thing standing between a client and a job.
    return secrets.token_urlsafe(16)


@dataclass
class JobOutput:
    """A file a job produced, checked and stored by the bridge."""

    index: int
    node_id: str
    kind: str
    filename: str
    content_type: str
    size: int
    path: str
    # Set once retention deleted the file; the record stays.
    expired_at_ms: int | None = None

    def public(self, job_id: str) -> dict[str, Any]:
        return {
            "index": self.index,
            "node_id": self.node_id,
            "kind": self.kind,
            "filename": self.filename,
            "content_type": self.content_type,
            "size": self.size,
            "url": f"/v1/jobs/{job_id}/outputs/{self.index}",
            "expired_at_ms": self.expired_at_ms,
        }


@dataclass
class Job:
    workflow: str
    inputs: dict[str, Any]
    id: str = field(default_factory=new_job_id)
    owner: str | None = None
    status: JobStatus = JobStatus.QUEUED
    priority: int = 0
    progress: float = 0.0
    error: dict[str, Any] | None = None
    outputs: list[JobOutput] = field(default_factory=list)
    backend_id: str | None = None
    prompt_id: str | None = None
    attempts: int = 0
    created_at_ms: int = field(default_factory=now_ms)
    updated_at_ms: int = field(default_factory=now_ms)
    finished_at_ms: int | None = None
    lease_s: float | None = None
    seen_at_ms: int = field(default_factory=now_ms)

    def move_to(self, status: JobStatus) -> JobStatus:
        """Change state if the move is legal; returns the old state."""
        old = self.status
        if status not in TRANSITIONS[old]:
            raise JobStateConflict(
                f"job {self.id} cannot go from {old} to {status}", job_id=self.id
            )
        self.status = status
        self.updated_at_ms = now_ms()
        if status.terminal:
            self.finished_at_ms = self.updated_at_ms
        return old

    def advance(self, progress: float) -> bool:
        """Progress only grows; returns whether it did."""
        progress = min(max(progress, 0.0), 1.0)
        if progress <= self.progress:
            return False
        self.progress = progress
        return True

    def lease_expired(self, now: int) -> bool:
        if self.lease_s is None or self.status.terminal:
            return False
        return now - self.seen_at_ms > self.lease_s * 1000

    def public(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "workflow": self.workflow,
            "status": str(self.status),
            "progress": round(self.progress, 4),
            "priority": self.priority,
            "inputs": self.inputs,
            # A backend's message may name its address or its files.
            "error": redact_values(self.error),
            "outputs": [output.public(self.id) for output in self.outputs],
            "attempts": self.attempts,
            "created_at_ms": self.created_at_ms,
            "updated_at_ms": self.updated_at_ms,
            "finished_at_ms": self.finished_at_ms,
            "lease_s": self.lease_s,
        }
