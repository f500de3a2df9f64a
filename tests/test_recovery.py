"""Nothing is lost: a bridge that is killed, a backend that restarts or lies."""

from __future__ import annotations

import concurrent.futures
import contextlib
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx

from tests.processes import (
    DEMO_MODEL,
    EXAMPLES,
    bridge,
    bridge_process,
    free_port,
    running,
    simulator,
)
from tests.test_cancel import backend_log
from tests.test_e2e import wait_backends_up

ENV = {
    "BRIDGE_WORKFLOWS_DIR": str(EXAMPLES),
    "BRIDGE_ALIAS_FILE": str(EXAMPLES / "workflow_alias.json"),
    "BRIDGE_BACKEND_SLOTS": "1",
}
SIM_OPTIONS = ("--model", DEMO_MODEL, "--step-seconds", "0.1")


def submit(url: str, seed: int, steps: int) -> str:
    body = {"workflow": "txt2img", "inputs": {"seed": seed, "steps": steps}}
    response = httpx.post(f"{url}/v1/jobs", json=body)
    assert response.status_code == 202, response.text
    return str(response.json()["id"])


def job(url: str, job_id: str) -> Any:
    return httpx.get(f"{url}/v1/jobs/{job_id}").json()


def wait_until(url: str, job_id: str, *statuses: str, timeout_s: float = 40) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        current = job(url, job_id)
        if current["status"] in statuses:
            return current
        time.sleep(0.05)
    raise AssertionError(f"job {job_id} stayed {current['status']}")


def prompts_with_seed(sim: str, seed: int) -> int:
    return sum(
        1
        for entry in backend_log(sim)
        if entry["path"].endswith("/prompt")
        and (entry.get("json") or {}).get("prompt", {}).get("3", {})
        and entry["json"]["prompt"]["3"]["inputs"]["seed"] == seed
    )


@contextlib.contextmanager
def restartable(
    sims: list[str], data: Path, port: int, log: Path
) -> Iterator[tuple[str, Any]]:
    """A bridge on a fixed port and data, so a second one can take over."""
    with bridge_process(sims, data, env=ENV, log_path=log, port=port) as (url, proc):
        wait_backends_up(url, len(sims))
        yield url, proc


def test_a_killed_bridge_accounts_for_every_job(tmp_path: Path) -> None:
    data, port = tmp_path / "data", free_port()
    with simulator(*SIM_OPTIONS, log_path=tmp_path / "sim.log") as sim:
        with restartable([sim], data, port, tmp_path / "first.log") as (url, proc):
            done = submit(url, seed=1, steps=1)
            wait_until(url, done, "succeeded")
            runs = submit(url, seed=2, steps=30)
            wait_until(url, runs, "running")
            waits = [submit(url, seed=3 + i, steps=2) for i in range(3)]
            assert job(url, waits[0])["status"] == "queued"
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=10)

        with restartable([sim], data, port, tmp_path / "second.log") as (url, _):
            ended = [wait_until(url, i, "succeeded", "failed", "cancelled")
                     for i in [done, runs, *waits]]  # fmt: skip

        assert [j["status"] for j in ended] == ["succeeded"] * 5
        for finished in ended:
            assert len(finished["outputs"]) == 1
        # The job that was running when the bridge died ran once, not twice.
        assert prompts_with_seed(sim, 2) == 1
        assert [prompts_with_seed(sim, 3 + i) for i in range(3)] == [1, 1, 1]


def test_a_job_that_finished_while_the_bridge_was_down_is_collected(
    tmp_path: Path,
) -> None:
    data, port = tmp_path / "data", free_port()
    with simulator(*SIM_OPTIONS) as sim:
        with restartable([sim], data, port, tmp_path / "first.log") as (url, proc):
            runs = submit(url, seed=20, steps=10)
            wait_until(url, runs, "running")
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=10)
        time.sleep(2.0)

        with restartable([sim], data, port, tmp_path / "second.log") as (url, _):
            finished = wait_until(url, runs, "succeeded", "failed")
            picture = httpx.get(f"{url}{finished['outputs'][0]['url']}")

        assert finished["status"] == "succeeded"
        assert finished["attempts"] == 1
        assert picture.status_code == 200
        assert prompts_with_seed(sim, 20) == 1


def test_sigterm_lets_running_jobs_go_on_and_picks_them_up_again(
    tmp_path: Path,
) -> None:
    data, port = tmp_path / "data", free_port()
    with simulator(*SIM_OPTIONS) as sim:
        with restartable([sim], data, port, tmp_path / "first.log") as (url, proc):
            runs = submit(url, seed=30, steps=20)
            wait_until(url, runs, "running")
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=15)

        # The backend was not told to stop it.
        assert not [e for e in backend_log(sim) if e["path"].endswith("/interrupt")]
        with restartable([sim], data, port, tmp_path / "second.log") as (url, _):
            finished = wait_until(url, runs, "succeeded", "failed")

        assert finished["status"] == "succeeded"
        assert prompts_with_seed(sim, 30) == 1


def test_a_backend_that_restarts_mid_job_does_not_turn_it_into_a_success(
    tmp_path: Path,
) -> None:
    sim_port = free_port()
    sim_url = f"http://127.0.0.1:{sim_port}"
    command = ["simulate", "--host", "127.0.0.1", "--port", str(sim_port)]
    with running([*command, *SIM_OPTIONS], f"{sim_url}/system_stats") as first_sim:
        with bridge([sim_url], tmp_path / "data", env=ENV) as url:
            wait_backends_up(url, 1)
            runs = submit(url, seed=40, steps=30)
            wait_until(url, runs, "running")
            first_sim.send_signal(signal.SIGKILL)
            first_sim.wait(timeout=10)
            with running([*command, *SIM_OPTIONS], f"{sim_url}/system_stats"):
                finished = wait_until(url, runs, "succeeded", "failed", timeout_s=90)

    assert finished["status"] == "succeeded"
    assert finished["attempts"] == 2
    assert len(finished["outputs"]) == 1


def test_a_success_without_outputs_is_a_failure(tmp_path: Path) -> None:
    with (
        simulator(*SIM_OPTIONS, "--fault", "no-outputs") as sim,
        bridge([sim], tmp_path / "data", env=ENV) as url,
    ):
        wait_backends_up(url, 1)
        runs = submit(url, seed=50, steps=1)

        finished = wait_until(url, runs, "succeeded", "failed")

    assert finished["status"] == "failed"
    assert finished["error"]["code"] == "no_outputs"
    assert finished["outputs"] == []


def test_a_backend_that_keeps_failing_what_succeeds_elsewhere_is_used_last(
    tmp_path: Path,
) -> None:
    env = {**ENV, "BRIDGE_BACKEND_SLOTS": "2"}
    with (
        simulator(*SIM_OPTIONS) as sound,
        simulator(*SIM_OPTIONS, "--fault", "no-outputs") as liar,
        bridge([sound, liar], tmp_path / "data", env=env) as url,
    ):
        wait_backends_up(url, 2)
        admin = {"Authorization": "Bearer test-admin-token"}
        for round_ in range(6):
            ids = [submit(url, seed=100 + 4 * round_ + i, steps=1) for i in range(4)]
            for job_id in ids:
                wait_until(url, job_id, "succeeded", "failed")
            backends = httpx.get(f"{url}/v1/backends", headers=admin).json()
            if any(b["degraded"] for b in backends["backends"]):
                break
        [degraded] = [b for b in backends["backends"] if b["degraded"]]
        assert degraded["url"] == liar

        after = [submit(url, seed=200 + i, steps=1) for i in range(2)]
        ended = [wait_until(url, job_id, "succeeded", "failed") for job_id in after]

    assert [j["status"] for j in ended] == ["succeeded", "succeeded"]


def test_sigterm_answers_long_waits_and_dispatches_nothing_more(
    tmp_path: Path,
) -> None:
    data, port = tmp_path / "data", free_port()
    with simulator(*SIM_OPTIONS) as sim:
        with restartable([sim], data, port, tmp_path / "first.log") as (url, proc):
            runs = submit(url, seed=60, steps=30)
            wait_until(url, runs, "running")
            waits = submit(url, seed=61, steps=1)
            with concurrent.futures.ThreadPoolExecutor(1) as pool:
                long_poll = pool.submit(
                    httpx.get, f"{url}/v1/jobs/{waits}?wait=300", timeout=60
                )
                time.sleep(0.3)
                stopped_at = time.monotonic()
                proc.send_signal(signal.SIGTERM)
                answer = long_poll.result()
                proc.wait(timeout=30)
                took_s = time.monotonic() - stopped_at

        assert answer.json()["status"] == "queued"
        assert took_s < 15
        assert prompts_with_seed(sim, 61) == 0
        with restartable([sim], data, port, tmp_path / "second.log") as (url, _):
            assert wait_until(url, waits, "succeeded")["status"] == "succeeded"
