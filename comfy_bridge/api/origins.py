"""In open mode, refuse requests a web page on another origin made.

Open mode trusts every caller that can reach the bridge, and a browser reaches
it on behalf of any page it shows: such a page may send a form or a plain POST
without asking first. Browsers say where such a request comes from (`Origin`),
so one from an origin other than the bridge's own, and not allowed by
`BRIDGE_CORS_ORIGINS`, is refused.
"""

from __future__ import annotations

import json
from collections.abc import Collection
from urllib.parse import urlsplit

from starlette.types import ASGIApp, Receive, Scope, Send


class SameOriginOnly:
    """ASGI middleware: 403 for a request whose Origin is foreign to the bridge."""

    def __init__(self, app: ASGIApp, allowed: Collection[str]) -> None:
        self.app = app
        self.allowed = set(allowed)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket") and self._foreign(scope):
            await _refuse(scope, send)
            return
        await self.app(scope, receive, send)

    def _foreign(self, scope: Scope) -> bool:
        headers: dict[bytes, bytes] = dict(scope["headers"])
        origin = headers.get(b"origin", b"").decode("latin-1")
        if not origin or origin in self.allowed:
            return False
        host: str = headers.get(b"host", b"").decode("latin-1")
        return urlsplit(origin).netloc != host


async def _refuse(scope: Scope, send: Send) -> None:
    if scope["type"] == "websocket":
        await send({"type": "websocket.close", "code": 4403})
        return
    body = json.dumps(
        {
            "code": "foreign_origin",
            "detail": "open mode answers only its own origin and the ones in "
            "BRIDGE_CORS_ORIGINS",
        }
    ).encode()
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
    ]
    await send({"type": "http.response.start", "status": 403, "headers": headers})
    await send({"type": "http.response.body", "body": body})
