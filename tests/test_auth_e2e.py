"""Keys, ownership and job limits through a bridge process in front of a simulator."""

from __future__ import annotations

import asyncio
import io
import json
import time
from collections.abc import Iterator
from typing import Any

import aiohttp
import httpx
import pytest
from PIL import Image

from tests.leaks import Witness
from tests.processes import ADMIN_TOKEN, DEMO_MODEL, EXAMPLES, bridge, simulator

OPERATOR = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
WITNESS = Witness(ADMIN_TOKEN)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    data = tmp_path_factory.mktemp("bridge")
    env = {
        "BRIDGE_OPEN": "false",
        "BRIDGE_WORKFLOWS_DIR": str(EXAMPLES),
        "BRIDGE_ALIAS_FILE": str(EXAMPLES / "workflow_alias.json"),
        "BRIDGE_LIMIT_CLIENT_RUNNING_JOBS": "1",
        "BRIDGE_LIMIT_CLIENT_QUEUED_JOBS": "1",
    }
    options = ("--model", DEMO_MODEL, "--step-seconds", "0.1")
    with simulator(*options) as sim, bridge([sim], data, env=env) as url:
        wait_up(url)
        yield {"url": url, "simulators": [sim], "data": data}


def wait_up(url: str, timeout_s: float = 20) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        body = httpx.get(f"{url}/v1/backends", headers=OPERATOR).json()
        if any(backend["state"] == "up" for backend in body["backends"]):
            return
        time.sleep(0.1)
    raise TimeoutError("the backend did not come up")


def client_for(url: str, name: str) -> httpx.Client:
    made = httpx.post(f"{url}/v1/keys", json={"name": name}, headers=OPERATOR)
    assert made.status_code == 201, made.text
    client = httpx.Client(
        base_url=url,
        timeout=60,
        event_hooks={"response": [WITNESS.response]},
    )
    client.headers["Authorization"] = f"Bearer {made.json()['key']}"
    client.key = made.json()["key"]  # type: ignore[attr-defined]
    return client


@pytest.fixture
def alice(cluster: dict[str, Any]) -> Iterator[httpx.Client]:
    with client_for(cluster["url"], "alice") as client:
        yield client


@pytest.fixture
def bob(cluster: dict[str, Any]) -> Iterator[httpx.Client]:
    with client_for(cluster["url"], "bob") as client:
        yield client


def png() -> bytes:
    buffer = io.BytesIO()
    Image.linear_gradient("L").resize((32, 24)).convert("RGB").save(buffer, "PNG")
    return buffer.getvalue()


def submit(client: httpx.Client, workflow: str, inputs: dict[str, Any]) -> Any:
    return client.post("/v1/jobs", json={"workflow": workflow, "inputs": inputs})


def status_of(client: httpx.Client, job_id: str) -> str:
    return str(client.get(f"/v1/jobs/{job_id}").json()["status"])


def wait_for(client: httpx.Client, job_id: str, *statuses: str) -> None:
    deadline = time.monotonic() + 30
    while status_of(client, job_id) not in statuses:
        assert time.monotonic() < deadline
        time.sleep(0.05)


def test_without_a_key_nothing_runs(cluster: dict[str, Any]) -> None:
    response = httpx.post(f"{cluster['url']}/v1/jobs", json={"workflow": "invert"})

    assert response.status_code == 401
    assert "API key" in response.json()["detail"]


def test_a_client_cannot_use_or_see_another_clients_things(
    alice: httpx.Client, bob: httpx.Client
) -> None:
    files = {"file": ("photo.png", png(), "image/png")}
    upload_id = alice.post("/v1/uploads", files=files).json()["id"]

    borrowed = submit(bob, "invert", {"image": upload_id})
    assert borrowed.status_code == 422
    assert borrowed.json()["code"] == "invalid_input"
    job = submit(alice, "invert", {"image": upload_id}).json()
    wait_for(alice, job["id"], "succeeded")
    assert bob.get(f"/v1/jobs/{job['id']}").status_code == 404
    assert bob.get(f"/v1/jobs/{job['id']}/outputs/0").status_code == 404
    assert bob.delete(f"/v1/jobs/{job['id']}").status_code == 404
    assert alice.get(f"/v1/jobs/{job['id']}/outputs/0").status_code == 200


def test_inputs_cannot_reach_beyond_the_workflow(alice: httpx.Client) -> None:
    for inputs in [
        {"image": "../../../etc/passwd"},
        {"image": "/home/comfy/input/secret.png"},
        {"image": "x", "filename_prefix": "../../escape"},
    ]:
        refused = submit(alice, "invert", inputs)
        assert refused.status_code == 422, inputs
    model = submit(alice, "txt2img", {"checkpoint": "checkpoints/other.safetensors"})
    assert model.status_code == 422


async def events(url: str, job_id: str, key: str) -> tuple[int | None, list[Any]]:
    ws_url = url.replace("http", "ws") + f"/v1/jobs/{job_id}/events?token={key}"
    received = []
    async with aiohttp.ClientSession() as session:
        async with session.ws_connect(ws_url) as ws:
            async for message in ws:
                received.append(json.loads(message.data))
            return ws.close_code, received


def test_running_and_queued_limits(
    cluster: dict[str, Any], alice: httpx.Client, bob: httpx.Client
) -> None:
    slow = {"seed": 3, "steps": 30}
    first = submit(alice, "txt2img", slow).json()
    wait_for(alice, first["id"], "running")
    second = submit(alice, "txt2img", slow).json()
    third = submit(alice, "txt2img", slow)
    others = submit(bob, "txt2img", {"seed": 4, "steps": 1})

    assert third.status_code == 429
    assert third.json()["limit"] == "queued_jobs"
    assert int(third.headers["retry-after"]) >= 1
    assert others.status_code == 202
    # Alice's second waits behind her running one; Bob is not held up by her.
    assert status_of(alice, second["id"]) == "queued"
    assert status_of(alice, first["id"]) == "running"
    wait_for(bob, others.json()["id"], "succeeded")
    code, seen = asyncio.run(events(cluster["url"], second["id"], alice.key))  # type: ignore[attr-defined]
    assert code == 1000 and seen[-1]["status"] == "succeeded"
    _, stolen = asyncio.run(events(cluster["url"], first["id"], bob.key))  # type: ignore[attr-defined]
    assert stolen == []
    for event in seen:
        WITNESS.event(event)


def test_no_client_was_shown_a_backend_address(cluster: dict[str, Any]) -> None:
    assert WITNESS.seen
    assert WITNESS.leaks(cluster["simulators"], str(cluster["data"])) == []
