"""ComfyClient against a small in-process server replaying the recorded captures."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import socket
import struct
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from comfy_bridge.comfy import (
    ComfyClient,
    Executed,
    Executing,
    ExecutionStart,
    Limits,
    Message,
    OutputFile,
    Preview,
    Progress,
    PromptFinished,
    PromptStatus,
    QueueState,
    SocketSettings,
    Timeouts,
    UploadedFile,
    WatchSettings,
)
from comfy_bridge.exceptions import (
    BackendProtocolError,
    BackendTimeout,
    BackendUnavailable,
    PromptRejected,
    UnsafeFile,
)
from tests.processes import SHARED

CAPTURES = SHARED / "comfyui-protocol"
RUNS = {
    "success": ("ws_success.json", "history_success.json"),
    "error": ("ws_execution_error.json", "history_execution_error.json"),
    "interrupted": ("ws_interrupt_global.json", "history_interrupted.json"),
}
PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 64


def load(name: str) -> Any:
    return json.loads((CAPTURES / name).read_text())


def with_prompt_id(value: Any, old: str, new: str) -> Any:
    return json.loads(json.dumps(value).replace(old, new))


class FakeComfy:
    """Answers like ComfyUI, from the captures; tests script the socket."""

    def __init__(self) -> None:
        self.app = web.Application()
        self.app.add_routes(
            [
                web.post("/prompt", self._post_prompt),
                web.get("/prompt", self._get_prompt),
                web.get("/history/{prompt_id}", self._get_history),
                web.get("/queue", self._get_queue),
                web.post("/queue", self._record_empty),
                web.post("/interrupt", self._record_empty),
                web.post("/free", self._record_empty),
                web.get("/object_info", self._object_info),
                web.get("/system_stats", self._system_stats),
                web.get("/view", self._view),
                web.post("/upload/image", self._upload),
                web.get("/ws", self._ws),
            ]
        )
        self.posted: list[tuple[str, dict[str, Any], dict[str, str]]] = []
        self.history: dict[str, Any] = {}
        self.running: list[str] = []
        self.pending: list[tuple[float, str]] = []
        self.files: dict[str, bytes] = {"out_00001_.png": PNG}
        self.uploads: dict[str, bytes] = {}
        self.sockets: dict[str, web.WebSocketResponse] = {}
        self.ws_connects: list[str] = []
        self.ws_received: list[Any] = []
        self.prompt_answer: tuple[int, str] | None = None
        self.on_prompt: Callable[[str], Awaitable[None]] | None = None
        self.delay_s = 0.0
        self.number = 0
        self.url = ""
        self._runner = web.AppRunner(self.app)

    async def start(self) -> None:
        await self._runner.setup()
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        site = web.SockSite(self._runner, sock)
        await site.start()
        self.url = f"http://127.0.0.1:{sock.getsockname()[1]}"

    async def stop(self) -> None:
        await self.close_sockets()
        await self._runner.cleanup()

    async def close_sockets(self) -> None:
        for ws in list(self.sockets.values()):
            await ws.close()
        self.sockets.clear()

    async def send(self, frame: dict[str, Any] | bytes) -> None:
        for ws in list(self.sockets.values()):
            if isinstance(frame, bytes):
                await ws.send_bytes(frame)
            else:
                await ws.send_str(json.dumps(frame))

    async def replay(
        self, run: str, prompt_id: str, *, upto: str | None = None
    ) -> None:
        """Send a recorded run's frames (and store its history) under prompt_id."""
        ws_capture, history_capture = RUNS[run]
        capture = load(ws_capture)
        frames = with_prompt_id(
            [e["frame"] for e in capture["frames"] if "frame" in e],
            capture["prompt_id"],
            prompt_id,
        )
        self.store_history(history_capture, prompt_id)
        for frame in frames:
            if frame["type"] == upto:
                return
            await self.send(frame)

    def store_history(self, capture: str, prompt_id: str) -> None:
        ((old, entry),) = load(capture)["body"].items()
        self.history[prompt_id] = with_prompt_id(entry, old, prompt_id)
        self.running = [p for p in self.running if p != prompt_id]
        self.pending = [i for i in self.pending if i[1] != prompt_id]

    async def _post_prompt(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.posted.append(("/prompt", body, dict(request.headers)))
        if self.prompt_answer is not None:
            status, text = self.prompt_answer
            return web.Response(status=status, text=text)
        self.number += 1
        self.pending.append((self.number, body["prompt_id"]))
        if self.on_prompt is not None:
            # ComfyUI may send the first frames before it answers the POST.
            await self.on_prompt(body["prompt_id"])
        answer = {
            "prompt_id": body["prompt_id"],
            "number": self.number,
            "node_errors": {},
        }
        return web.json_response(answer)

    async def _get_prompt(self, request: web.Request) -> web.Response:
        await asyncio.sleep(self.delay_s)
        remaining = len(self.running) + len(self.pending)
        return web.json_response({"exec_info": {"queue_remaining": remaining}})

    async def _get_history(self, request: web.Request) -> web.Response:
        prompt_id = request.match_info["prompt_id"]
        entry = self.history.get(prompt_id)
        return web.json_response({prompt_id: entry} if entry else {})

    async def _get_queue(self, request: web.Request) -> web.Response:
        def item(number: float, prompt_id: str) -> list[Any]:
            return [number, prompt_id, {}, {"client_id": "x"}, []]

        return web.json_response(
            {
                "queue_running": [item(0, p) for p in self.running],
                "queue_pending": [item(n, p) for n, p in self.pending],
            }
        )

    async def _record_empty(self, request: web.Request) -> web.Response:
        self.posted.append((request.path, await request.json(), dict(request.headers)))
        return web.Response()

    async def _object_info(self, request: web.Request) -> web.Response:
        return web.json_response(load("object_info_selected.json")["body"])

    async def _system_stats(self, request: web.Request) -> web.Response:
        return web.json_response(load("get_system_stats.json")["body"])

    async def _view(self, request: web.Request) -> web.StreamResponse:
        data = self.files.get(request.query.get("filename", ""))
        if data is None or request.query.get("type") != "output":
            return web.Response(status=404)
        if request.query.get("subfolder") == "chunked":
            response = web.StreamResponse()
            await response.prepare(request)
            for start in range(0, len(data), 4096):
                await response.write(data[start : start + 4096])
            await response.write_eof()
            return response
        return web.Response(body=data, content_type="image/png")

    async def _upload(self, request: web.Request) -> web.Response:
        form = await request.post()
        image = form["image"]
        assert isinstance(image, web.FileField)
        content = image.file.read()
        name = image.filename
        if (
            name in self.uploads
            and self.uploads[name] != content
            and form["overwrite"] != "true"
        ):
            stem, _, ext = name.rpartition(".")
            name = f"{stem} (1).{ext}"
        self.uploads[name] = content
        subfolder = str(form.get("subfolder", ""))
        return web.json_response(
            {"name": name, "subfolder": subfolder, "type": "input"}
        )

    async def _ws(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        client_id = request.query["clientId"]
        self.ws_connects.append(client_id)
        self.sockets[client_id] = ws
        greeting = {"status": {"exec_info": {"queue_remaining": 0}}, "sid": client_id}
        await ws.send_json({"type": "status", "data": greeting})
        async for frame in ws:
            self.ws_received.append(json.loads(frame.data))
        if self.sockets.get(client_id) is ws:
            del self.sockets[client_id]
        return ws


FAST_WATCH = WatchSettings(silence_s=0.3, unreachable_s=5.0)
FAST_SOCKET = SocketSettings(reconnect_min_s=0.02, reconnect_max_s=0.1)


@pytest.fixture
async def fake() -> AsyncIterator[FakeComfy]:
    server = FakeComfy()
    await server.start()
    yield server
    await server.stop()


def new_client(fake: FakeComfy, **kwargs: Any) -> ComfyClient:
    kwargs.setdefault("watch_settings", FAST_WATCH)
    kwargs.setdefault("socket_settings", FAST_SOCKET)
    return ComfyClient(fake.url, backend_id="b1", client_id="bridge-1", **kwargs)


@pytest.fixture
async def client(fake: FakeComfy) -> AsyncIterator[ComfyClient]:
    comfy = new_client(fake)
    await comfy.start()
    assert comfy.connected
    yield comfy
    await comfy.aclose()


async def collect(watch: AsyncIterator[Message]) -> list[Message]:
    async with asyncio.timeout(10):
        return [message async for message in watch]


GRAPH = load("prompt_success.json")["request"]["json"]["prompt"]


# Submitting


async def test_submit_sends_bridge_ids_and_no_browser_headers(
    fake: FakeComfy, client: ComfyClient
) -> None:
    submitted = await client.submit(GRAPH, prompt_id="p-1")
    assert submitted.prompt_id == "p-1" and submitted.number == 1
    _, body, headers = fake.posted[0]
    assert body["client_id"] == "bridge-1" == fake.ws_connects[0]
    assert body["prompt_id"] == "p-1"
    assert "Origin" not in headers


async def test_socket_asks_for_previews_with_metadata(
    fake: FakeComfy, client: ComfyClient
) -> None:
    await asyncio.sleep(0.05)
    assert fake.ws_received[0]["type"] == "feature_flags"
    assert fake.ws_received[0]["data"]["supports_preview_metadata"] is True


async def test_refused_graph_raises_prompt_rejected(
    fake: FakeComfy, client: ComfyClient
) -> None:
    fake.prompt_answer = (
        400,
        json.dumps(load("prompt_error_bad_combo_value.json")["body"]),
    )
    with pytest.raises(PromptRejected) as caught:
        await client.submit(GRAPH, prompt_id="p-1")
    assert caught.value.extra["node_id"]
    assert caught.value.extra["node_type"]
    assert caught.value.extra["prompt_id"] == "p-1"
    assert caught.value.backend_id == "b1"


async def test_bare_500_is_a_protocol_error(
    fake: FakeComfy, client: ComfyClient
) -> None:
    fake.prompt_answer = (500, load("prompt_error_ui_format.json")["body"])
    with pytest.raises(BackendProtocolError) as caught:
        await client.submit(GRAPH, prompt_id="p-1")
    assert "500" in caught.value.detail
    assert caught.value.extra["status"] == 500


async def test_answer_for_another_prompt_id_is_a_protocol_error(
    fake: FakeComfy, client: ComfyClient
) -> None:
    fake.prompt_answer = (200, json.dumps({"prompt_id": "other", "number": 1}))
    with pytest.raises(BackendProtocolError):
        await client.submit(GRAPH, prompt_id="p-1")


# Watching


@pytest.mark.parametrize(
    ("run", "status", "files"),
    [
        ("success", PromptStatus.SUCCESS, 1),
        ("error", PromptStatus.ERROR, 0),
        ("interrupted", PromptStatus.INTERRUPTED, 0),
    ],
)
async def test_watch_follows_a_recorded_run_to_its_outcome(
    fake: FakeComfy, client: ComfyClient, run: str, status: PromptStatus, files: int
) -> None:
    async with client.watch("p-1") as watch:
        await client.submit(GRAPH, prompt_id="p-1")
        await fake.replay(run, "p-1")
        messages = await collect(watch)
    finished = messages[-1]
    assert isinstance(finished, PromptFinished)
    assert finished.status is status
    assert len(finished.files) == files
    assert isinstance(messages[0], ExecutionStart)
    assert isinstance(messages[-2], Executing) and messages[-2].node is None
    if status is not PromptStatus.SUCCESS:
        assert finished.error is not None and finished.error.node_id == "2"


async def test_frames_sent_before_the_submit_returns_are_kept(
    fake: FakeComfy, client: ComfyClient
) -> None:
    async def run_at_once(prompt_id: str) -> None:
        await fake.replay("success", prompt_id)
        await asyncio.sleep(0.05)

    fake.on_prompt = run_at_once
    watch = client.watch("p-early")
    await client.submit(GRAPH, prompt_id="p-early")
    await asyncio.sleep(0.1)
    messages = await collect(watch)
    assert isinstance(messages[0], ExecutionStart)
    executed = [m for m in messages if isinstance(m, Executed)]
    assert executed[0].files[0].filename == "bridge_ws_00001_.png"
    finished = messages[-1]
    assert isinstance(finished, PromptFinished)
    assert finished.files == (
        OutputFile("3", "images", "bridge_ws_00001_.png", "", "output"),
    )


async def test_messages_of_other_prompts_are_not_delivered(
    fake: FakeComfy, client: ComfyClient
) -> None:
    async with client.watch("mine") as watch:
        await client.submit(GRAPH, prompt_id="mine")
        await fake.replay("success", "theirs")
        await fake.replay("success", "mine")
        messages = await collect(watch)
    assert {getattr(m, "prompt_id", None) for m in messages} == {"mine"}


async def test_previews_reach_the_running_prompt(
    fake: FakeComfy, client: ComfyClient
) -> None:
    meta = json.dumps({"node_id": "2", "prompt_id": "p-1", "image_type": "image/png"})
    async with client.watch("p-1") as watch:
        await client.submit(GRAPH, prompt_id="p-1")
        await fake.replay("success", "p-1", upto="executed")
        await fake.send(struct.pack(">II", 1, 2) + PNG)
        await fake.send(struct.pack(">II", 4, len(meta)) + meta.encode() + PNG)
        await fake.replay("success", "p-1")
        messages = await collect(watch)
    previews = [m for m in messages if isinstance(m, Preview)]
    assert [(p.prompt_id, p.format) for p in previews] == [
        (None, "image/png"),
        ("p-1", "image/png"),
    ]
    assert previews[0].image == PNG


async def test_dropped_socket_falls_back_to_history(
    fake: FakeComfy, caplog: pytest.LogCaptureFixture
) -> None:
    changes: list[bool] = []
    comfy = new_client(fake, on_connection_change=changes.append)
    await comfy.start()
    caplog.set_level(logging.WARNING, logger="comfy_bridge.comfy")
    try:
        async with comfy.watch("p-1") as watch:
            await comfy.submit(GRAPH, prompt_id="p-1")
            await fake.replay("success", "p-1", upto="progress_state")
            await fake.close_sockets()
            # The prompt ends while nobody listens; only history knows.
            fake.store_history("history_success.json", "p-1")
            messages = await collect(watch)
    finally:
        await comfy.aclose()
    finished = messages[-1]
    assert isinstance(finished, PromptFinished)
    assert finished.status is PromptStatus.SUCCESS
    assert finished.files[0].filename == "bridge_ws_00001_.png"
    assert changes[:3] == [True, False, True]
    assert fake.ws_connects[:2] == ["bridge-1", "bridge-1"]
    assert any("WebSocket closed" in r.getMessage() for r in caplog.records)


async def test_reconnect_replay_without_prompt_id_goes_to_the_running_prompt(
    fake: FakeComfy, client: ComfyClient
) -> None:
    async with client.watch("p-1") as watch:
        await client.submit(GRAPH, prompt_id="p-1")
        fake.running = ["p-1"]
        await fake.replay("success", "p-1", upto="progress_state")
        await fake.send({"type": "executing", "data": {"node": "2"}})
        await fake.replay("success", "p-1")
        messages = await collect(watch)
    assert Executing(prompt_id=None, node="2") in messages


async def test_silent_socket_falls_back_to_history(
    fake: FakeComfy, client: ComfyClient
) -> None:
    async with client.watch("p-1") as watch:
        await client.submit(GRAPH, prompt_id="p-1")
        fake.store_history("history_execution_error.json", "p-1")
        messages = await collect(watch)
    (finished,) = messages
    assert isinstance(finished, PromptFinished)
    assert finished.status is PromptStatus.ERROR
    assert finished.error is not None and finished.error.node_type == "BridgeTestSleep"


async def test_queued_prompt_is_waited_for_not_lost(
    fake: FakeComfy, client: ComfyClient
) -> None:
    async with client.watch("p-1") as watch:
        await client.submit(GRAPH, prompt_id="p-1")
        # Several silent intervals pass while the prompt waits its turn.
        waiting = asyncio.create_task(collect(watch))
        await asyncio.sleep(1.0)
        assert not waiting.done()
        await fake.replay("success", "p-1")
        messages = await waiting
    finished = messages[-1]
    assert (
        isinstance(finished, PromptFinished) and finished.status is PromptStatus.SUCCESS
    )


async def test_prompt_forgotten_by_a_restart_is_lost(
    fake: FakeComfy, client: ComfyClient
) -> None:
    async with client.watch("p-1") as watch:
        await client.submit(GRAPH, prompt_id="p-1")
        fake.pending.clear()
        await fake.close_sockets()
        messages = await collect(watch)
    (finished,) = messages
    assert isinstance(finished, PromptFinished) and finished.status is PromptStatus.LOST


async def test_resumed_watch_finds_an_earlier_prompt(
    fake: FakeComfy, client: ComfyClient
) -> None:
    fake.store_history("history_success.json", "p-old")
    async with client.watch("p-old", submitted=True) as watch:
        await client.drop_socket()
        finished = await asyncio.wait_for(watch.outcome(), 5)
    assert finished.status is PromptStatus.SUCCESS


async def test_unsubmitted_watch_never_declares_loss(
    fake: FakeComfy, client: ComfyClient
) -> None:
    async with client.watch("p-1") as watch:
        waiting = asyncio.create_task(collect(watch))
        await asyncio.sleep(0.8)
        assert not waiting.done()
        watch.close()
        assert await waiting == []


async def test_watch_gives_up_when_the_backend_stays_away(fake: FakeComfy) -> None:
    comfy = new_client(
        fake, watch_settings=WatchSettings(silence_s=0.1, unreachable_s=0.4)
    )
    await comfy.start()
    try:
        async with comfy.watch("p-1") as watch:
            await comfy.submit(GRAPH, prompt_id="p-1")
            await fake.stop()
            with pytest.raises(BackendUnavailable):
                await collect(watch)
    finally:
        await comfy.aclose()


async def test_a_prompt_has_one_watch(client: ComfyClient) -> None:
    async with client.watch("p-1"):
        with pytest.raises(ValueError):
            client.watch("p-1")
    client.watch("p-1").close()


# Reading state


async def test_history_of_unknown_prompt_is_none(client: ComfyClient) -> None:
    assert await client.history("does-not-exist") is None


async def test_history_lists_outputs(fake: FakeComfy, client: ComfyClient) -> None:
    fake.store_history("history_progress_with_preview.json", "p-1")
    entry = await client.history("p-1")
    assert entry is not None and entry.status is PromptStatus.SUCCESS
    assert [f.node_id for f in entry.files] == ["3", "4"]


async def test_queue_sorts_pending_by_number(
    fake: FakeComfy, client: ComfyClient
) -> None:
    fake.running = ["r"]
    fake.pending = [(7, "c"), (-2, "a"), (5.5, "b")]
    state = await client.queue()
    assert state == QueueState(running=["r"], pending=["a", "b", "c"])
    assert "b" in state and "zz" not in state
    assert await client.queue_remaining() == 4


async def test_control_requests_carry_their_bodies(
    fake: FakeComfy, client: ComfyClient
) -> None:
    await client.interrupt("p-9")
    await client.delete_pending(["p-7", "p-8"])
    await client.free(unload_models=True)
    assert [(path, body) for path, body, _ in fake.posted] == [
        ("/interrupt", {"prompt_id": "p-9"}),
        ("/queue", {"delete": ["p-7", "p-8"]}),
        ("/free", {"unload_models": True, "free_memory": False}),
    ]


async def test_capabilities_are_read(client: ComfyClient) -> None:
    assert "KSampler" in await client.object_info()
    assert "devices" in await client.system_stats()


# Files


@pytest.mark.parametrize("subfolder", ["", "chunked"])
async def test_download_streams_to_disk(
    fake: FakeComfy, client: ComfyClient, tmp_path: Path, subfolder: str
) -> None:
    output = OutputFile("3", "images", "out_00001_.png", subfolder, "output")
    dest = tmp_path / "out.png"
    assert await client.download(output, dest, limit_bytes=1 << 20) == len(PNG)
    assert dest.read_bytes() == PNG


@pytest.mark.parametrize("subfolder", ["", "chunked"])
async def test_download_past_the_limit_leaves_nothing(
    client: ComfyClient, tmp_path: Path, subfolder: str
) -> None:
    output = OutputFile("3", "images", "out_00001_.png", subfolder, "output")
    dest = tmp_path / "out.png"
    with pytest.raises(UnsafeFile) as caught:
        await client.download(output, dest, limit_bytes=10_000)
    assert caught.value.code == "too_large"
    assert not dest.exists()


async def test_download_of_missing_file_is_a_protocol_error(
    client: ComfyClient, tmp_path: Path
) -> None:
    output = OutputFile("3", "images", "gone.png")
    with pytest.raises(BackendProtocolError):
        await client.download(output, tmp_path / "x.png", limit_bytes=1000)


async def test_upload_returns_the_name_the_backend_chose(
    fake: FakeComfy, client: ComfyClient, tmp_path: Path
) -> None:
    source = tmp_path / "in.png"
    source.write_bytes(PNG)
    first = await client.upload_image(source, name="bridge_a.png", subfolder="bridge")
    assert first == UploadedFile("bridge_a.png", "bridge", "input")
    assert first.reference == "bridge/bridge_a.png"
    source.write_bytes(PNG + b"other")
    second = await client.upload_image(source, name="bridge_a.png")
    assert second.name == "bridge_a (1).png"
    assert fake.uploads["bridge_a (1).png"] == PNG + b"other"
    third = await client.upload_image(source, name="bridge_a.png", overwrite=True)
    assert third.name == "bridge_a.png"


@pytest.mark.parametrize("name", ["", "../x.png", "a/b.png", ".."])
async def test_upload_refuses_names_with_paths(
    client: ComfyClient, tmp_path: Path, name: str
) -> None:
    with pytest.raises(ValueError):
        await client.upload_image(tmp_path / "x", name=name)


# Transport errors


async def test_refused_connection_is_unavailable(tmp_path: Path) -> None:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    comfy = ComfyClient(
        f"http://127.0.0.1:{port}",
        backend_id="gone",
        timeouts=Timeouts(connect_s=0.2),
        socket_settings=FAST_SOCKET,
    )
    await comfy.start()
    try:
        assert not comfy.connected
        with pytest.raises(BackendUnavailable) as caught:
            await comfy.queue()
        assert caught.value.backend_id == "gone"
    finally:
        await comfy.aclose()


async def test_slow_answer_is_a_timeout(fake: FakeComfy) -> None:
    comfy = new_client(fake, timeouts=Timeouts(read_s=0.2))
    await comfy.start()
    fake.delay_s = 1.0
    try:
        with pytest.raises(BackendTimeout):
            await comfy.queue_remaining()
    finally:
        await comfy.aclose()


async def test_saturated_pool_is_unavailable_not_a_timeout(fake: FakeComfy) -> None:
    comfy = new_client(
        fake,
        timeouts=Timeouts(read_s=5.0, pool_s=0.2, connect_s=0.2),
        limits=Limits(max_connections=2),
    )
    await comfy.start()
    fake.delay_s = 1.5
    try:
        # The socket holds one connection, this request the other.
        busy = asyncio.create_task(comfy.queue_remaining())
        await asyncio.sleep(0.1)
        with pytest.raises(BackendUnavailable):
            await comfy.queue_remaining()
        assert await busy == 0
    finally:
        await comfy.aclose()


async def test_stalled_upload_is_a_timeout(tmp_path: Path) -> None:
    release = asyncio.Event()
    handlers: list[asyncio.Task[None]] = []

    async def never_read(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        handlers.append(asyncio.current_task())  # type: ignore[arg-type]
        await release.wait()
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()

    server = await asyncio.start_server(never_read, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    source = tmp_path / "big.png"
    source.write_bytes(PNG * 2000)
    comfy = ComfyClient(
        f"http://127.0.0.1:{port}",
        backend_id="stuck",
        timeouts=Timeouts(connect_s=0.2, write_s=0.3),
        socket_settings=FAST_SOCKET,
    )
    await comfy.start()
    try:
        with pytest.raises(BackendTimeout):
            await comfy.upload_image(source, name="big.png")
    finally:
        await comfy.aclose()
        release.set()
        await asyncio.gather(*handlers)
        server.close()
        await server.wait_closed()


async def test_closing_the_client_ends_open_watches(client: ComfyClient) -> None:
    watch = client.watch("p-1")
    waiting = asyncio.create_task(watch.outcome())
    await asyncio.sleep(0.05)
    await client.aclose()
    with pytest.raises(BackendUnavailable):
        await waiting


async def test_unreadable_answer_is_a_protocol_error(
    fake: FakeComfy, client: ComfyClient
) -> None:
    fake.prompt_answer = (200, "{not json")
    with pytest.raises(BackendProtocolError):
        await client.submit(GRAPH, prompt_id="p-1")


async def test_progress_arrives_typed(fake: FakeComfy, client: ComfyClient) -> None:
    async with client.watch("p-1") as watch:
        await client.submit(GRAPH, prompt_id="p-1")
        await fake.send(
            {
                "type": "progress",
                "data": {"value": 2, "max": 4, "prompt_id": "p-1", "node": "2"},
            }
        )
        await fake.replay("success", "p-1")
        messages = await collect(watch)
    assert Progress("p-1", "2", 2.0, 4.0) in messages


async def test_requests_log_one_debug_line_without_the_prompt(
    client: ComfyClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="comfy_bridge.comfy")
    await client.submit(GRAPH, prompt_id="p-1")
    lines = [
        r.getMessage() for r in caplog.records if r.name == "comfy_bridge.comfy.client"
    ]
    assert lines == [lines[0]] and lines[0].startswith(
        "backend b1: POST /prompt -> 200"
    )
    assert "EmptyImage" not in caplog.text


async def test_output_chunks_stream_and_can_stop_early(client: ComfyClient) -> None:
    output = OutputFile("3", "images", "out_00001_.png", "chunked", "output")
    received = b""
    async with contextlib.aclosing(
        client.output_chunks(output, limit_bytes=1 << 20)
    ) as chunks:
        async for chunk in chunks:
            received += chunk
    assert received == PNG
    async with contextlib.aclosing(
        client.output_chunks(output, limit_bytes=1 << 20)
    ) as chunks:
        first = await anext(chunks)
    assert PNG.startswith(first)
    assert await client.queue_remaining() == 0
