"""Every BridgeError becomes a response here, and nowhere else."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from comfy_bridge.exceptions import BridgeError

logger = logging.getLogger(__name__)


def error_body(exc: BridgeError) -> dict[str, Any]:
    body: dict[str, Any] = {"code": exc.code, "detail": exc.detail}
    if exc.job_id:
        body["job_id"] = exc.job_id
    body.update({k: v for k, v in exc.extra.items() if v is not None})
    return body


async def bridge_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, BridgeError)
    if exc.status_code >= 500:
        logger.warning("%s: %s", exc.code, exc.detail)
    headers = {"Retry-After": "5"} if exc.status_code == 503 else None
    return JSONResponse(error_body(exc), status_code=exc.status_code, headers=headers)


def install(app: FastAPI) -> None:
    app.add_exception_handler(BridgeError, bridge_error)
