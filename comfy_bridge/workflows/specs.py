"""An exposed input's spec: its type, bounds and choices, and narrowing them."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, replace
from enum import StrEnum
from pathlib import Path, PurePosixPath
from typing import Any

from comfy_bridge.exceptions import WorkflowInvalid
from comfy_bridge.workflows.objectinfo import ClassInput

Number = int | float

IMAGE_TYPES = {
    ".png": "image/png",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".webp": "image/webp",
    ".gif": "image/gif",
    ".bmp": "image/bmp",
    ".tif": "image/tiff",
    ".tiff": "image/tiff",
}
# Core loaders whose combo lists the backend's input folder; their spec
# carries image_upload too, but older servers did not send it.
_IMAGE_LOADER_INPUTS = {("LoadImage", "image"), ("LoadImageMask", "image")}
_DECLARATION_KEYS = frozenset(
    {"name", "title", "description", "default", "min", "max", "step", "choices"}
    | {"required", "node", "input"}
)


class InputType(StrEnum):
    """The kind of value a client gives for an input."""

    INT = "int"
    FLOAT = "float"
    STRING = "string"
    BOOLEAN = "boolean"
    CHOICE = "choice"
    IMAGE = "image"


_LEGACY_TYPES = {
    InputType.INT: "int",
    InputType.FLOAT: "float",
    InputType.BOOLEAN: "bool",
}
_PRIMITIVES = {
    "INT": InputType.INT,
    "FLOAT": InputType.FLOAT,
    "STRING": InputType.STRING,
    "BOOLEAN": InputType.BOOLEAN,
    "COMBO": InputType.CHOICE,
}


@dataclass(frozen=True)
class InputSpec:
    """One input of a workflow that clients may set."""

    name: str
    node_id: str
    input: str
    class_type: str
    type: InputType
    legacy_type: str
    title: str
    description: str = ""
    default: Any = None
    minimum: Number | None = None
    maximum: Number | None = None
    step: Number | None = None
    choices: tuple[Any, ...] | None = None
    required: bool = False
    multiline: bool = False
    descimage: Path | None = None


@dataclass(frozen=True)
class InputDeclaration:
    """An operator's declaration of an input: exposes, renames or narrows it."""

    node: str
    input: str
    name: str | None = None
    title: str | None = None
    description: str | None = None
    default: Any = None
    minimum: Number | None = None
    maximum: Number | None = None
    step: Number | None = None
    choices: tuple[Any, ...] | None = None
    required: bool | None = None

    @classmethod
    def from_mapping(
        cls, data: Mapping[str, Any], *, where: str, node: str = "", input: str = ""
    ) -> InputDeclaration:
        """Read a declaration written as JSON (`min`/`max` for the bounds)."""
        if not isinstance(data, Mapping):
            raise WorkflowInvalid(f"{where}: expected an object, got {data!r}")
        unknown = sorted(set(data) - _DECLARATION_KEYS)
        if unknown:
            raise WorkflowInvalid(
                f"{where}: unknown keys {unknown}; allowed: {sorted(_DECLARATION_KEYS)}"
            )
        return cls(
            node=_text(data, "node", where) or node,
            input=_text(data, "input", where) or input,
            name=_text(data, "name", where),
            title=_text(data, "title", where),
            description=_text(data, "description", where),
            default=data.get("default"),
            minimum=_number(data, "min", where),
            maximum=_number(data, "max", where),
            step=_number(data, "step", where),
            choices=_choices(data, where),
            required=_flag(data, "required", where),
        )


def image_type(value: object) -> str | None:
    """The MIME type of an image file name (or URL), or None if not an image."""
    if not isinstance(value, str):
        return None
    path = value.split("?", 1)[0].split("#", 1)[0]
    return IMAGE_TYPES.get(PurePosixPath(path).suffix.lower())


def derive_spec(
    class_type: str, name: str, literal: object, known: ClassInput | None
) -> InputSpec | None:
    """A spec (named after the node input) from object_info or the literal value."""
    spec = _from_class_input(known) if known is not None else _from_literal(literal)
    if spec is None:
        return None
    spec = replace(spec, class_type=class_type, input=name, name=name, title=name)
    if literal is not None:
        spec = replace(spec, default=literal)
    if spec.type in (InputType.STRING, InputType.CHOICE) and _is_image(
        class_type, name, known, spec.default
    ):
        return replace(spec, type=InputType.IMAGE, choices=None, multiline=False)
    if spec.type is InputType.CHOICE and not spec.choices:
        # A model combo of a backend without models: any name may be valid
        # on some other backend, so it is a free string here.
        return replace(spec, type=InputType.STRING, choices=None)
    if spec.choices is not None and literal is not None and literal not in spec.choices:
        # Combos list what the describing backends hold; the author's own
        # value is valid on the server the workflow was made on.
        spec = replace(spec, choices=(*spec.choices, literal))
    return spec


def narrow(spec: InputSpec, layer: InputDeclaration) -> InputSpec:
    """Apply a declaration to a spec, refusing anything that widens it."""
    label = f"input {spec.name!r} (node {spec.node_id!r} input {spec.input!r})"
    spec = _narrow_bounds(spec, layer, label)
    spec = _narrow_choices(spec, layer, label)
    return replace(
        spec,
        name=layer.name or spec.name,
        title=layer.title or spec.title,
        description=layer.description or spec.description,
        default=spec.default if layer.default is None else layer.default,
    )


def legacy_type(spec: InputSpec) -> str:
    """The type string of the original bridge's `/workflow-info`."""
    if spec.type is InputType.IMAGE:
        return image_type(spec.default) or "image/png"
    if spec.type is InputType.CHOICE and spec.choices:
        # A combo of numbers reads as a number to the original bridge's clients.
        kinds = {type(choice) for choice in spec.choices}
        if kinds == {int}:
            return "int"
        return "float" if kinds <= {int, float} else "str"
    return _LEGACY_TYPES.get(spec.type, "str")


def _from_class_input(known: ClassInput) -> InputSpec | None:
    kind = _PRIMITIVES.get(known.tag)
    if kind is None:
        return None
    options = known.options
    tooltip = options.get("tooltip")
    return _blank(
        kind,
        default=options.get("default"),
        minimum=_finite(options.get("min")),
        maximum=_finite(options.get("max")),
        step=_finite(options.get("step")),
        choices=known.choices or None if kind is InputType.CHOICE else None,
        multiline=bool(options.get("multiline")),
        description=tooltip if isinstance(tooltip, str) else "",
    )


def _from_literal(literal: object) -> InputSpec | None:
    # bool before int: True is an int to Python, never to a client.
    if isinstance(literal, bool):
        return _blank(InputType.BOOLEAN)
    if isinstance(literal, int):
        return _blank(InputType.INT)
    if isinstance(literal, float):
        return _blank(InputType.FLOAT)
    if isinstance(literal, str):
        return _blank(InputType.STRING, multiline="\n" in literal)
    return None


def _blank(kind: InputType, **fields: Any) -> InputSpec:
    # Placeholders: derive_spec fills in where the input is.
    return InputSpec("", "", "", "", kind, "", "", **fields)


def _is_image(
    class_type: str, name: str, known: ClassInput | None, value: object
) -> bool:
    if (class_type, name) in _IMAGE_LOADER_INPUTS:
        return True
    if known is not None and known.options.get("image_upload"):
        return True
    return image_type(value) is not None


def _narrow_bounds(spec: InputSpec, layer: InputDeclaration, label: str) -> InputSpec:
    given = (layer.minimum, layer.maximum, layer.step)
    if all(value is None for value in given):
        return spec
    if spec.type not in (InputType.INT, InputType.FLOAT):
        raise WorkflowInvalid(
            f"{label}: min/max/step apply to numbers, not {spec.type}"
        )
    if (
        layer.minimum is not None
        and spec.minimum is not None
        and layer.minimum < spec.minimum
    ):
        raise WorkflowInvalid(
            f"{label}: min {layer.minimum} is below the node's minimum {spec.minimum}; "
            "a declaration may narrow the range, never widen it"
        )
    if (
        layer.maximum is not None
        and spec.maximum is not None
        and layer.maximum > spec.maximum
    ):
        raise WorkflowInvalid(
            f"{label}: max {layer.maximum} is above the node's maximum {spec.maximum}; "
            "a declaration may narrow the range, never widen it"
        )
    minimum = spec.minimum if layer.minimum is None else layer.minimum
    maximum = spec.maximum if layer.maximum is None else layer.maximum
    if minimum is not None and maximum is not None and minimum > maximum:
        raise WorkflowInvalid(f"{label}: min {minimum} is greater than max {maximum}")
    if layer.step is not None and layer.step <= 0:
        raise WorkflowInvalid(f"{label}: step must be positive, got {layer.step}")
    step = spec.step if layer.step is None else layer.step
    return replace(spec, minimum=minimum, maximum=maximum, step=step)


def _narrow_choices(spec: InputSpec, layer: InputDeclaration, label: str) -> InputSpec:
    if layer.choices is None:
        return spec
    if spec.type in (InputType.IMAGE, InputType.BOOLEAN):
        raise WorkflowInvalid(f"{label}: choices do not apply to a {spec.type} input")
    if spec.choices is not None:
        extra = [choice for choice in layer.choices if choice not in spec.choices]
        if extra:
            raise WorkflowInvalid(
                f"{label}: choices {extra} are not offered by the node; "
                "a declaration may narrow the choices, never add to them"
            )
    return replace(spec, type=InputType.CHOICE, choices=layer.choices)


def _finite(value: object) -> Number | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return value if math.isfinite(value) else None


def _text(data: Mapping[str, Any], key: str, where: str) -> str | None:
    value = data.get(key)
    if value is None or isinstance(value, str):
        return value
    raise WorkflowInvalid(f"{where}: {key!r} must be a string, got {value!r}")


def _number(data: Mapping[str, Any], key: str, where: str) -> Number | None:
    value = data.get(key)
    number = _finite(value)
    if value is not None and number is None:
        raise WorkflowInvalid(f"{where}: {key!r} must be a number, got {value!r}")
    return number


def _flag(data: Mapping[str, Any], key: str, where: str) -> bool | None:
    value = data.get(key)
    if value is None or isinstance(value, bool):
        return value
    raise WorkflowInvalid(f"{where}: {key!r} must be true or false, got {value!r}")


def _choices(data: Mapping[str, Any], where: str) -> tuple[Any, ...] | None:
    value = data.get("choices")
    if value is None:
        return None
    if not isinstance(value, list | tuple) or not value:
        raise WorkflowInvalid(
            f"{where}: 'choices' must be a non-empty list, got {value!r}"
        )
    return tuple(value)
