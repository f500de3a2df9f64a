"""Requests at the edges of the API: odd text, odd numbers, odd URLs, bursts."""

from __future__ import annotations

import concurrent.futures
from collections import Counter
from collections.abc import Iterator

import httpx
import pytest

from tests.processes import ADMIN_TOKEN, DEMO_MODEL, EXAMPLES, bridge, simulator
from tests.test_e2e import wait_backends_up

ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
QUEUED_LIMIT = 5


@pytest.fixture(scope="module")
def url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    env = {
        "BRIDGE_WORKFLOWS_DIR": str(EXAMPLES),
        "BRIDGE_ALIAS_FILE": str(EXAMPLES / "workflow_alias.json"),
        "BRIDGE_BACKEND_SLOTS": "1",
        "BRIDGE_LIMIT_CLIENT_QUEUED_JOBS": str(QUEUED_LIMIT),
    }
    data = tmp_path_factory.mktemp("bridge")
    with (
        simulator("--model", DEMO_MODEL, "--step-seconds", "0.2") as sim,
        bridge([sim], data, env=env) as url,
    ):
        wait_backends_up(url, 1)
        yield url


def test_text_that_is_not_unicode_is_refused_and_breaks_nothing(url: str) -> None:
    body = '{"workflow": "txt2img", "inputs": {"prompt": "\\udfff", "steps": 1}}'
    headers = {"content-type": "application/json"}

    refused = httpx.post(f"{url}/v1/jobs", content=body, headers=headers)

    assert refused.status_code == 422
    assert refused.json()["code"] == "invalid_text"
    assert httpx.get(f"{url}/v1/jobs", headers=ADMIN).status_code == 200
    legacy = '{"workflow": "txt2img", "6/text": "\\ud800x"}'
    answer = httpx.post(
        f"{url}/generate-based-workflow?clientId=c1", content=legacy, headers=headers
    )
    assert answer.status_code == 422


def test_a_paired_surrogate_escape_is_ordinary_text(url: str) -> None:
    body = '{"workflow": "txt2img", "inputs": {"prompt": "\\ud83c\\udf0a", "steps": 1}}'

    response = httpx.post(
        f"{url}/v1/jobs", content=body, headers={"content-type": "application/json"}
    )

    assert response.status_code == 202, response.text
    assert response.json()["inputs"]["prompt"] == "\U0001f30a"
    httpx.delete(f"{url}/v1/jobs/{response.json()['id']}")


@pytest.mark.parametrize("lease", ["inf", "-inf", "nan", 1e308])
def test_a_lease_must_be_a_finite_time(url: str, lease: object) -> None:
    body = f'{{"workflow": "txt2img", "inputs": {{}}, "lease_s": "{lease}"}}'

    response = httpx.post(
        f"{url}/v1/jobs", content=body, headers={"content-type": "application/json"}
    )

    assert response.status_code == 422
    jobs = httpx.get(f"{url}/v1/jobs", headers=ADMIN).json()["jobs"]
    assert all(job["lease_s"] is None or job["lease_s"] < 1e9 for job in jobs)


@pytest.mark.parametrize(
    "backend",
    [
        "file:///etc/passwd",
        "",
        "not a url",
        "127.0.0.1:18605/sub/../path?x=1#frag",
        "http://127.0.0.1:99999",
        "ftp://127.0.0.1:21",
        "http://user:secret@127.0.0.1:18606",
    ],
)
def test_a_bad_backend_url_is_refused_and_not_kept(url: str, backend: str) -> None:
    response = httpx.post(f"{url}/v1/backends", json={"url": backend}, headers=ADMIN)

    assert response.status_code == 422
    listed = httpx.get(f"{url}/v1/backends", headers=ADMIN)
    assert len(listed.json()["backends"]) == 1
    assert "secret" not in listed.text


def test_a_burst_cannot_slip_past_the_queued_limit(url: str) -> None:
    body = {"workflow": "txt2img", "inputs": {"steps": 50}}
    blocker = httpx.post(f"{url}/v1/jobs", json=body).json()

    def submit(_: int) -> int:
        return httpx.post(f"{url}/v1/jobs", json=body, timeout=30).status_code

    with concurrent.futures.ThreadPoolExecutor(20) as pool:
        answers = Counter(pool.map(submit, range(30)))

    assert answers[202] <= QUEUED_LIMIT
    assert answers[429] >= 30 - QUEUED_LIMIT
    jobs = httpx.get(f"{url}/v1/jobs", headers=ADMIN, params={"limit": 100}).json()
    for job in jobs["jobs"]:
        if job["status"] in ("queued", "running", "dispatching"):
            httpx.delete(f"{url}/v1/jobs/{job['id']}", headers=ADMIN)
    assert blocker["status"] == "queued"


def test_a_misspelt_field_is_refused_not_ignored(url: str) -> None:
    body = {"workflow": "txt2img", "input": {"prompt": "a cat"}}

    response = httpx.post(f"{url}/v1/jobs", json=body)

    assert response.status_code == 422
    assert "input" in response.text


def test_open_mode_refuses_what_another_origins_page_sends(url: str) -> None:
    page = {"Origin": "http://evil.example"}
    own = {"Origin": url}

    foreign = httpx.post(f"{url}/free", headers=page)
    same = httpx.get(f"{url}/v1/workflows", headers=own)

    assert foreign.status_code == 403
    assert foreign.json()["code"] == "foreign_origin"
    assert same.status_code == 200
