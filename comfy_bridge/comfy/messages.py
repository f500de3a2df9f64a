"""Typed messages parsed from the frames of a backend's WebSocket.

Text frames are `{"type", "data"}` objects; binary frames start with a 4-byte
big-endian event type. Unknown or malformed frames parse to None: a backend
newer than this code must not break a running prompt.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from comfy_bridge.comfy.outputs import (
    OutputFile,
    PromptError,
    PromptStatus,
    error_from_data,
    interruption_from_data,
    optional_str,
    output_files,
)


@dataclass(frozen=True, slots=True)
class Status:
    """The backend's queue length (running plus pending); sent to every socket."""

    queue_remaining: int


@dataclass(frozen=True, slots=True)
class ExecutionStart:
    """The backend started running the prompt."""

    prompt_id: str
    timestamp_ms: int | None = None


@dataclass(frozen=True, slots=True)
class ExecutionCached:
    """These nodes will be served from the backend's cache."""

    prompt_id: str
    nodes: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Executing:
    """A node started; `node is None` means the prompt is done."""

    prompt_id: str | None
    node: str | None
    display_node: str | None = None


@dataclass(frozen=True, slots=True)
class Progress:
    """Step `value` of `max` of the node running now."""

    prompt_id: str
    node: str | None
    value: float
    max: float


@dataclass(frozen=True, slots=True)
class NodeProgress:
    """One node's entry in a ProgressState."""

    value: float
    max: float
    state: str


@dataclass(frozen=True, slots=True)
class ProgressState:
    """Progress of every node seen so far in the prompt."""

    prompt_id: str
    nodes: dict[str, NodeProgress] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Executed:
    """An output node finished; `files` are the files its UI output names."""

    prompt_id: str
    node: str
    output: dict[str, Any]
    files: tuple[OutputFile, ...] = ()


@dataclass(frozen=True, slots=True)
class ExecutionSuccess:
    """Every node ran; the history entry follows."""

    prompt_id: str
    timestamp_ms: int | None = None


@dataclass(frozen=True, slots=True)
class ExecutionError:
    """A node raised; the prompt stopped."""

    prompt_id: str
    error: PromptError
    executed: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class ExecutionInterrupted:
    """The prompt was interrupted while `error.node_id` ran."""

    prompt_id: str
    error: PromptError
    executed: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Preview:
    """A preview image; `prompt_id` is None when the frame did not name one."""

    prompt_id: str | None
    image: bytes
    format: str
    node_id: str | None = None


@dataclass(frozen=True, slots=True)
class PromptFinished:
    """The last message of a watch: how the prompt ended and what it wrote.

    `files` comes from the history when the backend still has it, otherwise
    from the `executed` messages seen on the socket; `output_nodes` names every
    node that reported an output of any kind (files, text, ...).
    """

    prompt_id: str
    status: PromptStatus
    files: tuple[OutputFile, ...] = ()
    error: PromptError | None = None
    output_nodes: frozenset[str] = frozenset()


Message = (
    Status
    | ExecutionStart
    | ExecutionCached
    | Executing
    | Progress
    | ProgressState
    | Executed
    | ExecutionSuccess
    | ExecutionError
    | ExecutionInterrupted
    | Preview
    | PromptFinished
)

_PREVIEW_IMAGE = 1
_PREVIEW_IMAGE_WITH_METADATA = 4
_PREVIEW_FORMATS = {1: "image/jpeg", 2: "image/png"}


def parse_text(raw: str) -> Message | None:
    """Parse one text frame; None for frames the bridge has no use for."""
    try:
        frame = json.loads(raw)
    except ValueError:
        return None
    if not isinstance(frame, dict) or not isinstance(frame.get("data"), dict):
        return None
    parser = _TEXT_PARSERS.get(str(frame.get("type")))
    if parser is None:
        return None
    try:
        return parser(frame["data"])
    except (KeyError, TypeError, ValueError):
        return None


def parse_binary(raw: bytes) -> Message | None:
    """Parse one binary frame; only preview images are of interest."""
    if len(raw) < 8:
        return None
    (event,) = struct.unpack(">I", raw[:4])
    if event == _PREVIEW_IMAGE:
        (code,) = struct.unpack(">I", raw[4:8])
        image_format = _PREVIEW_FORMATS.get(code, "application/octet-stream")
        return Preview(prompt_id=None, image=raw[8:], format=image_format)
    if event == _PREVIEW_IMAGE_WITH_METADATA:
        return _preview_with_metadata(raw)
    return None


def _preview_with_metadata(raw: bytes) -> Preview | None:
    (length,) = struct.unpack(">I", raw[4:8])
    try:
        meta = json.loads(raw[8 : 8 + length])
    except ValueError:
        return None
    if not isinstance(meta, dict):
        return None
    return Preview(
        prompt_id=optional_str(meta.get("prompt_id")),
        image=raw[8 + length :],
        format=str(meta.get("image_type") or "application/octet-stream"),
        node_id=optional_str(meta.get("node_id")),
    )


def _status(data: Mapping[str, Any]) -> Status:
    return Status(int(data["status"]["exec_info"]["queue_remaining"]))


def _execution_start(data: Mapping[str, Any]) -> ExecutionStart:
    return ExecutionStart(str(data["prompt_id"]), data.get("timestamp"))


def _execution_cached(data: Mapping[str, Any]) -> ExecutionCached:
    nodes = tuple(str(n) for n in data.get("nodes") or ())
    return ExecutionCached(str(data["prompt_id"]), nodes)


def _executing(data: Mapping[str, Any]) -> Executing:
    return Executing(
        prompt_id=optional_str(data.get("prompt_id")),
        node=optional_str(data.get("node")),
        display_node=optional_str(data.get("display_node")),
    )


def _progress(data: Mapping[str, Any]) -> Progress:
    return Progress(
        prompt_id=str(data["prompt_id"]),
        node=optional_str(data.get("node")),
        value=float(data["value"]),
        max=float(data["max"]),
    )


def _progress_state(data: Mapping[str, Any]) -> ProgressState:
    nodes = {
        str(node_id): NodeProgress(
            float(entry["value"]), float(entry["max"]), str(entry["state"])
        )
        for node_id, entry in data["nodes"].items()
    }
    return ProgressState(str(data["prompt_id"]), nodes)


def _executed(data: Mapping[str, Any]) -> Executed:
    node = str(data["node"])
    output = dict(data.get("output") or {})
    return Executed(
        prompt_id=str(data["prompt_id"]),
        node=node,
        output=output,
        files=output_files({node: output}),
    )


def _execution_success(data: Mapping[str, Any]) -> ExecutionSuccess:
    return ExecutionSuccess(str(data["prompt_id"]), data.get("timestamp"))


def _execution_error(data: Mapping[str, Any]) -> ExecutionError:
    executed = tuple(str(n) for n in data.get("executed") or ())
    return ExecutionError(str(data["prompt_id"]), error_from_data(data), executed)


def _execution_interrupted(data: Mapping[str, Any]) -> ExecutionInterrupted:
    executed = tuple(str(n) for n in data.get("executed") or ())
    error = interruption_from_data(data)
    return ExecutionInterrupted(str(data["prompt_id"]), error, executed)


_TEXT_PARSERS: dict[str, Callable[[Mapping[str, Any]], Message]] = {
    "status": _status,
    "execution_start": _execution_start,
    "execution_cached": _execution_cached,
    "executing": _executing,
    "progress": _progress,
    "progress_state": _progress_state,
    "executed": _executed,
    "execution_success": _execution_success,
    "execution_error": _execution_error,
    "execution_interrupted": _execution_interrupted,
}
