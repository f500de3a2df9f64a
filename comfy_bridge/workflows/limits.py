"""An operator's limits on what one job of a workflow may ask for."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from comfy_bridge.exceptions import InputInvalid
from comfy_bridge.workflows.model import Workflow


@dataclass(frozen=True)
class WorkflowLimits:
    """Largest batch and picture (width × height) one job may make."""

    max_batch_size: int | None = None
    max_pixels: int | None = None


def check_limits(
    workflow: Workflow, values: Mapping[str, Any], limits: WorkflowLimits
) -> None:
    """Refuse values whose batch or picture is larger than the limits allow.

    Reads every node's `batch_size`, `width` and `height` as the job would set
    them, so a limit holds whichever of them the client may change.
    """
    if limits.max_batch_size is None and limits.max_pixels is None:
        return
    job = _JobView(workflow, values)
    for node_id in workflow.graph:
        batch = job.value(node_id, "batch_size")
        if _over(batch, limits.max_batch_size):
            raise InputInvalid(
                f"input {job.called(node_id, 'batch_size')}: expected a batch of at "
                f"most {limits.max_batch_size}, got {batch}",
                input=job.exposed(node_id, "batch_size"),
            )
        width, height = job.value(node_id, "width"), job.value(node_id, "height")
        pixels = width * height if _ints(width, height) else None
        if _over(pixels, limits.max_pixels):
            raise InputInvalid(
                f"inputs {job.called(node_id, 'width')} and "
                f"{job.called(node_id, 'height')}: expected at most "
                f"{limits.max_pixels} pixels, got {width}×{height} = {pixels}",
                input=job.exposed(node_id, "width"),
            )


class _JobView:
    """A node input's value as this job sets it, and what the client calls it."""

    def __init__(self, workflow: Workflow, values: Mapping[str, Any]) -> None:
        self.graph = workflow.graph
        self.values = values
        self.names = {(s.node_id, s.input): s.name for s in workflow.inputs}

    def exposed(self, node_id: str, name: str) -> str | None:
        return self.names.get((node_id, name))

    def value(self, node_id: str, name: str) -> Any:
        exposed = self.exposed(node_id, name)
        if exposed is not None and exposed in self.values:
            return self.values[exposed]
        return self.graph[node_id]["inputs"].get(name)

    def called(self, node_id: str, name: str) -> str:
        return repr(self.exposed(node_id, name) or f"{node_id}/{name}")


def _ints(*values: Any) -> bool:
    return all(isinstance(v, int) and not isinstance(v, bool) for v in values)


def _over(value: Any, limit: int | None) -> bool:
    return limit is not None and _ints(value) and value > limit
