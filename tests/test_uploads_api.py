"""Uploads through a real bridge process over HTTP: the corpus, the limits, the
settings, in both the v1 route and the original bridge's `/upload`."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import random
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from PIL import Image

from comfy_bridge.safety import SafetyPolicy
from tests.corpus import (
    BOUNDARY,
    POLICY,
    Sample,
    encode,
    frames,
    hostile,
    multipart_body,
    photo,
    valid,
)
from tests.processes import ROOT, bridge, bridge_process, free_port
from tests.uploading import MB, peak_growth_mb, post_streamed, zeros_part

HOSTILE = hostile()
VALID = valid()
CORPUS_CONTENT_TYPE = f"multipart/form-data; boundary={BOUNDARY}"
# The status each rule answers with; every other rule answers 422.
STATUS = {
    "too_large": 413,
    "type_not_allowed": 415,
    "type_mismatch": 415,
    "svg_not_allowed": 415,
}
LEGACY_ID = "input-image-1"


def policy_env(policy: SafetyPolicy) -> dict[str, str]:
    """The bridge settings (our own names) that give uploads `policy`."""
    assert policy.max_metadata_bytes == SafetyPolicy().max_metadata_bytes
    assert policy.max_total_pixels == SafetyPolicy().max_total_pixels
    return {
        "BRIDGE_LIMIT_UPLOAD_BYTES": str(policy.max_bytes),
        "BRIDGE_LIMIT_PIXELS": str(policy.max_pixels),
        "BRIDGE_LIMIT_FRAMES": str(policy.max_frames),
        "BRIDGE_ALLOWED_TYPES": json.dumps(
            {mime: list(exts) for mime, exts in policy.allowed.items()}
        ),
    }


@pytest.fixture(scope="module")
def bridges(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[bool, Any]]:
    """One bridge per policy the corpus uses, keyed by whether SVG is allowed."""
    policies = {sample.policy.allow_svg: sample.policy for sample in HOSTILE + VALID}
    with contextlib.ExitStack() as stack:
        yield {
            allow_svg: stack.enter_context(bridge_for(policy, tmp_path_factory))
            for allow_svg, policy in policies.items()
        }


@pytest.fixture(scope="module")
def plain(bridges: dict[bool, dict[str, Any]]) -> dict[str, Any]:
    return bridges[False]


@contextlib.contextmanager
def bridge_for(
    policy: SafetyPolicy, factory: pytest.TempPathFactory
) -> Iterator[dict[str, Any]]:
    """A bridge process whose upload policy is `policy`."""
    data = factory.mktemp("bridge")
    env = policy_env(policy)
    with bridge_process([], data, env=env, log_path=data / "bridge.log") as started:
        url, proc = started
        yield {"url": url, "pid": proc.pid, "uploads": data / "uploads"}


def stored(uploads: Path) -> set[str]:
    return {path.name for path in uploads.iterdir()}


def post_v1(url: str, sample: Sample, content: bytes) -> httpx.Response:
    return httpx.post(
        f"{url}/v1/uploads",
        content=multipart_body("file", sample, content),
        headers={"Content-Type": CORPUS_CONTENT_TYPE},
        timeout=60,
    )


def post_legacy(url: str, sample: Sample, content: bytes) -> httpx.Response:
    return httpx.post(
        f"{url}/upload",
        params={"clientId": "5b1c2d1e-0f6a-4f5e-9a57-3f1c1c1d0e01"},
        content=multipart_body(LEGACY_ID, sample, content),
        headers={"Content-Type": CORPUS_CONTENT_TYPE},
        timeout=60,
    )


def assert_refused(
    response: httpx.Response, rule: str | None, status: int | None = None
) -> None:
    """Refused by `rule`, answering `status` (by default the rule's own)."""
    assert rule is not None
    assert response.status_code == (status or STATUS.get(rule, 422)), response.text
    body = response.json()
    assert body["code"] == rule, body
    assert body["detail"]


# ---- the corpus, v1 route ---------------------------------------------------


@pytest.mark.parametrize("sample", HOSTILE, ids=lambda sample: sample.id)
def test_v1_refuses_hostile_file_by_its_rule(
    sample: Sample, bridges: dict[bool, dict[str, Any]]
) -> None:
    target = bridges[sample.policy.allow_svg]
    before = stored(target["uploads"])

    response = post_v1(target["url"], sample, sample.build())

    assert_refused(response, sample.rule)
    assert stored(target["uploads"]) == before


@pytest.mark.parametrize("sample", VALID, ids=lambda sample: sample.id)
def test_v1_accepts_valid_file(
    sample: Sample, bridges: dict[bool, dict[str, Any]]
) -> None:
    target = bridges[sample.policy.allow_svg]
    content = sample.build()

    response = post_v1(target["url"], sample, content)

    assert response.status_code == 201, response.text
    body = response.json()
    assert body["sha256"] == hashlib.sha256(content).hexdigest()
    assert body["size"] == len(content)
    assert body["content_type"] in sample.policy.allowed
    assert (
        body["filename"].lower().endswith(sample.policy.allowed[body["content_type"]])
    )
    served = httpx.get(f"{target['url']}/v1/uploads/{body['id']}/content")
    assert served.content == content


# ---- the corpus, the original bridge's route -----------------------------------


@pytest.mark.parametrize("sample", HOSTILE, ids=lambda sample: sample.id)
def test_legacy_refuses_hostile_file_by_its_rule(
    sample: Sample, bridges: dict[bool, dict[str, Any]]
) -> None:
    target = bridges[sample.policy.allow_svg]
    before = stored(target["uploads"])

    response = post_legacy(target["url"], sample, sample.build())

    # The original bridge's clients know one refusal status: 400.
    assert_refused(response, sample.rule, status=400)
    assert stored(target["uploads"]) == before


@pytest.mark.parametrize("sample", VALID, ids=lambda sample: sample.id)
def test_legacy_accepts_valid_file(
    sample: Sample, bridges: dict[bool, dict[str, Any]]
) -> None:
    target = bridges[sample.policy.allow_svg]
    before = stored(target["uploads"])

    response = post_legacy(target["url"], sample, sample.build())

    assert response.status_code == 200, response.text
    answer = response.json()
    assert list(answer) == [LEGACY_ID]
    saved_name = answer[LEGACY_ID]
    # The name is the bridge's own, never the client's.
    assert isinstance(saved_name, str) and saved_name
    assert not {"/", "\\", "\x00"} & set(saved_name)
    assert sample.filename is None or sample.filename not in saved_name
    assert len(stored(target["uploads"]) - before) == 1


# ---- size limits and memory ---------------------------------------------------


def test_declared_oversize_body_is_refused_before_it_is_read(
    plain: dict[str, Any],
) -> None:
    size = 500 * MB

    answer = post_streamed(plain["url"], zeros_part(size), content_length=size)

    assert answer.status == 413
    assert answer.body["code"] == "too_large"
    # Only what the sockets' buffers took before the answer came.
    assert answer.sent_bytes < POLICY.max_bytes


def test_chunked_500_mb_is_refused_at_the_limit_in_bounded_memory(
    plain: dict[str, Any],
) -> None:
    growth_mb, answer = peak_growth_mb(
        plain["pid"], lambda: post_streamed(plain["url"], zeros_part(500 * MB))
    )

    assert answer.status == 413
    assert answer.body["code"] == "too_large"
    assert answer.sent_bytes < POLICY.max_bytes + 32 * MB
    assert growth_mb < 8, f"the bridge's RSS grew by {growth_mb:.1f} MB"
    assert not [p for p in plain["uploads"].iterdir() if p.suffix == ".part"]


def test_v1_wants_exactly_one_field_named_file(plain: dict[str, Any]) -> None:
    sample = Sample("renamed_field", lambda: b"", "photo.png")
    body = multipart_body("image", sample, encode(photo(), "PNG"))

    response = httpx.post(
        f"{plain['url']}/v1/uploads",
        content=body,
        headers={"Content-Type": CORPUS_CONTENT_TYPE},
    )

    assert response.status_code == 400
    assert response.json()["code"] == "upload_error"


def test_a_body_that_is_not_multipart_is_refused(plain: dict[str, Any]) -> None:
    response = httpx.post(
        f"{plain['url']}/v1/uploads",
        content=encode(photo(), "PNG"),
        headers={"Content-Type": "image/png"},
    )

    assert response.status_code == 422
    assert response.json()["code"] == "malformed_multipart"


# ---- serving an upload back ------------------------------------------------------


def test_a_non_ascii_name_comes_back_as_rfc_5987(plain: dict[str, Any]) -> None:
    name = "灯台 à l'aube.png"
    response = httpx.post(
        f"{plain['url']}/v1/uploads",
        files={"file": (name, encode(photo(), "PNG"), "image/png")},
    )
    assert response.status_code == 201, response.text

    served = httpx.get(f"{plain['url']}/v1/uploads/{response.json()['id']}/content")

    assert served.headers["x-content-type-options"] == "nosniff"
    assert served.headers["content-type"] == "image/png"
    disposition = served.headers["content-disposition"]
    assert disposition == f"attachment; filename*=utf-8''{quote(name)}"
    assert disposition.isascii()


def test_an_unknown_upload_answers_404(plain: dict[str, Any]) -> None:
    response = httpx.get(f"{plain['url']}/v1/uploads/nope/content")

    assert response.status_code == 404
    assert response.json()["code"] == "upload_not_found"


# ---- settings, through a bridge process ------------------------------------------


def png_of(width: int, height: int) -> bytes:
    return encode(Image.new("RGB", (width, height), (20, 90, 160)), "PNG")


def noise_png(size_bytes: int) -> bytes:
    """A PNG of random pixels, a little over `size_bytes` (noise does not shrink)."""
    side = int((size_bytes / 3) ** 0.5) + 1
    pixels = random.Random(size_bytes).randbytes(side * side * 3)
    return encode(Image.frombytes("RGB", (side, side), pixels), "PNG")


def gif_of(count: int) -> bytes:
    moving = frames(count)
    return encode(moving[0], "GIF", save_all=True, append_images=moving[1:])


def upload_code(url: str, data: bytes, name: str) -> str:
    """'accepted', or the code the bridge refused the file with."""
    response = httpx.post(f"{url}/v1/uploads", files={"file": (name, data)})
    if response.status_code == 201:
        return "accepted"
    assert 400 <= response.status_code < 500, response.text
    return str(response.json()["code"])


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "bridge"


def test_original_config_file_sets_allowlist_and_size(
    tmp_path: Path, data_dir: Path
) -> None:
    config = tmp_path / "config.json"
    config.write_text(
        json.dumps(
            {
                "UPLOAD_MAX_SIZE": 0.25,
                "ALLOWED_MIME_TYPE_EXTENSION_MAP": {"image/png": ".png"},
            }
        )
    )

    with bridge([], data_dir, env={"CONFIG": str(config)}) as url:
        assert upload_code(url, png_of(64, 64), "a.png") == "accepted"
        assert upload_code(url, encode(photo(), "JPEG"), "a.jpg") == "type_not_allowed"
        assert upload_code(url, encode(photo(), "GIF"), "a.gif") == "type_not_allowed"
        assert upload_code(url, noise_png(300_000), "big.png") == "too_large"
        assert upload_code(url, noise_png(200_000), "fits.png") == "accepted"


def test_bridge_settings_set_allowlist_and_limits(data_dir: Path) -> None:
    env = {
        "BRIDGE_ALLOWED_TYPES": json.dumps(
            {"image/png": [".png"], "image/gif": [".gif"]}
        ),
        "BRIDGE_LIMIT_UPLOAD_BYTES": "300000",
        "BRIDGE_LIMIT_PIXELS": "10000",
        "BRIDGE_LIMIT_FRAMES": "3",
    }

    with bridge([], data_dir, env=env) as url:
        assert upload_code(url, encode(photo(), "JPEG"), "a.jpg") == "type_not_allowed"
        assert upload_code(url, encode(photo(), "WEBP"), "a.webp") == "type_not_allowed"
        assert upload_code(url, png_of(100, 100), "edge.png") == "accepted"
        assert upload_code(url, png_of(101, 100), "over.png") == "too_many_pixels"
        assert upload_code(url, gif_of(3), "three.gif") == "accepted"
        assert upload_code(url, gif_of(4), "four.gif") == "too_many_frames"
        assert upload_code(url, noise_png(400_000), "big.png") == "too_large"


def test_svg_needs_to_be_listed_to_be_allowed(data_dir: Path) -> None:
    svg = b'<svg xmlns="http://www.w3.org/2000/svg" width="4" height="4"/>'
    env = {"BRIDGE_ALLOWED_TYPES": json.dumps({"image/svg+xml": [".svg"]})}

    with bridge([], data_dir, env=env) as url:
        assert upload_code(url, svg, "logo.svg") == "accepted"
        assert upload_code(url, png_of(8, 8), "a.png") == "type_not_allowed"


def test_types_the_check_cannot_verify_stop_the_bridge_at_start(
    data_dir: Path,
) -> None:
    # Video and audio are not verifiable (no decode, no duration cap), so an
    # allowlist naming them is a configuration error, not a silent pass.
    data_dir.mkdir()
    env = {
        "BRIDGE_DATA_DIR": str(data_dir),
        "BRIDGE_ALLOWED_TYPES": json.dumps({"video/mp4": [".mp4"]}),
    }

    finished = subprocess.run(
        [sys.executable, "-m", "comfy_bridge", "serve", "--port", str(free_port())],
        env={**os.environ, "PYTHONPATH": str(ROOT), **env},
        cwd=data_dir,
        capture_output=True,
        timeout=30,
    )

    assert finished.returncode != 0
    assert b"video/mp4" in finished.stdout + finished.stderr
