"""Pillow work behind the image nodes: make, transform, encode and picture from seed."""

from __future__ import annotations

import hashlib
import io
import math
from collections.abc import Mapping

from PIL import Image, ImageDraw, ImageFilter, ImageOps, PngImagePlugin

Batch = list[Image.Image]

SCALE_FILTERS = {
    "nearest-exact": Image.Resampling.NEAREST,
    "bilinear": Image.Resampling.BILINEAR,
    "area": Image.Resampling.BOX,
    "bicubic": Image.Resampling.BICUBIC,
    "lanczos": Image.Resampling.LANCZOS,
}


def solid(width: int, height: int, batch_size: int, color: int) -> Batch:
    rgb = ((color >> 16) & 0xFF, (color >> 8) & 0xFF, color & 0xFF)
    return [Image.new("RGB", (width, height), rgb) for _ in range(batch_size)]


def invert(images: Batch) -> Batch:
    return [ImageOps.invert(image.convert("RGB")) for image in images]


def scale(images: Batch, method: str, width: int, height: int, crop: str) -> Batch:
    """Resize; a zero side keeps the aspect ratio, as the real node does."""
    return [_scale_one(image, method, width, height, crop) for image in images]


def _scale_one(
    image: Image.Image, method: str, width: int, height: int, crop: str
) -> Image.Image:
    if width == 0 and height == 0:
        return image.copy()
    if width == 0:
        width = max(1, round(image.width * height / image.height))
    if height == 0:
        height = max(1, round(image.height * width / image.width))
    if crop == "center":
        return ImageOps.fit(image, (width, height), SCALE_FILTERS[method])
    return image.resize((width, height), SCALE_FILTERS[method])


def blur(images: Batch, radius: int, sigma: float) -> Batch:
    # The real node's kernel is radius*2+1 wide with the given sigma; a Gaussian
    # of that sigma is what a viewer would see.
    del radius
    return [image.filter(ImageFilter.GaussianBlur(sigma)) for image in images]


def picture(seed: int, width: int, height: int) -> Image.Image:
    """A deterministic picture: the same seed always draws the same image."""
    digest = hashlib.sha256(str(seed).encode()).digest()
    base = (digest[0], digest[1], digest[2])
    image = Image.new("RGB", (width, height), base)
    draw = ImageDraw.Draw(image)
    for index in range(6):
        chunk = digest[3 + index * 4 : 7 + index * 4]
        box = _box(chunk, width, height)
        fill = (chunk[0], chunk[1] ^ 0x55, chunk[2] ^ 0xAA)
        if index % 2:
            draw.ellipse(box, fill=fill)
        else:
            draw.rectangle(box, fill=fill)
    return image


def _box(chunk: bytes, width: int, height: int) -> tuple[int, int, int, int]:
    left = chunk[0] * width // 256
    top = chunk[1] * height // 256
    right = left + max(1, chunk[2] * width // 512)
    bottom = top + max(1, chunk[3] * height // 512)
    return left, top, right, bottom


def mask_from(image: Image.Image, channel: str) -> Image.Image:
    """The chosen channel as a mask; a missing alpha reads as fully opaque."""
    if channel == "alpha":
        if "A" in image.getbands():
            return ImageOps.invert(image.getchannel("A"))
        return Image.new("L", image.size, 0)
    index = {"red": 0, "green": 1, "blue": 2}[channel]
    return image.convert("RGB").getchannel(index)


def png(image: Image.Image, text: Mapping[str, str] | None = None) -> bytes:
    """PNG at ComfyUI's compression level, with `text` as tEXt chunks."""
    info = PngImagePlugin.PngInfo()
    for key, value in (text or {}).items():
        info.add_text(key, value)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", compress_level=4, pnginfo=info)
    return buffer.getvalue()


def animation(frames: Batch, frame_rate: float, image_format: str) -> bytes:
    """An animated WebP or GIF of the frames (at least two, so it animates)."""
    if len(frames) == 1:
        # Encoders merge identical frames; a different second one keeps two.
        frames = [frames[0], ImageOps.invert(frames[0].convert("RGB"))]
    duration_ms = max(1, math.floor(1000 / max(frame_rate, 0.001)))
    buffer = io.BytesIO()
    first, *rest = [frame.convert("RGB") for frame in frames]
    first.save(
        buffer,
        format=image_format,
        save_all=True,
        append_images=rest,
        duration=duration_ms,
        loop=0,
    )
    return buffer.getvalue()


def reencode(data: bytes, image_format: str, quality: int, channel: str) -> bytes:
    """A /view preview: the picture re-encoded, optionally reduced to one channel."""
    with Image.open(io.BytesIO(data)) as opened:
        image = opened.copy()
    image = select_channel(image, channel)
    if image_format == "jpeg" or channel == "rgb":
        image = image.convert("RGB")
    buffer = io.BytesIO()
    image.save(buffer, format=image_format, quality=quality)
    return buffer.getvalue()


def select_channel(image: Image.Image, channel: str) -> Image.Image:
    if channel == "rgb":
        return image.convert("RGB")
    if channel == "a":
        alpha = image.convert("RGBA").getchannel("A")
        return Image.merge(
            "RGBA", (alpha, alpha, alpha, Image.new("L", alpha.size, 255))
        )
    return image
