"""Dependencies shared by the routes."""

from __future__ import annotations

import secrets
from typing import Annotated

from fastapi import Depends, Header, Request

from comfy_bridge.bridge import Bridge
from comfy_bridge.exceptions import Unauthorized


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
