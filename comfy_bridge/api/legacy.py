"""The original bridge's API, served beside v1 as thin adapters over the same core.

A client's `clientId` is its session: its uploads, its one generation, its
progress and its results. The store maps a clientId to its job until the
results are fetched; the job itself is an ordinary job of the caller's key,
scheduled, limited, checked and cancelled like any other.

The routes follow the same rules as v1: a key as a bearer token or as
`?token=`, unless the bridge runs in open mode. A clientId is looked up within
the caller's own sessions, so two keys never see each other's clientIds.
"""

from __future__ import annotations

import asyncio
import base64
import logging
from collections.abc import AsyncIterator, Callable, Coroutine
from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Query, Request, Response, WebSocket
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse, StreamingResponse
from fastapi.routing import APIRoute
from starlette.websockets import WebSocketDisconnect

from comfy_bridge.api import errors
from comfy_bridge.api.deps import BridgeDep, LegacyClientDep, SocketClientDep
from comfy_bridge.api.legacy_results import base64_body, multipart_body
from comfy_bridge.auth import Principal
from comfy_bridge.bridge import Bridge
from comfy_bridge.events import Subscription
from comfy_bridge.exceptions import (
    BridgeError,
    Forbidden,
    InputInvalid,
    JobNotFound,
    JobStateConflict,
    RateLimited,
    Unauthorized,
    UnsafeFile,
)
from comfy_bridge.jobs import Job, JobStatus
from comfy_bridge.store import UploadRow
from comfy_bridge.workflows import InputType, Workflow

logger = logging.getLogger(__name__)

Message = dict[str, str]

HEARTBEAT_S = 1.0
# How often a socket opened before its generation looks for the job.
POLL_S = 0.2
MAX_UPLOAD_PARTS = 16
DONE = "Execution is done"


class LegacyRoute(APIRoute):
    """Refusals answer 400 `{"detail"}`, as the original bridge's did; a file the
    safety check refused also names its rule as `code`. Refusals the original
    never made (no key, not allowed, over a limit) keep their own status."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def refusing_handler(request: Request) -> Response:
            try:
                return await handler(request)
            except (Unauthorized, Forbidden, RateLimited) as exc:
                return await errors.bridge_error(request, exc)
            except BridgeError as exc:
                if exc.status_code >= 500:
                    logger.warning("%s: %s", exc.code, exc.detail)
                rule = exc.code if isinstance(exc, UnsafeFile) else None
                return _refusal(exc.detail, rule)
            except RequestValidationError as exc:
                return _refusal(_validation_detail(exc))

        return refusing_handler


router = APIRouter(route_class=LegacyRoute, tags=["legacy"])

ClientId = Annotated[str, Query(alias="clientId", min_length=1, max_length=100)]
OptionalClientId = Annotated[
    str | None, Query(alias="clientId", min_length=1, max_length=100)
]


@router.get("/", response_class=PlainTextResponse)
async def greeting() -> str:
    """A short greeting, for clients that check the server is up."""
    return "comfy-bridge: the original bridge's API is served here, /v1 beside it"


@router.websocket("/ws")
async def progress_socket(
    websocket: WebSocket, client_id: ClientId, client: SocketClientDep
) -> None:
    """Progress of the clientId's generation; closing it cancels the work.

    The socket may open before the generation is requested.
    """
    bridge: Bridge = websocket.app.state.bridge
    session = _session(client, client_id)
    await websocket.send_json(_message("connected", f"connected / {client_id}"))
    if await _followed_to_the_end(websocket, bridge, session):
        await websocket.close(code=1000)
        return
    job = await _job_of(bridge, session)
    if job is not None and not job.status.terminal:
        bridge.abandoned(job.id)


@router.get("/workflow-list")
async def workflow_list(
    bridge: BridgeDep, _client: LegacyClientDep
) -> list[dict[str, Any]]:
    """The registered workflows: alias, file, description and thumbnail (base64)."""
    return [
        {
            "alias": workflow.alias,
            "fn": workflow.file_name or f"{workflow.alias}.json",
            "description": workflow.description,
            "thumbnail": _encoded(bridge.workflows.thumbnail(workflow.alias)),
        }
        for workflow in bridge.workflows.all()
    ]


@router.get("/workflow-info")
async def workflow_info(
    bridge: BridgeDep,
    _client: LegacyClientDep,
    alias: Annotated[str, Query(alias="workflow")],
) -> dict[str, dict[str, Any]]:
    """A workflow's exposed inputs, keyed `<node id>/<input name>`."""
    workflow = bridge.workflows.get(alias)
    return {
        spec.name: {
            "type": spec.legacy_type,
            "title": spec.title,
            "class": spec.class_type,
            "default": spec.default,
            "descimage": await _file_encoded(spec.descimage),
        }
        for spec in workflow.inputs
    }


@router.post("/upload")
async def upload(
    request: Request, bridge: BridgeDep, client: LegacyClientDep, client_id: ClientId
) -> dict[str, str]:
    """Check and keep the client's files; each part's field name is its identifier."""
    uploads = await bridge.receive_uploads(
        request.stream(),
        content_type=request.headers.get("content-type", ""),
        content_length=request.headers.get("content-length"),
        max_parts=MAX_UPLOAD_PARTS,
        owner=client.owner,
    )
    return {identifier: _saved_name(row) for identifier, row in uploads}


@router.post("/generate-based-workflow")
async def generate(
    bridge: BridgeDep,
    client: LegacyClientDep,
    client_id: ClientId,
    body: Annotated[dict[str, Any], Body()],
) -> dict[str, str]:
    """Queue the clientId's generation: `{"workflow": ALIAS, "<node>/<input>": …}`."""
    values = dict(body)
    alias = values.pop("workflow", None)
    if not isinstance(alias, str):
        raise InputInvalid("expected the workflow's alias under 'workflow'")
    workflow = bridge.workflows.get(alias)
    session = _session(client, client_id)
    await _check_no_generation_running(bridge, session, client_id)
    await bridge.submit(
        alias,
        _with_upload_ids(workflow, values),
        owner=client.owner,
        legacy_client=session,
    )
    return {"detail": f"queued / {_queue_length(bridge)}"}


@router.get("/execution-info")
async def execution_info(
    bridge: BridgeDep, client: LegacyClientDep, client_id: ClientId
) -> Message:
    """The latest progress message of the clientId's generation."""
    return job_message(await _require_job(bridge, client, client_id))


@router.get("/history")
async def history(
    bridge: BridgeDep,
    client: LegacyClientDep,
    client_id: ClientId,
    res_type: Annotated[
        Literal["multipart", "base64"], Query(alias="resType")
    ] = "multipart",
) -> Response:
    """The generation's files; the clientId is released once they are sent."""
    session = _session(client, client_id)
    job = await _job_of(bridge, session)
    if job is None:
        return Response(status_code=204)
    await _check_finished(bridge, session, client_id, job)
    if res_type == "base64":
        body, content_type = base64_body(job.outputs), "application/json"
    else:
        body, content_type = multipart_body(job.outputs)
    released = _then_release(body, bridge, session)
    return StreamingResponse(released, media_type=content_type)


@router.get("/generation-count")
async def generation_count(bridge: BridgeDep, _client: LegacyClientDep) -> int:
    """Generations queued since the first start, kept across restarts."""
    return await bridge.generation_count()


@router.post("/free")
async def free(
    bridge: BridgeDep, client: LegacyClientDep, client_id: OptionalClientId = None
) -> Message:
    """Ask the clientId's backend, or every backend, to free its memory.

    Every backend: an admin, or anyone in open mode (the original's trust).
    """
    if client_id is None:
        if not (client.is_admin or bridge.settings.open):
            raise Forbidden("freeing every backend needs an admin key")
        await bridge.free_memory()
        return {"detail": "server memory free now / ALL"}
    job = await _job_of(bridge, _session(client, client_id))
    if job is None or job.backend_id is None:
        raise JobNotFound(f"no backend has run a generation of clientId {client_id}")
    await bridge.free_memory(job.backend_id)
    return {"detail": f"server memory free now / {client_id}"}


@router.post("/interrupt")
async def interrupt(
    bridge: BridgeDep, client: LegacyClientDep, client_id: ClientId
) -> Message:
    """Cancel the clientId's generation, queued or running."""
    job = await _require_job(bridge, client, client_id)
    await bridge.cancel(job.id, reason="client")
    return {"detail": f"generation interrupted / {client_id}"}


def job_message(job: Job) -> Message:
    """The original bridge's `{status, detail}` message for a job's state."""
    if job.status is JobStatus.QUEUED:
        return _message("listening", "queued")
    if job.status is JobStatus.SUCCEEDED:
        return _message("closed", DONE)
    if job.status.terminal:
        error = job.error or {}
        return _message("error", f"{error.get('code')}: {error.get('message')}")
    return _message("progress", f"{job.progress * 100:.2f}%")


async def _followed_to_the_end(
    websocket: WebSocket, bridge: Bridge, session: str
) -> bool:
    """Send progress until the generation ends; False if the client left first."""
    follow = asyncio.create_task(_follow(websocket, bridge, session))
    gone = asyncio.create_task(_until_disconnect(websocket))
    try:
        done, _ = await asyncio.wait(
            {follow, gone}, return_when=asyncio.FIRST_COMPLETED
        )
    finally:
        for task in (follow, gone):
            task.cancel()
        await asyncio.gather(follow, gone, return_exceptions=True)
    if follow not in done:
        return False
    try:
        follow.result()
    except WebSocketDisconnect:
        return False
    return True


async def _follow(websocket: WebSocket, bridge: Bridge, session: str) -> None:
    job_id = await _await_generation(websocket, bridge, session)
    with bridge.events.subscribe(job_id) as subscription:
        job = await bridge.get_job(job_id)
        sent = job_message(job)
        await websocket.send_json(sent)
        while not job.status.terminal:
            if not await _next_event(subscription):
                await websocket.send_json(_message("listening", "waiting"))
                continue
            job = await bridge.get_job(job_id)
            message = job_message(job)
            if message != sent:
                sent = message
                await websocket.send_json(message)
    if job.status is not JobStatus.SUCCEEDED:
        await websocket.send_json(_message("closed", "the connection closes"))


async def _await_generation(websocket: WebSocket, bridge: Bridge, session: str) -> str:
    """The session's job id, heartbeating until the client asks for one."""
    polls_a_beat = round(HEARTBEAT_S / POLL_S)
    polls = 0
    while True:
        job_id = await bridge.store.legacy_job_id(session)
        if job_id is not None:
            return job_id
        if polls % polls_a_beat == 0:
            await websocket.send_json(_message("listening", "waiting"))
        polls += 1
        await asyncio.sleep(POLL_S)


async def _next_event(subscription: Subscription) -> bool:
    """Whether an event came within a heartbeat."""
    try:
        async with asyncio.timeout(HEARTBEAT_S):
            await subscription.get()
    except TimeoutError:
        return False
    return True


async def _until_disconnect(websocket: WebSocket) -> None:
    # The original clients send nothing; anything they do send is ignored.
    while (await websocket.receive())["type"] != "websocket.disconnect":
        pass


async def _job_of(bridge: Bridge, session: str) -> Job | None:
    job_id = await bridge.store.legacy_job_id(session)
    if job_id is None:
        return None
    try:
        return await bridge.get_job(job_id)
    except JobNotFound:
        return None


async def _require_job(bridge: Bridge, client: Principal, client_id: str) -> Job:
    job = await _job_of(bridge, _session(client, client_id))
    if job is None:
        raise JobNotFound(f"clientId {client_id} has no generation")
    return job


async def _check_no_generation_running(
    bridge: Bridge, session: str, client_id: str
) -> None:
    job = await _job_of(bridge, session)
    if job is not None and not job.status.terminal:
        raise JobStateConflict(
            f"clientId {client_id} already has a generation ({job.status}); "
            "use a new clientId or interrupt it first",
            job_id=job.id,
        )


async def _check_finished(
    bridge: Bridge, session: str, client_id: str, job: Job
) -> None:
    if not job.status.terminal:
        raise JobStateConflict(
            f"the generation of clientId {client_id} is not done yet ({job.status})"
        )
    if job.status is not JobStatus.SUCCEEDED:
        # The work is over either way: the clientId is released with the news.
        await bridge.store.release_legacy_client(session)
        raise JobStateConflict(
            f"the generation of clientId {client_id} ended {job.status}: "
            f"{job_message(job)['detail']}"
        )
    for index in range(len(job.outputs)):
        # Refused before the body starts: an expired file cannot break it halfway.
        bridge.output(job, index)


async def _then_release(
    body: AsyncIterator[bytes], bridge: Bridge, session: str
) -> AsyncIterator[bytes]:
    # Released before the body's end is sent, so a client that has read it
    # all finds the clientId gone; a transfer that breaks keeps it.
    async for chunk in body:
        yield chunk
    await bridge.store.release_legacy_client(session)


def _with_upload_ids(workflow: Workflow, values: dict[str, Any]) -> dict[str, Any]:
    """File inputs hold the name /upload answered; the core takes upload ids."""
    files = {spec.name for spec in workflow.inputs if spec.type is InputType.IMAGE}
    return {
        name: _upload_id(value) if name in files and isinstance(value, str) else value
        for name, value in values.items()
    }


def _saved_name(row: UploadRow) -> str:
    # Upload ids hold no dot, so the extension comes off cleanly again.
    return row.id + Path(row.filename).suffix


def _upload_id(saved_name: str) -> str:
    return saved_name.partition(".")[0]


def _session(client: Principal, client_id: str) -> str:
    """A clientId within its caller's own sessions."""
    return f"{client.owner}/{client_id}"


def _queue_length(bridge: Bridge) -> int:
    return len(bridge.queue) + sum(len(backend.in_flight) for backend in bridge.pool)


def _message(status: str, detail: str) -> Message:
    return {"status": status, "detail": detail}


def _encoded(data: bytes | None) -> str | None:
    return base64.b64encode(data).decode("ascii") if data is not None else None


async def _file_encoded(path: Path | None) -> str | None:
    if path is None:
        return None
    return _encoded(await asyncio.to_thread(path.read_bytes))


def _refusal(detail: str, rule: str | None = None) -> JSONResponse:
    body = {"detail": detail} if rule is None else {"code": rule, "detail": detail}
    return JSONResponse(body, status_code=400)


def _validation_detail(exc: RequestValidationError) -> str:
    problems = [
        f"{'.'.join(str(part) for part in error['loc'])}: {error['msg']}"
        for error in exc.errors()
    ]
    return "; ".join(problems) or "the request is invalid"
