"""Parsing ComfyUI's frames, history and refusals, checked on the recorded captures."""

from __future__ import annotations

import json
import struct
from collections.abc import Iterator
from typing import Any

import pytest

from comfy_bridge.comfy import (
    Executed,
    Executing,
    ExecutionCached,
    ExecutionError,
    ExecutionInterrupted,
    ExecutionStart,
    ExecutionSuccess,
    OutputFile,
    Preview,
    Progress,
    ProgressState,
    PromptStatus,
    Status,
)
from comfy_bridge.comfy.errors import prompt_rejected
from comfy_bridge.comfy.messages import parse_binary, parse_text
from comfy_bridge.comfy.outputs import output_files, parse_history_entry
from comfy_bridge.exceptions import BackendProtocolError, PromptRejected
from tests.processes import SHARED

CAPTURES = SHARED / "comfyui-protocol"

EXPECTED_TYPES: dict[str, type] = {
    "status": Status,
    "execution_start": ExecutionStart,
    "execution_cached": ExecutionCached,
    "executing": Executing,
    "progress": Progress,
    "progress_state": ProgressState,
    "executed": Executed,
    "execution_success": ExecutionSuccess,
    "execution_error": ExecutionError,
    "execution_interrupted": ExecutionInterrupted,
}


def load(name: str) -> Any:
    return json.loads((CAPTURES / name).read_text())


def text_frames(node: Any) -> Iterator[dict[str, Any]]:
    """Every recorded text frame anywhere in a capture, in order."""
    if isinstance(node, dict):
        frame = node.get("frame")
        if isinstance(frame, dict) and "type" in frame:
            yield frame
        for value in node.values():
            yield from text_frames(value)
    elif isinstance(node, list):
        for value in node:
            yield from text_frames(value)


@pytest.mark.parametrize("capture", sorted(p.name for p in CAPTURES.glob("ws_*.json")))
def test_every_recorded_frame_parses_to_its_type(capture: str) -> None:
    for frame in text_frames(load(capture)):
        message = parse_text(json.dumps(frame))
        expected = EXPECTED_TYPES.get(frame["type"])
        if expected is None:
            assert message is None
        else:
            assert isinstance(message, expected), frame


def test_success_frames_carry_their_fields() -> None:
    frames = [parse_text(json.dumps(f)) for f in text_frames(load("ws_success.json"))]
    executed = [m for m in frames if isinstance(m, Executed)]
    assert executed[0].node == "3"
    assert executed[0].files == (
        OutputFile("3", "images", "bridge_ws_00001_.png", "", "output"),
    )
    done = frames[-1]
    assert isinstance(done, Executing) and done.node is None
    assert done.prompt_id == "51974025-0b23-4b28-88d6-8a9ed758215b"


def test_error_frame_names_node_and_exception() -> None:
    frames = [
        parse_text(json.dumps(f)) for f in text_frames(load("ws_execution_error.json"))
    ]
    (error,) = [m for m in frames if isinstance(m, ExecutionError)]
    assert error.error.node_id == "2"
    assert error.error.node_type == "BridgeTestSleep"
    assert error.error.exception_type == "RuntimeError"
    assert error.error.message == "BridgeTestSleep asked to fail (fail=true)"
    assert error.executed == ("1",)


def test_progress_frame_values() -> None:
    frame = {
        "type": "progress",
        "data": {"value": 3, "max": 6, "prompt_id": "p", "node": "2"},
    }
    assert parse_text(json.dumps(frame)) == Progress("p", "2", 3.0, 6.0)


@pytest.mark.parametrize(
    "raw",
    ["not json", "[]", '{"type": "executed"}', '{"type": "progress", "data": {}}'],
)
def test_malformed_frames_are_ignored(raw: str) -> None:
    assert parse_text(raw) is None


def test_legacy_preview_names_no_prompt() -> None:
    png = b"\x89PNG\r\n\x1a\nrest"
    message = parse_binary(struct.pack(">II", 1, 2) + png)
    assert message == Preview(prompt_id=None, image=png, format="image/png")


def test_preview_with_metadata_names_its_prompt() -> None:
    meta = json.dumps({"node_id": "2", "prompt_id": "p1", "image_type": "image/webp"})
    blob = meta.encode()
    raw = struct.pack(">II", 4, len(blob)) + blob + b"RIFFxxxxWEBP"
    message = parse_binary(raw)
    assert message == Preview("p1", b"RIFFxxxxWEBP", "image/webp", node_id="2")


def test_other_binary_frames_are_ignored() -> None:
    assert parse_binary(struct.pack(">II", 3, 1) + b"2hello") is None
    assert parse_binary(b"\x00") is None


def history_entry(capture: str) -> tuple[str, dict[str, Any]]:
    ((prompt_id, entry),) = load(capture)["body"].items()
    return prompt_id, entry


def test_history_success_lists_every_output_node_in_order() -> None:
    prompt_id, entry = history_entry("history_progress_with_preview.json")
    parsed = parse_history_entry(prompt_id, entry)
    assert parsed.status is PromptStatus.SUCCESS and parsed.completed
    assert parsed.files == (
        OutputFile("3", "images", "bridge_sleep_00001_.png", "", "output"),
        OutputFile("4", "images", "ComfyUI_temp_bkyxv_00001_.png", "", "temp"),
    )
    assert parsed.error is None


def test_history_error_keeps_node_and_exception() -> None:
    parsed = parse_history_entry(*history_entry("history_execution_error.json"))
    assert parsed.status is PromptStatus.ERROR
    assert parsed.files == ()
    assert parsed.error is not None
    assert (parsed.error.node_id, parsed.error.node_type) == ("2", "BridgeTestSleep")
    assert parsed.error.traceback


def test_history_interrupted_is_not_an_error() -> None:
    parsed = parse_history_entry(*history_entry("history_interrupted.json"))
    assert parsed.status is PromptStatus.INTERRUPTED
    assert parsed.error is not None and parsed.error.node_id == "2"


def test_output_files_cover_every_kind_batches_and_skip_text() -> None:
    outputs = {
        "9": {"gifs": [{"filename": "clip.mp4", "subfolder": "v", "type": "output"}]},
        "4": {
            "images": [
                {"filename": "a_00001_.png", "subfolder": "", "type": "output"},
                {"filename": "a_00002_.png", "subfolder": "", "type": "output"},
            ],
            "animated": [False],
        },
        "12": {"text": ["a caption"]},
        "7": {"audio": [{"filename": "s.flac", "subfolder": "audio", "type": "temp"}]},
        "8": {"mesh": [{"filename": "m.glb"}, {"subfolder": "no-name"}]},
    }
    assert output_files(outputs) == (
        OutputFile("9", "gifs", "clip.mp4", "v", "output"),
        OutputFile("4", "images", "a_00001_.png", "", "output"),
        OutputFile("4", "images", "a_00002_.png", "", "output"),
        OutputFile("7", "audio", "s.flac", "audio", "temp"),
        OutputFile("8", "mesh", "m.glb", "", "output"),
    )


def test_history_keeps_text_outputs_accessible() -> None:
    entry = {
        "outputs": {"5": {"text": ["hello"]}},
        "status": {"status_str": "success", "completed": True, "messages": []},
    }
    parsed = parse_history_entry("p", entry)
    assert parsed.files == ()
    assert parsed.node_outputs == {"5": {"text": ["hello"]}}


def test_refusal_names_the_first_failing_node() -> None:
    error = prompt_rejected("b1", "p1", load("prompt_error_missing_input.json")["body"])
    assert isinstance(error, PromptRejected)
    assert error.detail == "node 1 (EmptyImage): Required input is missing: width"
    assert error.backend_id == "b1"
    assert error.extra["node_id"] == "1"
    assert error.extra["node_type"] == "EmptyImage"
    assert error.extra["messages"] == ["Required input is missing"]
    assert error.extra["error_type"] == "prompt_outputs_failed_validation"


def test_refusal_without_node_errors_reads_node_from_details() -> None:
    error = prompt_rejected("b1", "p1", load("prompt_error_unknown_class.json")["body"])
    assert error.extra["node_id"] == "2"
    assert "NoSuchNodeXYZ does not exist" in error.detail


@pytest.mark.parametrize(
    "capture",
    sorted(
        p.name
        for p in CAPTURES.glob("prompt_error_*.json")
        if json.loads(p.read_text())["status"] == 400
    ),
)
def test_every_recorded_refusal_becomes_prompt_rejected(capture: str) -> None:
    error = prompt_rejected("b1", "p1", load(capture)["body"])
    assert error.detail
    assert error.extra["error_type"]


def test_refusal_that_is_not_json_object_is_a_protocol_error() -> None:
    with pytest.raises(BackendProtocolError):
        prompt_rejected("b1", "p1", "400 Bad Request")
