"""Workflows: what clients can run, and the admin routes that register them."""

from __future__ import annotations

import base64
import binascii
import copy
from typing import Any

import magic
from fastapi import APIRouter, Response, status

from comfy_bridge.api.deps import AdminDep, BridgeDep, ClientDep
from comfy_bridge.api.v1.schemas import (
    InputPublic,
    MissingPublic,
    WorkflowBackendPublic,
    WorkflowCreate,
    WorkflowPublic,
    WorkflowsPublic,
)
from comfy_bridge.exceptions import UnsafeFile, WorkflowInvalid, WorkflowNotFound
from comfy_bridge.registry import WorkflowOptions
from comfy_bridge.workflows import Workflow, strip_bridge_meta

THUMBNAIL_TYPES = {"image/png", "image/jpeg", "image/webp", "image/gif"}

router = APIRouter(prefix="/v1/workflows", tags=["workflows"])


def workflow_public(bridge: BridgeDep, workflow: Workflow) -> WorkflowPublic:
    has_thumbnail = bridge.workflows.thumbnail(workflow.alias) is not None
    return WorkflowPublic(
        alias=workflow.alias,
        description=workflow.description,
        inputs=[
            InputPublic(
                name=spec.name,
                type=spec.type,
                title=spec.title,
                description=spec.description or "",
                default=spec.default,
                required=spec.required,
                minimum=spec.minimum,
                maximum=spec.maximum,
                step=spec.step,
                choices=list(spec.choices) if spec.choices is not None else None,
                multiline=spec.multiline,
            )
            for spec in workflow.inputs
        ],
        schema=workflow.schema,
        thumbnail_url=(
            f"/v1/workflows/{workflow.alias}/thumbnail" if has_thumbnail else None
        ),
    )


@router.get("")
async def list_workflows(bridge: BridgeDep, _client: ClientDep) -> WorkflowsPublic:
    """List the workflows clients can run."""
    return WorkflowsPublic(
        workflows=[workflow_public(bridge, w) for w in bridge.workflows.all()]
    )


@router.get("/{alias}")
async def get_workflow(
    alias: str, bridge: BridgeDep, _client: ClientDep
) -> WorkflowPublic:
    """Describe one workflow: its inputs, bounds, JSON Schema and backends."""
    workflow = bridge.workflows.get(alias)
    public = workflow_public(bridge, workflow)
    public.backends = [
        WorkflowBackendPublic(
            id=backend.id,
            state=str(backend.state),
            runnable=backend.capabilities.known and not missing,
            missing=MissingPublic(**missing.public()),
        )
        for backend, missing in bridge.workflow_backends(workflow)
    ]
    return public


@router.get("/{alias}/graph")
async def get_graph(alias: str, bridge: BridgeDep, _client: ClientDep) -> Any:
    """The workflow's graph, for a workflow its operator made public."""
    workflow = bridge.workflows.get(alias)
    if not bridge.workflows.options(alias).public:
        # Not public: as if there were no graph to show.
        raise WorkflowNotFound(f"workflow {alias!r} has no public graph")
    graph = copy.deepcopy(workflow.graph)
    strip_bridge_meta(graph)
    return graph


@router.get("/{alias}/thumbnail", response_class=Response)
async def get_thumbnail(alias: str, bridge: BridgeDep, _client: ClientDep) -> Response:
    """The workflow's thumbnail image."""
    thumbnail = bridge.workflows.thumbnail(alias)
    if thumbnail is None:
        raise WorkflowNotFound(f"workflow {alias!r} has no thumbnail")
    return Response(
        thumbnail,
        media_type=_image_type(thumbnail),
        headers={"X-Content-Type-Options": "nosniff"},
    )


@router.put("/{alias}", dependencies=[AdminDep])
async def put_workflow(
    alias: str, body: WorkflowCreate, bridge: BridgeDep
) -> WorkflowPublic:
    """Add or replace a workflow (admin)."""
    workflow = await bridge.workflows.put(
        alias,
        body.workflow,
        description=body.description,
        declarations=[d.model_dump(exclude_none=True) for d in body.inputs],
        thumbnail=await _checked_thumbnail(bridge, body.thumbnail),
        object_info=bridge.pool.object_info(),
        options=WorkflowOptions(
            time_limit_s=body.time_limit_s,
            max_batch_size=body.max_batch_size,
            max_pixels=body.max_pixels,
            public=body.public,
        ),
    )
    return workflow_public(bridge, workflow)


@router.delete(
    "/{alias}", dependencies=[AdminDep], status_code=status.HTTP_204_NO_CONTENT
)
async def delete_workflow(alias: str, bridge: BridgeDep) -> None:
    """Delete a workflow registered through the API (admin)."""
    await bridge.workflows.delete(alias)


async def _checked_thumbnail(bridge: BridgeDep, encoded: str | None) -> bytes | None:
    """The thumbnail's bytes once they passed the safety check, without metadata."""
    if encoded is None:
        return None
    try:
        data = base64.b64decode(encoded.split(",", 1)[-1], validate=True)
    except (binascii.Error, ValueError) as exc:
        raise WorkflowInvalid(f"thumbnail: expected base64, got {exc}") from exc
    try:
        return await bridge.checked_image(data)
    except UnsafeFile as exc:
        raise WorkflowInvalid(f"thumbnail: {exc.detail} ({exc.code})") from exc


def _image_type(data: bytes) -> str:
    detected: str = magic.from_buffer(data[:4096], mime=True)
    return detected if detected in THUMBNAIL_TYPES else "application/octet-stream"
