"""The simulator against the recorded ComfyUI behaviour, its request log and faults."""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import subprocess
import sys
import uuid
import zipfile
from collections.abc import Iterator
from typing import Any

import aiohttp
import pytest
from PIL import Image

from tests.processes import SHARED, simulator

TOOL = SHARED / "tools" / "comfyui_conformance.py"
WORKFLOWS = SHARED / "comfyui-protocol" / "workflows"


def graph_of(name: str) -> dict[str, Any]:
    graph: dict[str, Any] = json.loads((WORKFLOWS / name).read_text())
    return graph


def invert_graph(color: int = 0x336699) -> dict[str, Any]:
    graph = graph_of("wf_invert.json")
    graph["1"]["inputs"]["color"] = color
    return graph


def sleep_graph(seconds: float, steps: int) -> dict[str, Any]:
    graph = graph_of("wf_sleep_progress.json")
    graph["2"]["inputs"].update(seconds=seconds, steps=steps, fail=False)
    return graph


async def post_prompt(
    session: aiohttp.ClientSession, url: str, graph: dict[str, Any], client_id: str
) -> dict[str, Any]:
    body = {"prompt": graph, "client_id": client_id}
    async with session.post(f"{url}/prompt", json=body) as reply:
        assert reply.status == 200, await reply.text()
        answer: dict[str, Any] = await reply.json()
        return answer


async def run_prompt(
    url: str, graph: dict[str, Any], timeout_s: float = 20.0
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Submit on a fresh socket; return its messages and the history entry."""
    client_id = f"test-{uuid.uuid4().hex[:8]}"
    async with aiohttp.ClientSession() as session:
        async with session.ws_connect(f"{url}/ws?clientId={client_id}") as socket:
            prompt_id = (await post_prompt(session, url, graph, client_id))["prompt_id"]
            messages = await read_until_done(socket, prompt_id, timeout_s)
        async with session.get(f"{url}/history/{prompt_id}") as reply:
            history = await reply.json()
    return messages, history[prompt_id]


async def read_until_done(
    socket: aiohttp.ClientWebSocketResponse, prompt_id: str, timeout_s: float
) -> list[dict[str, Any]]:
    messages: list[dict[str, Any]] = []
    async with asyncio.timeout(timeout_s):
        async for frame in socket:
            if frame.type is not aiohttp.WSMsgType.TEXT:
                continue
            message = json.loads(frame.data)
            messages.append(message)
            data = message["data"]
            if message["type"] == "executing" and data.get("node") is None:
                if data.get("prompt_id") == prompt_id:
                    return messages
    return messages


async def wait_for_history(url: str, prompt_id: str, timeout_s: float = 20.0) -> Any:
    async with aiohttp.ClientSession() as session, asyncio.timeout(timeout_s):
        while True:
            async with session.get(f"{url}/history/{prompt_id}") as reply:
                history = await reply.json()
            if history:
                return history[prompt_id]
            await asyncio.sleep(0.05)


async def fetch(url: str, path: str, **query: str) -> bytes:
    async with aiohttp.ClientSession() as session:
        async with session.get(f"{url}{path}", params=query) as reply:
            assert reply.status == 200, path
            return await reply.read()


def first_image(entry: dict[str, Any]) -> dict[str, str]:
    image: dict[str, str] = next(iter(entry["outputs"].values()))["images"][0]
    return image


# ---------------------------------------------------------------------- conformance


def test_simulator_speaks_comfyui(simulator_url: str) -> None:
    result = subprocess.run(
        [sys.executable, str(TOOL), "--url", simulator_url],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout
    assert result.stdout.strip().endswith("78 passed, 0 failed")


# ------------------------------------------------------------------ request log


@pytest.fixture(scope="module")
def plain_url() -> Iterator[str]:
    with simulator() as url:
        yield url


async def test_requests_are_recorded_and_cleared(plain_url: str) -> None:
    async with aiohttp.ClientSession() as session:
        await session.post(f"{plain_url}/_sim/requests/clear")
        await post_prompt(session, plain_url, invert_graph(0x010203), "recorded")
        await session.post(f"{plain_url}/api/interrupt", json={"prompt_id": "x"})
        async with session.get(f"{plain_url}/_sim/requests") as reply:
            recorded = await reply.json()
        await session.post(f"{plain_url}/_sim/requests/clear")
        async with session.get(f"{plain_url}/_sim/requests") as reply:
            after_clear = await reply.json()
    assert [(r["method"], r["path"]) for r in recorded] == [
        ("POST", "/prompt"),
        ("POST", "/api/interrupt"),
    ]
    assert recorded[0]["json"]["client_id"] == "recorded"
    assert recorded[1]["json"] == {"prompt_id": "x"}
    assert after_clear == []


async def test_free_memory_drops_the_cache(plain_url: str) -> None:
    graph = invert_graph(0x0A0B0C)
    await run_prompt(plain_url, graph)
    async with aiohttp.ClientSession() as session:
        await session.post(f"{plain_url}/free", json={"free_memory": True})
    messages, _ = await run_prompt(plain_url, graph)
    cached = next(m for m in messages if m["type"] == "execution_cached")
    assert cached["data"]["nodes"] == []


# ------------------------------------------------------------------------ faults


@pytest.fixture(scope="module")
def faulty() -> Iterator[dict[str, str]]:
    """One simulator per fault, started once for this module."""
    faults = ["fail", "no-outputs", "disguised-output", "ignore-targeted-interrupt"]
    with contextlib.ExitStack() as stack:
        urls = {
            name: stack.enter_context(simulator("--fault", name)) for name in faults
        }
        yield urls


async def test_fault_fail_ends_jobs_with_execution_error(
    faulty: dict[str, str],
) -> None:
    messages, entry = await run_prompt(faulty["fail"], invert_graph())
    assert "execution_error" in [m["type"] for m in messages]
    assert entry["status"]["status_str"] == "error"


async def test_fault_no_outputs_succeeds_without_files(faulty: dict[str, str]) -> None:
    messages, entry = await run_prompt(faulty["no-outputs"], invert_graph())
    assert entry["status"]["status_str"] == "success"
    assert entry["outputs"] == {}
    assert "executed" not in [m["type"] for m in messages]


async def test_fault_disguised_output_hides_an_archive(faulty: dict[str, str]) -> None:
    url = faulty["disguised-output"]
    _, entry = await run_prompt(url, invert_graph())
    data = await fetch(url, "/view", **first_image(entry))
    assert data.startswith(b"\x89PNG")
    assert zipfile.is_zipfile(io.BytesIO(data))


async def test_fault_ignore_targeted_interrupt(faulty: dict[str, str]) -> None:
    url = faulty["ignore-targeted-interrupt"]
    client_id = "targeted"
    async with aiohttp.ClientSession() as session:
        async with session.ws_connect(f"{url}/ws?clientId={client_id}") as socket:
            graph = sleep_graph(0.6, 3)
            prompt_id = (await post_prompt(session, url, graph, client_id))["prompt_id"]
            await session.post(f"{url}/interrupt", json={"prompt_id": prompt_id})
            messages = await read_until_done(socket, prompt_id, 10)
    assert "execution_success" in [m["type"] for m in messages]


async def test_fault_drop_socket_closes_clients_mid_run() -> None:
    with simulator("--fault", "drop-socket") as url:
        async with aiohttp.ClientSession() as session:
            async with session.ws_connect(f"{url}/ws?clientId=dropped") as socket:
                answer = await post_prompt(session, url, sleep_graph(0.2, 2), "dropped")
                async with asyncio.timeout(10):
                    async for _ in socket:
                        pass
                assert socket.closed
        entry = await wait_for_history(url, answer["prompt_id"])
    assert entry["status"]["status_str"] == "success"


async def test_fault_die_after_exits_when_the_next_prompt_starts() -> None:
    with simulator("--fault", "die-after 1") as url:
        await run_prompt(url, invert_graph(0x111111))
        async with aiohttp.ClientSession() as session:
            await post_prompt(session, url, invert_graph(0x222222), "doomed")
        await asyncio.sleep(0.5)
        with pytest.raises(aiohttp.ClientConnectionError):
            await fetch(url, "/system_stats")


async def test_fault_slow_stretches_the_test_node() -> None:
    with simulator("--fault", "slow") as url:
        started = asyncio.get_running_loop().time()
        await run_prompt(url, sleep_graph(0.1, 2))
        elapsed = asyncio.get_running_loop().time() - started
    assert elapsed >= 0.5


def test_decoded_output_is_a_real_png(plain_url: str) -> None:
    _, entry = asyncio.run(run_prompt(plain_url, invert_graph(0x000000)))
    data = asyncio.run(fetch(plain_url, "/view", **first_image(entry)))
    with Image.open(io.BytesIO(data)) as image:
        assert image.getpixel((0, 0)) == (255, 255, 255)
