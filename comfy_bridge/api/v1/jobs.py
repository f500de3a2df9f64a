"""Jobs: submit, follow, cancel, and fetch outputs."""

from __future__ import annotations

import asyncio
import logging
import os
from typing import Annotated

from fastapi import APIRouter, Query, WebSocket, WebSocketDisconnect, status
from fastapi.responses import FileResponse, JSONResponse

from comfy_bridge.api.deps import (
    CLOSE_NOT_FOUND,
    BridgeDep,
    ClientDep,
    SocketClientDep,
    allowed_priority,
    owned_job,
)
from comfy_bridge.api.v1.schemas import JobCreate, JobPublic, JobsPublic
from comfy_bridge.auth import Principal
from comfy_bridge.bridge import Bridge
from comfy_bridge.events import Subscription
from comfy_bridge.exceptions import JobNotFound, OutputExpired

logger = logging.getLogger(__name__)

router = APIRouter(prefix="/v1/jobs", tags=["jobs"])

WAIT_MAX_S = 600.0


@router.post("", status_code=status.HTTP_202_ACCEPTED)
async def create_job(
    body: JobCreate,
    bridge: BridgeDep,
    client: ClientDep,
    wait: Annotated[float, Query(ge=0, le=WAIT_MAX_S, allow_inf_nan=False)] = 0,
) -> JSONResponse:
    """Queue a job; with `wait`, answer when it ends or the wait runs out."""
    job = await bridge.submit(
        body.workflow,
        body.inputs,
        owner=client.owner,
        priority=allowed_priority(client, body.priority),
        lease_s=body.lease_s,
    )
    if wait > 0:
        job = await bridge.wait(job.id, wait)
    code = status.HTTP_200_OK if job.status.terminal else status.HTTP_202_ACCEPTED
    return JSONResponse(
        job.public(), status_code=code, headers={"Location": f"/v1/jobs/{job.id}"}
    )


@router.get("")
async def list_jobs(
    bridge: BridgeDep,
    client: ClientDep,
    status_: Annotated[str | None, Query(alias="status")] = None,
    workflow: str | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> JobsPublic:
    """List the caller's jobs (an admin: every job), newest first."""
    jobs, total = await bridge.store.list_jobs(
        owner=None if client.is_admin else client.owner,
        status=status_,
        workflow=workflow,
        limit=limit,
        offset=offset,
    )
    return JobsPublic(jobs=[JobPublic(**job.public()) for job in jobs], total=total)


@router.get("/{job_id}")
async def get_job(
    job_id: str,
    bridge: BridgeDep,
    client: ClientDep,
    wait: Annotated[float, Query(ge=0, le=WAIT_MAX_S, allow_inf_nan=False)] = 0,
) -> JobPublic:
    """A job's status, progress, error and outputs."""
    job = await owned_job(bridge, client, job_id)
    bridge.touch(job_id)
    if wait:
        job = await bridge.wait(job_id, wait)
    return JobPublic(**job.public())


@router.delete("/{job_id}")
async def cancel_job(job_id: str, bridge: BridgeDep, client: ClientDep) -> JobPublic:
    """Cancel a job: a queued one is dropped, a running one stopped on its backend."""
    await owned_job(bridge, client, job_id)
    job = await bridge.cancel(job_id, reason="client")
    return JobPublic(**job.public())


@router.get("/{job_id}/outputs/{index}", response_class=FileResponse)
async def get_output(
    job_id: str, index: int, bridge: BridgeDep, client: ClientDep
) -> FileResponse:
    """One output file of a finished job."""
    job = await owned_job(bridge, client, job_id)
    output, path = bridge.output(job, index)
    try:
        # Read now: retention may delete the file between the check and the send.
        found = await asyncio.to_thread(os.stat, path)
    except FileNotFoundError as exc:
        raise OutputExpired(
            f"output {index} of job {job_id} was deleted", job_id=job_id
        ) from exc
    return FileResponse(
        path,
        stat_result=found,
        media_type=output.content_type,
        filename=output.filename,
        headers={"X-Content-Type-Options": "nosniff"},
    )


@router.websocket("/{job_id}/events")
async def job_events(
    websocket: WebSocket, job_id: str, client: SocketClientDep
) -> None:
    """Status, progress and output events of one job, ending with its last status.

    Closing the socket while the job runs cancels it, after a short grace in which
    the client may attach again.
    """
    bridge: Bridge = websocket.app.state.bridge
    try:
        await _stream_events(websocket, bridge, client, job_id)
    except JobNotFound as exc:
        await websocket.close(code=CLOSE_NOT_FOUND, reason=exc.detail[:120])
    except WebSocketDisconnect:
        bridge.abandoned(job_id)


async def _stream_events(
    websocket: WebSocket, bridge: Bridge, client: Principal, job_id: str
) -> None:
    await owned_job(bridge, client, job_id)
    with bridge.events.subscribe(job_id) as subscription:
        job = await bridge.get_job(job_id)
        await websocket.send_json(
            {"type": "status", "status": str(job.status), "job": job.public()}
        )
        if not job.status.terminal:
            await _forward_until_end(websocket, subscription, str(job.status))
    await websocket.close(code=1000)


async def _forward_until_end(
    websocket: WebSocket, subscription: Subscription, status: str
) -> None:
    disconnect = asyncio.create_task(_until_disconnect(websocket))
    try:
        while True:
            getter = asyncio.create_task(subscription.get())
            done, _ = await asyncio.wait(
                {getter, disconnect}, return_when=asyncio.FIRST_COMPLETED
            )
            if disconnect in done:
                getter.cancel()
                raise WebSocketDisconnect(code=1001)
            event = getter.result()
            if event.get("type") == "status":
                # The snapshot may already tell what a queued event repeats.
                if event["status"] == status and "job" not in event:
                    continue
                status = event["status"]
            await websocket.send_json(event)
            if event.get("type") == "status" and "job" in event:
                return
    finally:
        disconnect.cancel()


async def _until_disconnect(websocket: WebSocket) -> None:
    while True:
        message = await websocket.receive()
        if message["type"] == "websocket.disconnect":
            return
