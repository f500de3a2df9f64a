"""Checking a submitted prompt the way ComfyUI does, coercing literals in place.

Errors use ComfyUI's own `type` strings (required_input_missing, invalid_input_type,
return_type_mismatch, value_not_in_list, ...) since clients branch on them.
"""

from __future__ import annotations

import traceback
from dataclasses import dataclass
from typing import Any

from comfy_bridge.simulator.claims import is_link
from comfy_bridge.simulator.registry import Registry
from comfy_bridge.simulator.specs import InputSpec, NodeSpec, combo_values
from comfy_bridge.simulator.storage import UnsafePath

Prompt = dict[str, dict[str, Any]]
ErrorList = list[dict[str, Any]]
CONVERTERS: dict[str, Any] = {
    "INT": int,
    "FLOAT": float,
    "STRING": str,
    "BOOLEAN": bool,
}


class PromptCrash(Exception):
    """A body ComfyUI does not survive (not API format): it answers a bare 500."""


class PromptRejected(Exception):
    """A prompt refused with 400 and ComfyUI's error body."""

    def __init__(self, body: dict[str, Any]) -> None:
        super().__init__(body["error"]["message"])
        self.body = body


@dataclass
class ValidPrompt:
    """The output nodes that will run, and errors of the outputs that were dropped."""

    outputs: list[str]
    node_errors: dict[str, Any]


def error(type_: str, message: str, details: str = "", **extra: Any) -> dict[str, Any]:
    return {"type": type_, "message": message, "details": details, "extra_info": extra}


def rejection(type_: str, message: str, details: str = "") -> PromptRejected:
    return PromptRejected({"error": error(type_, message, details), "node_errors": {}})


def validate_prompt(prompt: Any, registry: Registry) -> ValidPrompt:
    """Validate and coerce `prompt` in place; raise PromptCrash or PromptRejected."""
    check_structure(prompt, registry)
    outputs = [
        node_id
        for node_id, node in prompt.items()
        if registry.specs[node["class_type"]].output_node
    ]
    if not outputs:
        raise rejection("prompt_no_outputs", "Prompt has no outputs")
    validator = Validator(prompt, registry)
    good = [node_id for node_id in outputs if validator.output(node_id)]
    node_errors = validator.node_errors([o for o in outputs if o not in good])
    if not good:
        raise PromptRejected(
            {
                "error": error(
                    "prompt_outputs_failed_validation",
                    "Prompt outputs failed validation",
                ),
                "node_errors": node_errors,
            }
        )
    return ValidPrompt(good, node_errors)


def check_structure(prompt: Any, registry: Registry) -> None:
    if not isinstance(prompt, dict):
        raise PromptCrash("prompt is not an object")
    for node_id, node in prompt.items():
        if not isinstance(node, dict) or not isinstance(node.get("inputs", {}), dict):
            raise PromptCrash(f"node {node_id} is not an API-format node")
        where = f"Node ID '#{node_id}'"
        if "class_type" not in node:
            raise rejection(
                "invalid_prompt",
                "Cannot execute because a node is missing the class_type property.",
                where,
            )
        if node["class_type"] not in registry.specs:
            message = (
                f"Cannot execute because node {node['class_type']} does not exist."
            )
            raise rejection("invalid_prompt", message, where)
        node.setdefault("inputs", {})


class Validator:
    """Validates nodes once each, following links from the outputs."""

    def __init__(self, prompt: Prompt, registry: Registry) -> None:
        self.prompt = prompt
        self.registry = registry
        self.results: dict[str, bool] = {}
        self.errors: dict[str, ErrorList] = {}

    def output(self, node_id: str) -> bool:
        try:
            return self.node(node_id)
        except KeyError as exc:
            self.fail(node_id, inner_error("exception_during_validation", None, exc))
            return False

    def fail(self, node_id: str, *errors: dict[str, Any]) -> None:
        self.errors.setdefault(node_id, []).extend(errors)
        self.results[node_id] = False

    def node(self, node_id: str) -> bool:
        """Whether a node and everything it links from is valid.

        A link to a missing node raises KeyError out of this node's validation; the
        node that linked here records it, as ComfyUI does.
        """
        if node_id in self.results:
            return self.results[node_id]
        node = self.prompt[node_id]
        spec = self.registry.specs[node["class_type"]]
        self.results[node_id] = True  # a guard against cycles
        errors: ErrorList = []
        valid = True
        for item in spec.inputs:
            if item.section == "hidden":
                continue
            if item.name not in node["inputs"]:
                if item.section == "required":
                    errors.append(missing_error(item.name))
                continue
            if is_link(node["inputs"][item.name]):
                valid = (
                    self.link(spec, item, node["inputs"][item.name], errors) and valid
                )
            else:
                errors += self.literal(spec, item, node["inputs"])
        if errors:
            self.fail(node_id, *errors)
        self.results[node_id] = valid and not errors
        return self.results[node_id]

    def link(
        self, spec: NodeSpec, item: InputSpec, value: list[Any], errors: ErrorList
    ) -> bool:
        source_id, index = value
        source = self.prompt[source_id]
        received = output_type(self.registry.specs[source["class_type"]], index)
        if not types_match(item, received):
            errors.append(mismatch_error(item, received, value))
            return False
        try:
            return self.node(source_id)
        except KeyError as exc:
            self.fail(
                source_id,
                inner_error("exception_during_inner_validation", item, exc, value),
            )
            return False

    def literal(
        self, spec: NodeSpec, item: InputSpec, inputs: dict[str, Any]
    ) -> ErrorList:
        if item.name in spec.self_validated:
            return self.input_file(item, inputs[item.name])
        converter = CONVERTERS.get(item.type)
        if converter is not None:
            try:
                inputs[item.name] = converter(inputs[item.name])
            except (TypeError, ValueError) as exc:
                return [conversion_error(item, inputs[item.name], exc)]
            return bounds_errors(item, inputs[item.name])
        if item.is_combo:
            files = self.registry.storage.input_files() if item.input_files else []
            allowed = combo_values(item, self.registry.models, files)
            if inputs[item.name] not in allowed:
                return [combo_error(item, inputs[item.name], allowed)]
        return []

    def input_file(self, item: InputSpec, value: Any) -> ErrorList:
        """LoadImage's own check: the named file exists (or was claimed)."""
        try:
            found = self.registry.storage.resolve_annotated(
                str(value), "input"
            ).is_file()
        except UnsafePath:
            found = False
        if found or value in self.registry.claimed_inputs:
            return []
        details = f"{item.name} - Invalid image file: {value}"
        message = "Custom validation failed for node"
        return [
            error("custom_validation_failed", message, details, input_name=item.name)
        ]

    def node_errors(self, failed_outputs: list[str]) -> dict[str, Any]:
        result: dict[str, Any] = {}
        for node_id, errors in self.errors.items():
            dependents = [o for o in failed_outputs if node_id in self.ancestors(o)]
            class_type = self.prompt.get(node_id, {}).get("class_type")
            result[node_id] = {
                "errors": errors,
                "dependent_outputs": dependents,
                "class_type": class_type,
            }
        return result

    def ancestors(self, node_id: str) -> set[str]:
        seen: set[str] = set()
        pending = [node_id]
        while pending:
            current = pending.pop()
            if current in seen or current not in self.prompt:
                continue
            seen.add(current)
            inputs = self.prompt[current].get("inputs", {})
            pending += [value[0] for value in inputs.values() if is_link(value)]
        return seen


def output_type(spec: NodeSpec, index: int) -> str:
    if spec.lenient or index >= len(spec.outputs):
        return "*"
    return spec.outputs[index]


def types_match(item: InputSpec, received: str) -> bool:
    if item.is_combo or "*" in (item.type, received):
        return True
    return bool(set(item.type.split(",")) & set(received.split(",")))


def config(item: InputSpec) -> list[Any]:
    return [item.type, dict(item.options)]


def missing_error(name: str) -> dict[str, Any]:
    return error(
        "required_input_missing", "Required input is missing", name, input_name=name
    )


def mismatch_error(item: InputSpec, received: str, value: list[Any]) -> dict[str, Any]:
    details = f"{item.name}, received_type({received}) mismatch input_type({item.type})"
    return error(
        "return_type_mismatch",
        "Return type mismatch between linked nodes",
        details,
        input_name=item.name,
        input_config=config(item),
        received_type=received,
        linked_node=value,
    )


def inner_error(
    type_: str, item: InputSpec | None, exc: Exception, value: Any = None
) -> dict[str, Any]:
    message = str(exc)
    extra: dict[str, Any] = {
        "exception_message": message,
        "exception_type": type(exc).__name__,
        "traceback": traceback.format_tb(exc.__traceback__),
    }
    if item is not None:
        extra |= {"input_name": item.name, "input_config": config(item)}
        extra["linked_node"] = value
    return error(type_, "Exception when validating inner node", message, **extra)


def conversion_error(item: InputSpec, value: Any, exc: Exception) -> dict[str, Any]:
    return error(
        "invalid_input_type",
        f"Failed to convert an input value to a {item.type} value",
        f"{item.name}, {value}, {exc}",
        input_name=item.name,
        input_config=config(item),
        received_value=value,
        exception_message=str(exc),
    )


def bounds_errors(item: InputSpec, value: Any) -> ErrorList:
    low, high = item.options.get("min"), item.options.get("max")
    extra = {
        "input_name": item.name,
        "input_config": config(item),
        "received_value": value,
    }
    if low is not None and value < low:
        message = f"Value {value} smaller than min of {low}"
        return [error("value_smaller_than_min", message, item.name, **extra)]
    if high is not None and value > high:
        message = f"Value {value} bigger than max of {high}"
        return [error("value_bigger_than_max", message, item.name, **extra)]
    return []


def combo_error(item: InputSpec, value: Any, allowed: list[str]) -> dict[str, Any]:
    return error(
        "value_not_in_list",
        "Value not in list",
        f"{item.name}: '{value}' not in {allowed}",
        input_name=item.name,
        input_config=[allowed, dict(item.options)],
        received_value=value,
    )
