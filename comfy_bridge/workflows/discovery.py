"""Finding a workflow's exposed inputs: `_meta` marks and operator declarations.

A node's `_meta` may carry, besides the editor's `title`:

- `apiinput`: the original bridge's mark, a comma-separated list of the node's
  input names; each becomes an input named `<node id>/<input name>`.
- `descimage`: the original bridge's description image, one file name for the
  node's apiinputs or a list with one name (or null) per apiinput.
- `bridge_inputs`: our editor extension's mark, an object keyed by the node's
  input name whose values may hold `name`, `title`, `description`, `default`,
  `min`, `max`, `step`, `choices` and `required`; listing an input exposes it.

Declarations given at registration take the same keys plus `node` and `input`
and are applied last, so an operator can rename or narrow what an author marked.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path, PurePosixPath
from typing import Any

from comfy_bridge.exceptions import WorkflowInvalid
from comfy_bridge.workflows.graph import Graph, is_link, node_title
from comfy_bridge.workflows.objectinfo import ObjectInfo, class_input, class_input_names
from comfy_bridge.workflows.schema import check_default
from comfy_bridge.workflows.specs import (
    InputDeclaration,
    InputSpec,
    InputType,
    derive_spec,
    legacy_type,
    narrow,
)

# The original bridge's generation request carries the alias under this key,
# next to the input values.
RESERVED_NAMES = frozenset({"workflow"})


@dataclass
class _Exposure:
    node_id: str
    input: str
    descimage: str | None = None
    layers: list[InputDeclaration] = field(default_factory=list)


def discover_inputs(
    graph: Graph,
    declarations: Iterable[InputDeclaration],
    object_info: ObjectInfo,
    descimage_dir: Path | None = None,
) -> tuple[InputSpec, ...]:
    """The inputs a graph exposes, typed and bounded, in graph order."""
    exposures = _marked(graph)
    for declaration in declarations:
        if declaration.node not in graph:
            raise WorkflowInvalid(
                f"declared input {declaration.input!r} names node "
                f"{declaration.node!r}, which is not in the workflow"
            )
        key = (declaration.node, declaration.input)
        exposure = exposures.setdefault(key, _Exposure(*key))
        exposure.layers.append(declaration)
    specs = tuple(
        _spec(graph, exposure, object_info, descimage_dir)
        for exposure in exposures.values()
    )
    _check_names(specs)
    return specs


def as_declarations(
    items: Iterable[InputDeclaration | Mapping[str, Any]],
) -> list[InputDeclaration]:
    """Declarations given as objects or as JSON-like mappings."""
    return [
        item
        if isinstance(item, InputDeclaration)
        else InputDeclaration.from_mapping(item, where=f"declaration {index}")
        for index, item in enumerate(items)
    ]


def _marked(graph: Graph) -> dict[tuple[str, str], _Exposure]:
    exposures: dict[tuple[str, str], _Exposure] = {}
    for node_id, node in graph.items():
        meta = node.get("_meta")
        if not isinstance(meta, Mapping):
            continue
        names = _apiinput_names(node_id, meta.get("apiinput"))
        images = _descimages(node_id, meta.get("descimage"), len(names))
        for name, image in zip(names, images, strict=True):
            exposures[(node_id, name)] = _Exposure(node_id, name, image)
        for name, mark in _bridge_marks(node_id, meta.get("bridge_inputs")).items():
            exposure = exposures.setdefault((node_id, name), _Exposure(node_id, name))
            exposure.layers.append(mark)
    return exposures


def _apiinput_names(node_id: str, value: object) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        value = value.split(",")
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise WorkflowInvalid(
            f"node {node_id!r}: _meta.apiinput must be a comma-separated string, "
            f"got {value!r}"
        )
    names = (name.strip() for name in value)
    return list(dict.fromkeys(name for name in names if name))


def _descimages(node_id: str, value: object, count: int) -> list[str | None]:
    if value is None or value == "":
        return [None] * count
    if isinstance(value, str):
        return [value] * count
    if isinstance(value, list) and len(value) == count:
        return [_image_name(node_id, item) for item in value]
    raise WorkflowInvalid(
        f"node {node_id!r}: _meta.descimage must be a file name or a list of "
        f"{count} (one per apiinput), got {value!r}"
    )


def _image_name(node_id: str, item: object) -> str | None:
    if item is None or item == "":
        return None
    if isinstance(item, str):
        return item
    raise WorkflowInvalid(
        f"node {node_id!r}: _meta.descimage entry {item!r} is not a name"
    )


def _bridge_marks(node_id: str, value: object) -> dict[str, InputDeclaration]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise WorkflowInvalid(
            f"node {node_id!r}: _meta.bridge_inputs must be an object keyed by "
            f"input name, got {value!r}"
        )
    marks: dict[str, InputDeclaration] = {}
    for name, mark in value.items():
        where = f"node {node_id!r} _meta.bridge_inputs[{name!r}]"
        if isinstance(mark, Mapping) and ({"node", "input"} & set(mark)):
            raise WorkflowInvalid(
                f"{where}: 'node' and 'input' are implied by the mark"
            )
        marks[str(name)] = InputDeclaration.from_mapping(
            mark, where=where, node=node_id, input=str(name)
        )
    return marks


def _spec(
    graph: Graph,
    exposure: _Exposure,
    object_info: ObjectInfo,
    descimage_dir: Path | None,
) -> InputSpec:
    node = graph[exposure.node_id]
    class_type = node["class_type"]
    inputs = node["inputs"]
    known = class_input(object_info, class_type, exposure.input)
    where = f"node {exposure.node_id!r} ({class_type}) input {exposure.input!r}"
    if exposure.input not in inputs and known is None:
        raise WorkflowInvalid(
            f"{where} does not exist; {_known_inputs(node, object_info)}"
        )
    literal = inputs.get(exposure.input)
    if is_link(literal):
        raise WorkflowInvalid(
            f"{where} is a link from node {str(literal[0])!r}, not a value; "
            "only inputs holding a value can be exposed"
        )
    spec = derive_spec(class_type, exposure.input, literal, known)
    if spec is None:
        raise WorkflowInvalid(f"{where} {_untyped_reason(known, literal)}")
    spec = replace(
        spec,
        name=f"{exposure.node_id}/{exposure.input}",
        node_id=exposure.node_id,
        title=f"{node_title(node)} / {exposure.input}",
        descimage=_descimage_path(exposure, descimage_dir),
    )
    return _finish(spec, exposure.layers)


def _finish(spec: InputSpec, layers: list[InputDeclaration]) -> InputSpec:
    required: bool | None = None
    for layer in layers:
        spec = narrow(spec, layer)
        required = required if layer.required is None else layer.required
    if required is None:
        # A file name in the saved graph points at the author's server, not
        # at a file the bridge placed; clients must upload one.
        required = spec.type is InputType.IMAGE or spec.default is None
    spec = replace(spec, required=required, legacy_type=legacy_type(spec))
    check_default(spec)
    return spec


def _untyped_reason(known: object, literal: object) -> str:
    if known is not None:
        return "takes a link from another node, not a value a client could set"
    return f"holds {literal!r}, a value of no type a client could set"


def _known_inputs(node: Mapping[str, Any], object_info: ObjectInfo) -> str:
    names = list(
        dict.fromkeys(
            [*node["inputs"], *class_input_names(object_info, node["class_type"])]
        )
    )
    return f"the node's inputs are: {', '.join(names) or 'none'}"


def _descimage_path(exposure: _Exposure, directory: Path | None) -> Path | None:
    name = exposure.descimage
    if name is None:
        return None
    if PurePosixPath(name).name != name or "\\" in name or name in (".", ".."):
        raise WorkflowInvalid(
            f"node {exposure.node_id!r}: _meta.descimage {name!r} must be a plain "
            "file name"
        )
    return (directory or Path()) / name


def _check_names(specs: tuple[InputSpec, ...]) -> None:
    seen: dict[str, InputSpec] = {}
    for spec in specs:
        if not spec.name or spec.name in RESERVED_NAMES:
            raise WorkflowInvalid(
                f"node {spec.node_id!r} input {spec.input!r}: {spec.name!r} "
                "cannot be an input's name"
            )
        first = seen.setdefault(spec.name, spec)
        if first is not spec:
            raise WorkflowInvalid(
                f"two inputs are named {spec.name!r}: node {first.node_id!r} input "
                f"{first.input!r} and node {spec.node_id!r} input {spec.input!r}"
            )
