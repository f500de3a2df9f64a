"""Placement under load: our scheduler against two baseline policies.

Four simulators (speeds 1x, 1x, 2x, 4x; the second lacks the LoRA a third of
the jobs need) behind one bridge, all on loopback. The same 200 jobs of three
workflows of different lengths, from five clients (one submits 100 at once, the
others 25 each, spread out), run once under each placement policy:

- ours: late binding, soonest expected finish, checkpoint affinity, fair queue;
- least_queue: each job bound at submission to the backend with the fewest jobs
  (the original bridge's policy);
- round_robin: each job bound at submission to the next backend in turn.

The baselines are `BRIDGE_PLACEMENT` settings of the same bridge; they share its
eligibility check, so only the placement differs. The simulators are restarted
for each run so that no run inherits another's caches.

For each policy it prints the makespan over the ideal lower bound (the total
work, measured per job on the simulators and scaled by their speed, over the
total speed), the mean and p95 job latency, and the worst wait (submission to
start) of the clients that did not burst. Then it runs ours once more and kills
the 2x backend when half the jobs are done: every job must still succeed, none
twice. The last line is JSON.

    .venv/bin/python bench/scheduling.py [--step-seconds 0.025]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import copy
import json
import signal
import statistics
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.processes import (  # noqa: E402
    ADMIN_TOKEN,
    DEMO_MODEL,
    EXAMPLES,
    bridge,
    free_port,
    running,
    stop,
)

ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
SPEEDS = (1.0, 1.0, 2.0, 4.0)
LACKS_LORA = 1
KILLED = 2
LORA = "loras/detail.safetensors"
# Workflow alias -> sampler steps; the longest needs the LoRA.
WORKFLOWS = {"short": 4, "medium": 10, "long": 20}
JOBS = 200
BURST = 100
CLIENTS = 5
POLICIES = ("ours", "least_queue", "round_robin")


def graph(steps: int, lora: bool) -> dict[str, Any]:
    base = json.loads((EXAMPLES / "txt2img.json").read_text())
    base = copy.deepcopy(base)
    base["3"]["inputs"]["steps"] = steps
    base["5"]["inputs"].update(width=64, height=64)
    if lora:
        base["10"] = {
            "class_type": "LoraLoader",
            "inputs": {
                "model": ["4", 0],
                "clip": ["4", 1],
                "lora_name": LORA.split("/", 1)[1],
                "strength_model": 1.0,
                "strength_clip": 1.0,
            },
        }
        base["3"]["inputs"]["model"] = ["10", 0]
    return base


@dataclass(frozen=True)
class Submission:
    client: int
    workflow: str
    seed: int
    at_s: float


def load(spread_s: float) -> list[Submission]:
    """The same 200 jobs for every run: a third of each workflow."""
    aliases = list(WORKFLOWS)
    jobs = [Submission(0, aliases[n % 3], n, 0.0) for n in range(BURST)]
    per_client = (JOBS - BURST) // (CLIENTS - 1)
    for client in range(1, CLIENTS):
        for n in range(per_client):
            seed = BURST + (client - 1) * per_client + n
            at_s = (n + client / CLIENTS) * spread_s / per_client
            jobs.append(Submission(client, aliases[seed % 3], seed, at_s))
    return sorted(jobs, key=lambda job: job.at_s)


@dataclass
class Run:
    policy: str
    jobs: dict[int, dict[str, Any]] = field(default_factory=dict)
    started_ms: dict[int, list[int]] = field(default_factory=dict)
    work_s: float = 0.0


@contextlib.contextmanager
def simulators(step_s: float, logs: Path) -> Iterator[list[tuple[str, Any]]]:
    with contextlib.ExitStack() as stack:
        sims = []
        for index, speed in enumerate(SPEEDS):
            port = free_port()
            url = f"http://127.0.0.1:{port}"
            models = ["--model", DEMO_MODEL]
            if index != LACKS_LORA:
                models += ["--model", LORA]
            args = ["simulate", "--host", "127.0.0.1", "--port", str(port)]
            args += ["--speed", str(speed), "--step-seconds", str(step_s), *models]
            log = logs / f"sim-{index}.log"
            proc = stack.enter_context(
                running(args, f"{url}/system_stats", log_path=log)
            )
            sims.append((url, proc))
        yield sims


async def wait_up(client: httpx.AsyncClient, count: int) -> None:
    for _ in range(300):
        body = (await client.get("/v1/backends", headers=ADMIN)).json()
        if sum(b["state"] == "up" for b in body["backends"]) >= count:
            return
        await asyncio.sleep(0.1)
    raise TimeoutError("the backends did not come up")


async def submit_all(
    client: httpx.AsyncClient, jobs: list[Submission]
) -> dict[int, tuple[int, str]]:
    """Submit on schedule; returns seed -> (client, job id)."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    ids = {}
    for job in jobs:
        delay = start + job.at_s - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        body = {"workflow": job.workflow, "inputs": {"seed": job.seed}}
        headers = {"X-Client-Id": f"client-{job.client}"}
        response = await client.post("/v1/jobs", json=body, headers=headers)
        response.raise_for_status()
        ids[job.seed] = (job.client, response.json()["id"])
    return ids


async def finished(client: httpx.AsyncClient, job_id: str) -> dict[str, Any]:
    while True:
        response = await client.get(f"/v1/jobs/{job_id}", params={"wait": 60})
        job: dict[str, Any] = response.json()
        if job["status"] in ("succeeded", "failed", "cancelled"):
            return job


def executions(sim_url: str) -> dict[int, list[tuple[int, int]]]:
    """Seed -> (start ms, end ms) of each successful run the simulator recorded."""
    history = httpx.get(f"{sim_url}/history", timeout=30).json()
    runs: dict[int, list[tuple[int, int]]] = {}
    for entry in history.values():
        seed = entry["prompt"][2]["3"]["inputs"]["seed"]
        stamps = {
            name: data.get("timestamp") for name, data in entry["status"]["messages"]
        }
        if "execution_success" in stamps and "execution_start" in stamps:
            span = (stamps["execution_start"], stamps["execution_success"])
            runs.setdefault(seed, []).append(span)
    return runs


async def kill_halfway(
    client: httpx.AsyncClient, sims: list[tuple[str, Any]], seen: dict[int, Any]
) -> None:
    """Kill the 2x backend once half the jobs have succeeded."""
    while True:
        body = (
            await client.get(
                "/v1/jobs",
                params={"status": "succeeded", "limit": 1},
                headers=ADMIN,
            )
        ).json()
        if body["total"] >= JOBS // 2:
            break
        await asyncio.sleep(0.2)
    url, proc = sims[KILLED]
    seen.update(await asyncio.to_thread(executions, url))
    stop(proc, signal.SIGKILL)


async def drive(
    url: str, sims: list[tuple[str, Any]], jobs: list[Submission], kill: bool
) -> tuple[dict[int, tuple[int, dict[str, Any]]], dict[int, Any]]:
    limits = httpx.Limits(max_connections=300)
    async with httpx.AsyncClient(base_url=url, timeout=120, limits=limits) as client:
        await wait_up(client, len(sims))
        for alias, steps in WORKFLOWS.items():
            body = {"workflow": graph(steps, lora=alias == "long")}
            response = await client.put(
                f"/v1/workflows/{alias}", json=body, headers=ADMIN
            )
            response.raise_for_status()
        killed_seen: dict[int, Any] = {}
        killer = (
            asyncio.create_task(kill_halfway(client, sims, killed_seen))
            if kill
            else None
        )
        ids = await submit_all(client, jobs)
        results = await asyncio.gather(
            *(finished(client, job_id) for _, job_id in ids.values())
        )
        if killer is not None:
            await killer
    by_seed = {
        seed: (owner, job)
        for (seed, (owner, _)), job in zip(ids.items(), results, strict=True)
    }
    return by_seed, killed_seen


def run_policy(
    policy: str, jobs: list[Submission], step_s: float, kill: bool = False
) -> tuple[Run, dict[str, int]]:
    with tempfile.TemporaryDirectory() as tmp:
        logs = Path(tmp)
        with simulators(step_s, logs) as sims:
            env = {
                "BRIDGE_PLACEMENT": policy,
                "BRIDGE_BACKEND_PROBE_INTERVAL_S": "0.5",
                "BRIDGE_LOG_LEVEL": "WARNING",
            }
            with bridge(
                [u for u, _ in sims], logs / "bridge", env=env, log_path=logs / "b.log"
            ) as url:
                by_seed, killed_seen = asyncio.run(drive(url, sims, jobs, kill))
            alive = [
                (u, speed)
                for index, ((u, _), speed) in enumerate(zip(sims, SPEEDS, strict=True))
                if not (kill and index == KILLED)
            ]
            spans = [(executions(u), speed) for u, speed in alive]
    if kill:
        spans.append((killed_seen, SPEEDS[KILLED]))
    return summarize(policy, by_seed, spans), tally(by_seed, spans)


def summarize(
    policy: str,
    by_seed: dict[int, tuple[int, dict[str, Any]]],
    spans: list[tuple[dict[int, list[tuple[int, int]]], float]],
) -> Run:
    run = Run(policy)
    for seed, (_, job) in by_seed.items():
        run.jobs[seed] = job
    for runs, speed in spans:
        for seed, executed in runs.items():
            run.started_ms.setdefault(seed, []).extend(s for s, _ in executed)
            run.work_s += sum((end - start) / 1000 * speed for start, end in executed)
    return run


def tally(
    by_seed: dict[int, tuple[int, dict[str, Any]]],
    spans: list[tuple[dict[int, list[tuple[int, int]]], float]],
) -> dict[str, int]:
    statuses = [job["status"] for _, job in by_seed.values()]
    counts: dict[int, int] = {}
    for runs, _ in spans:
        for seed, executed in runs.items():
            counts[seed] = counts.get(seed, 0) + len(executed)
    return {
        "succeeded": statuses.count("succeeded"),
        "failed": len(statuses) - statuses.count("succeeded"),
        "twice": sum(1 for n in counts.values() if n > 1),
    }


def metrics(run: Run, owners: dict[int, int]) -> dict[str, float]:
    jobs = run.jobs.values()
    makespan_s = (
        max(j["finished_at_ms"] for j in jobs) - min(j["created_at_ms"] for j in jobs)
    ) / 1000
    ideal_s = run.work_s / sum(SPEEDS)
    latencies = sorted((j["finished_at_ms"] - j["created_at_ms"]) / 1000 for j in jobs)
    waits = [
        (min(run.started_ms[seed]) - job["created_at_ms"]) / 1000
        for seed, job in run.jobs.items()
        if owners[seed] != 0 and run.started_ms.get(seed)
    ]
    return {
        "makespan_s": makespan_s,
        "ideal_s": ideal_s,
        "ratio": makespan_s / ideal_s,
        "mean_s": statistics.fmean(latencies),
        "p95_s": latencies[int(0.95 * (len(latencies) - 1))],
        "worst_wait_s": max(waits),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--step-seconds", type=float, default=0.025)
    parser.add_argument("--spread-seconds", type=float, default=6.5)
    args = parser.parse_args()
    jobs = load(args.spread_seconds)
    owners = {job.seed: job.client for job in jobs}

    results = {}
    print(
        f"{'policy':<12} {'makespan/ideal':>14} {'makespan s':>10} {'ideal s':>8} "
        f"{'mean s':>7} {'p95 s':>7} {'worst wait s':>12}"
    )
    for policy in POLICIES:
        run, _ = run_policy(policy, jobs, args.step_seconds)
        m = metrics(run, owners)
        results[policy] = m
        print(
            f"{policy:<12} {m['ratio']:>14.3f} {m['makespan_s']:>10.2f} "
            f"{m['ideal_s']:>8.2f} {m['mean_s']:>7.2f} {m['p95_s']:>7.2f} "
            f"{m['worst_wait_s']:>12.2f}",
            flush=True,
        )
    _, killed = run_policy("ours", jobs, args.step_seconds, kill=True)
    print(
        f"ours, {SPEEDS[KILLED]:g}x backend killed halfway: "
        f"{killed['succeeded']} succeeded, {killed['failed']} failed, "
        f"{killed['twice']} ran twice"
    )
    print(
        json.dumps(
            {
                "makespan_over_ideal": {
                    p: round(m["ratio"], 3) for p, m in results.items()
                },
                "worst_wait_s": {
                    p: round(m["worst_wait_s"], 2) for p, m in results.items()
                },
                "killed_backend": killed,
            }
        )
    )


if __name__ == "__main__":
    main()
