"""The original bridge's API, driven as its clients drive it, against real processes.

The bridge starts in an original bridge's folder as it is (`.env`, config JSON,
alias file, workflows marked with `_meta.apiinput`), in front of two simulators.
"""

from __future__ import annotations

import asyncio
import base64
import email.parser
import email.policy
import io
import json
import os
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import aiohttp
import httpx
import pytest
from PIL import Image

from tests.legacy_setup import SEEDED_COUNT, legacy_bridge, png, write_folder
from tests.processes import DEMO_MODEL, free_port, simulator

Message = dict[str, str]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    logs = tmp_path_factory.mktemp("logs")
    # Slow model steps, so a long generation can be caught while it runs.
    options = ("--model", DEMO_MODEL, "--step-seconds", "0.2")
    with (
        simulator(*options, log_path=logs / "sim-a.log") as sim_a,
        simulator(*options, log_path=logs / "sim-b.log") as sim_b,
    ):
        folder = write_folder(
            tmp_path_factory.mktemp("old"), free_port(), [sim_a, sim_b]
        )
        with legacy_bridge(folder) as url:
            yield {"url": url, "simulators": [sim_a, sim_b], "folder": folder}


class OldClient:
    """What a client of the original bridge does, with its own random clientId."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.client_id = str(uuid.uuid4())

    def get(self, path: str, **options: Any) -> httpx.Response:
        return httpx.get(self.url + path, timeout=30, **options)

    def post(self, path: str, **options: Any) -> httpx.Response:
        return httpx.post(self.url + path, timeout=30, **options)

    def params(self, **extra: str) -> dict[str, str]:
        return {"clientId": self.client_id, **extra}

    def upload(self, data: bytes, identifier: str = "picture") -> str:
        files = {identifier: ("my photo.png", data, "image/png")}
        response = self.post("/upload", params=self.params(), files=files)
        assert response.status_code == 200, response.text
        saved: dict[str, str] = response.json()
        assert list(saved) == [identifier]
        return saved[identifier]

    def generate(self, workflow: str, **values: Any) -> httpx.Response:
        body = {"workflow": workflow, **values}
        return self.post("/generate-based-workflow", params=self.params(), json=body)

    def execution_info(self) -> Message:
        response = self.get("/execution-info", params=self.params())
        assert response.status_code == 200, response.text
        message: Message = response.json()
        return message

    def poll_until(self, *statuses: str, timeout_s: float = 30) -> Message:
        deadline = time.monotonic() + timeout_s
        while (message := self.execution_info())["status"] not in statuses:
            assert time.monotonic() < deadline, message
            time.sleep(0.1)
        return message

    def history(self, res_type: str | None = None) -> httpx.Response:
        params = self.params(resType=res_type) if res_type else self.params()
        return self.get("/history", params=params)


def multipart_files(response: httpx.Response) -> list[tuple[str, str, str, bytes]]:
    """(part name, file name, content type, content) of a multipart body."""
    head = f"Content-Type: {response.headers['content-type']}\r\n\r\n".encode()
    message = email.parser.BytesParser(policy=email.policy.default).parsebytes(
        head + response.content
    )
    return [
        (
            str(part.get_param("name", header="content-disposition")),
            str(part.get_filename()),
            part.get_content_type(),
            part.get_payload(decode=True),
        )
        for part in message.iter_parts()
    ]


def assert_inverted(original: bytes, output: bytes) -> None:
    source = Image.open(io.BytesIO(original)).convert("RGB")
    result = Image.open(io.BytesIO(output)).convert("RGB")
    assert result.size == source.size
    for xy in [(0, 0), (10, 5), (source.width - 1, source.height - 1)]:
        expected = [255 - c for c in source.getpixel(xy)]
        # ComfyUI computes in floats and truncates back to 8 bits: off by one.
        got = result.getpixel(xy)
        assert all(abs(g - e) <= 1 for g, e in zip(got, expected, strict=True))


def requests_received(simulator_url: str, path: str) -> list[dict[str, Any]]:
    requests = httpx.get(f"{simulator_url}/_sim/requests").json()
    return [
        r.get("json") or {}
        for r in requests
        if r["method"] == "POST" and r["path"].endswith(path)
    ]


def ws_url(client: OldClient) -> str:
    return client.url.replace("http", "ws") + f"/ws?clientId={client.client_id}"


def test_greeting_and_workflow_list(cluster: dict[str, Any]) -> None:
    greeting = httpx.get(cluster["url"] + "/")
    assert greeting.status_code == 200
    assert greeting.headers["content-type"].startswith("text/plain")

    listed = httpx.get(cluster["url"] + "/workflow-list").json()

    by_alias = {item["alias"]: item for item in listed}
    assert set(by_alias) == {"invert", "txt2img"}
    invert = by_alias["invert"]
    assert invert["fn"] == "invert_api.json"
    assert invert["description"] == "Inverts a picture."
    thumbnail = cluster["folder"] / "workflows" / "thumbnail" / "invert.png"
    assert base64.b64decode(invert["thumbnail"]) == thumbnail.read_bytes()


def test_workflow_info_lists_the_apiinputs(cluster: dict[str, Any]) -> None:
    url = cluster["url"] + "/workflow-info"

    invert = httpx.get(url, params={"workflow": "invert"}).json()
    txt2img = httpx.get(url, params={"workflow": "txt2img"}).json()

    image = invert["1/image"]
    assert image["type"] == "image/png"
    assert image["title"] == "Load Image / image"
    assert image["class"] == "LoadImage"
    assert image["default"] == "example.png"
    descimage = cluster["folder"] / "workflows" / "descimage" / "load_image.png"
    assert base64.b64decode(image["descimage"]) == descimage.read_bytes()
    assert set(txt2img) == {"3/seed", "3/steps", "6/text"}
    assert txt2img["3/seed"]["type"] == "int"
    assert txt2img["3/seed"]["default"] == 42
    assert txt2img["6/text"]["type"] == "str"
    assert txt2img["6/text"]["class"] == "CLIPTextEncode"
    assert txt2img["6/text"]["descimage"] is None


async def socket_messages(client: OldClient, run: Any) -> list[Message]:
    """Open the socket first, then run the client's calls; read until it closes."""
    messages: list[Message] = []
    async with aiohttp.ClientSession() as session:
        async with session.ws_connect(ws_url(client)) as ws:
            first = await ws.receive_json()
            messages.append(first)
            await asyncio.to_thread(run)
            async for frame in ws:
                messages.append(json.loads(frame.data))
    return messages


def test_websocket_flow(cluster: dict[str, Any]) -> None:
    client = OldClient(cluster["url"])
    original = png(64, 48)

    def ask() -> None:
        saved = client.upload(original, identifier="input_image")
        response = client.generate("invert", **{"1/image": saved})
        assert response.status_code == 200, response.text
        assert response.json()["detail"].startswith("queued / ")

    messages = asyncio.run(socket_messages(client, ask))

    assert messages[0]["status"] == "connected"
    assert {"status": "closed", "detail": "Execution is done"} in messages
    assert messages[-1]["status"] == "closed"
    assert all(m["status"] != "error" for m in messages)
    response = client.history()
    assert response.status_code == 200
    [(name, file_name, content_type, content)] = multipart_files(response)
    assert (name, content_type) == ("result_0", "image/png")
    assert file_name.endswith(".png")
    assert_inverted(original, content)
    assert client.history().status_code == 204, "the clientId was released"


def test_websocket_reports_progress_and_heartbeats(cluster: dict[str, Any]) -> None:
    client = OldClient(cluster["url"])

    def ask() -> None:
        response = client.generate("txt2img", **{"3/steps": 8, "3/seed": 7})
        assert response.status_code == 200, response.text

    messages = asyncio.run(socket_messages(client, ask))

    statuses = [m["status"] for m in messages]
    assert "listening" in statuses
    progress = [float(m["detail"][:-1]) for m in messages if m["status"] == "progress"]
    assert len(progress) >= 4
    assert progress == sorted(progress)
    assert all(m["detail"].endswith("%") for m in messages if m["status"] == "progress")
    assert messages[-1] == {"status": "closed", "detail": "Execution is done"}
    [(name, _, content_type, _)] = multipart_files(client.history())
    assert (name, content_type) == ("result_0", "image/png")


def test_rest_flow_with_base64_results(cluster: dict[str, Any]) -> None:
    client = OldClient(cluster["url"])
    original = png(40, 30, colour=200)
    saved = client.upload(original)

    response = client.generate("invert", **{"1/image": saved})
    assert response.status_code == 200, response.text
    done = client.poll_until("closed", "error")

    assert done == {"status": "closed", "detail": "Execution is done"}
    body = client.history("base64").json()
    [result] = body["files"]
    assert result["content_type"] == "image/png"
    assert result["file_name"].endswith(".png")
    assert_inverted(original, base64.b64decode(result["content"]))
    assert client.history("base64").status_code == 204


def run_one_client(url: str, size: tuple[int, int]) -> tuple[bytes, bytes]:
    client = OldClient(url)
    original = png(*size, colour=size[0])
    saved = client.upload(original)
    assert client.generate("invert", **{"1/image": saved}).status_code == 200
    assert client.poll_until("closed", "error")["status"] == "closed"
    [(_, _, _, content)] = multipart_files(client.history("multipart"))
    return original, content


def test_several_clients_at_once(cluster: dict[str, Any]) -> None:
    sizes = [(32 + 8 * i, 24 + 4 * i) for i in range(8)]

    with ThreadPoolExecutor(len(sizes)) as pool:
        results = list(pool.map(lambda s: run_one_client(cluster["url"], s), sizes))

    for original, output in results:
        assert_inverted(original, output)


def wait_running(client: OldClient, timeout_s: float = 30) -> None:
    """Until the prompt runs on its backend (it has made some progress)."""
    deadline = time.monotonic() + timeout_s
    while (message := client.execution_info())["detail"] in ("queued", "0.00%"):
        assert time.monotonic() < deadline, message
        time.sleep(0.05)
    assert message["status"] == "progress", message


def test_interrupt_cancels_only_that_prompt(cluster: dict[str, Any]) -> None:
    client = OldClient(cluster["url"])
    assert client.generate("txt2img", **{"3/steps": 50}).status_code == 200
    wait_running(client)

    response = client.post("/interrupt", params=client.params())

    assert response.status_code == 200
    assert response.json()["detail"].endswith(client.client_id)
    message = client.execution_info()
    assert message["status"] == "error"
    assert "client" in message["detail"]
    interrupts = [
        body
        for url in cluster["simulators"]
        for body in requests_received(url, "/interrupt")
    ]
    assert interrupts and all(set(body) == {"prompt_id"} for body in interrupts)
    refused = client.history()
    assert refused.status_code == 400
    assert "cancelled" in refused.json()["detail"]


async def close_while_running(client: OldClient) -> list[Message]:
    messages: list[Message] = []
    async with aiohttp.ClientSession() as session:
        async with session.ws_connect(ws_url(client)) as ws:
            response = await asyncio.to_thread(
                client.generate, "txt2img", **{"3/steps": 50}
            )
            assert response.status_code == 200, response.text
            while not messages or messages[-1]["status"] != "progress":
                messages.append(await ws.receive_json(timeout=10))
    return messages


def test_closing_the_socket_cancels_the_generation(cluster: dict[str, Any]) -> None:
    client = OldClient(cluster["url"])

    asyncio.run(close_while_running(client))

    message = client.poll_until("error", "closed", timeout_s=15)
    assert message["status"] == "error"
    assert "disconnect" in message["detail"]


def test_refusals_answer_400_with_a_detail(cluster: dict[str, Any]) -> None:
    client = OldClient(cluster["url"])

    cases = [
        client.generate("txt2img", **{"3/seed": "not a number"}),
        client.generate("txt2img", **{"6/text": 12}),
        client.generate("no-such-workflow"),
        client.generate("invert", **{"1/image": "never-uploaded.png"}),
        client.post("/generate-based-workflow", json={"workflow": "invert"}),
        client.get("/workflow-info", params={"workflow": "nope"}),
        client.get("/execution-info", params=client.params()),
        client.post("/interrupt", params=client.params()),
        client.get("/history", params=client.params(resType="xml")),
    ]

    for response in cases:
        assert response.status_code == 400, response.text
        assert set(response.json()) == {"detail"}
        assert response.json()["detail"]
    assert "3/seed" in cases[0].json()["detail"]
    assert client.history().status_code == 204
    # v1 keeps its own error shape.
    v1 = client.get("/v1/jobs/nope")
    assert v1.status_code == 404 and v1.json()["code"] == "job_not_found"


def test_uploads_go_through_the_safety_check(cluster: dict[str, Any]) -> None:
    client = OldClient(cluster["url"])
    # UPLOAD_MAX_SIZE is 1 MB; ALLOWED_MIME_TYPE_EXTENSION_MAP has no GIF.
    noise = Image.frombytes("RGB", (800, 800), os.urandom(800 * 800 * 3))
    big = io.BytesIO()
    noise.save(big, "PNG")
    gif = io.BytesIO()
    Image.new("RGB", (8, 8)).save(gif, "GIF")
    script = b"<script>alert(1)</script>"

    for name, data, kind in [
        ("big.png", big.getvalue(), "image/png"),
        ("small.gif", gif.getvalue(), "image/gif"),
        ("page.png", script, "image/png"),
    ]:
        files = {"file": (name, data, kind)}
        response = client.post("/upload", params=client.params(), files=files)
        assert response.status_code == 400, (name, response.text)
        assert response.json()["detail"]


def test_free_reaches_the_backends(cluster: dict[str, Any]) -> None:
    simulators = cluster["simulators"]
    before = [len(requests_received(url, "/free")) for url in simulators]

    everyone = httpx.post(cluster["url"] + "/free")

    assert everyone.json() == {"detail": "server memory free now / ALL"}
    after = [len(requests_received(url, "/free")) for url in simulators]
    assert [a - b for a, b in zip(after, before, strict=True)] == [1, 1]
    client = OldClient(cluster["url"])
    client.generate("invert", **{"1/image": client.upload(png())})
    client.poll_until("closed", "error")

    one = client.post("/free", params=client.params())

    assert one.json() == {"detail": f"server memory free now / {client.client_id}"}
    final = [len(requests_received(url, "/free")) for url in simulators]
    assert sum(final) - sum(after) == 1
    bodies = [requests_received(url, "/free")[-1] for url in simulators]
    assert all(body.get("free_memory") for body in bodies)


def test_generation_count_survives_a_restart(tmp_path: Path) -> None:
    with simulator(log_path=tmp_path / "sim.log") as sim:
        folder = write_folder(tmp_path / "old", free_port(), [sim])
        state = folder / "current_state.json"
        with legacy_bridge(folder) as url:
            assert httpx.get(url + "/generation-count").json() == SEEDED_COUNT
            client = OldClient(url)
            client.generate("invert", **{"1/image": client.upload(png())})
            assert httpx.get(url + "/generation-count").json() == SEEDED_COUNT + 1
            assert json.loads(state.read_text())["generation_count"] == SEEDED_COUNT + 1
            client.poll_until("closed", "error")

        with legacy_bridge(folder) as url:
            assert httpx.get(url + "/generation-count").json() == SEEDED_COUNT + 1
            # The clientId's session lives in the store: its results are still there.
            assert client.history().status_code == 200
