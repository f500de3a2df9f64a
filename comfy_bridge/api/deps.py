"""Dependencies shared by the routes."""

from __future__ import annotations

import secrets
from typing import Annotated

from fastapi import Depends, Header, Request

from comfy_bridge.bridge import Bridge
from comfy_bridge.exceptions import Forbidden, Unauthorized


def get_bridge(request: Request) -> Bridge:
    bridge: Bridge = request.app.state.bridge
    return bridge


BridgeDep = Annotated[Bridge, Depends(get_bridge)]


def require_admin(
    bridge: BridgeDep, authorization: Annotated[str | None, Header()] = None
) -> None:
    expected = bridge.settings.admin_token
    if not expected:
        raise Unauthorized("the admin API is off: set BRIDGE_ADMIN_TOKEN to turn it on")
    scheme, _, token = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not secrets.compare_digest(token, expected):
        raise Unauthorized("this needs the admin token as 'Authorization: Bearer …'")


AdminDep = Depends(require_admin)


def client_identity(
    x_client_id: Annotated[str | None, Header(max_length=128)] = None,
) -> str | None:
    """Who submits a job, for sharing the backends fairly between clients.

    For now the caller names itself with `X-Client-Id`; this is the one place
    that decides a job's owner, so API keys can answer it later instead.
    """
    return x_client_id or None


ClientDep = Annotated[str | None, Depends(client_identity)]


def allowed_priority(
    bridge: BridgeDep,
    priority: int,
    authorization: str | None,
) -> int:
    """Only an operator may push work ahead; anyone may step back (below 0)."""
    if priority > 0:
        try:
            require_admin(bridge, authorization)
        except Unauthorized as exc:
            raise Forbidden(
                f"a priority above 0 needs the admin token: {exc.detail}"
            ) from exc
    return priority
