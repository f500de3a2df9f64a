"""A corpus of hostile and of valid-but-unusual files for the safety check.

Every file is built here, with Pillow or byte by byte; nothing is downloaded.
A hostile sample names the rule that must refuse it; a valid one must pass.
"""

from __future__ import annotations

import gzip
import io
import random
import struct
import zipfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

from PIL import Image, ImageCms, PngImagePlugin

from comfy_bridge.safety import SafetyPolicy

MB = 1024 * 1024
BOUNDARY = "----corpus-boundary-7MA4YWxkTrZu0gW"
POLICY = SafetyPolicy(max_bytes=16 * MB)
SVG_POLICY = replace(
    POLICY, allow_svg=True, allowed={**POLICY.allowed, "image/svg+xml": (".svg",)}
)


@dataclass(frozen=True)
class Sample:
    """One corpus file: how to build it, how it is sent, what must happen."""

    id: str
    build: Callable[[], bytes]
    filename: str | None
    declared_type: str | None = None
    rule: str | None = None
    policy: SafetyPolicy = field(default=POLICY)

    def write(self, directory: Path) -> Path:
        """Write the sample's bytes under a neutral name in `directory`."""
        path = directory / f"{self.id}.bin"
        path.write_bytes(self.build())
        return path


def multipart_body(
    field_name: str, sample: Sample, content: bytes, boundary: str = BOUNDARY
) -> bytes:
    """A multipart/form-data body with one part: `content` sent as `sample` says."""
    disposition = f'form-data; name="{field_name}"'
    if sample.filename is not None:
        quoted = sample.filename.replace("\\", "\\\\").replace('"', '\\"')
        disposition += f'; filename="{quoted}"'
    headers = f"Content-Disposition: {disposition}\r\n"
    if sample.declared_type:
        headers += f"Content-Type: {sample.declared_type}\r\n"
    return (
        f"--{boundary}\r\n{headers}\r\n".encode()
        + content
        + f"\r\n--{boundary}--\r\n".encode()
    )


# ---- building blocks --------------------------------------------------------


def encode(image: Image.Image, fmt: str, **options: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def photo(width: int = 96, height: int = 64, seed: int = 1) -> Image.Image:
    """A deterministic RGB picture: two gradients and some noise."""
    noise = random.Random(seed).randbytes(width * height)
    return Image.merge(
        "RGB",
        [
            Image.linear_gradient("L").resize((width, height)),
            Image.radial_gradient("L").resize((width, height)),
            Image.frombytes("L", (width, height), noise),
        ],
    )


def frames(count: int, size: tuple[int, int] = (48, 32)) -> list[Image.Image]:
    colours = ["red", "green", "blue", "yellow", "purple", "white"]
    return [Image.new("RGB", size, colours[i % len(colours)]) for i in range(count)]


def png(image: Image.Image | None = None, **options: object) -> bytes:
    return encode(image or photo(), "PNG", **options)


def jpeg(image: Image.Image | None = None, **options: object) -> bytes:
    return encode(image or photo(), "JPEG", **options)


def gif(image: Image.Image | None = None, **options: object) -> bytes:
    return encode(image or photo().convert("P"), "GIF", **options)


def webp(image: Image.Image | None = None, **options: object) -> bytes:
    return encode(image or photo(), "WEBP", **options)


def png_chunk(kind: bytes, data: bytes) -> bytes:
    crc = zlib.crc32(kind + data)
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)


def with_png_chunk(data: bytes, chunk: bytes) -> bytes:
    """`chunk` inserted before the first IDAT."""
    at = data.index(b"IDAT") - 4
    return data[:at] + chunk + data[at:]


def png_header_only(width: int, height: int, pixels: bytes | None = None) -> bytes:
    """A grey PNG declaring width x height; by default four rows of real pixels."""
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    if pixels is None:
        pixels = zlib.compress(b"\x00" * (4 * (width + 1)), 9)
    return (
        b"\x89PNG\r\n\x1a\n"
        + png_chunk(b"IHDR", header)
        + png_chunk(b"IDAT", pixels)
        + png_chunk(b"IEND", b"")
    )


def with_jpeg_segment(data: bytes, marker: int, body: bytes) -> bytes:
    """A segment inserted right after the start-of-image marker."""
    segment = bytes([0xFF, marker]) + struct.pack(">H", len(body) + 2) + body
    return data[:2] + segment + data[2:]


def jpeg_claiming(width: int, height: int) -> bytes:
    data = bytearray(jpeg(photo(16, 16)))
    sof = data.index(b"\xff\xc0")
    struct.pack_into(">HH", data, sof + 5, height, width)
    return bytes(data)


def gif_frames(count: int, screen: tuple[int, int]) -> bytes:
    """A GIF whose `count` frames are each one pixel on a `screen`-sized canvas."""
    out = bytearray(b"GIF89a" + struct.pack("<HHBBB", *screen, 0x80, 0, 0))
    out += b"\x00\x00\x00\xff\xff\xff"
    for _ in range(count):
        out += b"\x2c" + struct.pack("<HHHHB", 0, 0, 1, 1, 0)
        # LZW, minimum code size 2: clear (4), index 0, end (5).
        out += b"\x02\x02\x44\x01\x00"
    return bytes(out + b"\x3b")


def apng_claiming(frame_count: int) -> bytes:
    first, second = frames(2)
    data = encode(first, "PNG", save_all=True, append_images=[second], duration=100)
    at = data.index(b"acTL") - 4
    control = png_chunk(b"acTL", struct.pack(">II", frame_count, 0))
    return data[:at] + control + data[at + 20 :]


def webp_chunk(kind: bytes, body: bytes) -> bytes:
    pad = b"\x00" if len(body) & 1 else b""
    return kind + struct.pack("<I", len(body)) + body + pad


def with_webp_chunk(data: bytes, chunk: bytes) -> bytes:
    body = data[12:] + chunk
    return b"RIFF" + struct.pack("<I", len(body) + 4) + b"WEBP" + body


def webp_canvas(width: int, height: int) -> bytes:
    """An extended WebP whose canvas claims width x height."""
    header = b"\x00\x00\x00\x00" + (width - 1).to_bytes(3, "little")
    header += (height - 1).to_bytes(3, "little")
    inner = webp(photo(16, 16))[12:]
    body = b"WEBP" + webp_chunk(b"VP8X", header) + inner
    return b"RIFF" + struct.pack("<I", len(body)) + body


def zip_archive() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("payload.php", "<?php system($_GET['c']); ?>")
    return buffer.getvalue()


def elf_header() -> bytes:
    ident = b"\x7fELF\x02\x01\x01" + b"\x00" * 9
    rest = struct.pack(
        "<HHIQQQIHHHHHH", 2, 0x3E, 1, 0x400078, 64, 0, 0, 64, 56, 1, 0, 0, 0
    )
    return ident + rest + b"\x00" * 128


def pe_header() -> bytes:
    stub = b"MZ" + b"\x00" * 58 + struct.pack("<I", 0x80)
    stub += b"This program cannot be run in DOS mode.\r\r\n$"
    stub = stub.ljust(0x80, b"\x00")
    return stub + b"PE\x00\x00" + struct.pack("<HH", 0x14C, 1) + b"\x00" * 256


def exif(orientation: int = 1, description: str | None = None) -> bytes:
    data = Image.Exif()
    data[0x0112] = orientation
    if description is not None:
        data[0x010E] = description
    return data.tobytes()


def srgb_profile() -> bytes:
    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


def text_chunk(key: str, value: str) -> PngImagePlugin.PngInfo:
    info = PngImagePlugin.PngInfo()
    info.add_text(key, value)
    return info


SVG_SCRIPT = (
    b'<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10">'
    b"<script>alert(document.cookie)</script></svg>"
)
SVG_ONLOAD = b'<svg xmlns="http://www.w3.org/2000/svg" onload="alert(1)"/>'
WORKFLOW = (
    '{"3": {"class_type": "KSampler", "inputs": {"seed": 5}}, '
    '"6": {"class_type": "CLIPTextEncode", "inputs": '
    '{"text": "masterpiece, <lora:detail:0.8>, a cat > a dog"}}}'
)


# ---- hostile files: each refused by the rule it names -------------------------


def _hostile_sizes() -> list[Sample]:
    return [
        Sample("zero_byte_png", lambda: b"", "empty.png", rule="empty_file"),
        Sample("zero_byte_jpg", lambda: b"", "empty.jpg", "image/jpeg", "empty_file"),
        Sample(
            "over_max_bytes",
            lambda: png() + b"\x00" * (16 * MB),
            "big.png",
            rule="too_large",
        ),
    ]


def _hostile_bombs() -> list[Sample]:
    return [
        Sample(
            "png_50000_square",
            lambda: png_header_only(50_000, 50_000),
            "b.png",
            rule="too_many_pixels",
        ),
        Sample(
            "png_over_cap",
            lambda: png_header_only(8_000, 6_000),
            "b.png",
            rule="too_many_pixels",
        ),
        Sample(
            "png_zero_compressed",
            lambda: png(Image.new("L", (6_600, 6_600))),
            "b.png",
            rule="too_many_pixels",
        ),
        Sample(
            "jpeg_65500_square",
            lambda: jpeg_claiming(65_500, 65_500),
            "b.jpg",
            rule="too_many_pixels",
        ),
        Sample(
            "gif_screen_65535",
            lambda: gif_frames(1, (65_535, 65_535)),
            "b.gif",
            rule="too_many_pixels",
        ),
        Sample(
            "webp_canvas_16383",
            lambda: webp_canvas(16_383, 16_383),
            "b.webp",
            rule="too_many_pixels",
        ),
        Sample(
            "gif_5000_frames",
            lambda: gif_frames(5_000, (4, 4)),
            "f.gif",
            rule="too_many_frames",
        ),
        Sample(
            "apng_claims_100000_frames",
            lambda: apng_claiming(100_000),
            "f.png",
            rule="too_many_frames",
        ),
        Sample(
            "gif_frames_times_pixels",
            lambda: gif_frames(200, (2_000, 2_000)),
            "f.gif",
            rule="too_many_pixels",
        ),
        Sample(
            "ztxt_bomb",
            lambda: with_png_chunk(
                png(),
                png_chunk(
                    b"zTXt", b"comment\x00\x00" + zlib.compress(b"A" * (64 * MB), 9)
                ),
            ),
            "z.png",
            rule="decode_failed",
        ),
    ]


def _hostile_broken() -> list[Sample]:
    whole_png, whole_jpeg = png(), jpeg()
    return [
        Sample(
            "png_truncated",
            lambda: whole_png[: len(whole_png) // 2],
            "t.png",
            rule="decode_failed",
        ),
        Sample(
            "jpeg_truncated",
            lambda: whole_jpeg[: len(whole_jpeg) // 2],
            "t.jpg",
            rule="decode_failed",
        ),
        Sample("gif_truncated", lambda: gif()[:-40], "t.gif", rule="decode_failed"),
        Sample("webp_truncated", lambda: webp()[:-30], "t.webp", rule="decode_failed"),
        Sample(
            "png_garbage_pixels",
            lambda: png_header_only(64, 64, pixels=b"not zlib at all" * 8),
            "g.png",
            rule="decode_failed",
        ),
        Sample("png_no_iend", lambda: whole_png[:-12], "n.png", rule="decode_failed"),
    ]


def _hostile_types() -> list[Sample]:
    return [
        Sample("jpeg_named_png", jpeg, "photo.png", rule="type_mismatch"),
        Sample("png_named_gif", png, "photo.gif", rule="type_mismatch"),
        Sample("webp_named_jpg", webp, "photo.jpg", rule="type_mismatch"),
        Sample("gif_declared_png", gif, "anim.gif", "image/png", "type_mismatch"),
        Sample("png_declared_html", png, "p.png", "text/html", "type_mismatch"),
        Sample("elf_named_png", elf_header, "image.png", rule="type_not_allowed"),
        Sample("pe_named_png", pe_header, "image.png", rule="type_not_allowed"),
        Sample(
            "shell_named_png",
            lambda: b"#!/bin/sh\nrm -rf /\n",
            "x.png",
            rule="type_not_allowed",
        ),
        Sample("zip_named_png", zip_archive, "x.png", rule="type_not_allowed"),
        Sample(
            "pdf_named_jpg",
            lambda: b"%PDF-1.4\n1 0 obj<<>>endobj\n%%EOF\n",
            "x.jpg",
            rule="type_not_allowed",
        ),
        Sample(
            "text_named_jpg",
            lambda: b"just some text, not a photo\n" * 20,
            "notes.jpg",
            "image/jpeg",
            "type_not_allowed",
        ),
        Sample(
            "html_named_jpg",
            lambda: b"<html><body><script>alert(1)</script>",
            "x.jpg",
            rule="type_not_allowed",
        ),
        Sample(
            "php_named_png",
            lambda: b"<?php system($_GET['c']); ?>",
            "x.png",
            rule="type_not_allowed",
        ),
        Sample(
            "svgz_named_png",
            lambda: gzip.compress(SVG_SCRIPT),
            "x.png",
            rule="type_not_allowed",
        ),
    ]


def _hostile_svg() -> list[Sample]:
    bom_comment = b"\xef\xbb\xbf\n<!-- logo -->\n" + SVG_SCRIPT
    prolog = b'<?xml version="1.0"?>\n<!DOCTYPE svg [<!ENTITY x "y">]>\n' + SVG_ONLOAD
    return [
        Sample("svg_script", lambda: SVG_SCRIPT, "logo.svg", rule="svg_not_allowed"),
        Sample(
            "svg_named_png",
            lambda: SVG_SCRIPT,
            "logo.png",
            "image/png",
            "svg_not_allowed",
        ),
        Sample(
            "svg_bom_comment", lambda: bom_comment, "logo.png", rule="svg_not_allowed"
        ),
        Sample(
            "svg_doctype_named_jpg", lambda: prolog, "logo.jpg", rule="svg_not_allowed"
        ),
        Sample(
            "svg_upper_case",
            lambda: SVG_ONLOAD.upper(),
            "logo.gif",
            rule="svg_not_allowed",
        ),
        Sample(
            "svg_utf16",
            lambda: SVG_SCRIPT.decode().encode("utf-16"),
            "l.png",
            rule="svg_not_allowed",
        ),
        Sample(
            "svg_allowed_script",
            lambda: SVG_SCRIPT,
            "logo.svg",
            rule="embedded_payload",
            policy=SVG_POLICY,
        ),
        Sample(
            "svg_allowed_onload",
            lambda: SVG_ONLOAD,
            "logo.svg",
            rule="embedded_payload",
            policy=SVG_POLICY,
        ),
        Sample(
            "svg_allowed_js_href",
            lambda: (
                b'<svg xmlns="http://www.w3.org/2000/svg" '
                b'xmlns:xlink="http://www.w3.org/1999/xlink"><a xlink:href='
                b'" jav&#x09;ascript:alert(1)"><rect width="5" height="5"/></a></svg>'
            ),
            "logo.svg",
            rule="embedded_payload",
            policy=SVG_POLICY,
        ),
        Sample(
            "svg_allowed_foreign_object",
            lambda: (
                b'<svg xmlns="http://www.w3.org/2000/svg"><foreignObject>'
                b'<body xmlns="http://www.w3.org/1999/xhtml">hi</body>'
                b"</foreignObject></svg>"
            ),
            "logo.svg",
            rule="embedded_payload",
            policy=SVG_POLICY,
        ),
    ]


def _hostile_polyglots() -> list[Sample]:
    html = b"<html><body><script>alert(1)</script></body></html>"
    php = b"<?php echo shell_exec($_GET['c']); ?>"
    return [
        Sample(
            "png_plus_zip", lambda: png() + zip_archive(), "p.png", rule="trailing_data"
        ),
        Sample(
            "jpeg_plus_zip",
            lambda: jpeg() + zip_archive(),
            "p.jpg",
            rule="trailing_data",
        ),
        Sample("gif_plus_html", lambda: gif() + html, "p.gif", rule="trailing_data"),
        Sample("png_plus_php", lambda: png() + php, "p.png", rule="trailing_data"),
        Sample("webp_plus_html", lambda: webp() + html, "p.webp", rule="trailing_data"),
        Sample(
            "png_zip_in_private_chunk",
            lambda: with_png_chunk(png(), png_chunk(b"ziPp", zip_archive())),
            "p.png",
            rule="embedded_payload",
        ),
        Sample(
            "png_elf_in_private_chunk",
            lambda: with_png_chunk(png(), png_chunk(b"elFf", elf_header())),
            "p.png",
            rule="embedded_payload",
        ),
        Sample(
            "png_php_in_text",
            lambda: png(pnginfo=text_chunk("Comment", php.decode())),
            "p.png",
            rule="embedded_payload",
        ),
        Sample(
            "png_html_in_ztxt",
            lambda: with_png_chunk(
                png(), png_chunk(b"zTXt", b"Comment\x00\x00" + zlib.compress(html))
            ),
            "p.png",
            rule="embedded_payload",
        ),
        Sample(
            "jpeg_html_in_comment",
            lambda: with_jpeg_segment(jpeg(), 0xFE, html),
            "p.jpg",
            rule="embedded_payload",
        ),
        Sample(
            "jpeg_php_in_exif",
            lambda: jpeg(exif=exif(1, php.decode())),
            "p.jpg",
            rule="embedded_payload",
        ),
        Sample(
            "gif_script_in_comment",
            lambda: gif(comment=html),
            "p.gif",
            rule="embedded_payload",
        ),
        Sample(
            "webp_html_in_xmp",
            lambda: webp(xmp=html),
            "p.webp",
            rule="embedded_payload",
        ),
        Sample(
            "png_pe_in_idat_stream",
            lambda: with_png_chunk(png(), png_chunk(b"tEXt", b"x\x00" + pe_header())),
            "p.png",
            rule="embedded_payload",
        ),
    ]


def _hostile_names() -> list[Sample]:
    return [
        Sample("name_traversal_only", png, "../../", rule="unsafe_name"),
        Sample("name_dots", png, "..", rule="unsafe_name"),
        Sample("name_controls_only", png, "\x00\x01\x1b\x7f", rule="unsafe_name"),
        Sample("name_bidi_only", png, "\u202e\u200b\u2066", rule="unsafe_name"),
        Sample(
            "name_traversal_script", png, "../../etc/cron.d/job.sh", rule="unsafe_name"
        ),
        Sample(
            "name_windows_exe",
            png,
            "..\\..\\Windows\\System32\\evil.exe",
            rule="unsafe_name",
        ),
        Sample("name_bidi_exe", png, "photo\u202egnp.exe", rule="unsafe_name"),
        Sample("name_php", png, "shell.php", rule="unsafe_name"),
        Sample("name_nul_php", png, "image.png\x00.php", rule="unsafe_name"),
    ]


def _hostile_metadata() -> list[Sample]:
    return [
        Sample(
            "png_huge_text",
            lambda: png(pnginfo=text_chunk("w", "x" * (9 * MB))),
            "m.png",
            rule="metadata_too_large",
        ),
        Sample(
            "jpeg_many_app_segments",
            lambda: _jpeg_with_app_segments(150),
            "m.jpg",
            rule="metadata_too_large",
        ),
        Sample(
            "webp_huge_unknown_chunk",
            lambda: with_webp_chunk(webp(), webp_chunk(b"JUNK", b"\x00" * (9 * MB))),
            "m.webp",
            rule="metadata_too_large",
        ),
    ]


def _jpeg_with_app_segments(count: int) -> bytes:
    data = jpeg()
    for _ in range(count):
        data = with_jpeg_segment(data, 0xE9, b"\x00" * 65_000)
    return data


def hostile() -> list[Sample]:
    """Files the check must refuse, each with the rule that must fire."""
    return [
        *_hostile_sizes(),
        *_hostile_bombs(),
        *_hostile_broken(),
        *_hostile_types(),
        *_hostile_svg(),
        *_hostile_polyglots(),
        *_hostile_names(),
        *_hostile_metadata(),
    ]


# ---- valid but unusual files: each must pass ----------------------------------


def _valid_png() -> list[Sample]:
    palette = photo().convert("P", palette=Image.Palette.ADAPTIVE, colors=16)
    return [
        Sample("png_rgb", png, "photo.png"),
        Sample("png_rgba", lambda: png(photo().convert("RGBA")), "alpha.png"),
        Sample("png_grey", lambda: png(photo().convert("L")), "grey.png"),
        Sample("png_grey_alpha", lambda: png(photo().convert("LA")), "la.png"),
        Sample("png_bilevel", lambda: png(photo().convert("1")), "bw.png"),
        Sample("png_palette", lambda: png(palette), "pal.png"),
        Sample(
            "png_palette_transparent", lambda: png(palette, transparency=0), "pal_t.png"
        ),
        Sample(
            "png_16_bit_grey",
            lambda: png(photo().convert("L").point(lambda v: v * 257).convert("I;16")),
            "g16.png",
        ),
        Sample(
            "png_comfyui_workflow",
            lambda: png(pnginfo=text_chunk("workflow", WORKFLOW)),
            "ComfyUI_00001_.png",
            "image/png",
        ),
        Sample("png_icc", lambda: png(icc_profile=srgb_profile()), "icc.png"),
        Sample("png_one_pixel", lambda: png(Image.new("RGB", (1, 1))), "dot.png"),
        Sample(
            "apng",
            lambda: encode(
                frames(3)[0],
                "PNG",
                save_all=True,
                append_images=frames(3)[1:],
                duration=[80, 120, 200],
                loop=0,
            ),
            "anim.png",
            "image/apng",
        ),
        Sample(
            "png_large_allowed",
            lambda: png(Image.new("L", (6_000, 6_000), 90)),
            "big.png",
        ),
    ]


def _valid_jpeg() -> list[Sample]:
    return [
        Sample("jpeg_baseline", jpeg, "photo.jpg", "image/jpeg"),
        Sample("jpeg_progressive", lambda: jpeg(progressive=True), "prog.jpg"),
        Sample("jpeg_cmyk", lambda: jpeg(photo().convert("CMYK")), "cmyk.jpg"),
        Sample("jpeg_grey", lambda: jpeg(photo().convert("L")), "grey.jpeg"),
        Sample("jpeg_444", lambda: jpeg(subsampling=0, quality=95), "444.jpg"),
        Sample(
            "jpeg_restart_markers", lambda: jpeg(restart_marker_blocks=1), "rst.jpg"
        ),
        Sample("jpeg_exif_rotated_6", lambda: jpeg(exif=exif(6)), "rot6.jpg"),
        Sample("jpeg_exif_rotated_8", lambda: jpeg(exif=exif(8)), "rot8.jpg"),
        Sample("jpeg_exif_rotated_3", lambda: jpeg(exif=exif(3)), "rot3.jpg"),
        Sample("jpeg_icc", lambda: jpeg(icc_profile=srgb_profile()), "icc.jpg"),
        Sample("jpeg_one_pixel", lambda: jpeg(Image.new("RGB", (1, 1))), "dot.jpg"),
        Sample("jpeg_declared_jpg_alias", jpeg, "Photo.JPG", "image/jpg"),
        Sample(
            "jpeg_large_allowed",
            lambda: jpeg(photo(4_000, 3_000), quality=80),
            "large.jpg",
        ),
    ]


def _valid_gif_webp() -> list[Sample]:
    moving = frames(4)
    return [
        Sample("gif_static", gif, "still.gif"),
        Sample(
            "gif_animated",
            lambda: gif(
                moving[0],
                save_all=True,
                append_images=moving[1:],
                duration=[50, 100, 150, 200],
                loop=0,
            ),
            "anim.gif",
        ),
        Sample(
            "gif_transparent",
            lambda: gif(
                photo().convert("P", palette=Image.Palette.ADAPTIVE), transparency=0
            ),
            "t.gif",
        ),
        Sample("gif_benign_comment", lambda: gif(comment=b"made with care"), "c.gif"),
        Sample("gif_one_pixel", lambda: gif(Image.new("P", (1, 1))), "dot.gif"),
        Sample("webp_lossy", webp, "photo.webp", "image/webp"),
        Sample("webp_lossless", lambda: webp(lossless=True), "ll.webp"),
        Sample(
            "webp_lossless_alpha",
            lambda: webp(photo().convert("RGBA"), lossless=True),
            "lla.webp",
        ),
        Sample(
            "webp_animated_lossy",
            lambda: webp(
                moving[0],
                save_all=True,
                append_images=moving[1:],
                duration=[40, 80, 120, 160],
            ),
            "anim.webp",
        ),
        Sample(
            "webp_animated_lossless",
            lambda: webp(
                moving[0],
                save_all=True,
                append_images=moving[1:],
                duration=100,
                lossless=True,
            ),
            "animll.webp",
        ),
        Sample("webp_icc", lambda: webp(icc_profile=srgb_profile()), "icc.webp"),
        Sample("webp_exif_rotated", lambda: webp(exif=exif(6)), "rot.webp"),
        Sample("webp_one_pixel", lambda: webp(Image.new("RGB", (1, 1))), "dot.webp"),
    ]


def _valid_names() -> list[Sample]:
    return [
        Sample("name_japanese", png, "日本語の写真.png"),
        Sample("name_nfd_accents", jpeg, "cafe\u0301 à Paris.jpg"),
        Sample("name_emoji", webp, "art 🎨 final.webp"),
        Sample("name_arabic", png, "صورة.png"),
        Sample("name_windows_path", png, "C:\\Users\\me\\Pictures\\photo.png"),
        Sample("name_blob", png, "blob", "application/octet-stream"),
        Sample("name_missing", jpeg, None),
        Sample("name_very_long", png, "a" * 400 + ".png"),
        Sample("name_with_spaces", png, "my  photo (1).png"),
    ]


def _valid_svg() -> list[Sample]:
    safe = (
        b'<?xml version="1.0"?>\n<svg xmlns="http://www.w3.org/2000/svg" '
        b'width="10" height="10"><rect width="10" height="10" fill="#0a0"/></svg>'
    )
    return [Sample("svg_when_allowed", lambda: safe, "logo.svg", policy=SVG_POLICY)]


def valid() -> list[Sample]:
    """Unusual but legitimate files the check must accept."""
    return [
        *_valid_png(),
        *_valid_jpeg(),
        *_valid_gif_webp(),
        *_valid_names(),
        *_valid_svg(),
    ]
