"""Decode an image fully with Pillow, under pixel and frame caps."""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageFile

from comfy_bridge.safety.payloads import find_in_text
from comfy_bridge.safety.policy import SafetyPolicy
from comfy_bridge.safety.rules import Rule, refuse

PILLOW_FORMATS = {
    "image/png": "PNG",
    "image/jpeg": "JPEG",
    "image/gif": "GIF",
    "image/webp": "WEBP",
}

ORIENTATION_TAG = 0x0112
# EXIF orientations 5 to 8 turn the image a quarter: the viewer swaps its sides.
_QUARTER_TURNS = frozenset({5, 6, 7, 8})


@dataclass(frozen=True)
class Decoded:
    """What the decode learnt: displayed size, frames, EXIF orientation."""

    width: int
    height: int
    frames: int
    orientation: int


# Memory goes where pixels are decoded (width × height × channels, up to the
# pixel cap each): so many uploads at once must not decode all at once.
DECODES = threading.BoundedSemaphore(max(2, os.cpu_count() or 2))


def decode(path: Path, content_type: str, policy: SafetyPolicy) -> Decoded:
    """Open `path` as `content_type` only, check its caps, decode every frame."""
    try:
        image = Image.open(path, formats=[PILLOW_FORMATS[content_type]])
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise refuse(
            Rule.TOO_MANY_PIXELS,
            f"the image declares far more than the {policy.max_pixels} pixels allowed",
        ) from exc
    except Exception as exc:
        # A decoder fed hostile bytes can fail in any way; each is a refusal.
        raise _failed(exc) from exc
    with image, DECODES:
        return _decode_open(image, policy)


def _decode_open(image: ImageFile.ImageFile, policy: SafetyPolicy) -> Decoded:
    width, height = image.size
    _check_pixels(width, height, policy)
    frames = _frame_count(image)
    _check_frames(width, height, frames, policy)
    try:
        for index in range(frames):
            image.seek(index)
            image.load()
        orientation = _orientation(image)
        texts = [*image.info.values(), *getattr(image, "text", {}).values()]
    except Exception as exc:
        # As above: whatever the decoder raises, the file does not decode.
        raise _failed(exc) from exc
    _check_text(texts)
    if orientation in _QUARTER_TURNS:
        width, height = height, width
    return Decoded(width, height, frames, orientation)


def _check_pixels(width: int, height: int, policy: SafetyPolicy) -> None:
    if width < 1 or height < 1:
        raise refuse(Rule.DECODE_FAILED, f"the image is {width}x{height} pixels")
    if width * height > policy.max_pixels:
        raise refuse(
            Rule.TOO_MANY_PIXELS,
            f"the image is {width}x{height} = {width * height} pixels, "
            f"at most {policy.max_pixels} are allowed",
        )


def _frame_count(image: ImageFile.ImageFile) -> int:
    try:
        return int(getattr(image, "n_frames", 1))
    except Exception as exc:
        raise _failed(exc) from exc


def _check_frames(width: int, height: int, frames: int, policy: SafetyPolicy) -> None:
    if frames > policy.max_frames:
        raise refuse(
            Rule.TOO_MANY_FRAMES,
            f"the image has {frames} frames, at most {policy.max_frames} are allowed",
        )
    if width * height * frames > policy.max_total_pixels:
        raise refuse(
            Rule.TOO_MANY_PIXELS,
            f"{frames} frames of {width}x{height} pixels exceed "
            f"{policy.max_total_pixels} pixels in all",
        )


def _orientation(image: Image.Image) -> int:
    value = image.getexif().get(ORIENTATION_TAG, 1)
    return value if isinstance(value, int) and 1 <= value <= 8 else 1


def _check_text(values: list[object]) -> None:
    """Search the metadata Pillow decoded (compressed text chunks included)."""
    for value in values:
        if isinstance(value, bytes | str) and (found := find_in_text(value)):
            raise refuse(Rule.EMBEDDED_PAYLOAD, f"{found} in the image's metadata")


def _failed(exc: Exception) -> Exception:
    reason = str(exc) or type(exc).__name__
    return refuse(Rule.DECODE_FAILED, f"the image does not decode: {reason}")
