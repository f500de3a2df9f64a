"""Connected WebSocket clients and who receives which message.

Messages are serialised when sent and queued per socket, so every socket sees them
in the order the server produced them, even while a slow socket drains.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import struct
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

logger = logging.getLogger(__name__)

PREVIEW_IMAGE = 1
PREVIEW_IMAGE_WITH_METADATA = 4
PNG_FORMAT = 2


@dataclass
class Client:
    """One connected socket, its outbox and what it negotiated."""

    sid: str
    socket: web.WebSocketResponse
    outbox: asyncio.Queue[str | bytes] = field(default_factory=asyncio.Queue)
    wants_metadata: bool = False
    writer: asyncio.Task[None] | None = None

    async def drain(self) -> None:
        while True:
            message = await self.outbox.get()
            try:
                if isinstance(message, bytes):
                    await self.socket.send_bytes(message)
                else:
                    await self.socket.send_str(message)
            except (ConnectionError, RuntimeError):
                return


class Hub:
    """Sockets by client id; a reconnect with the same id replaces the old one."""

    def __init__(self) -> None:
        self.clients: dict[str, Client] = {}

    def attach(self, sid: str, socket: web.WebSocketResponse) -> Client:
        client = Client(sid, socket)
        client.writer = asyncio.get_running_loop().create_task(client.drain())
        self.clients[sid] = client
        return client

    def detach(self, client: Client) -> None:
        if self.clients.get(client.sid) is client:
            del self.clients[client.sid]
        if client.writer is not None:
            client.writer.cancel()

    def send(self, type_: str, data: dict[str, Any], sid: str | None) -> None:
        """To the socket of `sid`, or to every socket when `sid` is None."""
        text = json.dumps({"type": type_, "data": data})
        for client in self._targets(sid):
            client.outbox.put_nowait(text)

    def send_preview(
        self, sid: str | None, image_png: bytes, metadata: dict[str, Any]
    ) -> None:
        """A binary preview: with metadata to sockets that asked for it."""
        legacy = struct.pack(">II", PREVIEW_IMAGE, PNG_FORMAT) + image_png
        meta = json.dumps(metadata).encode()
        rich = (
            struct.pack(">II", PREVIEW_IMAGE_WITH_METADATA, len(meta))
            + meta
            + image_png
        )
        for client in self._targets(sid):
            client.outbox.put_nowait(rich if client.wants_metadata else legacy)

    def _targets(self, sid: str | None) -> list[Client]:
        if sid is None:
            return list(self.clients.values())
        client = self.clients.get(sid)
        return [client] if client else []

    async def drop_all(self) -> None:
        """Close every client socket (the drop-socket fault)."""
        logger.warning("dropping %d client sockets", len(self.clients))
        for client in list(self.clients.values()):
            with contextlib.suppress(ConnectionError, RuntimeError):
                await client.socket.close()
