"""ComfyClient against the simulator running as a real process."""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import signal
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from comfy_bridge.comfy import (
    ComfyClient,
    ExecutionSuccess,
    Progress,
    PromptFinished,
    PromptStatus,
    SocketSettings,
    WatchSettings,
)
from comfy_bridge.exceptions import PromptRejected
from tests.processes import SHARED, free_port, running, simulator, stop

WORKFLOWS = SHARED / "comfyui-protocol" / "workflows"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def workflow(name: str) -> dict[str, Any]:
    graph: dict[str, Any] = json.loads((WORKFLOWS / name).read_text())
    return graph


def new_client(url: str) -> ComfyClient:
    return ComfyClient(
        url,
        backend_id="sim",
        watch_settings=WatchSettings(silence_s=1.0, unreachable_s=20.0),
        socket_settings=SocketSettings(reconnect_min_s=0.05, reconnect_max_s=0.5),
    )


@pytest.fixture
async def client(simulator_url: str) -> AsyncIterator[ComfyClient]:
    comfy = new_client(simulator_url)
    await comfy.start()
    assert comfy.connected
    yield comfy
    await comfy.aclose()


def new_prompt_id() -> str:
    return f"test-{uuid.uuid4()}"


async def run(comfy: ComfyClient, graph: dict[str, Any]) -> PromptFinished:
    prompt_id = new_prompt_id()
    async with comfy.watch(prompt_id) as watch:
        await comfy.submit(graph, prompt_id=prompt_id)
        return await asyncio.wait_for(watch.outcome(), 30)


async def wait_for_progress(watch: AsyncIterator[Any]) -> None:
    async with asyncio.timeout(15):
        async for message in watch:
            if isinstance(message, Progress):
                return


async def test_invert_runs_and_its_output_downloads(
    client: ComfyClient, tmp_path: Path
) -> None:
    finished = await run(client, workflow("wf_invert.json"))
    assert finished.status is PromptStatus.SUCCESS
    (output,) = finished.files
    assert (output.node_id, output.kind, output.type) == ("3", "images", "output")
    dest = tmp_path / "out.png"
    size = await client.download(output, dest, limit_bytes=10 << 20)
    assert size == dest.stat().st_size > 0
    assert dest.read_bytes().startswith(PNG_MAGIC)
    entry = await client.history(finished.prompt_id)
    assert entry is not None and entry.files == finished.files


async def test_uploaded_image_feeds_load_image(
    client: ComfyClient, tmp_path: Path
) -> None:
    source = tmp_path / "in.png"
    buffer = io.BytesIO()
    Image.new("RGB", (48, 48), (200, 30, 60)).save(buffer, format="PNG")
    source.write_bytes(buffer.getvalue())
    name = f"bridge_upload_{uuid.uuid4().hex[:8]}.png"
    uploaded = await client.upload_image(source, name=name)
    assert uploaded.name == name
    graph = workflow("wf_loadimage.json")
    graph["1"]["inputs"]["image"] = uploaded.reference
    finished = await run(client, graph)
    assert finished.status is PromptStatus.SUCCESS
    assert finished.files and finished.files[0].node_id == "4"
    Image.new("RGB", (48, 48), (0, 0, 0)).save(source, format="PNG")
    renamed = await client.upload_image(source, name=name)
    assert renamed.name != name


async def test_invalid_graph_is_rejected_with_its_node(client: ComfyClient) -> None:
    graph = workflow("wf_invert.json")
    del graph["1"]["inputs"]["width"]
    with pytest.raises(PromptRejected) as caught:
        await client.submit(graph, prompt_id=new_prompt_id())
    assert caught.value.extra["node_id"] == "1"
    assert caught.value.extra["node_type"] == "EmptyImage"
    assert caught.value.extra["messages"]


async def test_targeted_interrupt_stops_the_running_prompt(client: ComfyClient) -> None:
    prompt_id = new_prompt_id()
    async with client.watch(prompt_id) as watch:
        await client.submit(workflow("wf_sleep_long.json"), prompt_id=prompt_id)
        await wait_for_progress(watch)
        assert prompt_id in (await client.queue()).running
        await client.interrupt(prompt_id)
        finished = await asyncio.wait_for(watch.outcome(), 15)
    assert finished.status is PromptStatus.INTERRUPTED
    assert finished.error is not None and finished.error.node_id == "2"
    assert prompt_id not in await client.queue()


async def test_dropped_socket_still_delivers_the_outcome(tmp_path: Path) -> None:
    changes: list[bool] = []
    with simulator("--fault", "drop-socket", log_path=tmp_path / "sim.log") as url:
        comfy = ComfyClient(
            url,
            backend_id="sim",
            watch_settings=WatchSettings(silence_s=0.5, unreachable_s=20.0),
            # Reconnecting only after the prompt ended: history alone knows it.
            socket_settings=SocketSettings(reconnect_min_s=4.0),
            on_connection_change=changes.append,
        )
        await comfy.start()
        prompt_id = new_prompt_id()
        try:
            async with comfy.watch(prompt_id) as watch:
                await comfy.submit(
                    workflow("wf_sleep_progress.json"), prompt_id=prompt_id
                )
                async with asyncio.timeout(30):
                    messages = [message async for message in watch]
        finally:
            await comfy.aclose()
    finished = messages[-1]
    assert isinstance(finished, PromptFinished)
    assert finished.status is PromptStatus.SUCCESS
    assert [f.node_id for f in finished.files] == ["3", "4"]
    assert not any(isinstance(m, ExecutionSuccess) for m in messages)
    assert changes[:2] == [True, False]


async def test_prompt_forgotten_by_a_restart_is_lost(tmp_path: Path) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    args = ["simulate", "--host", "127.0.0.1", "--port", str(port)]
    comfy = new_client(url)
    with contextlib.ExitStack() as first:
        process = await asyncio.to_thread(
            first.enter_context, running(args, f"{url}/system_stats")
        )
        await comfy.start()
        prompt_id = new_prompt_id()
        watch = comfy.watch(prompt_id)
        await comfy.submit(workflow("wf_sleep_long.json"), prompt_id=prompt_id)
        await wait_for_progress(watch)
        # A crash, not a shutdown: the running prompt must not get to finish.
        await asyncio.to_thread(stop, process, signal.SIGKILL)
    try:
        with contextlib.ExitStack() as second:
            await asyncio.to_thread(
                second.enter_context, running(args, f"{url}/system_stats")
            )
            finished = await asyncio.wait_for(watch.outcome(), 20)
    finally:
        await comfy.aclose()
    assert finished.status is PromptStatus.LOST
