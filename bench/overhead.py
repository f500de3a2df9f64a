"""What the bridge adds per job over using the same simulator directly.

Starts one simulator and one bridge in front of it (both on loopback), then runs
the same small workflow N times each way, alternating so that both see the same
machine load: directly (submit, wait on the WebSocket for the end, read the
history, fetch the output) and through the bridge (POST /v1/jobs?wait, fetch the
output). Prints a table, then one JSON line with the medians and their ratio.

    .venv/bin/python bench/overhead.py [--runs 60]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.processes import ADMIN_TOKEN, bridge, simulator  # noqa: E402

SIZE = 256


def graph(colour: int) -> dict[str, Any]:
    return {
        "1": {
            "class_type": "EmptyImage",
            "inputs": {"width": SIZE, "height": SIZE, "batch_size": 1, "color": colour},
            "_meta": {"bridge_inputs": {"color": {"name": "colour"}}},
        },
        "2": {"class_type": "ImageInvert", "inputs": {"image": ["1", 0]}},
        "3": {
            "class_type": "SaveImage",
            "inputs": {"images": ["2", 0], "filename_prefix": "bench"},
        },
    }


async def run_direct(session: aiohttp.ClientSession, url: str, colour: int) -> float:
    client_id = uuid.uuid4().hex
    started = time.perf_counter()
    async with session.ws_connect(f"{url}/ws?clientId={client_id}") as ws:
        body = {"prompt": graph(colour), "client_id": client_id}
        async with session.post(f"{url}/prompt", json=body) as response:
            prompt_id = (await response.json())["prompt_id"]
        async for message in ws:
            if message.type is not aiohttp.WSMsgType.TEXT:
                continue
            event = json.loads(message.data)
            data = event.get("data", {})
            if (
                event["type"] == "executing"
                and data.get("node") is None
                and data.get("prompt_id") == prompt_id
            ):
                break
    async with session.get(f"{url}/history/{prompt_id}") as response:
        history = await response.json()
    [image] = history[prompt_id]["outputs"]["3"]["images"]
    async with session.get(f"{url}/view", params=image) as response:
        await response.read()
    return (time.perf_counter() - started) * 1000


async def run_bridged(session: aiohttp.ClientSession, url: str, colour: int) -> float:
    started = time.perf_counter()
    body = {"workflow": "bench", "inputs": {"colour": colour}}
    async with session.post(f"{url}/v1/jobs?wait=30", json=body) as response:
        job = await response.json()
    if job["status"] != "succeeded":
        raise RuntimeError(f"job did not succeed: {job}")
    async with session.get(f"{url}{job['outputs'][0]['url']}") as response:
        await response.read()
    return (time.perf_counter() - started) * 1000


async def register(session: aiohttp.ClientSession, url: str) -> None:
    headers = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        async with session.get(f"{url}/readyz") as response:
            if response.status == 200:
                break
        await asyncio.sleep(0.1)
    body = {"workflow": graph(0)}
    async with session.put(
        f"{url}/v1/workflows/bench", json=body, headers=headers
    ) as r:
        r.raise_for_status()


async def measure(sim_url: str, bridge_url: str, runs: int) -> dict[str, list[float]]:
    times: dict[str, list[float]] = {"direct": [], "bridge": []}
    async with aiohttp.ClientSession() as session:
        await register(session, bridge_url)
        for warmup in range(3):
            await run_direct(session, sim_url, warmup)
            await run_bridged(session, bridge_url, warmup + 100)
        for run in range(runs):
            # A fresh colour each run, so the backend's cache never answers.
            colour = 1000 + run * 2
            times["direct"].append(await run_direct(session, sim_url, colour))
            times["bridge"].append(await run_bridged(session, bridge_url, colour + 1))
    return times


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def report(times: dict[str, list[float]]) -> dict[str, float]:
    direct = statistics.median(times["direct"])
    bridged = statistics.median(times["bridge"])
    print(f"{'path':<8} {'runs':>5} {'median ms':>10} {'p90 ms':>8} {'min ms':>8}")
    for name, values in times.items():
        print(
            f"{name:<8} {len(values):>5} {statistics.median(values):>10.2f} "
            f"{percentile(values, 0.9):>8.2f} {min(values):>8.2f}"
        )
    figures = {
        "direct_ms": round(direct, 2),
        "bridge_ms": round(bridged, 2),
        "added_ms": round(bridged - direct, 2),
        "ratio": round(bridged / direct, 3),
    }
    print(f"the bridge adds {figures['added_ms']} ms a job (ratio {figures['ratio']})")
    print(json.dumps(figures))
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=60)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as data, simulator() as sim_url:
        with bridge([sim_url], Path(data), env={"BRIDGE_LOG_LEVEL": "WARNING"}) as url:
            times = asyncio.run(measure(sim_url, url, args.runs))
    report(times)


if __name__ == "__main__":
    main()
