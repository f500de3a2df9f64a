"""Placement end to end: a bridge process in front of simulator processes.

Eligibility, refusal, late binding, checkpoint affinity, fairness, failover, a
backend coming back, and backends added and drained at run time.
"""

from __future__ import annotations

import contextlib
import copy
import json
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.processes import (
    ADMIN_TOKEN,
    DEMO_MODEL,
    EXAMPLES,
    bridge,
    free_port,
    running,
    stop,
)

ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
LORA = "loras/detail.safetensors"
OTHER_MODEL = "checkpoints/other.safetensors"
FAST_PROBES = {"BRIDGE_BACKEND_PROBE_INTERVAL_S": "0.3"}
TXT2IMG = json.loads((EXAMPLES / "txt2img.json").read_text())


@contextlib.contextmanager
def sim_process(
    *options: str, port: int | None = None, log: Path | None = None
) -> Iterator[tuple[str, Any]]:
    """A simulator on loopback; yields its URL and process (to kill it)."""
    port = port or free_port()
    url = f"http://127.0.0.1:{port}"
    args = ["simulate", "--host", "127.0.0.1", "--port", str(port), *options]
    with running(args, f"{url}/system_stats", log_path=log) as proc:
        yield url, proc


def wait_until(check: Callable[[], bool], timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        assert time.monotonic() < deadline, "gave up waiting"
        time.sleep(0.1)


def backends(client: httpx.Client) -> list[dict[str, Any]]:
    return list(client.get("/v1/backends", headers=ADMIN).json()["backends"])


def wait_up(client: httpx.Client, count: int) -> None:
    wait_until(lambda: sum(b["state"] == "up" for b in backends(client)) >= count)


def backend_id(client: httpx.Client, url: str) -> str:
    return next(str(b["id"]) for b in backends(client) if b["url"] == url)


def prompts(sim_url: str) -> list[dict[str, Any]]:
    """The graphs a simulator was sent."""
    requests = httpx.get(f"{sim_url}/_sim/requests").json()
    return [
        r["json"]["prompt"]
        for r in requests
        if r["method"] == "POST" and r["path"].endswith("/prompt")
    ]


def seeds_at(sim_url: str) -> list[int]:
    return [
        node["inputs"]["seed"]
        for graph in prompts(sim_url)
        for node in graph.values()
        if node["class_type"] == "KSampler"
    ]


def txt2img(
    ckpt: str = "demo-sd15.safetensors", lora: str | None = None
) -> dict[str, Any]:
    graph = copy.deepcopy(TXT2IMG)
    graph["4"]["inputs"]["ckpt_name"] = ckpt
    if lora is not None:
        graph["10"] = {
            "class_type": "LoraLoader",
            "inputs": {
                "model": ["4", 0],
                "clip": ["4", 1],
                "lora_name": lora,
                "strength_model": 1.0,
                "strength_clip": 1.0,
            },
        }
        graph["3"]["inputs"]["model"] = ["10", 0]
        for node in ("6", "7"):
            graph[node]["inputs"]["clip"] = ["10", 1]
    return graph


FANCY = {
    "1": {
        "class_type": "EmptyImage",
        "inputs": {"width": 32, "height": 32, "batch_size": 1, "color": 0},
    },
    "2": {"class_type": "FancySaveImage", "inputs": {"images": ["1", 0]}},
}


def register(client: httpx.Client, alias: str, graph: dict[str, Any]) -> None:
    response = client.put(
        f"/v1/workflows/{alias}", json={"workflow": graph}, headers=ADMIN
    )
    assert response.status_code == 200, response.text


def submit(
    client: httpx.Client,
    workflow: str,
    inputs: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
    **fields: Any,
) -> dict[str, Any]:
    body = {"workflow": workflow, "inputs": inputs or {}, **fields}
    response = client.post("/v1/jobs", json=body, headers=headers)
    assert response.status_code == 202, response.text
    return dict(response.json())


def finish(client: httpx.Client, job_ids: list[str]) -> list[dict[str, Any]]:
    return [client.get(f"/v1/jobs/{i}", params={"wait": 60}).json() for i in job_ids]


# ----------------------------------------------------------------- eligibility


@pytest.fixture(scope="module")
def mixed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """Backend `rich` has a LoRA and a custom node that backend `plain` lacks."""
    logs = tmp_path_factory.mktemp("logs")
    with (
        sim_process(
            "--model",
            DEMO_MODEL,
            "--model",
            LORA,
            "--node",
            "FancySaveImage",
            log=logs / "rich.log",
        ) as (rich, _),
        sim_process("--model", DEMO_MODEL, log=logs / "plain.log") as (plain, _),
        bridge(
            [rich, plain],
            tmp_path_factory.mktemp("bridge"),
            env=FAST_PROBES,
            log_path=logs / "bridge.log",
        ) as url,
        httpx.Client(base_url=url, timeout=60) as client,
    ):
        wait_up(client, 2)
        register(client, "fancy", FANCY)
        register(client, "lora", txt2img(lora="detail.safetensors"))
        register(client, "nowhere", txt2img(lora="nowhere.safetensors"))
        yield {"client": client, "rich": rich, "plain": plain}


def test_jobs_go_only_where_their_node_classes_are(mixed: dict[str, Any]) -> None:
    client = mixed["client"]
    jobs = finish(client, [submit(client, "fancy")["id"] for _ in range(4)])

    assert [job["status"] for job in jobs] == ["succeeded"] * 4
    fancy_at = [
        url
        for url in (mixed["rich"], mixed["plain"])
        for graph in prompts(url)
        if "2" in graph and graph["2"]["class_type"] == "FancySaveImage"
    ]
    assert fancy_at == [mixed["rich"]] * 4


def test_jobs_go_only_where_their_models_are(mixed: dict[str, Any]) -> None:
    client = mixed["client"]
    ids = [submit(client, "lora", {"seed": 7000 + n})["id"] for n in range(4)]

    jobs = finish(client, ids)

    assert [job["status"] for job in jobs] == ["succeeded"] * 4
    assert sorted(s for s in seeds_at(mixed["rich"]) if s >= 7000) == [
        7000,
        7001,
        7002,
        7003,
    ]
    assert not [s for s in seeds_at(mixed["plain"]) if s >= 7000]


def test_a_job_no_backend_could_run_is_refused_naming_what_is_missing(
    mixed: dict[str, Any],
) -> None:
    response = mixed["client"].post("/v1/jobs", json={"workflow": "nowhere"})

    assert response.status_code == 409
    body = response.json()
    assert body["code"] == "unrunnable"
    assert body["missing"] == {
        "node_classes": [],
        "models": ["loras/nowhere.safetensors"],
    }
    assert "loras/nowhere.safetensors" in body["detail"]


def test_a_workflow_tells_where_it_can_run(mixed: dict[str, Any]) -> None:
    client = mixed["client"]
    rich, plain = (backend_id(client, mixed[name]) for name in ("rich", "plain"))

    where = {b["id"]: b for b in client.get("/v1/workflows/lora").json()["backends"]}

    assert where[rich]["runnable"] is True
    assert where[plain]["runnable"] is False
    assert where[plain]["missing"]["models"] == [LORA]
    fancy = client.get("/v1/workflows/fancy").json()["backends"]
    assert [b["missing"]["node_classes"] for b in fancy if not b["runnable"]] == [
        ["FancySaveImage"]
    ]


def test_capabilities_refresh_on_demand(mixed: dict[str, Any]) -> None:
    client = mixed["client"]
    plain = backend_id(client, mixed["plain"])

    response = client.post(f"/v1/backends/{plain}/refresh", headers=ADMIN)

    assert response.status_code == 200
    assert response.json()["models"] >= 1
    assert client.post("/v1/backends/nope/refresh", headers=ADMIN).status_code == 404


# ------------------------------------------------------------------- choosing


def test_a_fast_backend_that_frees_takes_the_next_job(tmp_path: Path) -> None:
    with (
        sim_process("--model", DEMO_MODEL, "--speed", "4") as (fast, _),
        sim_process("--model", DEMO_MODEL, "--speed", "0.2") as (slow, _),
        bridge(
            [fast, slow],
            tmp_path / "bridge",
            env={"BRIDGE_BACKEND_SLOTS": "1", "BRIDGE_WORKFLOWS_DIR": str(EXAMPLES)},
        ) as url,
        httpx.Client(base_url=url, timeout=60) as client,
    ):
        wait_up(client, 2)
        # Both backends are idle when all eight jobs arrive.
        ids = [
            submit(client, "txt2img", {"seed": n, "steps": 4})["id"] for n in range(8)
        ]
        jobs = finish(client, ids)

        assert [job["status"] for job in jobs] == ["succeeded"] * 8
        assert len(seeds_at(fast)) >= 6, (seeds_at(fast), seeds_at(slow))


def test_jobs_follow_their_loaded_checkpoint(tmp_path: Path) -> None:
    models = ("--model", DEMO_MODEL, "--model", OTHER_MODEL)
    with (
        sim_process(*models) as (first, _),
        sim_process(*models) as (second, _),
        bridge([first, second], tmp_path / "bridge") as url,
        httpx.Client(base_url=url, timeout=60) as client,
    ):
        wait_up(client, 2)
        register(client, "sd15", txt2img())
        register(client, "other", txt2img(ckpt="other.safetensors"))
        for n in range(6):
            alias = "sd15" if n % 2 == 0 else "other"
            job = submit(client, alias, {"seed": n, "steps": 2})
            assert finish(client, [job["id"]])[0]["status"] == "succeeded"

        def checkpoints(url: str) -> set[str]:
            return {graph["4"]["inputs"]["ckpt_name"] for graph in prompts(url)}

        # Each backend kept its own checkpoint: no switch after the first load.
        assert {frozenset(checkpoints(first)), frozenset(checkpoints(second))} == {
            frozenset({"demo-sd15.safetensors"}),
            frozenset({"other.safetensors"}),
        }


def test_a_burst_does_not_hold_up_another_client(tmp_path: Path) -> None:
    with (
        sim_process("--model", DEMO_MODEL) as (sim, _),
        bridge(
            [sim],
            tmp_path / "bridge",
            env={"BRIDGE_BACKEND_SLOTS": "1", "BRIDGE_WORKFLOWS_DIR": str(EXAMPLES)},
        ) as url,
        httpx.Client(base_url=url, timeout=60) as client,
    ):
        wait_up(client, 1)
        burst = {"X-Client-Id": "burst"}
        ids = [
            submit(client, "txt2img", {"steps": 3}, headers=burst)["id"]
            for _ in range(12)
        ]
        solo = submit(client, "txt2img", {"steps": 3}, headers={"X-Client-Id": "solo"})

        jobs = finish(client, [*ids, solo["id"]])

        ended = sorted(jobs, key=lambda job: job["finished_at_ms"])
        position = [job["id"] for job in ended].index(solo["id"])
        assert position <= 2, position


def test_only_an_operator_may_push_work_ahead(tmp_path: Path) -> None:
    with (
        sim_process("--model", DEMO_MODEL) as (sim, _),
        bridge(
            [sim],
            tmp_path / "bridge",
            env={"BRIDGE_BACKEND_SLOTS": "1", "BRIDGE_WORKFLOWS_DIR": str(EXAMPLES)},
        ) as url,
        httpx.Client(base_url=url, timeout=60) as client,
    ):
        wait_up(client, 1)
        body = {"workflow": "txt2img", "inputs": {"steps": 3}, "priority": 5}
        assert client.post("/v1/jobs", json=body).status_code == 403

        ids = [submit(client, "txt2img", {"steps": 3})["id"] for _ in range(6)]
        urgent = submit(client, "txt2img", {"steps": 3}, headers=ADMIN, priority=5)
        # Only the operator sees both its own job and the open callers' ones.
        client.headers.update(ADMIN)

        jobs = finish(client, [*ids, urgent["id"]])

        ended = [job["id"] for job in sorted(jobs, key=lambda j: j["finished_at_ms"])]
        assert ended.index(urgent["id"]) <= 2
        assert jobs[-1]["priority"] == 5


# ------------------------------------------------------------ health, failover


def test_jobs_of_a_killed_backend_finish_elsewhere_once(tmp_path: Path) -> None:
    port = free_port()
    slow_steps = ("--step-seconds", "0.1")
    log = tmp_path / "bridge.log"
    with (
        sim_process("--model", DEMO_MODEL, *slow_steps) as (keeper, _),
        bridge(
            [keeper, f"http://127.0.0.1:{port}"],
            tmp_path / "bridge",
            env={**FAST_PROBES, "BRIDGE_WORKFLOWS_DIR": str(EXAMPLES)},
            log_path=log,
        ) as url,
        httpx.Client(base_url=url, timeout=60) as client,
    ):
        with sim_process("--model", DEMO_MODEL, *slow_steps, port=port) as (
            doomed,
            proc,
        ):
            wait_up(client, 2)
            ids = [
                submit(client, "txt2img", {"seed": 100 + n, "steps": 8})["id"]
                for n in range(8)
            ]
            wait_until(lambda: len(prompts(doomed)) >= 2)
            stop(proc, signal.SIGKILL)

        jobs = finish(client, ids)

        assert [job["status"] for job in jobs] == ["succeeded"] * 8
        assert all(len(job["outputs"]) == 1 for job in jobs)
        assert any(job["attempts"] > 1 for job in jobs)
        kept = [s for s in seeds_at(keeper) if s >= 100]
        assert len(kept) == len(set(kept)), "a job ran twice on the survivor"
        doomed_id = backend_id(client, doomed)
        assert [b["state"] for b in backends(client) if b["id"] == doomed_id] == [
            "down"
        ]

        # The backend comes back on its address and takes jobs again.
        with sim_process("--model", DEMO_MODEL, port=port) as (back, _):
            wait_up(client, 2)
            ids = [submit(client, "txt2img", {"steps": 1})["id"] for _ in range(6)]
            assert all(j["status"] == "succeeded" for j in finish(client, ids))
            assert prompts(back)

    transitions = [line for line in log.read_text().splitlines() if doomed_id in line]
    assert any("up -> down" in line for line in transitions)
    assert any("down -> up" in line for line in transitions)


# ------------------------------------------------------ backends at run time


def test_backends_are_added_and_drained_at_run_time(tmp_path: Path) -> None:
    data = tmp_path / "bridge"
    with (
        sim_process("--model", DEMO_MODEL) as (base, _),
        sim_process("--model", DEMO_MODEL, "--model", LORA) as (extra, _),
    ):
        with (
            bridge([base], data, env=FAST_PROBES) as url,
            httpx.Client(base_url=url, timeout=60) as client,
        ):
            wait_up(client, 1)
            register(client, "lora", txt2img(lora="detail.safetensors"))
            assert client.post("/v1/jobs", json={"workflow": "lora"}).status_code == 409

            added = client.post("/v1/backends", json={"url": extra}, headers=ADMIN)
            assert added.status_code == 201, added.text
            extra_id = added.json()["id"]
            wait_up(client, 2)

            job = submit(client, "lora", {"steps": 40})
            wait_until(
                lambda: (
                    client.get(f"/v1/jobs/{job['id']}").json()["status"] == "running"
                )
            )
            removed = client.delete(f"/v1/backends/{extra_id}", headers=ADMIN)
            assert removed.json()["state"] == "draining"
            # Draining: it takes no new job, so nothing else can run this one.
            assert client.post("/v1/jobs", json={"workflow": "lora"}).status_code == 409

            assert finish(client, [job["id"]])[0]["status"] == "succeeded"
            wait_until(lambda: extra_id not in [b["id"] for b in backends(client)])
            assert len(prompts(extra)) == 1

            client.post("/v1/backends", json={"url": extra, "slots": 3}, headers=ADMIN)

        # Added backends are kept across a restart.
        with (
            bridge([base], data, env=FAST_PROBES) as url,
            httpx.Client(base_url=url, timeout=60) as client,
        ):
            wait_up(client, 2)
            [kept] = [b for b in backends(client) if b["url"] == extra]
            assert kept["slots"] == 3
