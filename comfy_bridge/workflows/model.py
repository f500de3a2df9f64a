"""A registered workflow, and building one from a graph."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

from comfy_bridge.exceptions import WorkflowInvalid
from comfy_bridge.workflows.discovery import as_declarations, discover_inputs
from comfy_bridge.workflows.graph import (
    Graph,
    Requirements,
    output_nodes,
    parse_graph,
    requirements,
)
from comfy_bridge.workflows.objectinfo import ObjectInfo
from comfy_bridge.workflows.schema import json_schema
from comfy_bridge.workflows.specs import InputDeclaration, InputSpec

_ALIAS = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")


# eq=False: a workflow is one registration, compared by identity; its graph
# is a dict and so could not be hashed anyway.
@dataclass(frozen=True, eq=False)
class Workflow:
    """A registered graph with its alias, description, thumbnail and inputs."""

    alias: str
    description: str
    graph: Graph
    inputs: tuple[InputSpec, ...]
    requirements: Requirements
    output_nodes: frozenset[str]
    thumbnail: Path | None = None
    # The graph's file in the workflows directory, for the original API's `fn`.
    file_name: str | None = None

    @cached_property
    def schema(self) -> dict[str, Any]:
        """The JSON Schema of the values a client may send."""
        return json_schema(self.inputs)

    def input(self, name: str) -> InputSpec | None:
        """The input with this public name, if there is one."""
        return next((spec for spec in self.inputs if spec.name == name), None)


def validate_alias(alias: object) -> str:
    """Return `alias` if it is a safe slug (letters, digits, `-`, `_`, `.`)."""
    if isinstance(alias, str) and _ALIAS.fullmatch(alias):
        return alias
    raise WorkflowInvalid(
        f"alias {alias!r} is not allowed: use 1 to 128 letters, digits, '-', '_' "
        "or '.', starting with a letter or digit"
    )


def build_workflow(
    alias: str,
    graph_obj: object,
    *,
    description: str = "",
    declarations: Iterable[InputDeclaration | Mapping[str, Any]] = (),
    object_info: ObjectInfo | None = None,
    thumbnail: Path | None = None,
    descimage_dir: Path | None = None,
) -> Workflow:
    """Check a graph and its declarations and register it under `alias`."""
    alias = validate_alias(alias)
    info = object_info or {}
    graph = parse_graph(graph_obj)
    outputs = output_nodes(graph, info)
    _check_runnable(graph, outputs, info)
    inputs = discover_inputs(graph, as_declarations(declarations), info, descimage_dir)
    return Workflow(
        alias=alias,
        description=description,
        graph=graph,
        inputs=inputs,
        requirements=requirements(graph, info),
        output_nodes=outputs,
        thumbnail=thumbnail,
    )


def _check_runnable(graph: Graph, outputs: frozenset[str], info: ObjectInfo) -> None:
    # Only refuse when every class is described: an undescribed custom node
    # may well be an output node.
    if outputs or not all(node["class_type"] in info for node in graph.values()):
        return
    raise WorkflowInvalid(
        "the workflow has no output node (such as SaveImage or PreviewImage), "
        "so ComfyUI would refuse to run it"
    )
