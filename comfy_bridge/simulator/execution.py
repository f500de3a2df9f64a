"""Running prompts one at a time, with ComfyUI's messages, cache and interrupts."""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import os
import time
import traceback
from dataclasses import dataclass
from typing import Any

from PIL import Image

from comfy_bridge.simulator import images
from comfy_bridge.simulator.claims import is_link
from comfy_bridge.simulator.history import History
from comfy_bridge.simulator.nodes import NodeResult
from comfy_bridge.simulator.options import FaultKind, SimulatorOptions
from comfy_bridge.simulator.prompt_queue import PromptQueue, QueueItem
from comfy_bridge.simulator.registry import Registry
from comfy_bridge.simulator.sockets import Hub
from comfy_bridge.simulator.storage import Storage, UnsafePath

logger = logging.getLogger(__name__)


class Interrupted(Exception):
    """The running prompt was interrupted at a check point."""


class SimulatedFailure(RuntimeError):
    """The `fail` fault: every job ends with an execution error."""


def now_ms() -> int:
    return int(time.time() * 1000)


@dataclass
class CachedNode:
    outputs: tuple[Any, ...]
    ui: dict[str, Any] | None


class Executor:
    """The worker: takes prompts off the queue and runs them, one at a time."""

    def __init__(
        self, options: SimulatorOptions, registry: Registry, storage: Storage, hub: Hub
    ) -> None:
        self.options = options
        self.registry = registry
        self.storage = storage
        self.hub = hub
        self.queue = PromptQueue(self.broadcast_status)
        self.history = History(options.history_limit)
        self.cache: dict[str, CachedNode] = {}
        self.interrupt_requested = False
        self.free_requested = False
        self.current_node: str | None = None
        self.started = 0

    def broadcast_status(self) -> None:
        status = {"exec_info": {"queue_remaining": self.queue.remaining()}}
        self.hub.send("status", {"status": status}, None)

    def interrupt(self, prompt_id: str | None) -> None:
        """Bare: stop whatever runs. Targeted: only if that prompt is running."""
        running = self.queue.running
        if prompt_id is None:
            self.interrupt_requested = True
        elif running is not None and running.prompt_id == prompt_id:
            self.interrupt_requested = True

    def running_node_for(self, sid: str) -> str | None:
        """The node now running for `sid`'s prompt, to greet a reconnecting socket."""
        running = self.queue.running
        if running is None or running.client_id != sid:
            return None
        return self.current_node

    async def run_forever(self) -> None:
        while True:
            item = await self.queue.get()
            self._die_if_due(item)
            started_s = time.monotonic()
            entry = await PromptRun(self, item).execute()
            self.history.add(item.prompt_id, entry)
            self.current_node = None
            self.queue.done()
            if item.client_id is not None:
                done = {"node": None, "prompt_id": item.prompt_id}
                self.hub.send("executing", done, item.client_id)
            logger.info(
                "prompt %s %s in %.2f s",
                item.prompt_id,
                entry["status"]["status_str"],
                time.monotonic() - started_s,
            )

    def _die_if_due(self, item: QueueItem) -> None:
        limit = self.options.fault_count(FaultKind.DIE_AFTER)
        if limit is not None and self.started >= limit:
            logger.warning(
                "die-after %d: exiting while %s starts", limit, item.prompt_id
            )
            logging.shutdown()
            os._exit(3)
        self.started += 1


class PromptRun:
    """One execution of one prompt; gathers the history entry as it goes."""

    def __init__(self, executor: Executor, item: QueueItem) -> None:
        self.executor = executor
        self.item = item
        self.prompt = item.prompt
        self.messages: list[list[Any]] = []
        self.progress: dict[str, dict[str, Any]] = {}
        self.values: dict[str, tuple[Any, ...]] = {}
        self.outputs: dict[str, Any] = {}
        self.meta: dict[str, Any] = {}
        self.executed: list[str] = []
        self.signatures: dict[str, str] = {}
        self.dropped_sockets = False

    # ------------------------------------------------------------------ messages

    def send(self, type_: str, data: dict[str, Any], broadcast: bool = False) -> None:
        """To the submitter; jobs without client_id reach everyone or nobody."""
        sid = self.item.client_id
        if sid is not None or broadcast:
            self.executor.hub.send(type_, data, sid)

    def record(self, type_: str, data: dict[str, Any], broadcast: bool = False) -> None:
        self.messages.append([type_, data])
        self.send(type_, data, broadcast)

    def send_progress_state(self) -> None:
        data = {"prompt_id": self.item.prompt_id, "nodes": self.progress}
        self.send("progress_state", data, broadcast=True)

    def set_progress(
        self, node_id: str, value: float, total: float, state: str
    ) -> None:
        self.progress[node_id] = {
            "value": value,
            "max": total,
            "state": state,
            "node_id": node_id,
            "prompt_id": self.item.prompt_id,
            "display_node_id": node_id,
            "parent_node_id": None,
            "real_node_id": node_id,
        }
        self.send_progress_state()

    # ----------------------------------------------------------------- execution

    async def execute(self) -> dict[str, Any]:
        executor = self.executor
        executor.interrupt_requested = False
        if executor.free_requested:
            executor.cache.clear()
            executor.free_requested = False
        prompt_id = self.item.prompt_id
        self.record("execution_start", {"prompt_id": prompt_id, "timestamp": now_ms()})
        order = execution_order(self.prompt, self.item.outputs)
        for node_id in order:
            self.signatures[node_id] = self.signature(node_id)
        cached = [node_id for node_id in order if self.is_cached(node_id)]
        cached_data = {"nodes": cached, "prompt_id": prompt_id, "timestamp": now_ms()}
        self.record("execution_cached", cached_data)
        status = await self.run_nodes(order, set(cached))
        self.prune_cache()
        return {
            "prompt": self.item.row(),
            "outputs": self.outputs,
            "status": {
                "status_str": status,
                "completed": status == "success",
                "messages": self.messages,
            },
            "meta": self.meta,
        }

    async def run_nodes(self, order: list[str], cached: set[str]) -> str:
        node_id = ""
        try:
            for node_id in order:
                if node_id in cached:
                    self.replay(node_id)
                else:
                    await self.run_node(node_id)
        except Interrupted:
            self.record("execution_interrupted", self.failure_data(node_id), True)
            return "error"
        except Exception as exc:  # any node failure becomes the job's execution_error
            self.record("execution_error", self.error_data(node_id, exc))
            return "error"
        self.record(
            "execution_success",
            {"prompt_id": self.item.prompt_id, "timestamp": now_ms()},
        )
        return "success"

    def is_cached(self, node_id: str) -> bool:
        if self.executor.options.has_fault(FaultKind.FAIL):
            return False
        return self.signatures[node_id] in self.executor.cache

    def replay(self, node_id: str) -> None:
        """A cached node: its outputs again and, for output nodes, the same UI."""
        entry = self.executor.cache[self.signatures[node_id]]
        self.values[node_id] = entry.outputs
        self.executed.append(node_id)
        if entry.ui is not None:
            self.show(node_id, entry.ui)
            self.set_progress(node_id, 1, 1, "finished")

    async def run_node(self, node_id: str) -> None:
        executor = self.executor
        self.check_interrupt()
        node = self.prompt[node_id]
        spec = executor.registry.specs[node["class_type"]]
        self.set_progress(node_id, 0.0, 1.0, "running")
        executor.current_node = node_id
        executing = {
            "node": node_id,
            "display_node": node_id,
            "prompt_id": self.item.prompt_id,
        }
        self.send("executing", executing)
        await self.drop_sockets_once()
        if executor.options.has_fault(FaultKind.FAIL):
            raise SimulatedFailure("simulated failure (--fault fail)")
        context = RunContext(self, node_id, node["class_type"])
        result: NodeResult = await spec.run(context, self.inputs_of(node_id))
        self.values[node_id] = result.outputs
        ui = None if executor.options.has_fault(FaultKind.NO_OUTPUTS) else result.ui
        executor.cache[self.signatures[node_id]] = CachedNode(result.outputs, ui)
        if ui is not None:
            self.show(node_id, ui)
        done = self.progress[node_id]
        self.set_progress(
            node_id, max(done["value"], 1.0), max(done["max"], 1.0), "finished"
        )
        self.executed.append(node_id)

    def show(self, node_id: str, ui: dict[str, Any]) -> None:
        self.outputs[node_id] = ui
        self.meta[node_id] = {
            "node_id": node_id,
            "display_node": node_id,
            "parent_node": None,
            "real_node_id": node_id,
        }
        data = {
            "node": node_id,
            "display_node": node_id,
            "output": ui,
            "prompt_id": self.item.prompt_id,
        }
        self.send("executed", data)

    async def drop_sockets_once(self) -> None:
        if (
            self.executor.options.has_fault(FaultKind.DROP_SOCKET)
            and not self.dropped_sockets
        ):
            self.dropped_sockets = True
            await self.executor.hub.drop_all()

    def check_interrupt(self) -> None:
        if self.executor.interrupt_requested:
            self.executor.interrupt_requested = False
            raise Interrupted

    def inputs_of(self, node_id: str) -> dict[str, Any]:
        resolved = {}
        for name, value in self.prompt[node_id]["inputs"].items():
            if is_link(value):
                outputs = self.values.get(value[0], ())
                resolved[name] = outputs[value[1]] if value[1] < len(outputs) else None
            else:
                resolved[name] = value
        return resolved

    def signature(self, node_id: str) -> str:
        """Cache key: class, literal inputs, input files and upstream signatures."""
        node = self.prompt[node_id]
        parts: list[Any] = [node["class_type"]]
        for name, value in sorted(node["inputs"].items()):
            if is_link(value):
                parts.append([name, self.signatures.get(value[0], value[0]), value[1]])
            else:
                parts.append(
                    [name, value, self.file_stamp(node["class_type"], name, value)]
                )
        text = json.dumps(parts, default=str, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()

    def file_stamp(self, class_type: str, name: str, value: Any) -> str:
        """For inputs naming a file, its size and time, so a new upload re-runs."""
        spec = self.executor.registry.specs[class_type]
        item = spec.input(name)
        if item is None or not item.input_files or not isinstance(value, str):
            return ""
        try:
            stat = self.executor.storage.resolve_annotated(value, "input").stat()
        except (OSError, UnsafePath):
            return "missing"
        return f"{stat.st_size}:{stat.st_mtime_ns}"

    def prune_cache(self) -> None:
        # Like ComfyUI's default cache: keep only what the latest prompt used.
        used = set(self.signatures.values())
        cache = self.executor.cache
        for key in [key for key in cache if key not in used]:
            del cache[key]

    # ------------------------------------------------------------------- failures

    def failure_data(self, node_id: str) -> dict[str, Any]:
        return {
            "prompt_id": self.item.prompt_id,
            "node_id": node_id,
            "node_type": self.prompt[node_id]["class_type"] if node_id else "",
            "executed": list(self.executed),
            "timestamp": now_ms(),
        }

    def error_data(self, node_id: str, exc: Exception) -> dict[str, Any]:
        logger.info(
            "prompt %s failed in node %s: %s", self.item.prompt_id, node_id, exc
        )
        inputs = self.inputs_of(node_id) if node_id else {}
        data = self.failure_data(node_id)
        timestamp = data.pop("timestamp")
        return data | {
            "exception_message": f"{exc}\n",
            "exception_type": type(exc).__name__,
            "traceback": traceback.format_tb(exc.__traceback__),
            "current_inputs": {
                name: [describe(value)] for name, value in inputs.items()
            },
            "current_outputs": list(self.values),
            "timestamp": timestamp,
        }


def describe(value: Any) -> Any:
    """An input as execution_error.current_inputs shows it: JSON values as they are."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, list) and value and isinstance(value[0], Image.Image):
        return f"<{len(value)} image(s) {value[0].width}x{value[0].height}>"
    return repr(value)


def execution_order(prompt: dict[str, Any], outputs: list[str]) -> list[str]:
    """Every node the outputs need, each after the nodes it links from."""
    order: list[str] = []
    seen: set[str] = set()

    def visit(node_id: str) -> None:
        if node_id in seen:
            return
        seen.add(node_id)
        for value in prompt[node_id]["inputs"].values():
            if is_link(value) and value[0] in prompt:
                visit(value[0])
        order.append(node_id)

    for output in outputs:
        visit(output)
    return order


class RunContext:
    """What a node sees while it runs: progress, interrupts, previews, files."""

    def __init__(self, run: PromptRun, node_id: str, node_class: str) -> None:
        self.run = run
        self.node_id = node_id
        self.node_class = node_class
        self.options = run.executor.options
        self.storage = run.executor.storage

    def claimed_input(self, name: str) -> bool:
        return name in self.run.executor.registry.claimed_inputs

    def png_text(self) -> dict[str, str]:
        """The text chunks ComfyUI's SaveImage writes: the prompt, then each key
        of `extra_pnginfo` (the editor sends the whole workflow there)."""
        extra = self.run.item.extra_data.get("extra_pnginfo") or {}
        text = {"prompt": json.dumps(self.run.prompt)}
        if isinstance(extra, dict):
            text |= {str(key): json.dumps(value) for key, value in extra.items()}
        return text

    async def pause(self, seconds: float) -> None:
        self.run.check_interrupt()
        await asyncio.sleep(seconds)
        self.run.check_interrupt()

    async def step(self, value: int, total: int, seconds: float) -> None:
        """One step of a node: wait, honour interrupts, then report progress."""
        await self.pause(seconds)
        self.run.progress[self.node_id].update(value=value, max=total)
        self.run.send_progress_state()
        data = {
            "value": value,
            "max": total,
            "prompt_id": self.run.item.prompt_id,
            "node": self.node_id,
        }
        self.run.send("progress", data, broadcast=True)

    async def send_preview(self, image: Image.Image) -> None:
        metadata = {
            "node_id": self.node_id,
            "prompt_id": self.run.item.prompt_id,
            "display_node_id": self.node_id,
            "parent_node_id": None,
            "real_node_id": self.node_id,
            "image_type": "image/png",
        }
        self.run.executor.hub.send_preview(
            self.run.item.client_id, images.png(image), metadata
        )
