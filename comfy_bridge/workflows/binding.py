"""Checking a client's values and writing them into a fresh copy of the graph."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from jsonschema import Draft202012Validator

from comfy_bridge.exceptions import InputInvalid
from comfy_bridge.workflows.graph import Graph, strip_bridge_meta
from comfy_bridge.workflows.model import Workflow
from comfy_bridge.workflows.schema import expectation, shown
from comfy_bridge.workflows.specs import InputSpec, InputType


def validate_values(workflow: Workflow, values: Mapping[str, Any]) -> dict[str, Any]:
    """Check a client's values; return them merged with the inputs' defaults."""
    specs = {spec.name: spec for spec in workflow.inputs}
    _check_names(workflow, specs, values)
    errors = Draft202012Validator(workflow.schema).iter_errors(dict(values))
    # Report the first bad input in the workflow's own order, not jsonschema's.
    order = list(specs)
    first = min(errors, key=lambda error: order.index(error.path[0]), default=None)
    if first is not None:
        spec = specs[first.path[0]]
        raise InputInvalid(
            f"input {spec.name!r}: expected {expectation(spec)}, "
            f"got {shown(values[spec.name])}",
            input=spec.name,
        )
    merged = {
        spec.name: spec.default
        for spec in workflow.inputs
        if not spec.required and spec.default is not None
    }
    merged.update(
        (name, _normalized(specs[name], value)) for name, value in values.items()
    )
    return merged


def bind(
    workflow: Workflow, values: Mapping[str, Any], files: Mapping[str, str]
) -> Graph:
    """A fresh copy of the graph holding the values, ready to submit."""
    # `files` maps a file input's name to the name the backend gave the upload.
    merged = validate_values(workflow, values)
    graph = copy.deepcopy(workflow.graph)
    for spec in workflow.inputs:
        if spec.name in merged:
            value = (
                _file_name(spec, values, files)
                if spec.type is InputType.IMAGE
                else merged[spec.name]
            )
            graph[spec.node_id]["inputs"][spec.input] = value
    strip_bridge_meta(graph)
    return graph


def _check_names(
    workflow: Workflow, specs: Mapping[str, InputSpec], values: Mapping[str, Any]
) -> None:
    unknown = [name for name in values if name not in specs]
    if unknown:
        known = ", ".join(repr(name) for name in specs) or "none"
        raise InputInvalid(
            f"unknown input {unknown[0]!r} for workflow {workflow.alias!r}; "
            f"its inputs are: {known}",
            input=unknown[0],
        )
    for spec in workflow.inputs:
        if spec.required and spec.name not in values:
            raise InputInvalid(
                f"input {spec.name!r} is required: expected {expectation(spec)}",
                input=spec.name,
            )


def _normalized(spec: InputSpec, value: Any) -> Any:
    # JSON Schema counts 2.0 as an integer; the graph should hold 2.
    if spec.type is InputType.INT and isinstance(value, float):
        return int(value)
    return value


def _file_name(
    spec: InputSpec, values: Mapping[str, Any], files: Mapping[str, str]
) -> Any:
    if spec.name in files:
        return files[spec.name]
    if spec.name not in values:
        return spec.default
    raise InputInvalid(
        f"input {spec.name!r}: upload {shown(values[spec.name])} was not placed on "
        "the backend",
        input=spec.name,
    )
