"""ComfyUI graphs in API format: parsing, links, output nodes and requirements."""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, TypeAlias

from comfy_bridge.exceptions import WorkflowInvalid
from comfy_bridge.workflows.objectinfo import (
    ObjectInfo,
    class_input,
    class_input_names,
    is_output_class,
)

Graph: TypeAlias = dict[str, dict[str, Any]]

# `_meta` keys only the bridge reads; `bind` removes them from what backends get.
BRIDGE_META_KEYS = ("apiinput", "descimage", "bridge_inputs")

_EXPORT_HINT = (
    'export it with the editor\'s "Export (API)" command (or enable dev mode '
    'and use "Save (API Format)")'
)
_MODEL_SUFFIXES = (".safetensors", ".ckpt", ".pt", ".pth", ".bin", ".gguf", ".sft")
_MODEL_INPUT_NAME = re.compile(
    r"^(ckpt|lora|vae|unet|clip|clip_vision|control_net|controlnet|model|"
    r"upscale_model|style_model|gligen|hypernetwork|photomaker_model)_name\d*$"
    r"|^upscale_model$"
)
# ComfyUI's model folders (GET /models), keyed by the loader input naming them.
_MODEL_FOLDERS = {
    "ckpt_name": "checkpoints",
    "lora_name": "loras",
    "vae_name": "vae",
    "unet_name": "diffusion_models",
    "control_net_name": "controlnet",
    "style_model_name": "style_models",
    "gligen_name": "gligen",
    "hypernetwork_name": "hypernetworks",
    "upscale_model": "upscale_models",
    "photomaker_model_name": "photomaker",
}
_CLASS_MODEL_FOLDERS = {
    ("CLIPVisionLoader", "clip_name"): "clip_vision",
    ("UpscaleModelLoader", "model_name"): "upscale_models",
}


@dataclass(frozen=True)
class Requirements:
    """What a backend needs to run a graph: node classes and model files."""

    node_classes: frozenset[str]
    models: frozenset[tuple[str, str]]


def parse_graph(obj: object) -> Graph:
    """Check that `obj` is a graph in ComfyUI's API format; return a copy of it."""
    if isinstance(obj, str | bytes):
        obj = _decode(obj)
    body = _unwrap(obj)
    graph = {
        str(node_id): _parse_node(str(node_id), node) for node_id, node in body.items()
    }
    if not graph:
        raise WorkflowInvalid("the workflow has no nodes")
    _check_links(graph)
    return copy.deepcopy(graph)


def is_link(value: object) -> bool:
    """Whether an input value is a link `[node_id, output_index]`."""
    return (
        isinstance(value, list)
        and len(value) == 2
        and isinstance(value[0], str | int)
        and isinstance(value[1], int)
        and not isinstance(value[0], bool)
        and not isinstance(value[1], bool)
    )


def node_title(node: Mapping[str, Any]) -> str:
    """The node's title in the editor, or its class when it has none."""
    meta = node.get("_meta")
    if isinstance(meta, Mapping) and isinstance(meta.get("title"), str):
        return str(meta["title"])
    return str(node["class_type"])


def output_nodes(graph: Graph, object_info: ObjectInfo) -> frozenset[str]:
    """Ids of the nodes whose class writes results (SaveImage, PreviewImage, ...)."""
    return frozenset(
        node_id
        for node_id, node in graph.items()
        if is_output_class(node["class_type"], object_info)
    )


def requirements(graph: Graph, object_info: ObjectInfo | None = None) -> Requirements:
    """The node classes and the (folder or input name, file) models a graph names."""
    info = object_info or {}
    models = {
        (_model_folder(node["class_type"], name), value)
        for node in graph.values()
        for name, value in node["inputs"].items()
        if isinstance(value, str)
        and _names_model(info, node["class_type"], name, value)
    }
    classes = frozenset(node["class_type"] for node in graph.values())
    return Requirements(node_classes=classes, models=frozenset(models))


def model_files(object_info: ObjectInfo) -> frozenset[tuple[str, str]]:
    """Every (folder, file) the model combos list, named as `requirements` does."""
    found: set[tuple[str, str]] = set()
    for class_type in object_info:
        for name in class_input_names(object_info, class_type):
            spec = class_input(object_info, class_type, name)
            if spec is None or spec.tag != "COMBO" or spec.options.get("image_upload"):
                continue
            folder = _model_folder(class_type, name)
            found.update(
                (folder, choice)
                for choice in spec.choices
                if isinstance(choice, str) and _is_model_file(choice)
            )
    return frozenset(found)


def strip_bridge_meta(graph: Graph) -> None:
    """Remove the `_meta` keys only the bridge reads, in place."""
    for node in graph.values():
        meta = node.get("_meta")
        if not isinstance(meta, dict):
            continue
        for key in BRIDGE_META_KEYS:
            meta.pop(key, None)
        if not meta:
            del node["_meta"]


def _decode(text: str | bytes) -> object:
    try:
        return json.loads(text)
    except ValueError as exc:
        raise WorkflowInvalid(f"the workflow is not valid JSON: {exc}") from exc


def _unwrap(obj: object) -> Mapping[str, Any]:
    if isinstance(obj, list):
        raise WorkflowInvalid(
            "the workflow is a list of nodes, which is the editor's format, "
            f"not the API format; {_EXPORT_HINT}"
        )
    if not isinstance(obj, Mapping):
        raise WorkflowInvalid(
            f"a workflow must be a JSON object of nodes, not {type(obj).__name__}"
        )
    if "nodes" in obj and ("links" in obj or isinstance(obj["nodes"], list)):
        raise WorkflowInvalid(
            "the workflow is in the editor's format (top-level 'nodes' and "
            f"'links'), not the API format; {_EXPORT_HINT}"
        )
    # The body of POST /prompt wraps the graph; a node is never named so
    # without also having a class_type.
    prompt = obj.get("prompt")
    if prompt is not None and not (
        isinstance(prompt, Mapping) and "class_type" in prompt
    ):
        return _unwrap(prompt)
    return obj


def _parse_node(node_id: str, node: object) -> dict[str, Any]:
    if not isinstance(node, Mapping):
        raise WorkflowInvalid(f"node {node_id!r} is not an object")
    class_type = node.get("class_type")
    if not isinstance(class_type, str) or not class_type:
        raise WorkflowInvalid(f"node {node_id!r} has no class_type")
    if not isinstance(node.get("inputs"), Mapping):
        raise WorkflowInvalid(f"node {node_id!r} ({class_type}) has no inputs object")
    return dict(node)


def _check_links(graph: Graph) -> None:
    for node_id, node in graph.items():
        for name, value in node["inputs"].items():
            if is_link(value) and str(value[0]) not in graph:
                raise WorkflowInvalid(
                    f"node {node_id!r} input {name!r} links to node {str(value[0])!r}, "
                    "which is not in the workflow"
                )


def _names_model(info: ObjectInfo, class_type: str, name: str, value: str) -> bool:
    spec = class_input(info, class_type, name)
    if spec is None:
        return _MODEL_INPUT_NAME.match(name) is not None or _is_model_file(value)
    if spec.tag != "COMBO" or spec.options.get("image_upload"):
        return False
    # Model combos list the files a backend has, often none at all; the
    # value's own suffix then tells a model apart from e.g. a sampler name.
    return _is_model_file(value) or any(
        isinstance(choice, str) and _is_model_file(choice) for choice in spec.choices
    )


def _is_model_file(value: str) -> bool:
    return value.lower().endswith(_MODEL_SUFFIXES)


def _model_folder(class_type: str, name: str) -> str:
    folder = _CLASS_MODEL_FOLDERS.get((class_type, name)) or _MODEL_FOLDERS.get(name)
    if folder is not None:
        return folder
    if re.fullmatch(r"clip_name\d*", name):
        return "text_encoders"
    return name
