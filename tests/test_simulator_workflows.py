"""Model stand-ins and claimed real-world workflows on the simulator."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from PIL import Image

from tests.processes import SHARED, simulator
from tests.test_simulator import fetch, first_image, run_prompt

API_WORKFLOWS = sorted((SHARED / "workflows").glob("*_api.json"))
TXT2IMG = SHARED / "workflows" / "sd15_txt2img_api.json"


@pytest.fixture(scope="module")
def claiming_url() -> Iterator[str]:
    claims = [arg for path in API_WORKFLOWS for arg in ("--claim-workflow", str(path))]
    with simulator(*claims, "--step-seconds", "0.001") as url:
        yield url


@pytest.fixture(scope="module")
def model_url() -> Iterator[str]:
    options = ("--model", "checkpoints/sd15.safetensors", "--step-seconds", "0.01")
    with simulator(*options) as url:
        yield url


def load(path: Path) -> dict[str, Any]:
    graph: dict[str, Any] = json.loads(path.read_text())
    return graph


def txt2img(seed: int, steps: int) -> dict[str, Any]:
    graph = load(TXT2IMG)
    graph["4"]["inputs"]["ckpt_name"] = "sd15.safetensors"
    graph["3"]["inputs"].update(seed=seed, steps=steps)
    graph["5"]["inputs"].update(width=64, height=64)
    return graph


async def object_info(url: str) -> dict[str, Any]:
    info: dict[str, Any] = json.loads(await fetch(url, "/object_info"))
    return info


@pytest.mark.parametrize("path", API_WORKFLOWS, ids=lambda path: path.stem)
async def test_claimed_workflow_runs_to_all_outputs(
    claiming_url: str, path: Path
) -> None:
    graph = load(path)
    info = await object_info(claiming_url)
    outputs = sorted(
        node_id
        for node_id, node in graph.items()
        if info[node["class_type"]]["output_node"]
    )
    _, entry = await run_prompt(claiming_url, graph)
    assert entry["status"]["status_str"] == "success", entry["status"]["messages"]
    assert sorted(entry["outputs"]) == outputs


async def test_claimed_video_output_is_listed_under_gifs(claiming_url: str) -> None:
    graph = json.loads(
        (SHARED / "workflows" / "animatediff_vhs_video_api.json").read_text()
    )
    _, entry = await run_prompt(claiming_url, graph)
    video = entry["outputs"]["92"]["gifs"][0]
    assert video["format"] == "image/webp"
    query = {key: video[key] for key in ("filename", "subfolder", "type")}
    data = await fetch(claiming_url, "/view", **query)
    assert data[:4] == b"RIFF" and data[8:12] == b"WEBP"


async def test_claimed_models_fill_the_combos(claiming_url: str) -> None:
    info = await object_info(claiming_url)
    checkpoints = info["CheckpointLoaderSimple"]["input"]["required"]["ckpt_name"][0]
    assert checkpoints == ["dreamshaper_8.safetensors"]
    stand_in = info["VHS_VideoCombine"]
    assert stand_in["output_node"] is True
    assert stand_in["input"]["required"]["frame_rate"][0] == "INT"
    async with aiohttp.ClientSession() as session:
        async with session.get(f"{claiming_url}/models/loras") as reply:
            assert await reply.json() == ["jump_V2.safetensors"]


async def test_sampler_progress_grows_step_by_step(model_url: str) -> None:
    messages, entry = await run_prompt(model_url, txt2img(seed=7, steps=4))
    progress = [
        m["data"]
        for m in messages
        if m["type"] == "progress" and m["data"]["node"] == "3"
    ]
    assert [p["value"] for p in progress] == [1, 2, 3, 4]
    assert {p["max"] for p in progress} == {4}
    assert entry["status"]["status_str"] == "success"


async def test_decoded_picture_depends_only_on_the_seed(model_url: str) -> None:
    pictures = []
    for seed in (11, 12, 11):
        _, entry = await run_prompt(model_url, txt2img(seed=seed, steps=2))
        data = await fetch(model_url, "/view", **first_image(entry))
        with Image.open(io.BytesIO(data)) as image:
            pictures.append(image.convert("RGB").tobytes())
    assert pictures[0] == pictures[2]
    assert pictures[0] != pictures[1]


async def test_unclaimed_model_is_refused(model_url: str) -> None:
    graph = txt2img(seed=1, steps=1)
    graph["4"]["inputs"]["ckpt_name"] = "missing.safetensors"
    async with aiohttp.ClientSession() as session:
        async with session.post(f"{model_url}/prompt", json={"prompt": graph}) as reply:
            body = await reply.json()
    assert reply.status == 400
    assert body["node_errors"]["4"]["errors"][0]["type"] == "value_not_in_list"
