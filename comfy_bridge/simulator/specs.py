"""Node definitions as /object_info describes them, written as small declarations."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from comfy_bridge.simulator.nodes import NodeContext, NodeResult

Section = Literal["required", "optional", "hidden"]
PRIMITIVES = frozenset({"INT", "FLOAT", "STRING", "BOOLEAN"})
INT_MAX = 0xFFFF_FFFF_FFFF_FFFF

NodeFunction = Callable[["NodeContext", dict[str, Any]], Awaitable["NodeResult"]]


@dataclass(frozen=True)
class InputSpec:
    """One input of a node: a link type, a primitive with bounds, or a combo.

    A combo's values are `choices`, plus the models claimed in `model_folder`, plus
    the files of the input folder when `input_files` is set.
    """

    name: str
    type: str
    options: dict[str, Any] = field(default_factory=dict)
    section: Section = "required"
    choices: tuple[str, ...] = ()
    model_folder: str | None = None
    input_files: bool = False
    bare: bool = False

    @property
    def is_combo(self) -> bool:
        return self.type == "COMBO"


@dataclass(frozen=True)
class NodeSpec:
    """A node class: its inputs, outputs and the coroutine that runs it."""

    name: str
    inputs: tuple[InputSpec, ...]
    outputs: tuple[str, ...]
    run: NodeFunction
    category: str
    display_name: str | None = None
    output_names: tuple[str, ...] | None = None
    output_tooltips: tuple[str, ...] | None = None
    output_node: bool = False
    python_module: str = "nodes"
    description: str = ""
    # Inputs a node checks itself, so the generic combo check skips them.
    self_validated: frozenset[str] = frozenset()
    # A class claimed by name only: any input passes and any output index links.
    lenient: bool = False

    def input(self, name: str) -> InputSpec | None:
        return next((spec for spec in self.inputs if spec.name == name), None)

    def section(self, section: Section) -> list[InputSpec]:
        return [spec for spec in self.inputs if spec.section == section]


def link(name: str, type_: str, section: Section = "required") -> InputSpec:
    return InputSpec(name, type_, section=section, bare=True)


def integer(
    name: str, default: int, low: int, high: int, step: int | None = 1, **extra: Any
) -> InputSpec:
    options: dict[str, Any] = {"default": default, "min": low, "max": high}
    if step is not None:
        options["step"] = step
    return InputSpec(name, "INT", {**options, **extra})


def number(
    name: str, default: float, low: float, high: float, step: float, **extra: Any
) -> InputSpec:
    options = {"default": default, "min": low, "max": high, "step": step, **extra}
    return InputSpec(name, "FLOAT", options)


def text(
    name: str, default: str | None = None, multiline: bool = False, **extra: Any
) -> InputSpec:
    options: dict[str, Any] = dict(extra)
    if default is not None:
        options["default"] = default
    if multiline:
        options["multiline"] = True
        options["dynamicPrompts"] = True
    return InputSpec(name, "STRING", options)


def boolean(name: str, default: bool) -> InputSpec:
    return InputSpec(name, "BOOLEAN", {"default": default})


def combo(name: str, choices: Sequence[str], **options: Any) -> InputSpec:
    return InputSpec(name, "COMBO", dict(options), choices=tuple(choices))


def model(name: str, folder: str) -> InputSpec:
    return InputSpec(name, "COMBO", model_folder=folder)


def hidden(name: str, type_: str) -> InputSpec:
    return InputSpec(name, type_, section="hidden")


def combo_values(
    spec: InputSpec, models: dict[str, list[str]], input_files: list[str]
) -> list[str]:
    """Every value a combo accepts right now."""
    values = list(spec.choices)
    if spec.model_folder is not None:
        values += models.get(spec.model_folder, [])
    if spec.input_files:
        values += input_files
    return values


def render_input(
    spec: InputSpec, models: dict[str, list[str]], input_files: list[str]
) -> Any:
    """The object_info form of one input: `[TYPE, {options}]`, `[TYPE]` or a name."""
    if spec.section == "hidden":
        return spec.type
    head: Any = combo_values(spec, models, input_files) if spec.is_combo else spec.type
    if spec.bare and not spec.options:
        return [head]
    return [head, dict(spec.options)]


def render_node(
    spec: NodeSpec, models: dict[str, list[str]], input_files: list[str]
) -> dict[str, Any]:
    """The /object_info entry of one class."""
    sections: dict[str, dict[str, Any]] = {}
    order: dict[str, list[str]] = {}
    for item in spec.inputs:
        rendered = render_input(item, models, input_files)
        sections.setdefault(item.section, {})[item.name] = rendered
        order.setdefault(item.section, []).append(item.name)
    sections.setdefault("required", {})
    rendered = {
        "input": sections,
        "input_order": order or {"required": []},
        "output": list(spec.outputs),
        "output_is_list": [False] * len(spec.outputs),
        "output_name": list(spec.output_names or spec.outputs),
        "name": spec.name,
        "display_name": spec.display_name or spec.name,
        "description": spec.description,
        "python_module": spec.python_module,
        "category": spec.category,
        "output_node": spec.output_node,
    }
    if spec.output_tooltips is not None:
        rendered["output_tooltips"] = list(spec.output_tooltips)
    return rendered
