"""A bridge that restarts finds its finished jobs and its workflows again."""

from __future__ import annotations

import json
from pathlib import Path

import httpx

from tests.processes import ADMIN_TOKEN, DEMO_MODEL, EXAMPLES, bridge, simulator
from tests.test_e2e import wait_backends_up

ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


def test_restart_keeps_jobs_and_workflows(tmp_path: Path) -> None:
    graph = json.loads((EXAMPLES / "txt2img.json").read_text())
    data = tmp_path / "bridge"
    with simulator("--model", DEMO_MODEL) as sim:
        with bridge([sim], data, log_path=tmp_path / "first.log") as url:
            wait_backends_up(url, 1)
            added = httpx.put(
                f"{url}/v1/workflows/kept",
                json={"workflow": graph, "description": "kept"},
                headers=ADMIN,
            )
            assert added.status_code == 200, added.text
            job = httpx.post(
                f"{url}/v1/jobs",
                params={"wait": 30},
                json={"workflow": "kept", "inputs": {"seed": 5, "steps": 1}},
                timeout=60,
            ).json()
            assert job["status"] == "succeeded", job
            output = httpx.get(f"{url}{job['outputs'][0]['url']}").content

        with bridge([sim], data, log_path=tmp_path / "second.log") as url:
            again = httpx.get(f"{url}/v1/jobs/{job['id']}").json()
            assert again["status"] == "succeeded"
            assert again["outputs"] == job["outputs"]
            assert httpx.get(f"{url}{again['outputs'][0]['url']}").content == output
            kept = httpx.get(f"{url}/v1/workflows/kept").json()
            assert kept["description"] == "kept"
            listed = httpx.get(f"{url}/v1/jobs", params={"workflow": "kept"}).json()
            assert [j["id"] for j in listed["jobs"]] == [job["id"]]
