"""Re-encode a checked image from its decoded pixels, without its metadata.

ComfyUI writes the whole workflow into PNG text chunks (and into EXIF for WebP):
the operator's work, which should not reach clients by default. Saving the
decoded frames again drops every text, EXIF, XMP and comment segment and every
byte the backend wrote that is not pixels. Kept: pixel values, mode, palette and
transparency, every frame with its duration and the loop count, and the ICC
profile unless told otherwise (colours shift without it).
"""

from __future__ import annotations

import os
import uuid
from dataclasses import replace
from pathlib import Path
from typing import Any

from PIL import Image, ImageFile, JpegImagePlugin

from comfy_bridge.safety import containers
from comfy_bridge.safety.check import CheckedFile, file_digest
from comfy_bridge.safety.images import DECODES, ORIENTATION_TAG, PILLOW_FORMATS
from comfy_bridge.safety.policy import SVG

# EXIF orientation -> the transposition that shows the image upright.
_UPRIGHT = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
# PNG chunks a viewer needs to show the picture as made: pixels, palette,
# transparency, animation and colour space. Text, EXIF, time and private
# chunks are left behind.
_PNG_KEPT = frozenset(
    {
        b"IHDR", b"PLTE", b"tRNS", b"IDAT", b"IEND",
        b"acTL", b"fcTL", b"fdAT",
        b"gAMA", b"cHRM", b"sRGB", b"sBIT",
    }
)  # fmt: skip
# ComfyUI's own level: files about as small as level 6, encoded 3x faster.
_PNG_COMPRESS_LEVEL = 4
# Lossy WebP cannot be copied bit for bit; a high quality keeps the second
# generation's loss below what a viewer notices.
_WEBP_LOSSY_QUALITY = 90


def reencode(checked: CheckedFile, *, keep_icc_profile: bool = True) -> CheckedFile:
    """Replace `checked.path` by its pixels re-encoded without metadata.

    EXIF orientation: the EXIF block goes, and with it the tag that tells the
    viewer to turn the picture, so the pixels are turned upright here instead
    (every format; JPEG keeps its quantisation tables and subsampling). The
    displayed size is therefore unchanged. SVG is returned as it is: it has no
    pixels, and its check already refused any active content.
    """
    if checked.content_type == SVG:
        return checked
    temporary = checked.path.with_name(f".{uuid.uuid4().hex}.tmp")
    try:
        if not _copy_png_pixels(checked, temporary, keep_icc_profile):
            _save_clean(checked, temporary, keep_icc_profile)
        os.replace(temporary, checked.path)
    finally:
        temporary.unlink(missing_ok=True)
    size, sha256 = file_digest(checked.path)
    return replace(checked, size=size, sha256=sha256)


def _copy_png_pixels(
    checked: CheckedFile, target: Path, keep_icc_profile: bool
) -> bool:
    """Copy a PNG's image chunks as they are, leaving every other chunk behind.

    The check has already walked and fully decoded the file, so its image chunks
    are sound: copying them keeps the pixels bit for bit and costs no decode or
    compression. An `eXIf` chunk may turn the picture, which only a re-encode
    can apply to the pixels, so such a file (rare) is re-encoded instead.
    """
    if checked.content_type != "image/png":
        return False
    data = checked.path.read_bytes()
    chunks = list(containers.png_chunks(data))
    if any(kind == b"eXIf" for kind, _start, _end in chunks):
        return False
    keep = _PNG_KEPT | ({b"iCCP"} if keep_icc_profile else set())
    with target.open("wb") as out:
        out.write(data[:8])
        for kind, start, end in chunks:
            if kind in keep:
                out.write(data[start:end])
    return True


def _save_clean(checked: CheckedFile, target: Path, keep_icc_profile: bool) -> None:
    pillow_format = PILLOW_FORMATS[checked.content_type]
    with DECODES:
        with Image.open(checked.path, formats=[pillow_format]) as image:
            frames, durations = _clean_frames(image)
            options = _options(image, checked, keep_icc_profile)
        if len(frames) > 1:
            options |= {"save_all": True, "append_images": frames[1:]}
            options["duration"] = durations
        frames[0].save(target, pillow_format, **options)


def _clean_frames(image: ImageFile.ImageFile) -> tuple[list[Image.Image], list[int]]:
    """Every frame, upright, with no metadata attached; and their durations."""
    upright = _UPRIGHT.get(image.getexif().get(ORIENTATION_TAG, 1))
    frames, durations = [], []
    for index in range(getattr(image, "n_frames", 1)):
        image.seek(index)
        frame = image.copy()
        if upright is not None:
            frame = frame.transpose(upright)
        frame.info = {}
        frames.append(frame)
        durations.append(int(image.info.get("duration", 0)))
    image.seek(0)
    return frames, durations


def _options(
    image: ImageFile.ImageFile, checked: CheckedFile, keep_icc_profile: bool
) -> dict[str, Any]:
    """Encoder options that keep what the viewer needs, and nothing else."""
    options: dict[str, Any] = {}
    if keep_icc_profile and image.info.get("icc_profile"):
        options["icc_profile"] = image.info["icc_profile"]
    if "transparency" in image.info:
        options["transparency"] = image.info["transparency"]
    if "loop" in image.info:
        options["loop"] = image.info["loop"]
    if checked.content_type == "image/png":
        options["compress_level"] = _PNG_COMPRESS_LEVEL
    elif checked.content_type == "image/jpeg":
        options |= _jpeg_options(image)
    elif checked.content_type == "image/webp":
        options |= _webp_options(checked.path)
    return options


def _jpeg_options(image: ImageFile.ImageFile) -> dict[str, Any]:
    # The source's own tables and subsampling: the closest to a lossless copy.
    return {
        "qtables": getattr(image, "quantization", None),
        "subsampling": JpegImagePlugin.get_sampling(image),
        "progressive": bool(image.info.get("progressive")),
    }


def _webp_options(path: Path) -> dict[str, Any]:
    if containers.walk("image/webp", path.read_bytes()).lossless:
        # exact: keep the colour of fully transparent pixels too.
        return {"lossless": True, "exact": True}
    return {"quality": _WEBP_LOSSY_QUALITY}
