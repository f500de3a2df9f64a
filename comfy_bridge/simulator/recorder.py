"""Every request a simulator received, kept so tests can see what a backend was told."""

from __future__ import annotations

import json
import time
from typing import Any

from aiohttp import web

SIM_PREFIX = "/_sim/"


class RequestLog:
    """Method, path, query and JSON body (where the body is JSON) of each request."""

    def __init__(self) -> None:
        self.entries: list[dict[str, Any]] = []

    async def record(self, request: web.Request) -> None:
        if request.path.startswith(SIM_PREFIX):
            return
        entry: dict[str, Any] = {
            # Wall-clock seconds, so a test can time what a backend was told.
            "t": time.time(),
            "method": request.method,
            "path": request.path,
            "query": dict(request.query),
        }
        if request.body_exists and request.content_type == "application/json":
            # read() caches the body, so the handler can still read it.
            raw = await request.read()
            try:
                entry["json"] = json.loads(raw)
            except ValueError:
                entry["body"] = raw.decode("utf-8", "replace")
        self.entries.append(entry)

    def clear(self) -> None:
        self.entries.clear()
