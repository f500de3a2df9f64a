"""Refuse JSON bodies whose text is not Unicode: one answer for every route.

JSON may spell half of a UTF-16 pair (`"\\udfff"`) that no UTF-8 text can hold.
Accepted, such a string reaches the store and then breaks every response that
shows it, so it is refused here, before any route or model sees it.
"""

from __future__ import annotations

import json
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send


class UnicodeBodies:
    """ASGI middleware: a JSON body holding an unpaired surrogate answers 422."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not _declares_json(scope):
            await self.app(scope, receive, send)
            return
        messages, body = await _read_body(receive)
        if _holds_unpaired_surrogate(body):
            await _refuse(send)
            return
        await self.app(scope, _replay(messages, receive), send)


def _declares_json(scope: Scope) -> bool:
    for name, value in scope["headers"]:
        if name == b"content-type":
            return b"json" in value.lower()
    return False


async def _read_body(receive: Receive) -> tuple[list[Message], bytes]:
    messages, chunks = [], []
    while True:
        message = await receive()
        messages.append(message)
        chunks.append(message.get("body", b""))
        if message["type"] != "http.request" or not message.get("more_body"):
            return messages, b"".join(chunks)


def _replay(messages: list[Message], receive: Receive) -> Receive:
    pending = list(messages)

    async def replayed() -> Message:
        return pending.pop(0) if pending else await receive()

    return replayed


def _holds_unpaired_surrogate(body: bytes) -> bool:
    if b"\\u" not in body:
        return False
    try:
        return not _encodable(json.loads(body))
    except ValueError:
        return False  # Not JSON: the route's own parsing says so.


def _encodable(value: Any) -> bool:
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return False
        return True
    if isinstance(value, dict):
        return all(_encodable(k) and _encodable(v) for k, v in value.items())
    if isinstance(value, list):
        return all(_encodable(item) for item in value)
    return True


async def _refuse(send: Send) -> None:
    body = json.dumps(
        {
            "code": "invalid_text",
            "detail": "the JSON body holds a string that is not Unicode text "
            "(an unpaired UTF-16 surrogate escape such as \\udfff)",
        }
    ).encode()
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", b"%d" % len(body)),
    ]
    await send({"type": "http.response.start", "status": 422, "headers": headers})
    await send({"type": "http.response.body", "body": body})
