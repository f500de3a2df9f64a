"""Outputs and outcomes of a prompt, read from ComfyUI's history and messages."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class PromptStatus(StrEnum):
    """How a prompt ended on its backend."""

    SUCCESS = "success"
    ERROR = "error"
    INTERRUPTED = "interrupted"
    # Neither queued, running nor in the history: the backend forgot it.
    LOST = "lost"


@dataclass(frozen=True, slots=True)
class OutputFile:
    """One file an output node wrote, as `/view` expects to be asked for it.

    `kind` is the key ComfyUI listed it under (`images`, `gifs`, `audio`, ...);
    `type` is the backend's folder (`output`, `temp` or `input`).
    """

    node_id: str
    kind: str
    filename: str
    subfolder: str = ""
    type: str = "output"


@dataclass(frozen=True, slots=True)
class PromptError:
    """Where and why a prompt stopped early (an exception or an interrupt)."""

    node_id: str | None
    node_type: str | None
    message: str
    exception_type: str = ""
    traceback: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class HistoryEntry:
    """A finished prompt as the backend's history holds it.

    `files` is every output file in a stable order (node order, then list
    order); `node_outputs` keeps each node's whole UI output, text included.
    """

    prompt_id: str
    status: PromptStatus
    completed: bool
    files: tuple[OutputFile, ...]
    node_outputs: dict[str, dict[str, Any]] = field(default_factory=dict)
    error: PromptError | None = None


def output_files(node_outputs: Mapping[str, Any]) -> tuple[OutputFile, ...]:
    """Flatten `{node_id: {kind: [file, ...]}}` into OutputFiles.

    Any list of `{filename, subfolder, type}` objects counts, whatever its key;
    entries without a filename (text, flags) are skipped.
    """
    files: list[OutputFile] = []
    for node_id, output in node_outputs.items():
        if isinstance(output, Mapping):
            files.extend(_node_files(str(node_id), output))
    return tuple(files)


def _node_files(node_id: str, output: Mapping[str, Any]) -> Iterable[OutputFile]:
    for kind, items in output.items():
        if not isinstance(items, list):
            continue
        for item in items:
            if isinstance(item, Mapping) and item.get("filename"):
                yield OutputFile(
                    node_id=node_id,
                    kind=str(kind),
                    filename=str(item["filename"]),
                    subfolder=str(item.get("subfolder") or ""),
                    type=str(item.get("type") or "output"),
                )


def parse_history_entry(prompt_id: str, entry: Mapping[str, Any]) -> HistoryEntry:
    """Read one value of GET /history/{prompt_id}; raises ValueError if malformed."""
    outputs = entry.get("outputs") or {}
    status = entry.get("status") or {}
    if not isinstance(outputs, Mapping) or not isinstance(status, Mapping):
        raise ValueError("history entry without outputs/status objects")
    messages = status.get("messages") or []
    if not isinstance(messages, list):
        raise ValueError("history status.messages is not a list")
    outcome, error = outcome_from_messages(messages, str(status.get("status_str")))
    node_outputs = {
        str(node_id): dict(out)
        for node_id, out in outputs.items()
        if isinstance(out, Mapping)
    }
    return HistoryEntry(
        prompt_id=prompt_id,
        status=outcome,
        completed=bool(status.get("completed")),
        files=output_files(node_outputs),
        node_outputs=node_outputs,
        error=error,
    )


def outcome_from_messages(
    messages: list[Any], status_str: str
) -> tuple[PromptStatus, PromptError | None]:
    """The outcome recorded by history's `[type, data]` message pairs."""
    for item in messages:
        if not isinstance(item, list) or len(item) != 2:
            continue
        kind, data = item
        if not isinstance(data, Mapping):
            continue
        if kind == "execution_error":
            return PromptStatus.ERROR, error_from_data(data)
        if kind == "execution_interrupted":
            return PromptStatus.INTERRUPTED, interruption_from_data(data)
    if status_str == "success":
        return PromptStatus.SUCCESS, None
    return PromptStatus.ERROR, PromptError(None, None, "the backend reported an error")


def error_from_data(data: Mapping[str, Any]) -> PromptError:
    """The PromptError of an `execution_error` payload."""
    traceback = data.get("traceback") or []
    return PromptError(
        node_id=optional_str(data.get("node_id")),
        node_type=optional_str(data.get("node_type")),
        message=str(data.get("exception_message") or "").strip(),
        exception_type=str(data.get("exception_type") or ""),
        traceback=tuple(str(line) for line in traceback),
    )


def interruption_from_data(data: Mapping[str, Any]) -> PromptError:
    """The PromptError of an `execution_interrupted` payload."""
    return PromptError(
        node_id=optional_str(data.get("node_id")),
        node_type=optional_str(data.get("node_type")),
        message="interrupted",
    )


def optional_str(value: Any) -> str | None:
    """`str(value)`, keeping None as None (ComfyUI mixes ints and strings for ids)."""
    return None if value is None else str(value)
