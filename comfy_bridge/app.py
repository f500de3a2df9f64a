"""The application factory: one bridge core, its HTTP front ends, its lifespan."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse

from comfy_bridge import __version__
from comfy_bridge.api import errors, legacy
from comfy_bridge.api.origins import SameOriginOnly
from comfy_bridge.api.text import UnicodeBodies
from comfy_bridge.api.v1 import backends, jobs, keys, uploads, workflows
from comfy_bridge.bridge import Bridge
from comfy_bridge.config import Settings


def create_app(settings: Settings | None = None) -> FastAPI:
    bridge = Bridge(settings or Settings())

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        await bridge.start()
        try:
            yield
        finally:
            await bridge.aclose()

    app = FastAPI(
        title="comfy-bridge",
        version=__version__,
        summary="One front door for many ComfyUI servers.",
        lifespan=lifespan,
    )
    app.state.bridge = bridge
    app.add_middleware(UnicodeBodies)
    if bridge.settings.open:
        app.add_middleware(SameOriginOnly, allowed=bridge.settings.cors_origins)
    if bridge.settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=bridge.settings.cors_origins,
            allow_methods=["GET", "POST", "PUT", "DELETE"],
            allow_headers=["Authorization", "Content-Type"],
        )
    errors.install(app)
    for module in (workflows, uploads, jobs, backends, keys):
        app.include_router(module.router)
    app.include_router(legacy.router)

    @app.get("/healthz", tags=["health"])
    async def healthz() -> dict[str, str]:
        """The process is alive."""
        return {"status": "ok"}

    @app.get("/readyz", tags=["health"])
    async def readyz() -> JSONResponse:
        """The store answers and at least one backend is up."""
        await bridge.store.ping()
        up = bridge.backends_up()
        ready = bridge.accepting and up > 0
        return JSONResponse(
            {"status": "ready" if ready else "not ready", "backends_up": up},
            status_code=200 if ready else 503,
        )

    return app
