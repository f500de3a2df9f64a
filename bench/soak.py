"""Soak: many jobs from many clients while a backend and the bridge keep dying.

Starts simulators and a bridge on loopback ports, then runs `--jobs` jobs from
`--clients` clients (each job with its own seed, and the seed in its output's
file name). Meanwhile, at random moments, SIGKILLs the bridge or one simulator
and starts it again on the same port (and data directory): a killed simulator
loses the prompts it held. Accounts for every job at the end:

- lost: accepted, but never reached a final state, or no longer known;
- twice: ran again after a run of it had already delivered its output, or
  was sent again while the backend holding it was still alive.

A simulator's request log dies with it, so the soak reads every log as it grows
and once more just before each kill. Prints a summary, then one JSON line.

    .venv/bin/python bench/soak.py [--jobs 2000] [--clients 20] [--backends 4]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.processes import (  # noqa: E402
    ADMIN_TOKEN,
    DEMO_MODEL,
    EXAMPLES,
    free_port,
    wait_for_http,
)

WORKFLOW = "soak"
# A job not finished this long after its submission is set aside and checked
# again at the end, so one stuck job does not hold its client up.
JOB_PATIENCE_S = 90.0
FINAL_PATIENCE_S = 120.0
START_TRIES = 10
OPEN_UNLIMITED = {
    "BRIDGE_OPEN": "true",
    "BRIDGE_LIMIT_CLIENT_JOBS_PER_MINUTE": "0",
    "BRIDGE_LIMIT_CLIENT_QUEUED_JOBS": "0",
    "BRIDGE_LIMIT_CLIENT_RUNNING_JOBS": "0",
}
TRANSIENT = (aiohttp.ClientError, asyncio.TimeoutError, ConnectionError)


def soak_workflow() -> dict[str, Any]:
    """The example txt2img graph, small, with the seed in the file name."""
    graph: dict[str, Any] = json.loads((EXAMPLES / "txt2img.json").read_text())
    graph["5"]["inputs"].update(width=64, height=64)
    graph["9"]["_meta"]["bridge_inputs"] = {"filename_prefix": {"name": "prefix"}}
    return graph


def prefix(seed: int) -> str:
    return f"soak{seed}x"


class Process:
    """One server process we kill and start again on the same port."""

    def __init__(self, name: str, args: list[str], probe: str, log: Path) -> None:
        self.name = name
        self.args = args
        self.probe = probe
        self.log = log
        self.proc: subprocess.Popen[bytes] | None = None
        self.env = dict(os.environ)
        self.cwd: Path | None = None

    def start(self) -> None:
        # Between lives, another process's connection may hold the port for a
        # moment (a loopback port is also an outgoing one): try again.
        for _ in range(START_TRIES - 1):
            try:
                self.start_once()
                return
            except RuntimeError:
                time.sleep(1.0)
        self.start_once()

    def start_once(self) -> None:
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "comfy_bridge", *self.args],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=self.env,
                cwd=self.cwd,
            )
        wait_for_http(self.probe, timeout_s=30, proc=self.proc)

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None


@dataclass
class Backend:
    """A simulator and everything its request logs said, across its lives."""

    process: Process
    url: str
    life: int = 0
    seen: int = 0
    # (life, entry) of every request we read before its log was lost.
    entries: list[tuple[int, dict[str, Any]]] = field(default_factory=list)
    killed_at: dict[int, float] = field(default_factory=dict)

    async def read_log(self, session: aiohttp.ClientSession) -> None:
        url = f"{self.url}/_sim/requests?since={self.seen}"
        async with session.get(url) as response:
            fresh: list[dict[str, Any]] = await response.json()
        self.seen += len(fresh)
        self.entries += [(self.life, entry) for entry in fresh]

    async def restart(self, session: aiohttp.ClientSession, down_s: float) -> None:
        await self.read_log(session)
        self.process.kill()
        self.killed_at[self.life] = time.time()
        self.life, self.seen = self.life + 1, 0
        await asyncio.sleep(down_s)
        await asyncio.to_thread(self.process.start)


@dataclass
class Outcome:
    seed: int
    job_id: str | None = None
    status: str = "unsubmitted"
    code: str | None = None


class Client:
    """Submits its jobs one after another and follows each to its end."""

    def __init__(self, name: str, url: str, seeds: list[int], steps: int) -> None:
        self.name = name
        self.url = url
        self.seeds = seeds
        self.steps = steps
        self.outcomes: list[Outcome] = []
        self.headers = {"X-Client-Id": name}

    async def run(self, session: aiohttp.ClientSession) -> None:
        for seed in self.seeds:
            outcome = Outcome(seed)
            self.outcomes.append(outcome)
            outcome.job_id = await self.submit(session, seed)
            await self.follow(session, outcome, JOB_PATIENCE_S)

    async def submit(self, session: aiohttp.ClientSession, seed: int) -> str:
        body = {
            "workflow": WORKFLOW,
            "inputs": {"seed": seed, "steps": self.steps, "prefix": prefix(seed)},
        }
        while True:
            try:
                async with session.post(
                    f"{self.url}/v1/jobs", json=body, headers=self.headers
                ) as response:
                    if response.status == 202:
                        return str((await response.json())["id"])
            except TRANSIENT:
                # The bridge may have recorded it before it died: look first.
                found = await self.find(session, seed)
                if found is not None:
                    return found
            await asyncio.sleep(0.5)

    async def find(self, session: aiohttp.ClientSession, seed: int) -> str | None:
        """The job with this seed, if the bridge accepted it."""
        while True:
            try:
                return await self.search(session, seed)
            except TRANSIENT:
                await asyncio.sleep(0.5)

    async def search(self, session: aiohttp.ClientSession, seed: int) -> str | None:
        offset = 0
        while True:
            params = {"workflow": WORKFLOW, "limit": "500", "offset": str(offset)}
            async with session.get(
                f"{self.url}/v1/jobs", params=params, headers=self.headers
            ) as response:
                if response.status != 200:
                    raise aiohttp.ClientError(f"listing answered {response.status}")
                page = await response.json()
            for job in page["jobs"]:
                if job["inputs"].get("seed") == seed:
                    return str(job["id"])
            offset += len(page["jobs"])
            if not page["jobs"] or offset >= page["total"]:
                return None

    async def follow(
        self, session: aiohttp.ClientSession, outcome: Outcome, patience_s: float
    ) -> None:
        deadline = time.monotonic() + patience_s
        while time.monotonic() < deadline:
            try:
                async with session.get(
                    f"{self.url}/v1/jobs/{outcome.job_id}",
                    params={"wait": "10"},
                    headers=self.headers,
                ) as response:
                    if response.status == 404:
                        outcome.status = "missing"
                        return
                    if response.status == 200:
                        job = await response.json()
                        outcome.status = job["status"]
                        outcome.code = (job.get("error") or {}).get("code")
                        if job["status"] in ("succeeded", "failed", "cancelled"):
                            return
            except TRANSIENT:
                await asyncio.sleep(0.5)


class Soak:
    def __init__(self, args: argparse.Namespace, root: Path) -> None:
        self.args = args
        self.root = root
        self.random = random.Random(args.seed)
        self.backends = [self.simulator(i) for i in range(args.backends)]
        self.bridge = self.bridge_process()
        self.kills: Counter[str] = Counter()
        self.done = asyncio.Event()

    def simulator(self, index: int) -> Backend:
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        data = self.root / f"sim{index}"
        data.mkdir()
        args = ["simulate", "--host", "127.0.0.1", "--port", str(port)]
        args += ["--model", DEMO_MODEL, "--speed", str(self.args.speed)]
        args += ["--data-dir", str(data)]
        log = self.root / f"sim{index}.log"
        return Backend(Process(f"sim{index}", args, f"{url}/system_stats", log), url)

    def bridge_process(self) -> Process:
        port = free_port()
        self.url = f"http://127.0.0.1:{port}"
        workflows = self.root / "workflows"
        workflows.mkdir()
        (workflows / f"{WORKFLOW}.json").write_text(json.dumps(soak_workflow()))
        data = self.root / "bridge"
        data.mkdir()
        args = ["serve", "--host", "127.0.0.1", "--port", str(port)]
        process = Process("bridge", args, f"{self.url}/healthz", self.root / "b.log")
        process.cwd = data
        process.env.update(
            BRIDGE_BACKENDS=",".join(b.url for b in self.backends),
            BRIDGE_DATA_DIR=str(data),
            BRIDGE_WORKFLOWS_DIR=str(workflows),
            BRIDGE_ADMIN_TOKEN=ADMIN_TOKEN,
            BRIDGE_LOG_LEVEL="INFO",
            BRIDGE_BACKEND_PROBE_INTERVAL_S="1",
            **OPEN_UNLIMITED,
        )
        return process

    async def run(self) -> dict[str, Any]:
        for backend in self.backends:
            await asyncio.to_thread(backend.process.start)
        await asyncio.to_thread(self.bridge.start)
        clients = self.clients()
        timeout = aiohttp.ClientTimeout(total=30)
        started = time.monotonic()
        async with aiohttp.ClientSession(timeout=timeout) as session:
            await self.wait_ready(session)
            chaos = asyncio.create_task(self.chaos(session))
            logs = asyncio.create_task(self.read_logs(session))
            await asyncio.gather(*(client.run(session) for client in clients))
            self.done.set()
            await chaos
            await self.settle(session, clients)
            logs.cancel()
            await self.read_all_logs(session)
        elapsed_s = time.monotonic() - started
        self.stop()
        return self.account(clients, elapsed_s)

    def clients(self) -> list[Client]:
        count = self.args.clients
        seeds = list(range(1, self.args.jobs + 1))
        return [
            Client(f"soak-{i}", self.url, seeds[i::count], self.args.steps)
            for i in range(count)
        ]

    async def wait_ready(self, session: aiohttp.ClientSession) -> None:
        while True:
            try:
                async with session.get(f"{self.url}/readyz") as response:
                    if response.status == 200:
                        return
            except TRANSIENT:
                pass
            await asyncio.sleep(0.2)

    async def chaos(self, session: aiohttp.ClientSession) -> None:
        """Kill the bridge or one simulator now and then, and start it again."""
        low, high = self.args.kill_every_s
        while True:
            with_wait = self.random.uniform(low, high)
            try:
                await asyncio.wait_for(self.done.wait(), with_wait)
                return
            except TimeoutError:
                pass
            down_s = self.random.uniform(0.2, 2.0)
            if self.random.random() < 0.5:
                self.kills["bridge"] += 1
                self.bridge.kill()
                await asyncio.sleep(down_s)
                await asyncio.to_thread(self.bridge.start)
            else:
                backend = self.random.choice(self.backends)
                self.kills["backend"] += 1
                await backend.restart(session, down_s)

    async def read_logs(self, session: aiohttp.ClientSession) -> None:
        while True:
            await asyncio.sleep(2.0)
            await self.read_all_logs(session)

    async def read_all_logs(self, session: aiohttp.ClientSession) -> None:
        for backend in self.backends:
            try:
                await backend.read_log(session)
            except TRANSIENT:
                # Being restarted: its last words were read before the kill.
                continue

    async def settle(
        self, session: aiohttp.ClientSession, clients: list[Client]
    ) -> None:
        """Give the jobs set aside a last chance to end."""
        for client in clients:
            for outcome in client.outcomes:
                if outcome.status not in ("succeeded", "failed", "cancelled"):
                    await client.follow(session, outcome, FINAL_PATIENCE_S)

    def stop(self) -> None:
        self.bridge.kill(signal.SIGTERM)
        for backend in self.backends:
            backend.process.kill(signal.SIGTERM)

    def account(self, clients: list[Client], elapsed_s: float) -> dict[str, Any]:
        outcomes = [o for client in clients for o in client.outcomes]
        statuses = Counter(o.status for o in outcomes)
        failed = Counter(o.code or "unknown" for o in outcomes if o.status == "failed")
        ended = ("succeeded", "failed", "cancelled")
        twice = self.twice()
        return {
            "submitted": sum(o.job_id is not None for o in outcomes),
            "succeeded": statuses["succeeded"],
            "failed": statuses["failed"],
            "lost": sum(o.status not in ended for o in outcomes),
            "twice": len(twice),
            "failed_by_code": dict(failed),
            "cancelled": statuses["cancelled"],
            "kills": dict(self.kills),
            "prompts": sum(len(p) for p in self.prompts().values()),
            "delivered": len(self.deliveries()),
            "twice_seeds": sorted(twice)[:20],
            "elapsed_s": round(elapsed_s, 1),
        }

    def prompts(self) -> dict[int, list[tuple[float, int, int]]]:
        """Per seed: (time, simulator, life) of every submission of it."""
        found: dict[int, list[tuple[float, int, int]]] = defaultdict(list)
        for index, backend in enumerate(self.backends):
            for life, entry in backend.entries:
                body = entry.get("json") or {}
                if entry["path"].endswith("/prompt") and "prompt" in body:
                    seed = body["prompt"]["3"]["inputs"]["seed"]
                    found[seed].append((entry["t"], index, life))
        return found

    def deliveries(self) -> dict[int, float]:
        """Per seed: when the bridge first fetched its output from a backend."""
        first: dict[int, float] = {}
        for _, entry in (e for b in self.backends for e in b.entries):
            name = entry["query"].get("filename", "")
            if entry["path"].endswith("/view") and name.startswith("soak"):
                seed = int(name[4:].partition("x")[0])
                first[seed] = min(first.get(seed, entry["t"]), entry["t"])
        return first

    def twice(self) -> set[int]:
        delivered = self.deliveries()
        twice = set()
        for seed, sent in self.prompts().items():
            sent.sort()
            if any(t > delivered.get(seed, float("inf")) for t, _, _ in sent):
                twice.add(seed)
            for (_, index, life), (again_t, _, _) in zip(sent, sent[1:], strict=False):
                # Sent again is fine only once the backend holding it had died.
                if self.backends[index].killed_at.get(life, float("inf")) > again_t:
                    twice.add(seed)
        return twice


def report(result: dict[str, Any]) -> None:
    print(f"jobs submitted   {result['submitted']}")
    print(f"succeeded        {result['succeeded']}")
    print(f"failed           {result['failed']}  {result['failed_by_code']}")
    print(f"cancelled        {result['cancelled']}")
    print(f"lost             {result['lost']}")
    print(f"run twice        {result['twice']}  {result['twice_seeds']}")
    print(f"kills            {result['kills']}")
    print(f"prompts sent     {result['prompts']}")
    print(f"outputs fetched  {result['delivered']} jobs")
    print(f"elapsed          {result['elapsed_s']} s")
    keys = ("submitted", "succeeded", "failed", "lost", "twice", "failed_by_code")
    print(json.dumps({key: result[key] for key in keys}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=2000)
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--backends", type=int, default=4)
    # Slow enough that every kill catches jobs queued, running and finishing.
    parser.add_argument("--speed", type=float, default=2.0)
    parser.add_argument("--steps", type=int, default=20, help="sampler steps a job")
    parser.add_argument(
        "--kill-every-s",
        type=float,
        nargs=2,
        default=(4.0, 12.0),
        metavar=("MIN", "MAX"),
        help="seconds between kills, drawn between MIN and MAX",
    )
    parser.add_argument("--seed", type=int, default=7, help="seed of the chaos")
    parser.add_argument("--keep", action="store_true", help="keep logs and data")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="comfy-bridge-soak-"))
    soak = Soak(args, root)
    try:
        result = asyncio.run(soak.run())
    finally:
        soak.stop()
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)
    if args.keep:
        print(f"logs and data in {root}")
    report(result)


if __name__ == "__main__":
    main()
