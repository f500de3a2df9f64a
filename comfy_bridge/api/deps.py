"""Dependencies shared by the routes, and the one rule of each about who may call.

Every route names exactly one rule: `ClientDep` (any key, or anyone in open
mode), `AdminDep` (an admin key or the admin token), `SocketClientDep` (the
client rule for WebSockets), or none for the few public routes. A test holds
the table of rules and fails on a route missing from it.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, WebSocket, WebSocketException
from starlette.requests import HTTPConnection

from comfy_bridge.auth import Principal
from comfy_bridge.bridge import Bridge
from comfy_bridge.exceptions import (
    Forbidden,
    JobNotFound,
    Unauthorized,
    UploadNotFound,
)
from comfy_bridge.jobs import Job
from comfy_bridge.store import UploadRow

# WebSocket close codes: the HTTP status, in the range kept for applications.
CLOSE_UNAUTHORIZED = 4401
CLOSE_NOT_FOUND = 4404
NO_KEY = (
    "this needs an API key as 'Authorization: Bearer <key>' (WebSockets may "
    "pass it as ?token=<key>); the operator makes keys with "
    "`comfy-bridge keys create`"
)
BAD_KEY = "the key is unknown or has been revoked"
NO_ADMIN_KEY = (
    "this needs an admin key or the admin token as 'Authorization: Bearer <key>'"
)
# Longest self-chosen name an open-mode caller may give in X-Client-Id.
CLIENT_NAME_MAX = 20


def get_bridge(connection: HTTPConnection) -> Bridge:
    bridge: Bridge = connection.app.state.bridge
    return bridge


BridgeDep = Annotated[Bridge, Depends(get_bridge)]


def presented_key(connection: HTTPConnection, *, query: bool) -> str | None:
    """The key in the Authorization header, or in `?token=` where allowed."""
    scheme, _, value = connection.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    return connection.query_params.get("token") if query else None


async def principal_of(
    connection: HTTPConnection, bridge: Bridge, *, query: bool
) -> Principal:
    """The caller, or Unauthorized with what is missing."""
    key = presented_key(connection, query=query)
    name = connection.headers.get("x-client-id", "")[:CLIENT_NAME_MAX] or None
    principal = await bridge.keys.resolve(key, name)
    if principal is None:
        raise Unauthorized(BAD_KEY if key else NO_KEY)
    return principal


async def require_client(connection: HTTPConnection, bridge: BridgeDep) -> Principal:
    return await principal_of(connection, bridge, query=False)


async def require_admin(connection: HTTPConnection, bridge: BridgeDep) -> Principal:
    principal = await principal_of(connection, bridge, query=False)
    if principal.anonymous:
        raise Unauthorized(NO_ADMIN_KEY)
    if not principal.is_admin:
        raise Forbidden(NO_ADMIN_KEY)
    return principal


async def require_legacy_client(
    connection: HTTPConnection, bridge: BridgeDep
) -> Principal:
    # The original bridge's clients can add a query parameter more easily
    # than a header.
    return await principal_of(connection, bridge, query=True)


async def require_socket_client(websocket: WebSocket, bridge: BridgeDep) -> Principal:
    """Accepts the socket first, so that a refusal can carry its reason."""
    await websocket.accept()
    try:
        return await principal_of(websocket, bridge, query=True)
    except Unauthorized as exc:
        raise WebSocketException(CLOSE_UNAUTHORIZED, exc.detail[:120]) from exc


ClientDep = Annotated[Principal, Depends(require_client)]
LegacyClientDep = Annotated[Principal, Depends(require_legacy_client)]
SocketClientDep = Annotated[Principal, Depends(require_socket_client)]
AdminDep = Depends(require_admin)


async def owned_job(bridge: Bridge, principal: Principal, job_id: str) -> Job:
    """The job if it is the caller's; someone else's answers as if it were not there."""
    job = await bridge.get_job(job_id)
    if not principal.owns(job.owner):
        raise JobNotFound(f"no job {job_id!r}", job_id=job_id)
    return job


async def owned_upload(
    bridge: Bridge, principal: Principal, upload_id: str
) -> UploadRow:
    row = await bridge.store.get_upload(upload_id)
    if row is None or not principal.owns(row.owner):
        raise UploadNotFound(f"no upload {upload_id!r}")
    return row


def allowed_priority(principal: Principal, priority: int) -> int:
    """Only an operator may push work ahead; anyone may step back (below 0)."""
    if priority > 0 and not principal.is_admin:
        raise Forbidden("a priority above 0 needs an admin key or the admin token")
    return priority
