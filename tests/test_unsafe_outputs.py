"""Outputs through a real bridge: a backend's disguised or broken file fails the
job and never reaches the client; clean files lose the workflow ComfyUI wrote
into them unless the operator keeps it; served files cannot be sniffed."""

from __future__ import annotations

import contextlib
import io
import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from PIL import Image

from tests.corpus import encode, photo
from tests.processes import ADMIN_TOKEN, EXAMPLES, bridge, simulator

ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
WORKFLOWS = {
    "BRIDGE_WORKFLOWS_DIR": str(EXAMPLES),
    "BRIDGE_ALIAS_FILE": str(EXAMPLES / "workflow_alias.json"),
}
PNG_TEXT_CHUNKS = (b"tEXt", b"zTXt", b"iTXt")


@contextlib.contextmanager
def cluster(
    tmp_path: Path, *sim_options: str, env: dict[str, str] | None = None
) -> Iterator[tuple[httpx.Client, Path]]:
    """A simulator with `sim_options` behind a fresh bridge; yields a client of
    the bridge and the bridge's data directory."""
    data = tmp_path / f"bridge-{uuid.uuid4().hex[:8]}"
    log = data.with_suffix(".log")
    with (
        simulator(*sim_options, log_path=data.with_suffix(".sim.log")) as sim,
        bridge([sim], data, env={**WORKFLOWS, **(env or {})}, log_path=log) as url,
        httpx.Client(base_url=url, timeout=60) as client,
    ):
        yield client, data


def invert_job(client: httpx.Client) -> dict[str, Any]:
    upload = client.post(
        "/v1/uploads", files={"file": ("in.png", encode(photo(), "PNG"), "image/png")}
    )
    assert upload.status_code == 201, upload.text
    job: dict[str, Any] = run(client, "invert", {"image": upload.json()["id"]})
    return job


def run(client: httpx.Client, workflow: str, inputs: dict[str, Any]) -> Any:
    response = client.post(
        "/v1/jobs", params={"wait": 30}, json={"workflow": workflow, "inputs": inputs}
    )
    assert response.status_code == 200, response.text
    return response.json()


def text_chunks(png: bytes) -> dict[bytes, bytes]:
    """The PNG's text chunks, keyword -> raw value, read from the bytes."""
    found, offset = {}, 8
    while offset < len(png):
        length = int.from_bytes(png[offset : offset + 4], "big")
        kind = png[offset + 4 : offset + 8]
        if kind in PNG_TEXT_CHUNKS:
            body = png[offset + 8 : offset + 8 + length]
            keyword, _, value = body.partition(b"\x00")
            found[keyword] = value
        offset += 12 + length
    return found


# ---- disguised and broken outputs --------------------------------------------


@pytest.mark.parametrize(
    ("fault", "rule"),
    [
        ("disguised-output", "trailing_data"),
        ("html-output", "type_not_allowed"),
        ("truncated-output", "decode_failed"),
    ],
)
def test_an_unsafe_output_fails_the_job_and_is_never_served(
    tmp_path: Path, fault: str, rule: str
) -> None:
    with cluster(tmp_path, "--fault", fault) as (client, data):
        job = invert_job(client)

        assert job["status"] == "failed", job
        assert job["error"]["code"] == "unsafe_output"
        assert job["error"]["rule"] == rule
        assert job["outputs"] == []
        assert job["attempts"] == 1
        served = client.get(f"/v1/jobs/{job['id']}/outputs/0")
        assert served.status_code == 404
        assert served.json()["code"] == "output_not_found"
        kept = data / "outputs" / job["id"]
        assert not kept.exists() or list(kept.iterdir()) == []


def test_kept_metadata_is_still_checked(tmp_path: Path) -> None:
    env = {"BRIDGE_OUTPUTS_KEEP_METADATA": "true"}
    with cluster(tmp_path, "--fault", "disguised-output", env=env) as (client, _):
        job = invert_job(client)

    assert job["status"] == "failed"
    assert job["error"]["rule"] == "trailing_data"


# ---- metadata ------------------------------------------------------------------


def test_the_simulator_writes_the_workflow_as_comfyui_does(tmp_path: Path) -> None:
    graph = {
        "1": {
            "class_type": "EmptyImage",
            "inputs": {"width": 8, "height": 8, "batch_size": 1, "color": 0},
        },
        "2": {
            "class_type": "SaveImage",
            "inputs": {"images": ["1", 0], "filename_prefix": "meta"},
        },
    }
    editor_graph = {"nodes": [{"id": 1, "type": "EmptyImage"}], "links": []}
    body = {
        "prompt": graph,
        "extra_data": {"extra_pnginfo": {"workflow": editor_graph}},
    }

    with simulator(log_path=tmp_path / "sim.log") as url:
        prompt_id = httpx.post(f"{url}/prompt", json=body).json()["prompt_id"]
        image = wait_for_image(url, prompt_id)
        data = httpx.get(f"{url}/view", params=image).content

    chunks = text_chunks(data)
    assert json.loads(chunks[b"prompt"]) == graph
    assert json.loads(chunks[b"workflow"]) == editor_graph


def wait_for_image(url: str, prompt_id: str) -> dict[str, str]:
    for _ in range(200):
        entry = httpx.get(f"{url}/history/{prompt_id}").json().get(prompt_id)
        if entry and entry["status"].get("completed"):
            return dict(entry["outputs"]["2"]["images"][0])
        time.sleep(0.05)
    raise AssertionError(f"prompt {prompt_id} did not finish")


def test_outputs_arrive_without_the_workflow_by_default(tmp_path: Path) -> None:
    with cluster(tmp_path) as (client, _):
        job = invert_job(client)
        served = client.get(job["outputs"][0]["url"])

    assert job["status"] == "succeeded", job
    assert text_chunks(served.content) == {}
    assert b"ImageInvert" not in served.content
    assert Image.open(io.BytesIO(served.content)).size == photo().size


def test_keep_metadata_keeps_the_workflow(tmp_path: Path) -> None:
    env = {"BRIDGE_OUTPUTS_KEEP_METADATA": "true"}
    with cluster(tmp_path, env=env) as (client, _):
        job = invert_job(client)
        served = client.get(job["outputs"][0]["url"])

    assert job["status"] == "succeeded", job
    prompt = json.loads(text_chunks(served.content)[b"prompt"])
    assert {node["class_type"] for node in prompt.values()} == {
        "LoadImage",
        "ImageInvert",
        "SaveImage",
    }


# ---- serving -------------------------------------------------------------------


def test_a_non_ascii_output_name_is_served_safely(tmp_path: Path) -> None:
    graph = {
        "1": {
            "class_type": "EmptyImage",
            "inputs": {"width": 8, "height": 8, "batch_size": 1, "color": 0},
        },
        "2": {
            "class_type": "SaveImage",
            "inputs": {"images": ["1", 0], "filename_prefix": '灯台 "x"'},
        },
    }
    with cluster(tmp_path) as (client, _):
        put = client.put(
            "/v1/workflows/lighthouse", json={"workflow": graph}, headers=ADMIN
        )
        assert put.status_code == 200, put.text
        job = run(client, "lighthouse", {})
        served = client.get(job["outputs"][0]["url"])

    assert job["status"] == "succeeded", job
    name = job["outputs"][0]["filename"]
    assert name.startswith("灯台") and name.endswith(".png")
    assert served.headers["x-content-type-options"] == "nosniff"
    assert served.headers["content-type"] == "image/png"
    disposition = served.headers["content-disposition"]
    assert disposition == f"attachment; filename*=utf-8''{quote(name)}"
