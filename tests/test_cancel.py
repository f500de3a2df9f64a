"""Stopping the work nobody waits for, and only that work, on real processes."""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.processes import ADMIN_TOKEN, DEMO_MODEL, EXAMPLES, bridge, simulator
from tests.test_e2e import wait_backends_up

STEP_S = "0.2"


@contextlib.contextmanager
def cluster(
    tmp_path: Path, *faults: str, env: dict[str, str] | None = None
) -> Iterator[tuple[httpx.Client, str]]:
    options = ["--model", DEMO_MODEL, "--step-seconds", STEP_S]
    for fault in faults:
        options += ["--fault", fault]
    settings = {
        "BRIDGE_WORKFLOWS_DIR": str(EXAMPLES),
        "BRIDGE_ALIAS_FILE": str(EXAMPLES / "workflow_alias.json"),
        **(env or {}),
    }
    with (
        simulator(*options, log_path=tmp_path / "sim.log") as sim,
        bridge(
            [sim], tmp_path / "data", env=settings, log_path=tmp_path / "bridge.log"
        ) as url,
        httpx.Client(base_url=url, timeout=60) as client,
    ):
        wait_backends_up(url, 1)
        yield client, sim


def submit(client: httpx.Client, seed: int, steps: int, **extra: Any) -> Any:
    body = {"workflow": "txt2img", "inputs": {"seed": seed, "steps": steps}, **extra}
    response = client.post("/v1/jobs", json=body)
    assert response.status_code == 202, response.text
    return response.json()


def wait_for(client: httpx.Client, job_id: str, *statuses: str) -> Any:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        job = client.get(f"/v1/jobs/{job_id}").json()
        if job["status"] in statuses:
            return job
        time.sleep(0.05)
    raise AssertionError(f"job {job_id} never reached {statuses}: {job}")


def backend_log(sim: str) -> list[dict[str, Any]]:
    return list(httpx.get(f"{sim}/_sim/requests").json())


def prompt_id_of(sim: str, seed: int) -> str:
    for entry in backend_log(sim):
        body = entry.get("json") or {}
        if entry["path"].endswith("/prompt") and "prompt" in body:
            if body["prompt"]["3"]["inputs"]["seed"] == seed:
                return str(body["prompt_id"])
    raise AssertionError(f"no prompt with seed {seed} reached the backend")


def stops(sim: str) -> list[dict[str, Any]]:
    """Every delete and interrupt the backend was sent, in order."""
    return [
        {"path": e["path"], "json": e.get("json"), "t": e["t"]}
        for e in backend_log(sim)
        if e["method"] == "POST" and e["path"].endswith(("/interrupt", "/queue"))
    ]


def test_a_waiting_job_is_deleted_never_interrupted(tmp_path: Path) -> None:
    with cluster(tmp_path) as (client, sim):
        a = submit(client, seed=1, steps=30)
        wait_for(client, a["id"], "running")
        b = submit(client, seed=2, steps=5)
        wait_for(client, b["id"], "running")
        b_prompt = prompt_id_of(sim, 2)

        cancelled = client.delete(f"/v1/jobs/{b['id']}").json()

        assert cancelled["status"] == "cancelled"
        assert cancelled["error"]["stopped"] == "deleted from its backend's queue"
        assert stops(sim) == [
            {"path": "/queue", "json": {"delete": [b_prompt]}, "t": stops(sim)[0]["t"]}
        ]
        assert wait_for(client, a["id"], "succeeded", "failed")["status"] == "succeeded"
        assert not [s for s in stops(sim) if s["path"] == "/interrupt"]


def test_a_running_job_is_interrupted_by_its_own_prompt_id(tmp_path: Path) -> None:
    with cluster(tmp_path) as (client, sim):
        a = submit(client, seed=3, steps=50)
        wait_for(client, a["id"], "running")
        time.sleep(0.3)

        cancelled = client.delete(f"/v1/jobs/{a['id']}").json()

        assert cancelled["status"] == "cancelled"
        assert cancelled["error"]["reason"] == "client"
        assert cancelled["error"]["stopped"] == "interrupted on its backend"
        assert cancelled["outputs"] == []
        interrupts = [s["json"] for s in stops(sim) if s["path"] == "/interrupt"]
        assert interrupts == [{"prompt_id": prompt_id_of(sim, 3)}]


def test_a_backend_that_cannot_target_is_stopped_only_while_ours_runs(
    tmp_path: Path,
) -> None:
    with cluster(tmp_path, "ignore-targeted-interrupt") as (client, sim):
        a = submit(client, seed=4, steps=50)
        wait_for(client, a["id"], "running")
        b = submit(client, seed=5, steps=3)
        wait_for(client, b["id"], "running")
        time.sleep(0.3)

        cancelled = client.delete(f"/v1/jobs/{a['id']}").json()

        assert cancelled["status"] == "cancelled"
        assert cancelled["error"]["stopped"] == "interrupted on its backend"
        bare = [s for s in stops(sim) if s["path"] == "/interrupt" and not s["json"]]
        assert len(bare) == 1
        assert wait_for(client, b["id"], "succeeded", "failed")["status"] == "succeeded"


def test_an_expired_lease_cancels(tmp_path: Path) -> None:
    with cluster(tmp_path) as (client, sim):
        job = submit(client, seed=6, steps=50, lease_s=1.0)
        deadline = time.monotonic() + 15
        while not stops(sim) and time.monotonic() < deadline:
            time.sleep(0.1)

        ended = wait_for(client, job["id"], "cancelled", "succeeded", "failed")

        assert ended["status"] == "cancelled"
        assert ended["error"]["reason"] == "lease"


def test_polling_keeps_a_lease_alive(tmp_path: Path) -> None:
    with cluster(tmp_path) as (client, _sim):
        job = submit(client, seed=7, steps=25, lease_s=1.0)

        ended = wait_for(client, job["id"], "cancelled", "succeeded", "failed")

        assert ended["status"] == "succeeded"


def test_the_time_limit_cancels(tmp_path: Path) -> None:
    env = {"BRIDGE_TIMEOUT_JOB_S": "1"}
    with cluster(tmp_path, env=env) as (client, _sim):
        job = submit(client, seed=8, steps=50)

        ended = wait_for(client, job["id"], "cancelled", "succeeded", "failed")

        assert ended["status"] == "cancelled"
        assert ended["error"]["reason"] == "time_limit"


def test_a_cancelled_jobs_backend_takes_the_next_job_at_once(tmp_path: Path) -> None:
    with cluster(tmp_path, env={"BRIDGE_BACKEND_SLOTS": "1"}) as (client, _sim):
        a = submit(client, seed=9, steps=50)
        wait_for(client, a["id"], "running")
        b = submit(client, seed=10, steps=2)
        assert client.get(f"/v1/jobs/{b['id']}").json()["status"] == "queued"

        client.delete(f"/v1/jobs/{a['id']}")
        started = time.monotonic()
        wait_for(client, b["id"], "running", "succeeded")

        assert time.monotonic() - started < 2.0
        assert wait_for(client, b["id"], "succeeded")["status"] == "succeeded"


def test_a_queued_job_is_dropped_without_a_word_to_any_backend(
    tmp_path: Path,
) -> None:
    with cluster(tmp_path, env={"BRIDGE_BACKEND_SLOTS": "1"}) as (client, sim):
        a = submit(client, seed=11, steps=20)
        wait_for(client, a["id"], "running")
        b = submit(client, seed=12, steps=2)

        cancelled = client.delete(f"/v1/jobs/{b['id']}").json()

        assert cancelled["status"] == "cancelled"
        assert cancelled["error"]["stopped"] == "dropped from the bridge's queue"
        assert stops(sim) == []
        with pytest.raises(AssertionError):
            prompt_id_of(sim, 12)


def test_a_workflows_own_time_limit_cancels(tmp_path: Path) -> None:
    graph = json.loads((EXAMPLES / "txt2img.json").read_text())
    with cluster(tmp_path) as (client, _sim):
        registered = client.put(
            "/v1/workflows/quick",
            json={"workflow": graph, "time_limit_s": 1},
            headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
        )
        assert registered.status_code == 200, registered.text
        body = {"workflow": "quick", "inputs": {"seed": 13, "steps": 50}}
        job = client.post("/v1/jobs", json=body).json()

        ended = wait_for(client, job["id"], "cancelled", "succeeded", "failed")

        assert ended["status"] == "cancelled"
        assert ended["error"]["reason"] == "time_limit"
