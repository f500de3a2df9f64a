"""The simulator's aiohttp application: ComfyUI's routes, also under /api/."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import platform
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from aiohttp import WSMsgType, web

from comfy_bridge.simulator import uploads, views
from comfy_bridge.simulator.execution import Executor
from comfy_bridge.simulator.options import FaultKind, SimulatorOptions
from comfy_bridge.simulator.recorder import RequestLog
from comfy_bridge.simulator.registry import Registry
from comfy_bridge.simulator.sockets import Hub
from comfy_bridge.simulator.storage import Storage
from comfy_bridge.simulator.uploads import BareServerError
from comfy_bridge.simulator.validation import (
    PromptCrash,
    PromptRejected,
    rejection,
    validate_prompt,
)

logger = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
CRASH_TEXT = "500 Internal Server Error\n\nServer got itself in trouble"
SLOW_REPLY_S = 0.2
INDEX_HTML = (
    "<!doctype html><title>ComfyUI (simulated)</title><p>comfy-bridge simulator</p>"
)


@dataclass
class Simulator:
    """Everything one simulated backend holds."""

    options: SimulatorOptions
    storage: Storage
    registry: Registry
    hub: Hub
    executor: Executor
    requests: RequestLog

    @classmethod
    def create(cls, options: SimulatorOptions) -> Simulator:
        storage = Storage(options.data_dir)
        registry = Registry(options, storage)
        hub = Hub()
        executor = Executor(options, registry, storage, hub)
        return cls(options, storage, registry, hub, executor, RequestLog())

    def features(self) -> dict[str, Any]:
        return {
            "supports_preview_metadata": True,
            "max_upload_size": self.options.max_upload_size,
        }


SIMULATOR = web.AppKey("simulator", Simulator)


def sim(request: web.Request) -> Simulator:
    return request.app[SIMULATOR]


def crash() -> web.Response:
    return web.Response(status=500, text=CRASH_TEXT, content_type="text/plain")


async def json_body(request: web.Request) -> Any:
    """The JSON body; a malformed one is a crash, as in ComfyUI."""
    try:
        return await request.json()
    except ValueError as exc:
        raise BareServerError("malformed JSON body") from exc


def optional_json(raw: bytes) -> Any:
    return json.loads(raw) if raw.strip() else {}


# ---------------------------------------------------------------------- middlewares


@web.middleware
async def record_requests(request: web.Request, handler: Handler) -> web.StreamResponse:
    await sim(request).requests.record(request)
    if sim(request).options.has_fault(FaultKind.SLOW):
        await asyncio.sleep(SLOW_REPLY_S)
    return await handler(request)


@web.middleware
async def refuse_foreign_origin(
    request: web.Request, handler: Handler
) -> web.StreamResponse:
    """A browser request from another origin is refused, as ComfyUI does."""
    origin = request.headers.get("Origin")
    if origin and urlsplit(origin).netloc != request.host:
        logger.warning(
            "refused %s %s from origin %s", request.method, request.path, origin
        )
        return web.Response(status=403)
    return await handler(request)


@web.middleware
async def comfy_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """ComfyUI answers 404 for a wrong method and a bare 500 where it crashes."""
    try:
        return await handler(request)
    except web.HTTPMethodNotAllowed:
        return web.Response(status=404)
    except BareServerError as exc:
        logger.warning(
            "%s %s: crash as ComfyUI would: %s", request.method, request.path, exc
        )
        return crash()


# --------------------------------------------------------------------- HTTP routes


async def index(request: web.Request) -> web.Response:
    """The front page (ComfyUI serves its editor here)."""
    return web.Response(text=INDEX_HTML, content_type="text/html")


async def system_stats(request: web.Request) -> web.Response:
    """Versions, memory and the (simulated) GPU with its VRAM."""
    options = sim(request).options
    vram = int(options.vram_gb * 1024**3)
    free = int(vram * 0.9)
    system = {
        "os": "posix",
        "ram_total": 32 * 1024**3,
        "ram_free": 24 * 1024**3,
        "comfyui_version": "0.3.64",
        "required_frontend_version": "1.27.10",
        "installed_templates_version": "0.1.95",
        "required_templates_version": "0.1.95",
        "python_version": platform.python_version(),
        "pytorch_version": "simulated",
        "embedded_python": False,
        "argv": ["comfy-bridge", "simulate", "--port", str(options.port)],
    }
    device = {
        "name": "cuda:0 Simulated GPU : native",
        "type": "cuda",
        "index": None,
        "vram_total": vram,
        "vram_free": free,
        "torch_vram_total": vram,
        "torch_vram_free": free,
    }
    return web.json_response({"system": system, "devices": [device]})


async def features(request: web.Request) -> web.Response:
    """Server feature flags."""
    return web.json_response(sim(request).features())


async def get_prompt(request: web.Request) -> web.Response:
    """Queue size: running plus pending."""
    remaining = sim(request).executor.queue.remaining()
    return web.json_response({"exec_info": {"queue_remaining": remaining}})


async def post_prompt(request: web.Request) -> web.Response:
    """Validate a prompt and queue it."""
    state = sim(request)
    body = await json_body(request)
    if not isinstance(body, dict):
        raise BareServerError("body is not an object")
    if "prompt" not in body:
        rejected = rejection("no_prompt", "No prompt provided", "No prompt provided")
        return web.json_response(rejected.body, status=400)
    queue = state.executor.queue
    number = queue.next_number(body.get("number"), bool(body.get("front")))
    try:
        valid = validate_prompt(body["prompt"], state.registry)
    except PromptCrash as exc:
        raise BareServerError(str(exc)) from exc
    except PromptRejected as exc:
        return web.json_response(exc.body, status=400)
    prompt_id = str(body.get("prompt_id") or uuid.uuid4())
    extra_data = dict(body.get("extra_data") or {})
    if body.get("client_id"):
        extra_data["client_id"] = body["client_id"]
    queue.put(number, prompt_id, body["prompt"], extra_data, valid.outputs)
    answer = {
        "prompt_id": prompt_id,
        "number": number,
        "node_errors": valid.node_errors,
    }
    return web.json_response(answer)


async def get_queue(request: web.Request) -> web.Response:
    """Running and pending prompts as 5-tuples."""
    return web.json_response(sim(request).executor.queue.snapshot())


async def post_queue(request: web.Request) -> web.Response:
    """`{"clear": true}` drops pending prompts; `{"delete": [...]}` some of them."""
    body = await json_body(request)
    queue = sim(request).executor.queue
    if body.get("clear"):
        queue.clear()
    if "delete" in body:
        queue.delete(list(body["delete"]))
    return web.Response(status=200)


async def interrupt(request: web.Request) -> web.Response:
    """Bare: stop what runs. With prompt_id: only if that prompt is running."""
    state = sim(request)
    body = optional_json(await request.read())
    prompt_id = body.get("prompt_id") if isinstance(body, dict) else None
    if prompt_id is None:
        state.executor.interrupt(None)
    elif not state.options.has_fault(FaultKind.IGNORE_TARGETED_INTERRUPT):
        state.executor.interrupt(str(prompt_id))
    return web.Response(status=200)


async def free(request: web.Request) -> web.Response:
    """`free_memory` drops the node output cache before the next prompt."""
    body = optional_json(await request.read())
    if isinstance(body, dict) and body.get("free_memory"):
        sim(request).executor.free_requested = True
    return web.Response(status=200)


async def get_history(request: web.Request) -> web.Response:
    """All history, or `max_items` newest, or from `offset`."""
    query = request.query
    max_items = int(query["max_items"]) if "max_items" in query else None
    offset = int(query.get("offset", -1))
    return web.json_response(sim(request).executor.history.page(max_items, offset))


async def get_history_entry(request: web.Request) -> web.Response:
    """One entry, or `{}` for an unknown id."""
    prompt_id = request.match_info["prompt_id"]
    return web.json_response(sim(request).executor.history.get(prompt_id))


async def post_history(request: web.Request) -> web.Response:
    """`{"clear": true}` and/or `{"delete": [...]}`."""
    body = await json_body(request)
    history = sim(request).executor.history
    if body.get("clear"):
        history.clear()
    if "delete" in body:
        history.delete(list(body["delete"]))
    return web.Response(status=200)


async def object_info(request: web.Request) -> web.Response:
    """Every node class the simulator claims."""
    return web.json_response(sim(request).registry.object_info())


async def object_info_class(request: web.Request) -> web.Response:
    """One class, or `{}` when it is unknown."""
    return web.json_response(
        sim(request).registry.node_info(request.match_info["name"])
    )


async def embeddings(request: web.Request) -> web.Response:
    """Embedding names (none)."""
    return web.json_response([])


async def extensions(request: web.Request) -> web.Response:
    """Frontend extension scripts (none)."""
    return web.json_response([])


async def models(request: web.Request) -> web.Response:
    """Model folder names."""
    return web.json_response(sim(request).registry.model_folders())


async def models_in(request: web.Request) -> web.Response:
    """The model files claimed in one folder."""
    registry = sim(request).registry
    folder = request.match_info["folder"]
    if folder not in registry.model_folders():
        return web.Response(status=404)
    return web.json_response(registry.models.get(folder, []))


async def upload_image(request: web.Request) -> web.Response:
    """Multipart upload into input, temp or output."""
    return await uploads.upload_image(request, sim(request).storage)


async def view(request: web.Request) -> web.StreamResponse:
    """Download a file."""
    return await views.view(request, sim(request).storage)


async def sim_requests(request: web.Request) -> web.Response:
    """Simulator only: every request received so far, or from index `since` on."""
    since = request.query.get("since", "0")
    start = int(since) if since.isdigit() else 0
    return web.json_response(sim(request).requests.entries[start:])


async def sim_requests_clear(request: web.Request) -> web.Response:
    """Simulator only: forget the recorded requests."""
    sim(request).requests.clear()
    return web.Response(status=200)


# ------------------------------------------------------------------------ WebSocket


async def websocket(request: web.Request) -> web.WebSocketResponse:
    """Greet with `status` (and the running node on reconnect), then push messages."""
    state = sim(request)
    socket = web.WebSocketResponse()
    await socket.prepare(request)
    sid = request.query.get("clientId") or uuid.uuid4().hex
    client = state.hub.attach(sid, socket)
    status = {"exec_info": {"queue_remaining": state.executor.queue.remaining()}}
    state.hub.send("status", {"status": status, "sid": sid}, sid)
    running_node = state.executor.running_node_for(sid)
    if running_node is not None:
        state.hub.send("executing", {"node": running_node}, sid)
    try:
        await read_client_frames(state, client.sid, socket)
    finally:
        state.hub.detach(client)
    return socket


async def read_client_frames(
    state: Simulator, sid: str, socket: web.WebSocketResponse
) -> None:
    """Only a first `feature_flags` frame means anything; it is answered once."""
    first = True
    async for message in socket:
        if message.type is not WSMsgType.TEXT:
            continue
        if first:
            negotiate(state, sid, message.data)
        first = False


def negotiate(state: Simulator, sid: str, text: str) -> None:
    try:
        frame = json.loads(text)
    except ValueError:
        return
    if not isinstance(frame, dict) or frame.get("type") != "feature_flags":
        return
    flags = frame.get("data") or {}
    client = state.hub.clients.get(sid)
    if client is not None:
        client.wants_metadata = bool(flags.get("supports_preview_metadata"))
    state.hub.send("feature_flags", state.features(), sid)


# ---------------------------------------------------------------------------- app

ROUTES: list[tuple[str, str, Handler]] = [
    ("GET", "/ws", websocket),
    ("GET", "/system_stats", system_stats),
    ("GET", "/features", features),
    ("GET", "/prompt", get_prompt),
    ("POST", "/prompt", post_prompt),
    ("GET", "/queue", get_queue),
    ("POST", "/queue", post_queue),
    ("POST", "/interrupt", interrupt),
    ("POST", "/free", free),
    ("GET", "/history", get_history),
    ("GET", "/history/{prompt_id}", get_history_entry),
    ("POST", "/history", post_history),
    ("GET", "/object_info", object_info),
    ("GET", "/object_info/{name}", object_info_class),
    ("GET", "/embeddings", embeddings),
    ("GET", "/extensions", extensions),
    ("GET", "/models", models),
    ("GET", "/models/{folder}", models_in),
    ("POST", "/upload/image", upload_image),
    ("POST", "/upload/mask", upload_image),
    ("GET", "/view", view),
]


async def _remove_storage(app: web.Application) -> None:
    app[SIMULATOR].storage.remove()


def create_app(simulator: Simulator) -> web.Application:
    """The application; every dynamic route also answers under /api/."""
    app = web.Application(
        middlewares=[comfy_errors, refuse_foreign_origin, record_requests],
        client_max_size=simulator.options.max_upload_size,
    )
    app[SIMULATOR] = simulator
    app.on_cleanup.append(_remove_storage)
    for method, path, handler in ROUTES:
        app.router.add_route(method, path, handler)
        app.router.add_route(method, "/api" + path, handler)
    app.router.add_get("/", index)
    app.router.add_get("/api/", index)
    app.router.add_get("/_sim/requests", sim_requests)
    app.router.add_post("/_sim/requests/clear", sim_requests_clear)
    app.cleanup_ctx.append(run_worker)
    return app


async def run_worker(app: web.Application) -> AsyncIterator[None]:
    """The prompt worker lives as long as the application."""
    worker = asyncio.create_task(app[SIMULATOR].executor.run_forever())
    yield
    worker.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await worker


def serve(options: SimulatorOptions) -> None:
    """Run a simulator until interrupted."""
    simulator = Simulator.create(options)
    logger.info(
        "simulating ComfyUI on %s:%d with %d node classes, %d model files",
        options.host,
        options.port,
        len(simulator.registry.specs),
        sum(len(names) for names in simulator.registry.models.values()),
    )
    web.run_app(
        create_app(simulator),
        host=options.host,
        port=options.port,
        print=None,
        access_log=None,
    )
