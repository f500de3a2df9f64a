"""Backends: each ComfyUI server's state, capabilities, slots and health."""

from __future__ import annotations

import asyncio
import contextlib
import enum
import hashlib
import logging
import time
from collections.abc import Callable, Iterator
from typing import Any

from comfy_bridge.comfy import ComfyClient
from comfy_bridge.exceptions import BackendError
from comfy_bridge.scheduler import Capabilities
from comfy_bridge.workflows import model_files

logger = logging.getLogger(__name__)

PROBE_BACKOFF_MAX_S = 60.0
# Failures in a row, of jobs that succeed elsewhere, before a backend is used last.
DEGRADED_AFTER = 3


class BackendState(enum.StrEnum):
    CONNECTING = "connecting"
    UP = "up"
    DOWN = "down"
    DRAINING = "draining"


def backend_id_for(url: str) -> str:
    # Stable across restarts, so a recovered attempt finds its backend again;
    # opaque, so a client never learns a backend's address from it.
    return "b-" + hashlib.sha256(url.encode()).hexdigest()[:10]


class Backend:
    """One ComfyUI server: its client, state, slots and capabilities."""

    def __init__(
        self,
        url: str,
        *,
        slots: int,
        backend_id: str | None = None,
        bridge_id: str = "",
    ) -> None:
        self.url = url.rstrip("/")
        self.id = backend_id or backend_id_for(self.url)
        self.slots = slots
        # The same socket id after a restart: a prompt submitted before it
        # still sends its messages to us.
        client_id = f"comfy-bridge-{bridge_id}-{self.id}" if bridge_id else None
        # Set when the socket comes back: the probe then runs at once instead
        # of at the end of its back-off.
        self.reconnected = asyncio.Event()
        self.client = ComfyClient(
            self.url,
            backend_id=self.id,
            client_id=client_id,
            on_connection_change=self._connection_changed,
        )
        self.state = BackendState.CONNECTING
        self.in_flight: set[str] = set()
        self.queue_remaining = 0
        self.object_info: dict[str, Any] = {}
        self.capabilities = Capabilities()
        self.system_stats: dict[str, Any] = {}
        self.failures = 0
        self.jobs_done = 0
        # Jobs that failed here in a row while their workflow succeeds elsewhere.
        self.strikes = 0
        # What placement knows of the work in hand: each bound job's workflow
        # and when it was bound, when the backend last finished one, and the
        # checkpoint the newest job loads (the one that stays loaded).
        self.bound: dict[str, tuple[str, float]] = {}
        self.idle_since_s = time.monotonic()
        self.checkpoint: str | None = None
        self.idle = asyncio.Event()
        self.idle.set()

    @property
    def free_slots(self) -> int:
        return self.slots - len(self.in_flight)

    @property
    def accepts_jobs(self) -> bool:
        return self.state is BackendState.UP and self.free_slots > 0

    def _connection_changed(self, connected: bool) -> None:
        if connected and self.state is BackendState.DOWN:
            self.reconnected.set()

    def claim(
        self, job_id: str, workflow: str = "", checkpoint: str | None = None
    ) -> None:
        self.in_flight.add(job_id)
        self.bound[job_id] = (workflow, time.monotonic())
        self.checkpoint = checkpoint or self.checkpoint
        self.idle.clear()

    def release(self, job_id: str) -> float:
        """Free the job's slot; returns the seconds the backend spent running it."""
        now = time.monotonic()
        _, bound_at = self.bound.pop(job_id, ("", now))
        # The backend runs one prompt at a time: this one started when it was
        # bound or when the one before it ended, whichever came later.
        run_s = now - max(bound_at, self.idle_since_s)
        self.idle_since_s = now
        self.in_flight.discard(job_id)
        if not self.in_flight:
            self.idle.set()
        return run_s

    def learn(self, object_info: dict[str, Any]) -> None:
        """Keep the node classes and model files the backend offers."""
        self.object_info = object_info
        self.capabilities = Capabilities(
            node_classes=frozenset(object_info),
            models=model_files(object_info),
            known=True,
        )

    def move_to(self, state: BackendState, reason: str = "") -> bool:
        """Change state; logs one line per transition. Returns whether it changed."""
        if state is self.state:
            return False
        old, self.state = self.state, state
        suffix = f" ({reason})" if reason else ""
        logger.info("backend %s %s -> %s%s", self.id, old, state, suffix)
        return True

    @property
    def degraded(self) -> bool:
        return self.strikes >= DEGRADED_AFTER

    def struck(self) -> None:
        """A job failed here whose workflow succeeds on other backends."""
        self.strikes += 1
        if self.strikes == DEGRADED_AFTER:
            logger.info(
                "backend %s degraded: %d jobs in a row failed here that succeed "
                "elsewhere; it is used last",
                self.id,
                self.strikes,
            )

    def succeeded(self) -> None:
        if self.degraded:
            logger.info("backend %s no longer degraded", self.id)
        self.strikes = 0
        self.jobs_done += 1

    def public(self) -> dict[str, Any]:
        devices = self.system_stats.get("devices") or [{}]
        return {
            "id": self.id,
            "state": str(self.state),
            "slots": self.slots,
            "in_flight": len(self.in_flight),
            "queue_remaining": self.queue_remaining,
            "url": self.url,
            "node_classes": len(self.capabilities.node_classes),
            "models": len(self.capabilities.models),
            "checkpoint": self.checkpoint,
            "vram_total": devices[0].get("vram_total"),
            "vram_free": devices[0].get("vram_free"),
            "jobs_done": self.jobs_done,
            "degraded": self.degraded,
        }


class BackendPool:
    """Every backend the bridge knows, and the probes that keep their state true."""

    def __init__(
        self,
        *,
        slots: int,
        probe_interval_s: float,
        on_change: Callable[[], None],
        bridge_id: str = "",
    ) -> None:
        self.slots = slots
        self.bridge_id = bridge_id
        self.probe_interval_s = probe_interval_s
        self._on_change = on_change
        self._backends: dict[str, Backend] = {}
        self._probes: dict[str, asyncio.Task[None]] = {}
        self._drains: set[asyncio.Task[None]] = set()

    def __iter__(self) -> Iterator[Backend]:
        return iter(tuple(self._backends.values()))

    def __len__(self) -> int:
        return len(self._backends)

    def get(self, backend_id: str) -> Backend | None:
        return self._backends.get(backend_id)

    def find_url(self, url: str) -> Backend | None:
        url = url.rstrip("/")
        return next((b for b in self._backends.values() if b.url == url), None)

    async def add(
        self, url: str, *, slots: int | None = None, backend_id: str | None = None
    ) -> Backend:
        backend = Backend(
            url,
            slots=slots or self.slots,
            backend_id=backend_id,
            bridge_id=self.bridge_id,
        )
        self._backends[backend.id] = backend
        await backend.client.start()
        self._probes[backend.id] = asyncio.create_task(
            self._probe_forever(backend), name=f"probe {backend.id}"
        )
        return backend

    async def remove(self, backend_id: str) -> Backend | None:
        """Drain: no new jobs; the running ones finish, then the client closes."""
        backend = self._backends.get(backend_id)
        if backend is None:
            return None
        backend.move_to(BackendState.DRAINING, "removed")
        task = asyncio.create_task(self._close_when_drained(backend))
        self._drains.add(task)
        task.add_done_callback(self._drains.discard)
        return backend

    async def _close_when_drained(self, backend: Backend) -> None:
        await backend.idle.wait()
        await self._forget(backend)

    async def _forget(self, backend: Backend) -> None:
        self._backends.pop(backend.id, None)
        probe = self._probes.pop(backend.id, None)
        if probe:
            probe.cancel()
        await backend.client.aclose()

    async def aclose(self) -> None:
        for task in tuple(self._drains):
            task.cancel()
        for backend in tuple(self._backends.values()):
            await self._forget(backend)

    async def _probe_forever(self, backend: Backend) -> None:
        while True:
            await self.probe(backend)
            delay = self.probe_interval_s
            if backend.state is BackendState.DOWN:
                delay = min(PROBE_BACKOFF_MAX_S, delay * 2 ** min(backend.failures, 6))
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(delay):
                    await backend.reconnected.wait()
            backend.reconnected.clear()

    async def probe(self, backend: Backend) -> None:
        """Read the backend's stats and queue; capabilities on (re)connection."""
        try:
            backend.system_stats = await backend.client.system_stats()
            backend.queue_remaining = await backend.client.queue_remaining()
            if backend.state is not BackendState.UP:
                # A backend that comes back may have other nodes and models.
                backend.learn(await backend.client.object_info())
        except BackendError as exc:
            self.mark_down(backend, str(exc))
            return
        backend.failures = 0
        if backend.state in (BackendState.CONNECTING, BackendState.DOWN):
            capabilities = backend.capabilities
            backend.move_to(
                BackendState.UP,
                f"{len(capabilities.node_classes)} node classes, "
                f"{len(capabilities.models)} models",
            )
            self._on_change()

    async def refresh(self, backend: Backend) -> None:
        """Read the backend's node classes and model lists again, now."""
        try:
            backend.learn(await backend.client.object_info())
        except BackendError as exc:
            self.mark_down(backend, str(exc))
            raise
        self._on_change()

    def mark_down(self, backend: Backend, reason: str) -> None:
        backend.failures += 1
        if backend.state is not BackendState.DRAINING:
            if backend.move_to(BackendState.DOWN, reason):
                self._on_change()
        if not backend.client.connected:
            # No HTTP answer and no socket: its attempts end now and run
            # elsewhere, rather than wait out the watches' own patience.
            backend.client.close_watches()

    def object_info(self) -> dict[str, Any]:
        """Node definitions merged over every backend that is up."""
        merged: dict[str, Any] = {}
        for backend in self._backends.values():
            if backend.state is BackendState.UP:
                for name, definition in backend.object_info.items():
                    merged.setdefault(name, definition)
        return merged
