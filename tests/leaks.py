"""A witness of everything a client was shown, to scan for what must not leak."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlsplit

import httpx

TEXT_TYPES = ("application/json", "text/", "multipart/")
# The simulator keeps its files under a temporary folder with this prefix.
SIMULATOR_FILES = "comfy-bridge-sim-"


class Witness:
    """Records client responses (not the operator's) and WebSocket events."""

    def __init__(self, operator_token: str) -> None:
        self.operator = f"Bearer {operator_token}"
        self.seen: list[str] = []

    def response(self, response: httpx.Response) -> None:
        if response.request.headers.get("authorization") == self.operator:
            return
        response.read()
        self.seen.append(json.dumps(dict(response.headers)))
        if response.headers.get("content-type", "").startswith(TEXT_TYPES):
            self.seen.append(response.text)

    def event(self, event: Any) -> None:
        self.seen.append(json.dumps(event))

    def leaks(self, backends: list[str], *paths: str) -> list[tuple[str, str]]:
        """(needle, where) for every backend address or path found."""
        needles = {SIMULATOR_FILES, *paths}
        for url in backends:
            address = urlsplit(url)
            needles |= {url, address.netloc, f"localhost:{address.port}"}
        return [
            (needle, text[:200])
            for text in self.seen
            for needle in needles
            if needle in text
        ]
