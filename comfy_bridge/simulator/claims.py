"""Claiming what an API-format workflow needs: its node classes and model files.

Classes the simulator does not know become generic stand-ins. Their object_info is
inferred from the workflow itself: literal values give INT/FLOAT/STRING/BOOLEAN
inputs (or a combo for model file names), links give typed inputs, and each output
takes the type its consumers expect. At run time a stand-in passes matching inputs
through, and one that nothing consumes acts as an output node and writes files.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from PIL import Image

from comfy_bridge.simulator import images
from comfy_bridge.simulator.nodes import (
    Latent,
    NodeContext,
    NodeResult,
    Resource,
    seed_of,
    write_output,
)
from comfy_bridge.simulator.specs import (
    INT_MAX,
    InputSpec,
    NodeFunction,
    NodeSpec,
    boolean,
    link,
    text,
)

logger = logging.getLogger(__name__)

Graph = dict[str, dict[str, Any]]
MODEL_EXTENSIONS = (".safetensors", ".ckpt", ".pt", ".pth", ".bin", ".gguf", ".sft")
# Input name fragments that tell which model folder a file name belongs to.
FOLDER_HINTS = (
    ("ckpt", "checkpoints"),
    ("lora", "loras"),
    ("vae", "vae"),
    ("control", "controlnet"),
    ("unet", "diffusion_models"),
    ("clip_vision", "clip_vision"),
    ("clip", "text_encoders"),
    ("upscale", "upscale_models"),
    ("motion", "animatediff_models"),
    ("model", "animatediff_models"),
)
ANIMATION_WORDS = ("video", "combine", "gif", "animat")
IMAGE_WORDS = ("save", "preview", "compar", "image")


def is_link(value: Any) -> bool:
    return (
        isinstance(value, list)
        and len(value) == 2
        and isinstance(value[0], str)
        and isinstance(value[1], int)
    )


def is_model_file(value: Any) -> bool:
    return isinstance(value, str) and value.lower().endswith(MODEL_EXTENSIONS)


def model_folder(input_name: str) -> str:
    lowered = input_name.lower()
    return next((folder for hint, folder in FOLDER_HINTS if hint in lowered), "models")


@dataclass
class ClassUsage:
    """How one unknown class is used across a workflow's nodes."""

    name: str
    literals: dict[str, Any] = field(default_factory=dict)
    links: dict[str, tuple[str, int]] = field(default_factory=dict)
    output_types: dict[int, str] = field(default_factory=dict)
    consumed: bool = False


def usages(graph: Graph, known: dict[str, NodeSpec]) -> dict[str, ClassUsage]:
    """Collect inputs, links and consumer-expected output types of unknown classes."""
    found: dict[str, ClassUsage] = {}
    for node in graph.values():
        class_type = node["class_type"]
        if class_type not in known:
            usage = found.setdefault(class_type, ClassUsage(class_type))
            for name, value in node.get("inputs", {}).items():
                if is_link(value):
                    usage.links.setdefault(name, (value[0], value[1]))
                else:
                    usage.literals.setdefault(name, value)
    for node in graph.values():
        consumer = known.get(node["class_type"])
        for name, value in node.get("inputs", {}).items():
            source = graph.get(value[0]) if is_link(value) else None
            if source is None or source["class_type"] not in found:
                continue
            usage = found[source["class_type"]]
            usage.consumed = True
            spec = consumer.input(name) if consumer else None
            expected = spec.type if spec and not spec.is_combo else "*"
            if usage.output_types.get(value[1], "*") == "*":
                usage.output_types[value[1]] = expected
    return found


def literal_input(name: str, value: Any) -> tuple[InputSpec, str | None]:
    """The spec a literal value implies, and the model folder if it names a model."""
    if isinstance(value, bool):
        return boolean(name, value), None
    if isinstance(value, int):
        bound = INT_MAX
        return InputSpec(
            name, "INT", {"default": value, "min": -bound, "max": bound}
        ), None
    if isinstance(value, float):
        options = {"default": value, "min": -1e18, "max": 1e18, "step": 0.01}
        return InputSpec(name, "FLOAT", options), None
    if is_model_file(value):
        folder = model_folder(name)
        return InputSpec(name, "COMBO", model_folder=folder), folder
    if isinstance(value, str):
        return text(name, value), None
    return InputSpec(name, "*", section="optional", bare=True), None


def source_type(
    graph: Graph, known: dict[str, NodeSpec], target: tuple[str, int]
) -> str:
    source = graph.get(target[0])
    spec = known.get(source["class_type"]) if source else None
    if spec is None or target[1] >= len(spec.outputs):
        return "*"
    return spec.outputs[target[1]]


def stand_in_spec(
    usage: ClassUsage, graph: Graph, known: dict[str, NodeSpec]
) -> tuple[NodeSpec, dict[str, str]]:
    """A generic stand-in for one unknown class, plus the model files it names."""
    inputs: list[InputSpec] = []
    models: dict[str, str] = {}
    for name, value in usage.literals.items():
        item, folder = literal_input(name, value)
        inputs.append(item)
        if folder is not None:
            models[value] = folder
    for name, target in usage.links.items():
        inputs.append(link(name, source_type(graph, known, target)))
    count = max(usage.output_types, default=-1) + 1
    outputs = tuple(usage.output_types.get(index, "*") for index in range(count))
    output_node = not usage.consumed
    spec = NodeSpec(
        usage.name,
        tuple(inputs),
        outputs,
        stand_in(usage.name, outputs, output_node),
        "simulated",
        output_node=output_node,
        python_module="custom_nodes.simulated",
    )
    return spec, models


def named_stand_in(name: str) -> NodeSpec:
    """A class claimed by name alone (`--node`): it takes anything and passes it on."""
    lowered = name.lower()
    output_node = any(word in lowered for word in ("save", "preview", "combine"))
    outputs: tuple[str, ...] = () if output_node else ("*",)
    return NodeSpec(
        name,
        (),
        outputs,
        stand_in(name, outputs, output_node),
        "simulated",
        output_node=output_node,
        python_module="custom_nodes.simulated",
        lenient=True,
    )


def stand_in(name: str, outputs: tuple[str, ...], output_node: bool) -> NodeFunction:
    """The run function of a generic stand-in."""
    lowered = name.lower()
    produces = None
    if output_node:
        produces = "text"
        if any(word in lowered for word in ANIMATION_WORDS):
            produces = "gifs"
        elif any(word in lowered for word in IMAGE_WORDS):
            produces = "images"

    async def run(ctx: NodeContext, inputs: dict[str, Any]) -> NodeResult:
        await ctx.pause(ctx.options.model_step_s)
        values = tuple(pass_through(kind, inputs) for kind in outputs)
        ui = produce(ctx, produces, inputs) if produces else None
        return NodeResult(values, ui)

    return run


def value_type(value: Any) -> str:
    if isinstance(value, list) and value and isinstance(value[0], Image.Image):
        return "MASK" if value[0].mode == "L" else "IMAGE"
    if isinstance(value, Latent):
        return "LATENT"
    if isinstance(value, Resource):
        return value.kind
    if isinstance(value, bool):
        return "BOOLEAN"
    return {int: "INT", float: "FLOAT", str: "STRING"}.get(type(value), "*")


def pass_through(kind: str, inputs: dict[str, Any]) -> Any:
    """The first input of the wanted type, or a made-up value of that type."""
    for value in inputs.values():
        if kind == "*" or value_type(value) == kind:
            return value
    return made_up(kind, inputs)


def made_up(kind: str, inputs: dict[str, Any]) -> Any:
    seed = seed_of(sorted((key, repr(value)) for key, value in inputs.items()))
    strings = [value for value in inputs.values() if isinstance(value, str)]
    defaults: dict[str, Any] = {
        "IMAGE": [images.picture(seed, 512, 512)],
        "MASK": [Image.new("L", (512, 512), 255)],
        "LATENT": Latent(512, 512, 1, seed),
        "INT": 1,
        "FLOAT": 1.0,
        "STRING": strings[0] if strings else "",
        "BOOLEAN": False,
    }
    return defaults.get(kind, Resource(kind, str(seed)))


def frames_of(inputs: dict[str, Any]) -> images.Batch:
    batch = pass_through("IMAGE", inputs)
    return batch if isinstance(batch, list) else made_up("IMAGE", inputs)


def produce(ctx: NodeContext, produces: str, inputs: dict[str, Any]) -> dict[str, Any]:
    """The files (or text) a stand-in output node shows, like its real counterpart."""
    prefix = str(inputs.get("filename_prefix", "ComfyUI"))
    if produces == "gifs":
        return {"gifs": [write_animation(ctx, prefix, inputs)]}
    if produces == "images":
        kind = "output" if "save" in ctx.node_class.lower() else "temp"
        if kind == "temp":
            prefix = ctx.storage.temp_prefix()
        saved = []
        for image in frames_of(inputs):
            path, item = ctx.storage.next_output(kind, prefix, "png")
            write_output(ctx.options, path, images.png(image))
            saved.append(item.ui())
        return {"images": saved}
    strings = [str(value) for value in inputs.values() if isinstance(value, str)]
    return {"text": strings[:1] or [""]}


def write_animation(
    ctx: NodeContext, prefix: str, inputs: dict[str, Any]
) -> dict[str, Any]:
    wanted = str(inputs.get("format", "image/gif"))
    extension = "webp" if "webp" in wanted else "gif"
    frame_rate = float(inputs.get("frame_rate", 8))
    data = images.animation(frames_of(inputs), frame_rate, extension.upper())
    path, item = ctx.storage.next_output("output", prefix, extension)
    write_output(ctx.options, path, data)
    return {**item.ui(), "format": f"image/{extension}", "frame_rate": frame_rate}


def claim(
    graph: Graph, known: dict[str, NodeSpec]
) -> tuple[list[NodeSpec], dict[str, str], set[str]]:
    """New stand-in specs, model files (name → folder) and input files a graph needs."""
    models: dict[str, str] = {}
    input_files: set[str] = set()
    for node in graph.values():
        spec = known.get(node["class_type"])
        for name, value in node.get("inputs", {}).items():
            item = spec.input(name) if spec else None
            if item is None or not isinstance(value, str):
                continue
            if item.model_folder is not None:
                models[value] = item.model_folder
            if item.input_files:
                input_files.add(value)
    specs = []
    for usage in usages(graph, known).values():
        spec, named = stand_in_spec(usage, graph, known)
        specs.append(spec)
        models.update(named)
    return specs, models, input_files
