"""Every BridgeError becomes a response here, and nowhere else."""

from __future__ import annotations

import logging
import math
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from comfy_bridge.exceptions import (
    BackendError,
    BridgeError,
    PromptRejected,
    RateLimited,
)
from comfy_bridge.redaction import redact_values

logger = logging.getLogger(__name__)


def error_body(exc: BridgeError) -> dict[str, Any]:
    body: dict[str, Any] = {"code": exc.code, "detail": exc.detail}
    if exc.job_id:
        body["job_id"] = exc.job_id
    body.update({k: v for k, v in exc.extra.items() if v is not None})
    # A backend's own words may name its address or its files.
    if isinstance(exc, BackendError | PromptRejected):
        return dict(redact_values(body))
    return body


async def bridge_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, BridgeError)
    if exc.status_code >= 500:
        logger.warning("%s: %s", exc.code, exc.detail)
    return JSONResponse(
        error_body(exc), status_code=exc.status_code, headers=retry_after(exc)
    )


def retry_after(exc: BridgeError) -> dict[str, str] | None:
    """When to try again: a client limit knows; an unavailable bridge guesses."""
    if isinstance(exc, RateLimited):
        return {"Retry-After": str(max(1, math.ceil(exc.retry_after_s)))}
    return {"Retry-After": "5"} if exc.status_code == 503 else None


def install(app: FastAPI) -> None:
    app.add_exception_handler(BridgeError, bridge_error)
