"""`ComfyClient`: everything the bridge asks of one ComfyUI backend."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import mimetypes
import time
import uuid
from collections.abc import (
    AsyncGenerator,
    AsyncIterator,
    Callable,
    Iterable,
    Mapping,
)
from pathlib import Path
from typing import Any

import aiohttp
from yarl import URL

from comfy_bridge.comfy.errors import backend_errors, prompt_rejected, unexpected_status
from comfy_bridge.comfy.messages import (
    Executing,
    ExecutionStart,
    Message,
    Preview,
    Status,
)
from comfy_bridge.comfy.options import Limits, SocketSettings, Timeouts, WatchSettings
from comfy_bridge.comfy.outputs import HistoryEntry, OutputFile, parse_history_entry
from comfy_bridge.comfy.results import QueueState, Submitted, UploadedFile
from comfy_bridge.comfy.socket import BackendSocket
from comfy_bridge.comfy.transfers import (
    CHUNK_BYTES,
    file_chunks,
    save_chunks,
    too_large,
)
from comfy_bridge.comfy.watch import PromptWatch
from comfy_bridge.exceptions import BackendProtocolError

logger = logging.getLogger(__name__)

ConnectionCallback = Callable[[bool], None]


class ComfyClient:
    """One backend's HTTP API and WebSocket, over one pooled aiohttp session.

    `start()` opens the pool and the socket (identified by `client_id`, the
    bridge's own id on this backend) and keeps the socket open until
    `aclose()`. Every prompt is submitted under that id so its messages reach
    this socket; `watch()` routes them to the prompt by `prompt_id`.
    `on_connection_change(connected)` runs on every socket (re)connection and
    loss. `queue_remaining_seen` is the queue length the backend last
    broadcast. Errors surface as the bridge's BackendError family or
    PromptRejected.
    """

    def __init__(
        self,
        base_url: str | URL,
        *,
        backend_id: str,
        client_id: str | None = None,
        timeouts: Timeouts | None = None,
        limits: Limits | None = None,
        socket_settings: SocketSettings | None = None,
        watch_settings: WatchSettings | None = None,
        on_connection_change: ConnectionCallback | None = None,
    ) -> None:
        self.base_url = URL(base_url)
        self.backend_id = backend_id
        self.client_id = client_id or f"comfy-bridge-{uuid.uuid4().hex}"
        self._timeouts = timeouts or Timeouts()
        self._limits = limits or Limits()
        self._socket_settings = socket_settings or SocketSettings()
        self._watch_settings = watch_settings or WatchSettings()
        self._on_connection_change = on_connection_change
        self._session: aiohttp.ClientSession | None = None
        self._socket: BackendSocket | None = None
        self._watches: dict[str, PromptWatch] = {}
        self._running_prompt_id: str | None = None
        self.queue_remaining_seen: int | None = None

    @property
    def connected(self) -> bool:
        """Whether the WebSocket is open right now."""
        return self._socket is not None and self._socket.connected

    async def start(self) -> None:
        """Open the pool and the WebSocket; waits up to the connect timeout.

        A backend that is down does not fail `start()`: the socket keeps
        trying in the background and `connected` tells where it stands.
        """
        if self._session is not None:
            return
        self._session = self._new_session()
        self._socket = BackendSocket(
            self._session,
            self._ws_url(),
            backend_id=self.backend_id,
            settings=self._socket_settings,
            on_message=self._route,
            on_state=self._socket_state_changed,
        )
        self._socket.start()
        await self._socket.wait_connected(self._timeouts.connect_s)

    async def wait_connected(self, timeout_s: float) -> bool:
        """Wait up to `timeout_s` for the WebSocket; True if it is open."""
        return self._socket is not None and await self._socket.wait_connected(timeout_s)

    async def aclose(self) -> None:
        """Close the WebSocket and the pool; open watches stop iterating."""
        for watch in list(self._watches.values()):
            watch.close()
        socket, self._socket = self._socket, None
        if socket is not None:
            await socket.aclose()
        session, self._session = self._session, None
        if session is not None:
            await session.close()

    def close_watches(self) -> None:
        """End every open watch: the backend is gone, its prompts with it."""
        for watch in list(self._watches.values()):
            watch.close()

    async def drop_socket(self) -> None:
        """Close the current WebSocket now; it reopens as after any loss."""
        if self._socket is not None:
            await self._socket.drop()

    def _new_session(self) -> aiohttp.ClientSession:
        t = self._timeouts
        connector = aiohttp.TCPConnector(
            limit=self._limits.max_connections,
            limit_per_host=self._limits.max_connections,
            keepalive_timeout=self._limits.keepalive_expiry_s,
        )
        # aiohttp's `connect` deadline spans the pool wait and the TCP connect.
        timeout = aiohttp.ClientTimeout(
            total=None,
            connect=t.pool_s + t.connect_s,
            sock_connect=t.connect_s,
            sock_read=t.read_s,
        )
        return aiohttp.ClientSession(connector=connector, timeout=timeout)

    def _ws_url(self) -> URL:
        scheme = "wss" if self.base_url.scheme == "https" else "ws"
        url = self.base_url.with_scheme(scheme) / "ws"
        return url.with_query(clientId=self.client_id)

    # Prompts

    def watch(self, prompt_id: str, *, submitted: bool = False) -> PromptWatch:
        """Start collecting the messages of `prompt_id`; call before submit().

        Pass `submitted=True` to follow a prompt submitted earlier (after a
        bridge restart): it then counts as lost if the backend does not know it.
        """
        if prompt_id in self._watches:
            raise ValueError(f"prompt {prompt_id} is already watched")
        watch = PromptWatch(
            prompt_id,
            lookup=self,
            settings=self._watch_settings,
            on_close=self._forget_watch,
            submitted=submitted,
        )
        self._watches[prompt_id] = watch
        return watch

    async def submit(
        self,
        prompt: Mapping[str, Any],
        *,
        prompt_id: str,
        extra_data: Mapping[str, Any] | None = None,
    ) -> Submitted:
        """Queue an API-format graph under the bridge's `prompt_id`.

        Raises PromptRejected (with node id, class and messages) when the
        backend refuses the graph.
        """
        body: dict[str, Any] = {
            "prompt": prompt,
            "client_id": self.client_id,
            "prompt_id": prompt_id,
        }
        if extra_data:
            body["extra_data"] = dict(extra_data)
        if (watch := self._watches.get(prompt_id)) is not None:
            # Once the request left, the backend may have queued it.
            watch.mark_submitted()
        status, raw = await self._send("POST", "prompt", "submit", json=body)
        if status == 400:
            answer = self._decode(raw, "submit")
            raise prompt_rejected(self.backend_id, prompt_id, answer)
        answer = self._json_object(status, raw, "submit")
        if str(answer.get("prompt_id")) != prompt_id:
            raise BackendProtocolError(
                f"submit: asked for prompt id {prompt_id}, "
                f"the backend answered {answer.get('prompt_id')!r}",
                backend_id=self.backend_id,
            )
        return Submitted(
            prompt_id=prompt_id,
            number=float(answer.get("number") or 0),
            node_errors=dict(answer.get("node_errors") or {}),
        )

    async def history(self, prompt_id: str) -> HistoryEntry | None:
        """The finished prompt's entry, or None while it is unknown or running."""
        action = "read history"
        status, raw = await self._send("GET", f"history/{prompt_id}", action)
        answer = self._json_object(status, raw, action)
        entry = answer.get(prompt_id)
        if entry is None:
            return None
        try:
            if not isinstance(entry, Mapping):
                raise ValueError("history entry is not an object")
            return parse_history_entry(prompt_id, entry)
        except ValueError as exc:
            raise BackendProtocolError(
                f"{action}: {exc}", backend_id=self.backend_id
            ) from exc

    async def queue(self) -> QueueState:
        """Prompt ids running and pending on the backend (pending in run order)."""
        status, raw = await self._send("GET", "queue", "read queue")
        answer = self._json_object(status, raw, "read queue")
        try:
            running = [str(item[1]) for item in answer.get("queue_running", [])]
            pending = sorted(answer.get("queue_pending", []), key=lambda i: i[0])
            return QueueState(running, [str(item[1]) for item in pending])
        except (IndexError, KeyError, TypeError) as exc:
            raise BackendProtocolError(
                f"read queue: unexpected item shape ({exc})",
                backend_id=self.backend_id,
            ) from exc

    async def queue_remaining(self) -> int:
        """How many prompts the backend holds, running plus pending."""
        status, raw = await self._send("GET", "prompt", "read queue size")
        answer = self._json_object(status, raw, "read queue size")
        try:
            return int(answer["exec_info"]["queue_remaining"])
        except (KeyError, TypeError, ValueError) as exc:
            raise BackendProtocolError(
                f"read queue size: unexpected answer ({exc})",
                backend_id=self.backend_id,
            ) from exc

    async def interrupt(self, prompt_id: str) -> None:
        """Stop `prompt_id` if it is the one running; does nothing otherwise.

        The backend answers 200 either way: confirm by the watch's outcome or
        by the prompt leaving the queue.
        """
        body = {"prompt_id": prompt_id}
        await self._send_expecting_empty("POST", "interrupt", "interrupt", json=body)

    async def interrupt_if_running(self, prompt_id: str) -> bool:
        """Stop `prompt_id` on a backend that ignores targeted interrupts.

        Sends the backend's untargeted interrupt, but only after reading that
        `prompt_id` is the one running; returns whether it did. The prompt may
        end and the next one start between that read and the stop: a window of
        one round trip, accepted because the bridge re-queues a job stopped
        without its asking, so that job loses time but never its result.
        """
        if (await self.queue()).running != [prompt_id]:
            return False
        await self._send_expecting_empty("POST", "interrupt", "interrupt")
        return True

    async def delete_pending(self, prompt_ids: Iterable[str]) -> None:
        """Remove prompts that have not started; running ones are unaffected."""
        body = {"delete": list(prompt_ids)}
        await self._send_expecting_empty("POST", "queue", "delete pending", json=body)

    async def free(
        self, *, unload_models: bool = False, free_memory: bool = False
    ) -> None:
        """Ask the backend to unload models and/or free memory after its job."""
        body = {"unload_models": unload_models, "free_memory": free_memory}
        await self._send_expecting_empty("POST", "free", "free memory", json=body)

    async def object_info(self) -> dict[str, Any]:
        """Every node class the backend has, as ComfyUI describes them."""
        status, raw = await self._send("GET", "object_info", "read object_info")
        return self._json_object(status, raw, "read object_info")

    async def system_stats(self) -> dict[str, Any]:
        """The backend's versions, RAM and devices (with VRAM)."""
        status, raw = await self._send("GET", "system_stats", "read system_stats")
        return self._json_object(status, raw, "read system_stats")

    # Files

    async def download(
        self, output: OutputFile, dest: Path, *, limit_bytes: int
    ) -> int:
        """Stream one output file to `dest`; returns the bytes written.

        Raises UnsafeFile (`too_large`) once the file passes `limit_bytes`,
        leaving nothing at `dest`.
        """
        chunks = self.output_chunks(output, limit_bytes=limit_bytes)
        async with contextlib.aclosing(chunks):
            return await save_chunks(chunks, dest)

    async def output_chunks(
        self, output: OutputFile, *, limit_bytes: int
    ) -> AsyncGenerator[bytes, None]:
        """Yield one output file's bytes as they arrive, for a streaming check.

        Raises UnsafeFile (`too_large`) once the file passes `limit_bytes`.
        Close the iterator (`contextlib.aclosing`) if you stop before the end.
        """
        action = f"download {output.filename}"
        params = {
            "filename": output.filename,
            "subfolder": output.subfolder,
            "type": output.type,
        }
        started = time.perf_counter()
        with backend_errors(self.backend_id, action):
            async with self._http.get(self._url("view"), params=params) as resp:
                if resp.status != 200:
                    body = await resp.text(errors="replace")
                    raise unexpected_status(self.backend_id, action, resp.status, body)
                if (resp.content_length or 0) > limit_bytes:
                    raise too_large(output.filename, limit_bytes)
                received = 0
                async for chunk in resp.content.iter_chunked(CHUNK_BYTES):
                    received += len(chunk)
                    if received > limit_bytes:
                        raise too_large(output.filename, limit_bytes)
                    yield chunk
        self._log_request("GET", "view", 200, started)

    async def upload_image(
        self,
        source: Path,
        *,
        name: str,
        subfolder: str = "",
        overwrite: bool = False,
    ) -> UploadedFile:
        """Stream `source` to the backend's input folder as `name`.

        Returns where the backend stored it: use the returned name, the
        backend renames a file whose name is taken by other content.
        """
        if not name or "/" in name or "\\" in name or name in {".", ".."}:
            raise ValueError(f"upload name must be a bare file name, not {name!r}")
        action = f"upload {name}"
        handle = await asyncio.to_thread(source.open, "rb")
        try:
            with backend_errors(self.backend_id, action):
                async with asyncio.timeout(self._timeouts.write_s) as deadline:
                    chunks = file_chunks(handle, deadline, self._timeouts.write_s)
                    form = _upload_form(chunks, name, subfolder, overwrite)
                    status, raw = await self._send(
                        "POST", "upload/image", action, data=form
                    )
        finally:
            await asyncio.to_thread(handle.close)
        answer = self._json_object(status, raw, action)
        try:
            return UploadedFile(
                name=str(answer["name"]),
                subfolder=str(answer.get("subfolder") or ""),
                type=str(answer.get("type") or "input"),
            )
        except KeyError as exc:
            raise BackendProtocolError(
                f"{action}: answer without a name", backend_id=self.backend_id
            ) from exc

    # Plumbing

    @property
    def _http(self) -> aiohttp.ClientSession:
        if self._session is None:
            raise RuntimeError(f"client of backend {self.backend_id} is not started")
        return self._session

    def _url(self, path: str) -> URL:
        return self.base_url / path

    async def _send(
        self, method: str, path: str, action: str, **kwargs: Any
    ) -> tuple[int, bytes]:
        """One request whose (small) answer is read whole: status and body."""
        started = time.perf_counter()
        with backend_errors(self.backend_id, action):
            async with self._http.request(method, self._url(path), **kwargs) as resp:
                raw = await resp.read()
        self._log_request(method, path, resp.status, started)
        return resp.status, raw

    async def _send_expecting_empty(
        self, method: str, path: str, action: str, **kwargs: Any
    ) -> None:
        status, raw = await self._send(method, path, action, **kwargs)
        if status != 200:
            raise unexpected_status(
                self.backend_id, action, status, raw.decode(errors="replace")
            )

    def _json_object(self, status: int, raw: bytes, action: str) -> dict[str, Any]:
        if status != 200:
            raise unexpected_status(
                self.backend_id, action, status, raw.decode(errors="replace")
            )
        answer = self._decode(raw, action)
        if not isinstance(answer, dict):
            raise BackendProtocolError(
                f"{action}: expected a JSON object, got {type(answer).__name__}",
                backend_id=self.backend_id,
            )
        return answer

    def _decode(self, raw: bytes, action: str) -> Any:
        with backend_errors(self.backend_id, action):
            return json.loads(raw)

    def _log_request(self, method: str, path: str, status: int, started: float) -> None:
        logger.debug(
            "backend %s: %s /%s -> %d (%.1f ms)",
            self.backend_id,
            method,
            path,
            status,
            (time.perf_counter() - started) * 1000,
        )

    # Socket messages

    def _route(self, message: Message) -> None:
        """Hand a socket message to the watch of its prompt (no await here)."""
        if isinstance(message, Status):
            self.queue_remaining_seen = message.queue_remaining
            return
        prompt_id = message.prompt_id
        if prompt_id is None and isinstance(message, Executing | Preview):
            # A reconnect's replayed `executing` and legacy previews name no
            # prompt: they belong to the one running now.
            if isinstance(message, Executing) and message.node is None:
                return
            prompt_id = self._running_prompt_id
        self._track_running(message, prompt_id)
        if prompt_id is not None and (watch := self._watches.get(prompt_id)):
            watch.deliver(message)

    def _track_running(self, message: Message, prompt_id: str | None) -> None:
        if isinstance(message, ExecutionStart):
            self._running_prompt_id = prompt_id
        elif isinstance(message, Executing) and prompt_id is not None:
            if message.node is not None:
                self._running_prompt_id = prompt_id
            elif self._running_prompt_id == prompt_id:
                self._running_prompt_id = None

    def _socket_state_changed(self, connected: bool) -> None:
        if connected:
            # Messages sent while the socket was down are gone for good.
            for watch in list(self._watches.values()):
                watch.resync()
        if self._on_connection_change is not None:
            try:
                self._on_connection_change(connected)
            except Exception:
                logger.exception(
                    "backend %s: connection callback failed", self.backend_id
                )

    def _forget_watch(self, watch: PromptWatch) -> None:
        if self._watches.get(watch.prompt_id) is watch:
            del self._watches[watch.prompt_id]


def _upload_form(
    chunks: AsyncIterator[bytes], name: str, subfolder: str, overwrite: bool
) -> aiohttp.FormData:
    form = aiohttp.FormData()
    content_type = mimetypes.guess_type(name)[0] or "application/octet-stream"
    form.add_field("image", chunks, filename=name, content_type=content_type)
    form.add_field("overwrite", "true" if overwrite else "false")
    form.add_field("subfolder", subfolder)
    form.add_field("type", "input")
    return form
