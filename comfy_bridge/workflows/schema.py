"""JSON Schema (draft 2020-12) for a workflow's inputs, and what to tell clients."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from jsonschema import Draft202012Validator

from comfy_bridge.exceptions import WorkflowInvalid
from comfy_bridge.workflows.specs import InputSpec, InputType

DRAFT = "https://json-schema.org/draft/2020-12/schema"
# ComfyUI's widest INT (the seed's max is 0xffffffffffffffff); bounding every
# integer keeps absurd numbers out of the graph.
INT_MIN = -(2**63)
INT_MAX = 2**64 - 1
UPLOAD_FORMAT = "upload-id"
_SHOWN_CHOICES = 10
_SHOWN_VALUE = 80


def json_schema(inputs: Iterable[InputSpec]) -> dict[str, Any]:
    """The JSON Schema of the values a client may send for these inputs."""
    specs = list(inputs)
    return {
        "$schema": DRAFT,
        "type": "object",
        "properties": {spec.name: property_schema(spec) for spec in specs},
        "required": [spec.name for spec in specs if spec.required],
        "additionalProperties": False,
    }


def property_schema(spec: InputSpec) -> dict[str, Any]:
    """The JSON Schema of one input's value, with its title and hints."""
    schema = _value_schema(spec)
    schema["title"] = spec.title
    if spec.description:
        schema["description"] = spec.description
    if spec.default is not None and not spec.required:
        schema["default"] = spec.default
    schema["x-input-type"] = str(spec.type)
    return schema


def expectation(spec: InputSpec) -> str:
    """What a value for this input must be, in words for an error message."""
    if spec.type is InputType.CHOICE:
        return "one of " + _listed(spec.choices or ())
    if spec.type in (InputType.INT, InputType.FLOAT):
        noun = "an integer" if spec.type is InputType.INT else "a number"
        low, high = _bounds(spec)
        step = _multiple_of(spec)
        steps = f" in steps of {step}" if step is not None else ""
        return f"{noun}{_range_words(low, high)}{steps}"
    return {
        InputType.STRING: "a string",
        InputType.BOOLEAN: "true or false",
        InputType.IMAGE: "the id of an uploaded image",
    }[spec.type]


def shown(value: object) -> str:
    """A value as quoted in an error message, cut short if long."""
    text = repr(value)
    return text if len(text) <= _SHOWN_VALUE else text[: _SHOWN_VALUE - 3] + "..."


def check_default(spec: InputSpec) -> None:
    """Refuse an input whose own default would be refused from a client."""
    if spec.default is None or spec.type is InputType.IMAGE:
        return
    if not Draft202012Validator(_value_schema(spec)).is_valid(spec.default):
        raise WorkflowInvalid(
            f"input {spec.name!r}: its default {shown(spec.default)} is not "
            f"{expectation(spec)}"
        )


def _value_schema(spec: InputSpec) -> dict[str, Any]:
    if spec.type is InputType.CHOICE:
        return {"enum": list(spec.choices or ())}
    if spec.type is InputType.INT:
        low, high = _bounds(spec)
        schema: dict[str, Any] = {"type": "integer", "minimum": low, "maximum": high}
        step = _multiple_of(spec)
        return schema if step is None else {**schema, "multipleOf": step}
    if spec.type is InputType.FLOAT:
        bounds = {"minimum": spec.minimum, "maximum": spec.maximum}
        return {"type": "number", **{k: v for k, v in bounds.items() if v is not None}}
    if spec.type is InputType.STRING:
        return (
            {"type": "string", "x-multiline": True}
            if spec.multiline
            else {"type": "string"}
        )
    if spec.type is InputType.BOOLEAN:
        return {"type": "boolean"}
    return {"type": "string", "minLength": 1, "format": UPLOAD_FORMAT}


def _bounds(spec: InputSpec) -> tuple[int | float | None, int | float | None]:
    if spec.type is InputType.FLOAT:
        return spec.minimum, spec.maximum
    low = INT_MIN if spec.minimum is None else max(spec.minimum, INT_MIN)
    high = INT_MAX if spec.maximum is None else min(spec.maximum, INT_MAX)
    return low, high


def _multiple_of(spec: InputSpec) -> int | None:
    # ComfyUI does not enforce steps, and float steps (0.01) make multipleOf
    # fail on rounding; an integer step is kept only where the range's start
    # and the default sit on it (e.g. a width in steps of 8).
    step = spec.step
    if spec.type is not InputType.INT or not isinstance(step, int) or step <= 1:
        return None
    anchors = [value for value in (spec.minimum, spec.default) if value is not None]
    return step if all(isinstance(a, int) and a % step == 0 for a in anchors) else None


def _range_words(low: int | float | None, high: int | float | None) -> str:
    if low is not None and high is not None:
        return f" between {low} and {high}"
    if low is not None:
        return f" of at least {low}"
    if high is not None:
        return f" of at most {high}"
    return ""


def _listed(choices: Sequence[Any]) -> str:
    words = ", ".join(repr(choice) for choice in choices[:_SHOWN_CHOICES])
    more = len(choices) - _SHOWN_CHOICES
    return words + (f" (and {more} more)" if more > 0 else "")
