"""The one WebSocket the bridge keeps open to each backend.

ComfyUI sends a prompt's messages only to the socket whose clientId submitted
it and replays nothing, so the socket is reopened with the same clientId, with
growing back-off, until it is closed on purpose.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Callable

import aiohttp
from yarl import URL

from comfy_bridge.comfy.errors import backend_errors
from comfy_bridge.comfy.messages import Message, parse_binary, parse_text
from comfy_bridge.comfy.options import SocketSettings
from comfy_bridge.exceptions import BackendError

logger = logging.getLogger(__name__)

# Asks for preview frames that name their prompt (binary event type 4).
_FEATURE_FLAGS = {"type": "feature_flags", "data": {"supports_preview_metadata": True}}


class BackendSocket:
    """A self-healing WebSocket that hands every parsed message to `on_message`.

    `on_state(True)` runs after each (re)connection, `on_state(False)` after
    each loss; both callbacks are synchronous and must not raise.
    """

    def __init__(
        self,
        session: aiohttp.ClientSession,
        url: URL,
        *,
        backend_id: str,
        settings: SocketSettings,
        on_message: Callable[[Message], None],
        on_state: Callable[[bool], None],
    ) -> None:
        self._session = session
        self._url = url
        self._backend_id = backend_id
        self._settings = settings
        self._on_message = on_message
        self._on_state = on_state
        self._connected = asyncio.Event()
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._task: asyncio.Task[None] | None = None

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(
                self._run(), name=f"comfy-socket-{self._backend_id}"
            )

    async def wait_connected(self, timeout_s: float) -> bool:
        """Wait up to `timeout_s` for the socket to be open; True if it is."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout_s):
                await self._connected.wait()
        return self.connected

    async def drop(self) -> None:
        """Close the open socket, if any; the loop reopens it as after a loss."""
        if self._ws is not None:
            await self._ws.close()

    async def aclose(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        delay_s = self._settings.reconnect_min_s
        failures = 0
        while True:
            try:
                ws = await self._open()
            except BackendError as exc:
                failures += 1
                self._log_failed_attempt(failures, exc)
            else:
                self._log_connected(failures)
                failures = 0
                opened_at = loop.time()
                await self._serve(ws)
                # Only a socket that stayed up a while resets the back-off, so
                # a backend that accepts and hangs up at once is not hammered.
                if loop.time() - opened_at > self._settings.reconnect_max_s:
                    delay_s = self._settings.reconnect_min_s
            await asyncio.sleep(delay_s * random.uniform(0.5, 1.0))
            delay_s = min(delay_s * 2, self._settings.reconnect_max_s)

    async def _open(self) -> aiohttp.ClientWebSocketResponse:
        with backend_errors(self._backend_id, "open the WebSocket"):
            ws = await self._session.ws_connect(
                self._url,
                heartbeat=self._settings.heartbeat_s,
                max_msg_size=self._settings.max_message_bytes,
            )
            try:
                await ws.send_json(_FEATURE_FLAGS)
            except BaseException:
                await ws.close()
                raise
        return ws

    async def _serve(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self._ws = ws
        self._connected.set()
        self._on_state(True)
        try:
            await self._pump(ws)
        finally:
            self._ws = None
            self._connected.clear()
            self._on_state(False)
            # Closing must finish even when aclose() cancels us meanwhile.
            await asyncio.shield(ws.close())
        logger.warning(
            "backend %s: WebSocket closed (%s); reconnecting",
            self._backend_id,
            ws.exception() or f"close code {ws.close_code}",
        )

    async def _pump(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        async for frame in ws:
            if frame.type is aiohttp.WSMsgType.TEXT:
                message = parse_text(frame.data)
            elif frame.type is aiohttp.WSMsgType.BINARY:
                message = parse_binary(frame.data)
            else:
                break
            if message is not None:
                self._on_message(message)

    def _log_failed_attempt(self, attempts: int, exc: BackendError) -> None:
        level = logging.WARNING if attempts == 1 else logging.DEBUG
        logger.log(
            level,
            "backend %s: WebSocket connect attempt %d failed: %s",
            self._backend_id,
            attempts,
            exc.detail,
        )

    def _log_connected(self, failed_attempts: int) -> None:
        if failed_attempts:
            logger.warning(
                "backend %s: WebSocket reconnected after %d failed attempts",
                self._backend_id,
                failed_attempts,
            )
        else:
            logger.debug("backend %s: WebSocket open", self._backend_id)
