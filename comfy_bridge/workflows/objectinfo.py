"""Reading node class definitions from ComfyUI's `/object_info` answers."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, NamedTuple, TypeAlias

ObjectInfo: TypeAlias = Mapping[str, Mapping[str, Any]]

# Used only for classes no backend described: the usual names of nodes that
# write results (core Save*/Preview* nodes, VideoHelperSuite's video writer).
_OUTPUT_CLASS_NAME = re.compile(r"^(Save|Preview)|VideoCombine")


class ClassInput(NamedTuple):
    """One input of a node class: its type tag, combo choices and options."""

    tag: str
    choices: tuple[Any, ...]
    options: Mapping[str, Any]


def class_input(
    object_info: ObjectInfo, class_type: str, name: str
) -> ClassInput | None:
    """The required or optional input `name` of a node class, if object_info has it."""
    definition = object_info.get(class_type)
    if not isinstance(definition, Mapping):
        return None
    sections = definition.get("input")
    if not isinstance(sections, Mapping):
        return None
    for section in ("required", "optional"):
        entries = sections.get(section)
        if isinstance(entries, Mapping) and name in entries:
            return _split_spec(entries[name])
    return None


def class_input_names(object_info: ObjectInfo, class_type: str) -> list[str]:
    """Names of a class's settable inputs (required and optional), if known."""
    sections = (object_info.get(class_type) or {}).get("input")
    if not isinstance(sections, Mapping):
        return []
    names: list[str] = []
    for section in ("required", "optional"):
        entries = sections.get(section)
        if isinstance(entries, Mapping):
            names.extend(str(name) for name in entries)
    return names


def is_output_class(class_type: str, object_info: ObjectInfo) -> bool:
    """Whether nodes of this class produce results (ComfyUI's `output_node`)."""
    definition = object_info.get(class_type)
    if isinstance(definition, Mapping):
        return bool(definition.get("output_node"))
    return _OUTPUT_CLASS_NAME.search(class_type) is not None


def _split_spec(raw: object) -> ClassInput | None:
    # Hidden inputs are bare strings ("PROMPT"); nothing a client could set.
    if not isinstance(raw, list | tuple) or not raw:
        return None
    head = raw[0]
    options = raw[1] if len(raw) > 1 and isinstance(raw[1], Mapping) else {}
    if isinstance(head, list | tuple):
        return ClassInput("COMBO", tuple(head), options)
    if head == "COMBO":
        return ClassInput("COMBO", tuple(options.get("options") or ()), options)
    if isinstance(head, str):
        return ClassInput(head, (), options)
    return None
