"""API keys: make, list and revoke them (admin)."""

from __future__ import annotations

from fastapi import APIRouter, status

from comfy_bridge.api.deps import AdminDep, BridgeDep
from comfy_bridge.api.v1.schemas import KeyCreate, KeyCreated, KeyPublic, KeysPublic
from comfy_bridge.exceptions import KeyNotFound

router = APIRouter(prefix="/v1/keys", tags=["keys"], dependencies=[AdminDep])


@router.post("", status_code=status.HTTP_201_CREATED)
async def create_key(body: KeyCreate, bridge: BridgeDep) -> KeyCreated:
    """Make a key; its secret is in this answer only, never again."""
    made = await bridge.keys.create(body.name, body.role)
    return KeyCreated(**KeyPublic.of(made.row).model_dump(), key=made.secret)


@router.get("")
async def list_keys(bridge: BridgeDep) -> KeysPublic:
    """Every key, revoked ones too, without their secrets."""
    return KeysPublic(keys=[KeyPublic.of(row) for row in await bridge.store.keys()])


@router.delete("/{key_id}")
async def revoke_key(key_id: str, bridge: BridgeDep) -> KeyPublic:
    """Revoke a key: it stops working at once; its jobs and uploads stay."""
    row = await bridge.keys.revoke(key_id)
    if row is None:
        raise KeyNotFound(f"no key {key_id!r}")
    return KeyPublic.of(row)
