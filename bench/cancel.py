"""How fast a stop reaches the backend once nobody waits for a job any more.

Starts one simulator running long jobs and a bridge in front of it (loopback),
then, trial after trial, starts a job and either DELETEs it or closes the
WebSocket that watches it. Measures from that moment (plus the configured grace,
for a disconnect) to the backend receiving the targeted interrupt, read from the
simulator's own request log. Prints a table, then one JSON line.

    .venv/bin/python bench/cancel.py [--trials 30]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.processes import DEMO_MODEL, EXAMPLES, bridge, simulator  # noqa: E402

GRACE_S = 0.5


async def start_job(session: aiohttp.ClientSession, url: str, seed: int) -> str:
    body = {"workflow": "txt2img", "inputs": {"seed": seed, "steps": 50}}
    async with session.post(f"{url}/v1/jobs", json=body) as response:
        job_id: str = (await response.json())["id"]
    while True:
        async with session.get(f"{url}/v1/jobs/{job_id}") as response:
            if (await response.json())["status"] == "running":
                # Let the prompt start executing at the backend too.
                await asyncio.sleep(0.2)
                return job_id
        await asyncio.sleep(0.02)


async def stop_received(
    session: aiohttp.ClientSession, sim: str, since: float
) -> float:
    """When the backend got a targeted interrupt, waiting for it to come."""
    deadline = time.time() + 10
    while time.time() < deadline:
        async with session.get(f"{sim}/_sim/requests") as response:
            log: list[dict[str, Any]] = await response.json()
        for entry in log:
            body = entry.get("json") or {}
            if entry["path"].endswith("/interrupt") and entry["t"] >= since and body:
                return float(entry["t"])
        await asyncio.sleep(0.01)
    raise RuntimeError("the backend never received the stop")


async def clear(session: aiohttp.ClientSession, sim: str) -> None:
    async with session.post(f"{sim}/_sim/requests/clear"):
        pass


async def delete_trial(
    session: aiohttp.ClientSession, url: str, sim: str, seed: int
) -> float:
    job_id = await start_job(session, url, seed)
    await clear(session, sim)
    started = time.time()
    async with session.delete(f"{url}/v1/jobs/{job_id}"):
        pass
    return (await stop_received(session, sim, started) - started) * 1000


async def disconnect_trial(
    session: aiohttp.ClientSession, url: str, sim: str, seed: int
) -> float:
    body = {"workflow": "txt2img", "inputs": {"seed": seed, "steps": 50}}
    async with session.post(f"{url}/v1/jobs", json=body) as response:
        job_id = (await response.json())["id"]
    ws_url = url.replace("http", "ws") + f"/v1/jobs/{job_id}/events"
    async with session.ws_connect(ws_url) as ws:
        async for message in ws:
            if json.loads(message.data).get("status") == "running":
                break
        await asyncio.sleep(0.2)
        await clear(session, sim)
        closed = time.time()
    stopped = await stop_received(session, sim, closed)
    return (stopped - closed - GRACE_S) * 1000


async def measure(url: str, sim: str, trials: int) -> dict[str, list[float]]:
    figures: dict[str, list[float]] = {"delete": [], "disconnect": []}
    async with aiohttp.ClientSession() as session:
        for trial in range(trials):
            figures["delete"].append(await delete_trial(session, url, sim, 2 * trial))
            figures["disconnect"].append(
                await disconnect_trial(session, url, sim, 2 * trial + 1)
            )
    return figures


def p99(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]


def report(figures: dict[str, list[float]]) -> None:
    print(f"{'cause':<11} {'trials':>6} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8}")
    for cause, values in figures.items():
        print(
            f"{cause:<11} {len(values):>6} {statistics.median(values):>8.1f} "
            f"{p99(values):>8.1f} {max(values):>8.1f}"
        )
    print(f"(disconnect figures are after the {GRACE_S} s grace)")
    print(
        json.dumps(
            {
                "disconnect_p50_ms": round(statistics.median(figures["disconnect"]), 1),
                "disconnect_p99_ms": round(p99(figures["disconnect"]), 1),
                "delete_p50_ms": round(statistics.median(figures["delete"]), 1),
                "delete_p99_ms": round(p99(figures["delete"]), 1),
            }
        )
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=30)
    args = parser.parse_args()
    env = {
        "BRIDGE_WORKFLOWS_DIR": str(EXAMPLES),
        "BRIDGE_ALIAS_FILE": str(EXAMPLES / "workflow_alias.json"),
        "BRIDGE_WS_CANCEL_GRACE_S": str(GRACE_S),
        "BRIDGE_LOG_LEVEL": "WARNING",
    }
    options = ("--model", DEMO_MODEL, "--step-seconds", "0.2", "--log-level", "WARNING")
    with tempfile.TemporaryDirectory() as data, simulator(*options) as sim:
        with bridge([sim], Path(data), env=env) as url:
            time.sleep(1)
            figures = asyncio.run(measure(url, sim, args.trials))
    report(figures)


if __name__ == "__main__":
    main()
