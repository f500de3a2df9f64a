"""What the simulated nodes do when they run.

Model-free image nodes really compute with Pillow; model nodes are stand-ins that
take time, report progress, and pass along small descriptions of what a real node
would have produced, so a VAE decode can draw a picture that depends on the seed.
"""

from __future__ import annotations

import hashlib
import io
import zipfile
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol

from PIL import Image

from comfy_bridge.simulator import images
from comfy_bridge.simulator.options import FaultKind, SimulatorOptions
from comfy_bridge.simulator.storage import SavedFile, Storage


class NodeContext(Protocol):
    """What a running node may ask of the executor."""

    node_id: str
    node_class: str
    options: SimulatorOptions
    storage: Storage

    def claimed_input(self, name: str) -> bool: ...

    def png_text(self) -> dict[str, str]: ...

    async def step(self, value: int, total: int, seconds: float) -> None: ...

    async def pause(self, seconds: float) -> None: ...

    async def send_preview(self, image: Image.Image) -> None: ...


@dataclass
class NodeResult:
    """A node's outputs by index, plus the UI data clients see in `executed`."""

    outputs: tuple[Any, ...]
    ui: dict[str, Any] | None = None


@dataclass(frozen=True)
class Latent:
    """A stand-in latent: its size, and a seed that decides the decoded picture."""

    width: int
    height: int
    batch_size: int
    seed: int = 0


@dataclass(frozen=True)
class Resource:
    """A stand-in for a model, conditioning or other opaque object."""

    kind: str
    detail: str = ""
    extras: tuple[str, ...] = field(default_factory=tuple)


def seed_of(*parts: Any) -> int:
    """A stable 63-bit number from any values (the same inputs give the same seed)."""
    digest = hashlib.sha256(repr(parts).encode()).digest()
    return int.from_bytes(digest[:8], "big") >> 1


# ---------------------------------------------------------------------------- images


async def empty_image(ctx: NodeContext, inputs: dict[str, Any]) -> NodeResult:
    batch = images.solid(
        inputs["width"], inputs["height"], inputs["batch_size"], inputs["color"]
    )
    return NodeResult((batch,))


async def load_image(ctx: NodeContext, inputs: dict[str, Any]) -> NodeResult:
    image = _open_input(ctx, inputs["image"])
    mask = images.mask_from(image, "alpha")
    return NodeResult(([image.convert("RGB")], [mask]))


async def load_image_mask(ctx: NodeContext, inputs: dict[str, Any]) -> NodeResult:
    image = _open_input(ctx, inputs["image"])
    return NodeResult(([images.mask_from(image, inputs["channel"])],))


def _open_input(ctx: NodeContext, name: str) -> Image.Image:
    path = ctx.storage.resolve_annotated(name, "input")
    if not path.is_file() and ctx.claimed_input(name):
        # A file a claimed workflow names but nobody uploaded: draw one.
        return images.picture(seed_of(name), 512, 512)
    with Image.open(path) as opened:
        opened.load()
        return opened.copy()


async def invert_image(ctx: NodeContext, inputs: dict[str, Any]) -> NodeResult:
    return NodeResult((images.invert(inputs["image"]),))


async def scale_image(ctx: NodeContext, inputs: dict[str, Any]) -> NodeResult:
    batch = images.scale(
        inputs["image"],
        inputs["upscale_method"],
        inputs["width"],
        inputs["height"],
        inputs["crop"],
    )
    return NodeResult((batch,))


async def scale_to_pixels(ctx: NodeContext, inputs: dict[str, Any]) -> NodeResult:
    first = inputs["image"][0]
    factor = (inputs["megapixels"] * 1024 * 1024 / (first.width * first.height)) ** 0.5
    width, height = round(first.width * factor), round(first.height * factor)
    batch = images.scale(inputs["image"], inputs["upscale_method"], width, height, "")
    return NodeResult((batch,))


async def blur_image(ctx: NodeContext, inputs: dict[str, Any]) -> NodeResult:
    batch = images.blur(inputs["image"], inputs["blur_radius"], inputs["sigma"])
    return NodeResult((batch,))


async def mask_to_image(ctx: NodeContext, inputs: dict[str, Any]) -> NodeResult:
    return NodeResult(([mask.convert("RGB") for mask in inputs["mask"]],))


async def composite_masked(ctx: NodeContext, inputs: dict[str, Any]) -> NodeResult:
    result = []
    for destination in inputs["destination"]:
        canvas = destination.copy()
        source = inputs["source"][0]
        if inputs["resize_source"]:
            source = source.resize(canvas.size)
        mask = inputs.get("mask")
        paste_mask = mask[0].resize(source.size) if mask else None
        canvas.paste(source, (inputs["x"], inputs["y"]), paste_mask)
        result.append(canvas)
    return NodeResult((result,))


async def save_image(ctx: NodeContext, inputs: dict[str, Any]) -> NodeResult:
    saved = [
        _write_image(ctx, "output", inputs["filename_prefix"], image)
        for image in inputs["images"]
    ]
    return NodeResult((), {"images": [item.ui() for item in saved]})


async def preview_image(ctx: NodeContext, inputs: dict[str, Any]) -> NodeResult:
    prefix = ctx.storage.temp_prefix()
    saved = [_write_image(ctx, "temp", prefix, image) for image in inputs["images"]]
    return NodeResult((), {"images": [item.ui() for item in saved]})


def _write_image(
    ctx: NodeContext, kind: str, prefix: str, image: Image.Image
) -> SavedFile:
    path, saved = ctx.storage.next_output(kind, prefix, "png")
    write_output(ctx.options, path, images.png(image, ctx.png_text()))
    return saved


def write_output(options: SimulatorOptions, path: Path, data: bytes) -> None:
    """Write an output file, disguised or broken when a fault asks for it."""
    if options.has_fault(FaultKind.DISGUISED_OUTPUT):
        data = data + _zip_payload()
    elif options.has_fault(FaultKind.HTML_OUTPUT):
        # A page under the image's name: a browser sniffing it would run it.
        data = b"<!DOCTYPE html><html><script>alert('output')</script></html>"
    elif options.has_fault(FaultKind.TRUNCATED_OUTPUT):
        data = data[: len(data) // 2]
    path.write_bytes(data)


def _zip_payload() -> bytes:
    # A polyglot: the PNG still opens, yet an archive hides after its end.
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("payload.html", "<script>alert('disguised')</script>")
    return buffer.getvalue()


async def save_image_websocket(ctx: NodeContext, inputs: dict[str, Any]) -> NodeResult:
    for image in inputs["images"]:
        await ctx.step(0, 1, 0.0)
        await ctx.send_preview(image)
    return NodeResult(())


async def bridge_test_sleep(ctx: NodeContext, inputs: dict[str, Any]) -> NodeResult:
    steps = inputs["steps"]
    per_step = inputs["seconds"] / steps * ctx.options.slow_factor
    for step in range(1, steps + 1):
        await ctx.step(step, steps, per_step)
    if inputs["fail"]:
        raise RuntimeError("BridgeTestSleep asked to fail (fail=true)")
    return NodeResult((inputs["image"],))


# ------------------------------------------------------------------ model stand-ins


def loader(*kinds: str, name_input: str) -> Any:
    """A loader stand-in: one step of load time, then one resource per output."""

    async def run(ctx: NodeContext, inputs: dict[str, Any]) -> NodeResult:
        await ctx.pause(ctx.options.model_step_s)
        names = [str(inputs.get(key, "")) for key in sorted(inputs) if "name" in key]
        detail = str(inputs.get(name_input, "+".join(names)))
        return NodeResult(tuple(Resource(kind, detail) for kind in kinds))

    return run


async def lora_loader(ctx: NodeContext, inputs: dict[str, Any]) -> NodeResult:
    await ctx.pause(ctx.options.model_step_s)
    lora = (inputs["lora_name"],)
    model: Resource = inputs["model"]
    clip: Resource = inputs["clip"]
    return NodeResult(
        (
            replace(model, extras=model.extras + lora),
            replace(clip, extras=clip.extras + lora),
        )
    )


async def encode_text(ctx: NodeContext, inputs: dict[str, Any]) -> NodeResult:
    await ctx.pause(ctx.options.model_step_s)
    words = [str(value) for key, value in sorted(inputs.items()) if key != "clip"]
    return NodeResult((Resource("CONDITIONING", " ".join(words)),))


async def empty_latent(ctx: NodeContext, inputs: dict[str, Any]) -> NodeResult:
    latent = Latent(inputs["width"], inputs["height"], inputs["batch_size"])
    return NodeResult((latent,))


async def upscale_latent(ctx: NodeContext, inputs: dict[str, Any]) -> NodeResult:
    latent: Latent = inputs["samples"]
    width = inputs["width"] or latent.width
    height = inputs["height"] or latent.height
    return NodeResult((replace(latent, width=width, height=height),))


async def sample(ctx: NodeContext, inputs: dict[str, Any]) -> NodeResult:
    """KSampler and friends: one progress message per step, a seeded latent."""
    seed = inputs.get("seed", inputs.get("noise_seed", 0))
    latent: Latent = inputs["latent_image"]
    await _run_steps(ctx, inputs["steps"])
    result = replace(latent, seed=seed_of(seed, latent.seed, _conditioning(inputs)))
    return NodeResult((result,))


def _conditioning(inputs: dict[str, Any]) -> str:
    return "|".join(
        f"{value.kind}:{value.detail}:{','.join(value.extras)}"
        for _, value in sorted(inputs.items())
        if isinstance(value, Resource)
    )


async def _run_steps(ctx: NodeContext, steps: int) -> None:
    for step in range(1, steps + 1):
        await ctx.step(step, steps, ctx.options.model_step_s)


async def sample_custom(ctx: NodeContext, inputs: dict[str, Any]) -> NodeResult:
    sigmas: Resource = inputs["sigmas"]
    latent: Latent = inputs["latent_image"]
    await _run_steps(ctx, int(sigmas.detail or 1))
    result = replace(latent, seed=seed_of(_conditioning(inputs), latent.seed))
    return NodeResult((result, result))


async def make_scheduler(ctx: NodeContext, inputs: dict[str, Any]) -> NodeResult:
    return NodeResult((Resource("SIGMAS", str(inputs["steps"])),))


def resource(kind: str, *detail_inputs: str) -> Any:
    """A node that only names what it makes (sampler choice, noise, guider)."""

    async def run(ctx: NodeContext, inputs: dict[str, Any]) -> NodeResult:
        detail = ",".join(str(inputs[name]) for name in detail_inputs)
        return NodeResult((Resource(kind, detail),))

    return run


async def apply_controlnet(ctx: NodeContext, inputs: dict[str, Any]) -> NodeResult:
    await ctx.pause(ctx.options.model_step_s)
    return NodeResult((inputs["positive"], inputs["negative"]))


async def decode_latent(ctx: NodeContext, inputs: dict[str, Any]) -> NodeResult:
    """VAE decode: a picture drawn from the latent's seed, at the latent's size."""
    latent: Latent = inputs["samples"]
    await ctx.pause(ctx.options.model_step_s * 2)
    batch = [
        images.picture(latent.seed + index, latent.width, latent.height)
        for index in range(latent.batch_size)
    ]
    return NodeResult((batch,))


async def encode_image(ctx: NodeContext, inputs: dict[str, Any]) -> NodeResult:
    batch: images.Batch = inputs.get("pixels") or []
    await ctx.pause(ctx.options.model_step_s * 2)
    first = batch[0]
    seed = seed_of(hashlib.sha256(first.tobytes()).hexdigest())
    return NodeResult((Latent(first.width, first.height, len(batch), seed),))


async def upscale_with_model(ctx: NodeContext, inputs: dict[str, Any]) -> NodeResult:
    await ctx.pause(ctx.options.model_step_s * 2)
    batch = [
        image.resize((image.width * 2, image.height * 2)) for image in inputs["image"]
    ]
    return NodeResult((batch,))
