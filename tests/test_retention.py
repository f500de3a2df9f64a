"""Retention on real processes: files go after their time, job records stay."""

from __future__ import annotations

import contextlib
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.processes import (
    DEMO_MODEL,
    EXAMPLES,
    bridge_process,
    free_port,
    simulator,
)
from tests.test_e2e import gradient_png, wait_backends_up

# Long enough that a blocking job outlasts a restart on a busy machine; the
# tests cancel it once it has served.
SIM_OPTIONS = ("--model", DEMO_MODEL, "--step-seconds", "0.5")
ENV = {
    "BRIDGE_WORKFLOWS_DIR": str(EXAMPLES),
    "BRIDGE_ALIAS_FILE": str(EXAMPLES / "workflow_alias.json"),
    "BRIDGE_BACKEND_SLOTS": "1",
    "BRIDGE_RETENTION_SWEEP_INTERVAL_S": "0.2",
}
ENDED = ("succeeded", "failed", "cancelled")


@contextlib.contextmanager
def started(
    sim: str, data: Path, port: int, log: Path, **settings: str
) -> Iterator[tuple[httpx.Client, Any]]:
    env = {**ENV, **{f"BRIDGE_{k.upper()}": v for k, v in settings.items()}}
    with (
        bridge_process([sim], data, env=env, log_path=log, port=port) as (url, proc),
        httpx.Client(base_url=url, timeout=30) as client,
    ):
        wait_backends_up(url, 1)
        yield client, proc


def eventually(check: Callable[[], bool], what: str, timeout_s: float = 20) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.1)
    raise AssertionError(f"{what} did not happen within {timeout_s} s")


def submit(client: httpx.Client, workflow: str, inputs: dict[str, Any]) -> str:
    response = client.post("/v1/jobs", json={"workflow": workflow, "inputs": inputs})
    assert response.status_code == 202, response.text
    return str(response.json()["id"])


def status(client: httpx.Client, job_id: str) -> str:
    return str(client.get(f"/v1/jobs/{job_id}").json()["status"])


def finished(client: httpx.Client, job_id: str) -> Any:
    eventually(lambda: status(client, job_id) in ENDED, f"job {job_id} ending")
    return client.get(f"/v1/jobs/{job_id}").json()


def upload(client: httpx.Client) -> str:
    files = {"file": ("photo.png", gradient_png(), "image/png")}
    response = client.post("/v1/uploads", files=files)
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def upload_kept(client: httpx.Client, upload_id: str) -> bool:
    answer = client.get(f"/v1/uploads/{upload_id}/content").status_code
    assert answer in (200, 404), answer
    return answer == 200


def test_outputs_expire_and_their_jobs_stay(tmp_path: Path) -> None:
    data, port, log = tmp_path / "data", free_port(), tmp_path / "second.log"
    with simulator(*SIM_OPTIONS) as sim:
        with started(sim, data, port, tmp_path / "first.log") as (client, _):
            job_id = submit(client, "txt2img", {"seed": 1, "steps": 1})
            job = finished(client, job_id)
            url = job["outputs"][0]["url"]
            assert client.get(url).status_code == 200

        with started(sim, data, port, log, retention_outputs_s="1") as (client, _):
            eventually(lambda: client.get(url).status_code == 410, "expiry")
            answer = client.get(url).json()
            job = client.get(f"/v1/jobs/{job_id}").json()

    assert answer["code"] == "output_expired"
    assert job["status"] == "succeeded"
    assert job["outputs"][0]["expired_at_ms"] is not None
    assert not (data / "outputs" / job_id).exists()
    assert "retention: deleted 1 outputs of 1 jobs and 0 uploads" in log.read_text()


def test_an_upload_a_job_waits_for_is_kept_across_restarts(tmp_path: Path) -> None:
    data, port = tmp_path / "data", free_port()
    settings = {"retention_uploads_s": "1"}
    with simulator(*SIM_OPTIONS) as sim:
        with started(sim, data, port, tmp_path / "1.log", **settings) as (client, proc):
            blocker = submit(client, "txt2img", {"seed": 2, "steps": 50})
            eventually(lambda: status(client, blocker) == "running", "blocker runs")
            needed = upload(client)
            waiting = submit(client, "invert", {"image": needed})
            unused = upload(client)
            eventually(lambda: not upload_kept(client, unused), "unused deleted")
            assert status(client, waiting) == "queued"
            assert upload_kept(client, needed)
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=10)

        with started(sim, data, port, tmp_path / "2.log", **settings) as (client, _):
            later = upload(client)
            eventually(lambda: not upload_kept(client, later), "later deleted")
            assert status(client, waiting) == "queued"
            assert upload_kept(client, needed)
            client.delete(f"/v1/jobs/{blocker}")
            job = finished(client, waiting)
            eventually(lambda: not upload_kept(client, needed), "needed deleted")

    assert job["status"] == "succeeded"


@pytest.mark.parametrize("keep", [False, True])
def test_an_upload_goes_when_its_last_job_ends_unless_kept(
    tmp_path: Path, keep: bool
) -> None:
    settings = {"uploads_keep_after_job": str(keep).lower()}
    with (
        simulator(*SIM_OPTIONS) as sim,
        started(
            sim, tmp_path / "data", free_port(), tmp_path / "b.log", **settings
        ) as (client, _),
    ):
        shared = upload(client)
        first = submit(client, "invert", {"image": shared})
        blocker = submit(client, "txt2img", {"seed": 3, "steps": 50})
        second = submit(client, "invert", {"image": shared})
        assert finished(client, first)["status"] == "succeeded"
        eventually(lambda: status(client, blocker) == "running", "blocker runs")
        # The second job still waits for the file the first one used.
        assert status(client, second) == "queued"
        assert upload_kept(client, shared)
        client.delete(f"/v1/jobs/{blocker}")
        assert finished(client, second)["status"] == "succeeded"
        if keep:
            # One more job end: the file would have gone by now.
            finished(client, submit(client, "txt2img", {"seed": 4, "steps": 1}))
            assert upload_kept(client, shared)
        else:
            eventually(lambda: not upload_kept(client, shared), "shared deleted")
