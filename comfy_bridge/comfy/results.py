"""Typed results of a backend's HTTP answers (other than history)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class Submitted:
    """A prompt the backend queued.

    `number` is its place in that backend's queue (lower runs first; not
    comparable across backends). `node_errors` lists output nodes the backend
    dropped from an otherwise valid prompt.
    """

    prompt_id: str
    number: float
    node_errors: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class UploadedFile:
    """Where an upload landed; `name` may differ from the name asked for."""

    name: str
    subfolder: str
    type: str

    @property
    def reference(self) -> str:
        """The value a LoadImage input takes to read this file."""
        return f"{self.subfolder}/{self.name}" if self.subfolder else self.name


@dataclass(frozen=True, slots=True)
class QueueState:
    """Prompt ids running and waiting on a backend, pending in run order."""

    running: list[str]
    pending: list[str]

    def __contains__(self, prompt_id: object) -> bool:
        return prompt_id in self.running or prompt_id in self.pending
