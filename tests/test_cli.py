"""The command line: run, workflows, and the demo that the README promises."""

from __future__ import annotations

import io
import json
import os
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from PIL import Image

from tests.processes import (
    ADMIN_TOKEN,
    DEMO_MODEL,
    EXAMPLES,
    bridge,
    free_port,
    simulator,
    stop,
    wait_for_http,
)
from tests.test_e2e import gradient_png, wait_backends_up


@pytest.fixture(scope="module")
def url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    data = tmp_path_factory.mktemp("bridge")
    env = {
        "BRIDGE_WORKFLOWS_DIR": str(EXAMPLES),
        "BRIDGE_ALIAS_FILE": str(EXAMPLES / "workflow_alias.json"),
    }
    with simulator("--model", DEMO_MODEL) as sim, bridge([sim], data, env=env) as url:
        wait_backends_up(url, 1)
        yield url


def cli(*args: str, url: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "BRIDGE_URL": url, "COLUMNS": "200"}
    return subprocess.run(
        [sys.executable, "-m", "comfy_bridge", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )


def test_run_uploads_a_file_and_saves_the_output(url: str, tmp_path: Path) -> None:
    source = tmp_path / "photo.png"
    source.write_bytes(gradient_png())
    out = tmp_path / "out"

    result = cli(
        "run", "invert", "--file", f"image={source}", "--out", str(out), url=url
    )

    assert result.returncode == 0, result.stdout + result.stderr
    [saved] = list(out.iterdir())
    picture = Image.open(saved).convert("RGB")
    original = Image.open(io.BytesIO(gradient_png())).convert("RGB")
    assert picture.getpixel((63, 47))[0] <= 256 - original.getpixel((63, 47))[0]


def test_run_passes_typed_values(url: str, tmp_path: Path) -> None:
    result = cli(
        "run", "txt2img", "-i", "seed=5", "-i", "steps=2", "-i", "prompt=a fox",
        "--out", str(tmp_path), url=url,
    )  # fmt: skip

    assert result.returncode == 0, result.stdout + result.stderr
    assert "succeeded" in result.stdout
    assert len(list(tmp_path.glob("*.png"))) == 1


def test_run_exits_non_zero_when_refused_or_failed(url: str, tmp_path: Path) -> None:
    refused = cli("run", "txt2img", "-i", "steps=999", url=url)
    assert refused.returncode == 1
    assert "steps" in refused.stdout

    graph = json.loads((EXAMPLES / "txt2img.json").read_text())
    graph["3"]["inputs"]["sampler_name"] = "no-such-sampler"
    path = tmp_path / "broken.json"
    path.write_text(json.dumps(graph))
    added = cli(
        "workflows", "add", "broken", str(path), "--token", ADMIN_TOKEN, url=url
    )
    assert added.returncode == 0, added.stdout + added.stderr

    failed = cli("run", "broken", "-i", "steps=1", url=url)
    assert failed.returncode == 1
    assert "failed" in failed.stdout
    assert "no-such-sampler" in failed.stdout


def test_workflows_list_and_show(url: str) -> None:
    listed = cli("workflows", "list", url=url)
    assert listed.returncode == 0
    assert "invert" in listed.stdout and "txt2img" in listed.stdout

    shown = cli("workflows", "show", "txt2img", url=url)
    assert shown.returncode == 0
    assert "steps" in shown.stdout and "[1, 50]" in shown.stdout


def test_workflows_add_needs_the_admin_token(url: str) -> None:
    refused = cli("workflows", "add", "x", str(EXAMPLES / "invert.json"), url=url)

    assert refused.returncode == 1
    assert "401" in refused.stdout


@pytest.mark.skipif(shutil.which("curl") is None, reason="the demo prints a curl")
def test_demo_serves_and_its_curl_runs_a_job(tmp_path: Path) -> None:
    port = free_port()
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "COLUMNS": "400"}
    command = [sys.executable, "-m", "comfy_bridge", "demo", "--port", str(port)]
    with subprocess.Popen(
        command,
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    ) as demo:
        try:
            curl = read_until_curl(demo)
            wait_for_http(f"http://127.0.0.1:{port}/readyz")

            result = subprocess.run(
                shlex.split(curl), capture_output=True, text=True, timeout=60
            )

            job = json.loads(result.stdout)
            assert job["status"] == "succeeded", job
            output = httpx.get(f"http://127.0.0.1:{port}{job['outputs'][0]['url']}")
            assert Image.open(io.BytesIO(output.content)).size == (512, 512)
        finally:
            stop(demo)
    assert demo.returncode == 0


def read_until_curl(demo: subprocess.Popen[str], timeout_s: float = 30) -> str:
    assert demo.stdout is not None
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        line = demo.stdout.readline()
        if not line:
            raise AssertionError("the demo stopped before printing its curl")
        if line.strip().startswith("curl "):
            return line.strip()
    raise AssertionError("the demo printed no curl")


def test_run_takes_text_inputs_as_they_are(url: str, tmp_path: Path) -> None:
    result = cli("run", "txt2img", "-i", "prompt=123", "-i", "steps=1",
                 "--out", str(tmp_path), url=url)  # fmt: skip

    assert result.returncode == 0, result.stdout + result.stderr


def test_run_says_what_is_wrong_without_a_traceback(url: str, tmp_path: Path) -> None:
    missing = cli("run", "invert", "-f", f"image={tmp_path / 'nope.png'}", url=url)
    unreachable = cli("run", "txt2img", url="http://127.0.0.1:9")

    assert missing.returncode == 1 and "Traceback" not in missing.stderr
    assert "nope.png" in missing.stdout
    assert unreachable.returncode == 1 and "Traceback" not in unreachable.stderr
    assert "could not reach the bridge" in unreachable.stdout
