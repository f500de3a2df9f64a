"""Real-world workflows register and run end to end through the bridge."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image

from tests.processes import ADMIN_TOKEN, SHARED, bridge, simulator
from tests.test_e2e import wait_backends_up

WORKFLOWS = SHARED / "workflows"
API_WORKFLOWS = sorted(WORKFLOWS.glob("*_api.json"))
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}

# What each workflow must deliver: output node id → (kind, files).
EXPECTED_OUTPUTS = {
    "sd15_txt2img_api": {("9", "images")},
    "sd15_img2img_api": {("9", "images")},
    "sd15_multi_output_api": {("11", "images"), ("16", "images")},
    "animatediff_vhs_video_api": {("92", "gifs")},
    "flux_inpaint_custom_nodes_api": {
        ("76", "images"),
        ("136", "images"),
        ("145", "images"),
    },
}


@pytest.fixture(scope="module")
def url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    logs = tmp_path_factory.mktemp("logs")
    claims = [arg for path in API_WORKFLOWS for arg in ("--claim-workflow", str(path))]
    with simulator(*claims, "--speed", "20", log_path=logs / "sim.log") as sim:
        data = tmp_path_factory.mktemp("bridge")
        with bridge([sim], data, log_path=logs / "bridge.log") as url:
            wait_backends_up(url, 1)
            yield url


def register(url: str, path: Path) -> httpx.Response:
    body = {"workflow": json.loads(path.read_text()), "description": path.stem}
    return httpx.put(f"{url}/v1/workflows/{alias(path)}", json=body, headers=ADMIN)


def alias(path: Path) -> str:
    return path.stem.replace("_", "-")


@pytest.mark.parametrize("path", API_WORKFLOWS, ids=lambda p: p.stem)
def test_every_api_workflow_registers(url: str, path: Path) -> None:
    response = register(url, path)

    assert response.status_code == 200, response.text
    assert response.json()["alias"] == alias(path)


@pytest.mark.parametrize("name", sorted(EXPECTED_OUTPUTS))
def test_workflow_runs_to_all_its_outputs(url: str, name: str) -> None:
    path = WORKFLOWS / f"{name}.json"
    assert register(url, path).status_code == 200

    job = run(url, alias(path), file_inputs(url, alias(path)))

    assert job["status"] == "succeeded", job["error"]
    produced = {(o["node_id"], o["kind"]) for o in job["outputs"]}
    assert produced >= EXPECTED_OUTPUTS[name]
    for output in job["outputs"]:
        response = httpx.get(f"{url}{output['url']}")
        assert response.status_code == 200
        picture = Image.open(io.BytesIO(response.content))
        assert picture.width > 0 and picture.format
        assert response.headers["content-type"] == output["content_type"]


def test_the_video_output_is_collected_like_an_image(url: str) -> None:
    path = WORKFLOWS / "animatediff_vhs_video_api.json"
    assert register(url, path).status_code == 200

    job = run(url, alias(path), {})

    [video] = [o for o in job["outputs"] if o["kind"] == "gifs"]
    data = httpx.get(f"{url}{video['url']}").content
    assert Image.open(io.BytesIO(data)).n_frames > 1


def test_the_editor_format_is_refused_with_what_to_export(url: str) -> None:
    response = register(url, WORKFLOWS / "flux_fp8_txt2img_UI_FORMAT.json")

    assert response.status_code == 422
    detail = response.json()["detail"]
    assert "editor" in detail and "API" in detail


def file_inputs(url: str, workflow: str) -> dict[str, str]:
    """An uploaded picture for every image input the workflow requires."""
    described = httpx.get(f"{url}/v1/workflows/{workflow}").json()
    values = {}
    for spec in described["inputs"]:
        if spec["type"] == "image" and spec["required"]:
            buffer = io.BytesIO()
            Image.new("RGB", (64, 64), (200, 80, 20)).save(buffer, "PNG")
            files = {"file": ("input.png", buffer.getvalue(), "image/png")}
            upload = httpx.post(f"{url}/v1/uploads", files=files).json()
            values[spec["name"]] = upload["id"]
    return values


def run(url: str, workflow: str, inputs: dict[str, Any]) -> Any:
    response = httpx.post(
        f"{url}/v1/jobs",
        params={"wait": 60},
        json={"workflow": workflow, "inputs": inputs},
        timeout=90,
    )
    assert response.status_code == 200, response.text
    return response.json()
