"""End to end: a bridge process in front of two simulator processes, on loopback."""

from __future__ import annotations

import asyncio
import base64
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
from tests.processes import (
    ADMIN_TOKEN,
    DEMO_MODEL,
    EXAMPLES,
    SHARED,
    bridge,
    simulator,
)

ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
GRACE_S = 0.5
# Every body and event the clients of this module are shown.
WITNESS = Witness(ADMIN_TOKEN)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    logs = tmp_path_factory.mktemp("logs")
    data = tmp_path_factory.mktemp("bridge")
    with (
        simulator("--model", DEMO_MODEL, log_path=logs / "sim-a.log") as sim_a,
        simulator("--model", DEMO_MODEL, log_path=logs / "sim-b.log") as sim_b,
    ):
        env = {
            "BRIDGE_WORKFLOWS_DIR": str(EXAMPLES),
            "BRIDGE_ALIAS_FILE": str(EXAMPLES / "workflow_alias.json"),
            "BRIDGE_WS_CANCEL_GRACE_S": str(GRACE_S),
        }
        with bridge([sim_a, sim_b], data, env=env, log_path=logs / "bridge.log") as url:
            wait_backends_up(url, 2)
            yield {"url": url, "simulators": [sim_a, sim_b], "data": data, "env": env}


def wait_backends_up(url: str, count: int, timeout_s: float = 20) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        body = httpx.get(f"{url}/v1/backends", headers=ADMIN).json()
        if sum(b["state"] == "up" for b in body["backends"]) >= count:
            return
        time.sleep(0.1)
    raise TimeoutError(f"fewer than {count} backends came up")


@pytest.fixture
def client(cluster: dict[str, Any]) -> Iterator[httpx.Client]:
    hooks = {"response": [WITNESS.response]}
    with httpx.Client(base_url=cluster["url"], timeout=60, event_hooks=hooks) as client:
        yield client


def gradient_png(width: int = 64, height: int = 48) -> bytes:
    image = Image.linear_gradient("L").resize((width, height)).convert("RGB")
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


def upload(client: httpx.Client, data: bytes, name: str = "photo.png") -> str:
    response = client.post("/v1/uploads", files={"file": (name, data, "image/png")})
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def run_job(client: httpx.Client, workflow: str, inputs: dict[str, Any]) -> Any:
    response = client.post(
        "/v1/jobs", params={"wait": 30}, json={"workflow": workflow, "inputs": inputs}
    )
    assert response.status_code == 200, response.text
    return response.json()


def assert_inverted(original: bytes, output: bytes) -> None:
    source = Image.open(io.BytesIO(original)).convert("RGB")
    result = Image.open(io.BytesIO(output)).convert("RGB")
    assert result.size == source.size
    for xy in [(0, 0), (10, 5), (63, 47), (32, 20)]:
        expected = [255 - c for c in source.getpixel(xy)]
        # ComfyUI computes in floats and truncates back to 8 bits: off by one.
        got = result.getpixel(xy)
        assert all(abs(g - e) <= 1 for g, e in zip(got, expected, strict=True))


def test_invert_over_rest(client: httpx.Client) -> None:
    original = gradient_png()
    job = run_job(client, "invert", {"image": upload(client, original)})

    assert job["status"] == "succeeded", job
    assert job["progress"] == 1
    [output] = job["outputs"]
    assert output["content_type"] == "image/png"
    response = client.get(output["url"])
    assert response.status_code == 200
    assert response.headers["content-type"] == "image/png"
    assert response.headers["x-content-type-options"] == "nosniff"
    assert_inverted(original, response.content)


def test_outputs_carry_no_workflow_metadata(client: httpx.Client) -> None:
    job = run_job(client, "invert", {"image": upload(client, gradient_png())})

    data = client.get(job["outputs"][0]["url"]).content
    assert b"prompt" not in data and b"workflow" not in data
    assert Image.open(io.BytesIO(data)).info.get("prompt") is None


async def follow_events(url: str, job_id: str) -> list[dict[str, Any]]:
    ws_url = url.replace("http", "ws") + f"/v1/jobs/{job_id}/events"
    events = []
    async with aiohttp.ClientSession() as session:
        async with session.ws_connect(ws_url) as ws:
            async for message in ws:
                events.append(json.loads(message.data))
    for event in events:
        WITNESS.event(event)
    return events


def test_invert_over_websocket(client: httpx.Client, cluster: dict[str, Any]) -> None:
    original = gradient_png()
    body = {"workflow": "invert", "inputs": {"image": upload(client, original)}}
    job = client.post("/v1/jobs", json=body).json()
    assert job["status"] == "queued"

    events = asyncio.run(follow_events(cluster["url"], job["id"]))

    assert events[-1]["type"] == "status"
    assert events[-1]["status"] == "succeeded"
    [output_event] = [e for e in events if e["type"] == "output"]
    assert_inverted(original, client.get(output_event["url"]).content)


def test_txt2img_progress_only_grows(
    client: httpx.Client, cluster: dict[str, Any]
) -> None:
    body = {"workflow": "txt2img", "inputs": {"seed": 1234, "steps": 12}}
    job = client.post("/v1/jobs", json=body).json()

    events = asyncio.run(follow_events(cluster["url"], job["id"]))

    progress = [e["progress"] for e in events if e["type"] == "progress"]
    assert len(progress) >= 12
    assert progress == sorted(progress)
    final = events[-1]["job"]
    assert final["status"] == "succeeded"
    assert final["progress"] == 1
    statuses = [e["status"] for e in events if e["type"] == "status"]
    # The first is the snapshot at connection; each later one is a change.
    assert all(a != b for a, b in zip(statuses, statuses[1:], strict=False))
    assert statuses[-2:] == ["running", "succeeded"]


def test_same_seed_gives_the_same_picture(client: httpx.Client) -> None:
    pictures = []
    for _ in range(2):
        job = run_job(client, "txt2img", {"seed": 99, "steps": 2})
        pictures.append(client.get(job["outputs"][0]["url"]).content)
    other = run_job(client, "txt2img", {"seed": 100, "steps": 2})

    assert pictures[0] == pictures[1]
    assert client.get(other["outputs"][0]["url"]).content != pictures[0]


def requests_received(simulator_url: str, path: str) -> list[dict[str, Any]]:
    """The JSON bodies of the POSTs a simulator received on `path`."""
    requests = httpx.get(f"{simulator_url}/_sim/requests").json()
    return [
        r.get("json")
        for r in requests
        if r["method"] == "POST" and r["path"].endswith(path)
    ]


def prompts_received(simulator_url: str) -> list[dict[str, Any]]:
    return requests_received(simulator_url, "/prompt")


def test_twenty_jobs_spread_over_both_backends(
    client: httpx.Client, cluster: dict[str, Any]
) -> None:
    before = [len(prompts_received(url)) for url in cluster["simulators"]]
    body = {"workflow": "txt2img", "inputs": {"steps": 3}}
    ids = [client.post("/v1/jobs", json=body).json()["id"] for _ in range(20)]

    jobs = [client.get(f"/v1/jobs/{i}", params={"wait": 60}).json() for i in ids]

    assert [job["status"] for job in jobs] == ["succeeded"] * 20
    after = [len(prompts_received(url)) for url in cluster["simulators"]]
    done = [a - b for a, b in zip(after, before, strict=True)]
    assert sum(done) == 20
    assert min(done) >= 2, done


def test_big_seeds_and_non_ascii_text_arrive_unchanged(
    client: httpx.Client, cluster: dict[str, Any]
) -> None:
    seed, text = 2**64 - 1, "灯台 au crépuscule ✓ \U0001f30a"
    job = run_job(client, "txt2img", {"seed": seed, "prompt": text, "steps": 1})
    assert job["status"] == "succeeded"

    prompts = [p for url in cluster["simulators"] for p in prompts_received(url)]
    graphs = [
        p["prompt"] for p in prompts if p["prompt"]["3"]["inputs"].get("seed") == seed
    ]
    assert graphs, "the seed did not arrive unchanged"
    assert graphs[-1]["6"]["inputs"]["text"] == text
    assert "bridge_inputs" not in json.dumps(graphs[-1])


@pytest.mark.parametrize(
    ("inputs", "status", "names"),
    [
        ({"seed": "abc"}, 422, "seed"),
        ({"steps": 51}, 422, "steps"),
        ({"steps": 0}, 422, "steps"),
        ({"width": 100.5}, 422, "width"),
        ({"colour": "red"}, 422, "colour"),
        ({"prompt": 7}, 422, "prompt"),
    ],
)
def test_bad_values_are_refused_naming_the_input(
    client: httpx.Client, inputs: dict[str, Any], status: int, names: str
) -> None:
    response = client.post("/v1/jobs", json={"workflow": "txt2img", "inputs": inputs})

    assert response.status_code == status, response.text
    body = response.json()
    assert body["code"] == "invalid_input"
    assert names in body["detail"]


def test_a_missing_file_input_is_refused(client: httpx.Client) -> None:
    response = client.post("/v1/jobs", json={"workflow": "invert", "inputs": {}})
    assert response.status_code == 422
    assert "image" in response.json()["detail"]

    response = client.post(
        "/v1/jobs", json={"workflow": "invert", "inputs": {"image": "no-such-upload"}}
    )
    assert response.status_code == 422
    assert "no-such-upload" in response.json()["detail"]


def test_unknown_things_answer_404(client: httpx.Client) -> None:
    assert client.get("/v1/workflows/nope").json()["code"] == "workflow_not_found"
    response = client.post("/v1/jobs", json={"workflow": "nope", "inputs": {}})
    assert response.status_code == 404
    assert client.get("/v1/jobs/nope").status_code == 404
    job = run_job(client, "txt2img", {"steps": 1})
    assert client.get(f"/v1/jobs/{job['id']}/outputs/5").status_code == 404


def test_workflow_description_lists_inputs_and_schema(client: httpx.Client) -> None:
    workflow = client.get("/v1/workflows/txt2img").json()

    inputs = {spec["name"]: spec for spec in workflow["inputs"]}
    assert set(inputs) == {"prompt", "seed", "steps", "width", "height"}
    assert inputs["steps"]["type"] == "int"
    assert (inputs["steps"]["minimum"], inputs["steps"]["maximum"]) == (1, 50)
    assert inputs["prompt"]["type"] == "string"
    assert workflow["schema"]["properties"]["steps"]["maximum"] == 50
    assert workflow["thumbnail_url"]
    assert client.get(workflow["thumbnail_url"]).headers["content-type"] == "image/png"


def test_cancel_a_running_job_stops_only_its_prompt(
    client: httpx.Client, cluster: dict[str, Any]
) -> None:
    job = client.post(
        "/v1/jobs", json={"workflow": "txt2img", "inputs": {"steps": 50}}
    ).json()
    deadline = time.monotonic() + 10
    while client.get(f"/v1/jobs/{job['id']}").json()["status"] != "running":
        assert time.monotonic() < deadline
        time.sleep(0.05)

    cancelled = client.delete(f"/v1/jobs/{job['id']}").json()

    assert cancelled["status"] == "cancelled"
    assert cancelled["error"]["reason"] == "client"
    interrupts = [
        body
        for url in cluster["simulators"]
        for body in requests_received(url, "/interrupt")
    ]
    # Targeted at this job's prompt, never a bare interrupt.
    assert interrupts
    assert all(set(body or {}) == {"prompt_id"} for body in interrupts)
    assert client.delete(f"/v1/jobs/{job['id']}").status_code == 409


def test_admin_routes_need_the_token(client: httpx.Client) -> None:
    graph = json.loads((EXAMPLES / "invert.json").read_text())

    assert client.put("/v1/workflows/x", json={"workflow": graph}).status_code == 401
    assert client.get("/v1/backends").status_code == 401
    wrong = {"Authorization": "Bearer nope"}
    assert client.get("/v1/backends", headers=wrong).status_code == 401


@pytest.mark.skipif(not SHARED.is_dir(), reason="needs the shared workflows")
def test_editor_format_is_refused_at_registration(client: httpx.Client) -> None:
    shared = SHARED / "workflows"
    graph = json.loads((shared / "flux_fp8_txt2img_UI_FORMAT.json").read_text())

    response = client.put("/v1/workflows/flux", json={"workflow": graph}, headers=ADMIN)

    assert response.status_code == 422
    assert "API" in response.json()["detail"]


def test_backend_validation_errors_fail_the_job_with_the_node(
    client: httpx.Client,
) -> None:
    # A missing model is refused at submission; a bad sampler only by ComfyUI.
    graph = json.loads((EXAMPLES / "txt2img.json").read_text())
    graph["3"]["inputs"]["sampler_name"] = "no-such-sampler"
    response = client.put(
        "/v1/workflows/broken", json={"workflow": graph}, headers=ADMIN
    )
    assert response.status_code == 200, response.text

    job = run_job(client, "broken", {"steps": 1})

    assert job["status"] == "failed"
    assert job["error"]["code"] == "prompt_rejected"
    assert job["error"]["node_id"] == "3"
    assert job["error"]["node_type"] == "KSampler"
    assert "no-such-sampler" in job["error"]["message"]


def wait_for_status(client: httpx.Client, job_id: str, status: str) -> Any:
    deadline = time.monotonic() + 15
    while True:
        job = client.get(f"/v1/jobs/{job_id}").json()
        if job["status"] == status or time.monotonic() > deadline:
            return job
        time.sleep(0.05)


async def watch_briefly(url: str, job_id: str, events: int) -> None:
    ws_url = url.replace("http", "ws") + f"/v1/jobs/{job_id}/events"
    async with aiohttp.ClientSession() as session:
        async with session.ws_connect(ws_url) as ws:
            for _ in range(events):
                await ws.receive()


def test_closing_the_event_socket_cancels_the_job(
    client: httpx.Client, cluster: dict[str, Any]
) -> None:
    body = {"workflow": "txt2img", "inputs": {"steps": 50}}
    job = client.post("/v1/jobs", json=body).json()
    wait_for_status(client, job["id"], "running")

    asyncio.run(watch_briefly(cluster["url"], job["id"], events=2))

    cancelled = wait_for_status(client, job["id"], "cancelled")
    assert cancelled["status"] == "cancelled"
    assert cancelled["error"]["reason"] == "disconnect"


def test_a_client_that_comes_back_within_the_grace_keeps_its_job(
    client: httpx.Client, cluster: dict[str, Any]
) -> None:
    body = {"workflow": "txt2img", "inputs": {"steps": 30}}
    job = client.post("/v1/jobs", json=body).json()
    wait_for_status(client, job["id"], "running")

    asyncio.run(watch_briefly(cluster["url"], job["id"], events=1))
    events = asyncio.run(follow_events(cluster["url"], job["id"]))

    assert events[-1]["status"] == "succeeded"
    assert client.get(events[-1]["job"]["outputs"][0]["url"]).status_code == 200


def test_no_client_was_shown_a_backend_address_or_path(
    cluster: dict[str, Any],
) -> None:
    # Last in the module: it reads what every test above showed its client.
    assert len(WITNESS.seen) > 50
    assert WITNESS.leaks(cluster["simulators"], str(cluster["data"])) == []


def test_operator_limits_on_batch_and_resolution(client: httpx.Client) -> None:
    graph = json.loads((EXAMPLES / "txt2img.json").read_text())
    body = {
        "workflow": graph,
        "inputs": [{"node": "5", "input": "batch_size", "name": "batch"}],
        "max_batch_size": 2,
        "max_pixels": 256 * 256,
    }
    assert client.put("/v1/workflows/small", json=body, headers=ADMIN).is_success

    def submit(**inputs: int) -> httpx.Response:
        body = {"workflow": "small", "inputs": {"steps": 1, **inputs}}
        return client.post("/v1/jobs", params={"wait": 30}, json=body)

    too_big = submit(width=512, height=512).json()
    assert "'width' and 'height'" in too_big["detail"]
    assert "at most 65536 pixels" in too_big["detail"]
    too_many = submit(width=256, height=256, batch=3)
    assert too_many.status_code == 422
    assert "'batch'" in too_many.json()["detail"]
    assert submit(width=256, height=256, batch=2).json()["status"] == "succeeded"


def test_a_graph_is_shown_only_when_its_workflow_is_public(
    client: httpx.Client,
) -> None:
    graph = json.loads((EXAMPLES / "invert.json").read_text())
    body = {"workflow": graph, "public": True}
    assert client.put("/v1/workflows/shared", json=body, headers=ADMIN).is_success

    shown = client.get("/v1/workflows/shared/graph")

    assert shown.status_code == 200
    assert shown.json()["2"]["class_type"] == "ImageInvert"
    assert "bridge_inputs" not in shown.text
    assert client.get("/v1/workflows/invert/graph").status_code == 404


def test_a_thumbnail_passes_the_same_check_as_an_upload(client: httpx.Client) -> None:
    graph = json.loads((EXAMPLES / "invert.json").read_text())
    polyglot = gradient_png() + b"PK\x03\x04evil.sh"
    body = {"workflow": graph, "thumbnail": base64.b64encode(polyglot).decode()}

    refused = client.put("/v1/workflows/thumbed", json=body, headers=ADMIN)
    body["thumbnail"] = base64.b64encode(gradient_png()).decode()
    accepted = client.put("/v1/workflows/thumbed", json=body, headers=ADMIN)

    assert refused.status_code == 422
    assert "trailing_data" in refused.json()["detail"]
    assert accepted.status_code == 200
    shown = client.get("/v1/workflows/thumbed/thumbnail")
    assert Image.open(io.BytesIO(shown.content)).size == (64, 48)
