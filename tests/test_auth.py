"""Who may do what: the rule of every route, keys, ownership, limits, open mode."""

from __future__ import annotations

import hashlib
import io
import os
import subprocess
import sys
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.routing import iter_route_contexts
from PIL import Image
from starlette.exceptions import StarletteDeprecationWarning
from starlette.websockets import WebSocketDisconnect

from comfy_bridge.app import create_app
from comfy_bridge.auth import open_mode_refusal
from comfy_bridge.config import Settings
from comfy_bridge.jobs import Job, JobStatus
from comfy_bridge.redaction import redact
from tests.leaks import Witness

with warnings.catch_warnings():
    # Starlette would rather its test client ran on `httpx2`; httpx still works.
    warnings.simplefilter("ignore", StarletteDeprecationWarning)
    from starlette.testclient import TestClient

ADMIN_TOKEN = "in-process-admin-token"
PUBLIC, CLIENT, ADMIN = "public", "client", "admin"
WS = "WS"
RULES = {
    ("GET", "/openapi.json"): PUBLIC,
    ("GET", "/docs"): PUBLIC,
    ("GET", "/docs/oauth2-redirect"): PUBLIC,
    ("GET", "/redoc"): PUBLIC,
    ("GET", "/healthz"): PUBLIC,
    ("GET", "/readyz"): PUBLIC,
    ("GET", "/v1/workflows"): CLIENT,
    ("GET", "/v1/workflows/{alias}"): CLIENT,
    ("GET", "/v1/workflows/{alias}/thumbnail"): CLIENT,
    ("GET", "/v1/workflows/{alias}/graph"): CLIENT,
    ("PUT", "/v1/workflows/{alias}"): ADMIN,
    ("DELETE", "/v1/workflows/{alias}"): ADMIN,
    ("POST", "/v1/uploads"): CLIENT,
    ("GET", "/v1/uploads/{upload_id}/content"): CLIENT,
    ("POST", "/v1/jobs"): CLIENT,
    ("GET", "/v1/jobs"): CLIENT,
    ("GET", "/v1/jobs/{job_id}"): CLIENT,
    ("DELETE", "/v1/jobs/{job_id}"): CLIENT,
    ("GET", "/v1/jobs/{job_id}/outputs/{index}"): CLIENT,
    (WS, "/v1/jobs/{job_id}/events"): CLIENT,
    ("GET", "/v1/backends"): ADMIN,
    ("POST", "/v1/backends"): ADMIN,
    ("DELETE", "/v1/backends/{backend_id}"): ADMIN,
    ("POST", "/v1/backends/{backend_id}/refresh"): ADMIN,
    ("POST", "/v1/keys"): ADMIN,
    ("GET", "/v1/keys"): ADMIN,
    ("DELETE", "/v1/keys/{key_id}"): ADMIN,
    ("GET", "/"): PUBLIC,
    (WS, "/ws"): CLIENT,
    ("GET", "/workflow-list"): CLIENT,
    ("GET", "/workflow-info"): CLIENT,
    ("POST", "/upload"): CLIENT,
    ("POST", "/generate-based-workflow"): CLIENT,
    ("GET", "/execution-info"): CLIENT,
    ("GET", "/history"): CLIENT,
    ("GET", "/generation-count"): CLIENT,
    ("POST", "/free"): CLIENT,
    ("POST", "/interrupt"): CLIENT,
}


def make_settings(tmp_path: Path, **overrides: Any) -> Settings:
    return Settings(data_dir=tmp_path, admin_token=ADMIN_TOKEN, **overrides)


@pytest.fixture
def api(tmp_path: Path) -> Iterator[TestClient]:
    with TestClient(create_app(make_settings(tmp_path))) as client:
        yield client


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def new_key(api: TestClient, name: str, role: str = "client") -> str:
    response = api.post(
        "/v1/keys", json={"name": name, "role": role}, headers=bearer(ADMIN_TOKEN)
    )
    assert response.status_code == 201, response.text
    return str(response.json()["key"])


@pytest.fixture
def keys(api: TestClient) -> dict[str, str]:
    return {
        CLIENT: new_key(api, "alice"),
        "other": new_key(api, "bob"),
        ADMIN: new_key(api, "ops", "admin"),
    }


def png() -> bytes:
    buffer = io.BytesIO()
    Image.linear_gradient("L").resize((32, 24)).convert("RGB").save(buffer, "PNG")
    return buffer.getvalue()


def routes() -> set[tuple[str, str]]:
    app = create_app(Settings(data_dir=Path("unused")))
    found = set()
    for context in iter_route_contexts(app.routes):
        methods = getattr(context, "methods", None) or {WS}
        found |= {(method, context.path) for method in methods if method != "HEAD"}
    return found


def test_every_route_has_a_rule() -> None:
    assert routes() == set(RULES)


def call(api: TestClient, method: str, path: str, key: str | None) -> int:
    """The status (a WebSocket: its close code, or 101 if it stayed open)."""
    url = path.replace("{index}", "0").replace("{", "").replace("}", "")
    headers = bearer(key) if key else {}
    params = {"clientId": "someone"}
    if method != WS:
        return api.request(method, url, headers=headers, params=params).status_code
    # Without a clientId, /ws closes at once (1008) once the caller is let in.
    try:
        with api.websocket_connect(url, headers=headers) as ws:
            ws.receive_json()
            return 101
    except WebSocketDisconnect as closed:
        return closed.code


@pytest.mark.parametrize(("method", "path"), sorted(RULES))
def test_each_role_on_each_route(
    api: TestClient, keys: dict[str, str], method: str, path: str
) -> None:
    rule = RULES[(method, path)]
    anonymous = call(api, method, path, None)
    as_client = call(api, method, path, keys[CLIENT])
    as_admin = call(api, method, path, keys[ADMIN])
    with_token = call(api, method, path, ADMIN_TOKEN)

    refused = {401, 403, 4401}
    if rule == PUBLIC:
        assert anonymous not in refused
    else:
        assert anonymous in {401, 4401}
        assert as_admin not in refused and with_token not in refused
        assert as_client == 403 if rule == ADMIN else as_client not in refused


def test_a_missing_key_is_explained(api: TestClient) -> None:
    response = api.get("/v1/jobs")

    assert response.status_code == 401
    assert response.json()["code"] == "unauthorized"
    assert "Authorization: Bearer" in response.json()["detail"]


def test_keys_are_shown_once_stored_hashed_and_revocable(
    api: TestClient, keys: dict[str, str]
) -> None:
    listed = api.get("/v1/keys", headers=bearer(ADMIN_TOKEN)).json()["keys"]
    alice = next(k for k in listed if k["name"] == "alice")
    rows = api.portal.call(api.app.state.bridge.store.keys)  # type: ignore[attr-defined, union-attr]
    stored = {row.name: row.key_hash for row in rows}

    assert keys[CLIENT].startswith("cb_") and len(keys[CLIENT]) > 40
    assert "key" not in alice and alice["role"] == "client" and not alice["revoked"]
    assert stored["alice"] == hashlib.sha256(keys[CLIENT].encode()).hexdigest()
    assert api.get("/v1/jobs", headers=bearer(keys[CLIENT])).status_code == 200
    revoked = api.delete(f"/v1/keys/{alice['id']}", headers=bearer(ADMIN_TOKEN))
    assert revoked.json()["revoked"] is True
    refused = api.get("/v1/jobs", headers=bearer(keys[CLIENT]))
    assert refused.status_code == 401
    assert "revoked" in refused.json()["detail"]
    assert api.delete("/v1/keys/nope", headers=bearer(ADMIN_TOKEN)).status_code == 404


def insert_job(api: TestClient, owner: str, status: JobStatus) -> str:
    job = Job(workflow="txt2img", inputs={}, owner=owner, status=status)
    api.portal.call(api.app.state.bridge.store.insert_job, job)  # type: ignore[attr-defined, union-attr]
    return job.id


def owner_of(api: TestClient, key: str) -> str:
    listed = api.get("/v1/keys", headers=bearer(ADMIN_TOKEN)).json()["keys"]
    key_hash = hashlib.sha256(key.encode()).hexdigest()
    rows = api.portal.call(api.app.state.bridge.store.keys)  # type: ignore[attr-defined, union-attr]
    [key_id] = [row.id for row in rows if row.key_hash == key_hash]
    assert key_id in {k["id"] for k in listed}
    return f"key:{key_id}"


def test_a_client_sees_only_its_own_jobs(api: TestClient, keys: dict[str, str]) -> None:
    mine = insert_job(api, owner_of(api, keys[CLIENT]), JobStatus.SUCCEEDED)
    alice, bob = bearer(keys[CLIENT]), bearer(keys["other"])

    assert api.get(f"/v1/jobs/{mine}", headers=alice).status_code == 200
    for method, path in [
        ("GET", f"/v1/jobs/{mine}"),
        ("DELETE", f"/v1/jobs/{mine}"),
        ("GET", f"/v1/jobs/{mine}/outputs/0"),
    ]:
        response = api.request(method, path, headers=bob)
        assert response.status_code == 404, (method, path)
        assert response.json()["code"] == "job_not_found"
    assert api.get("/v1/jobs", headers=bob).json()["total"] == 0
    assert api.get("/v1/jobs", headers=alice).json()["total"] == 1
    everyone = api.get("/v1/jobs", headers=bearer(keys[ADMIN])).json()
    assert everyone["total"] == 1
    assert api.get(f"/v1/jobs/{mine}", headers=bearer(ADMIN_TOKEN)).status_code == 200


def events(api: TestClient, job_id: str, query: str) -> tuple[int, list[Any]]:
    received: list[Any] = []
    try:
        with api.websocket_connect(f"/v1/jobs/{job_id}/events{query}") as ws:
            while True:
                received.append(ws.receive_json())
    except WebSocketDisconnect as closed:
        return closed.code, received


def test_a_websocket_takes_the_key_as_a_token(
    api: TestClient, keys: dict[str, str]
) -> None:
    mine = insert_job(api, owner_of(api, keys[CLIENT]), JobStatus.SUCCEEDED)

    code, received = events(api, mine, f"?token={keys[CLIENT]}")
    assert code == 1000 and received[0]["status"] == "succeeded"
    assert events(api, mine, f"?token={keys['other']}") == (4404, [])
    assert events(api, mine, "") == (4401, [])
    assert events(api, mine, "?token=cb_wrong") == (4401, [])


def test_a_client_downloads_only_its_own_uploads(
    api: TestClient, keys: dict[str, str]
) -> None:
    files = {"file": ("photo.png", png(), "image/png")}
    made = api.post("/v1/uploads", files=files, headers=bearer(keys[CLIENT]))
    path = f"/v1/uploads/{made.json()['id']}/content"

    assert api.get(path, headers=bearer(keys[CLIENT])).status_code == 200
    other = api.get(path, headers=bearer(keys["other"]))
    assert other.status_code == 404
    assert other.json()["code"] == "upload_not_found"


def test_legacy_routes_take_a_key_as_a_token(
    api: TestClient, keys: dict[str, str]
) -> None:
    assert api.get("/workflow-list").status_code == 401
    assert api.get("/workflow-list", params={"token": keys[CLIENT]}).status_code == 200
    assert api.get("/workflow-list", headers=bearer(keys[CLIENT])).status_code == 200
    # Only the WebSocket and the original routes read a key from the query.
    assert api.get("/v1/workflows", params={"token": keys[CLIENT]}).status_code == 401


def test_freeing_every_backend_needs_an_admin(
    api: TestClient, keys: dict[str, str]
) -> None:
    refused = api.post("/free", headers=bearer(keys[CLIENT]))

    assert refused.status_code == 403
    assert api.post("/free", headers=bearer(keys[ADMIN])).status_code == 200


def limited_api(tmp_path: Path, **limits: Any) -> TestClient:
    return TestClient(create_app(make_settings(tmp_path, **limits)))


def test_uploads_over_the_hourly_bytes_answer_429(tmp_path: Path) -> None:
    picture = png()
    with limited_api(
        tmp_path, limit_client_upload_bytes_per_hour=len(picture) + 250
    ) as api:
        key = new_key(api, "alice")
        files = {"file": ("photo.png", picture, "image/png")}

        first = api.post("/v1/uploads", files=files, headers=bearer(key))
        second = api.post("/v1/uploads", files=files, headers=bearer(key))
        legacy = api.post(
            "/upload", files=files, params={"clientId": "c", "token": key}
        )
        operator = api.post("/v1/uploads", files=files, headers=bearer(ADMIN_TOKEN))

    assert first.status_code == 201
    assert second.status_code == 429
    assert second.json()["limit"] == "upload_bytes_per_hour"
    assert 3000 < int(second.headers["retry-after"]) <= 3600
    assert legacy.status_code == 429 and "retry-after" in legacy.headers
    assert operator.status_code == 201


def test_submissions_over_the_rate_answer_429(tmp_path: Path) -> None:
    with limited_api(
        tmp_path, limit_client_jobs_per_minute=1, limit_client_jobs_burst=1
    ) as api:
        key = new_key(api, "alice")
        body = {"workflow": "nothing-here", "inputs": {}}

        first = api.post("/v1/jobs", json=body, headers=bearer(key))
        second = api.post("/v1/jobs", json=body, headers=bearer(key))
        other = api.post("/v1/jobs", json=body, headers=bearer(new_key(api, "bob")))

    assert first.status_code == 404
    assert second.status_code == 429
    assert second.json()["code"] == "rate_limited"
    assert 55 <= int(second.headers["retry-after"]) <= 60
    assert other.status_code == 404


def test_open_mode_callers_are_anonymous_clients(tmp_path: Path) -> None:
    with TestClient(create_app(make_settings(tmp_path, open=True))) as api:
        files = {"file": ("photo.png", png(), "image/png")}
        made = api.post("/v1/uploads", files=files, headers={"X-Client-Id": "a"})
        path = f"/v1/uploads/{made.json()['id']}/content"

        assert api.get("/v1/workflows").status_code == 200
        # A self-given name separates nothing but turns in the queue.
        assert api.get(path, headers={"X-Client-Id": "a"}).status_code == 200
        assert api.get(path, headers={"X-Client-Id": "b"}).status_code == 200
        assert api.get(path).status_code == 200
        assert api.get("/v1/backends").status_code == 401
        assert api.put("/v1/workflows/x", json={}).status_code == 401


@pytest.mark.parametrize(
    ("host", "forced", "refused"),
    [
        ("127.0.0.1", False, False),
        ("::1", False, False),
        ("localhost", False, False),
        ("0.0.0.0", False, True),
        ("192.0.2.10", False, True),
        ("bridge.example", False, True),
        ("0.0.0.0", True, False),
    ],
)
def test_open_mode_is_refused_on_a_public_bind(
    host: str, forced: bool, refused: bool
) -> None:
    settings = Settings(host=host, open=True, open_public=forced)

    assert (open_mode_refusal(settings) is not None) == refused
    assert open_mode_refusal(Settings(host=host)) is None


def test_serve_refuses_open_mode_on_a_public_bind(tmp_path: Path) -> None:
    # It stops before binding anything.
    env = {**os.environ, "BRIDGE_OPEN": "true", "BRIDGE_DATA_DIR": str(tmp_path)}
    result = subprocess.run(
        [sys.executable, "-m", "comfy_bridge", "serve", "--host", "0.0.0.0"],
        cwd=tmp_path,
        env={**env, "COLUMNS": "300"},
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert result.returncode == 2
    assert "BRIDGE_OPEN_PUBLIC" in result.stdout


def cli(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "BRIDGE_DATA_DIR": str(tmp_path), "COLUMNS": "300"}
    return subprocess.run(
        [sys.executable, "-m", "comfy_bridge", "keys", *args],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )


def test_keys_from_the_command_line(tmp_path: Path) -> None:
    key = cli(tmp_path, "create", "carol", "--role", "admin").stdout.splitlines()[-1]
    listed = cli(tmp_path, "list").stdout
    key_id = next(line.split()[1] for line in listed.splitlines() if "carol" in line)

    with TestClient(create_app(Settings(data_dir=tmp_path))) as api:
        assert api.get("/v1/backends", headers=bearer(key)).status_code == 200
        cli(tmp_path, "revoke", key_id)
        assert api.get("/v1/backends", headers=bearer(key)).status_code == 401
    assert key not in listed and "admin" in listed


def test_redaction_takes_out_addresses_and_paths() -> None:
    message = (
        "Cannot connect to host 127.0.0.1:8188 via http://10.1.2.3:8188/prompt; "
        "no file /home/gpu/ComfyUI/input/a.png for checkpoints/sd15.safetensors"
    )

    assert redact(message) == (
        "Cannot connect to host <backend> via <backend>; "
        "no file <path> for checkpoints/sd15.safetensors"
    )


def test_the_witness_finds_a_backend_address() -> None:
    witness = Witness(ADMIN_TOKEN)
    witness.event({"error": "lost http://127.0.0.1:45111"})
    witness.event({"status": "queued"})

    assert len(witness.leaks(["http://127.0.0.1:45111"])) >= 1
    assert witness.leaks(["http://127.0.0.1:45999"]) == []
