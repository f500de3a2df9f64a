"""Backends: add and remove ComfyUI servers at run time (admin)."""

from __future__ import annotations

from fastapi import APIRouter, status

from comfy_bridge.api.deps import AdminDep, BridgeDep
from comfy_bridge.api.v1.schemas import BackendCreate, BackendPublic, BackendsPublic

router = APIRouter(prefix="/v1/backends", tags=["backends"], dependencies=[AdminDep])


@router.get("")
async def list_backends(bridge: BridgeDep) -> BackendsPublic:
    """Every backend with its state and load."""
    return BackendsPublic(
        backends=[BackendPublic(**backend.public()) for backend in bridge.pool]
    )


@router.post("", status_code=status.HTTP_201_CREATED)
async def add_backend(body: BackendCreate, bridge: BridgeDep) -> BackendPublic:
    """Add a backend; it takes jobs once it answers."""
    backend = await bridge.add_backend(body.url, body.slots)
    return BackendPublic(**backend.public())


@router.delete("/{backend_id}")
async def remove_backend(backend_id: str, bridge: BridgeDep) -> BackendPublic:
    """Drain and remove a backend: it takes no new jobs, running ones finish."""
    backend = await bridge.remove_backend(backend_id)
    return BackendPublic(**backend.public())


@router.post("/{backend_id}/refresh")
async def refresh_backend(backend_id: str, bridge: BridgeDep) -> BackendPublic:
    """Read a backend's node classes and model lists again, now."""
    backend = await bridge.refresh_backend(backend_id)
    return BackendPublic(**backend.public())
