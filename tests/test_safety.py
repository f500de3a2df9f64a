"""The safety check's streaming limits, names, policy and re-encoding."""

from __future__ import annotations

import io
import logging
import tracemalloc
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

import pytest
from PIL import Image, ImageChops

from comfy_bridge.exceptions import UnsafeFile
from comfy_bridge.safety import (
    CheckedFile,
    SafetyPolicy,
    check_file,
    read_multipart,
    receive,
    receive_output,
    reencode,
    safe_display_name,
)
from tests.corpus import (
    MB,
    WORKFLOW,
    encode,
    exif,
    frames,
    jpeg,
    photo,
    png,
    srgb_profile,
    text_chunk,
)

POLICY = SafetyPolicy(max_bytes=2 * MB)
BOUNDARY = "safety-test-boundary"
MULTIPART = f"multipart/form-data; boundary={BOUNDARY}"


async def endless(
    total: int, pulled: list[int], chunk: int = 64 * 1024
) -> AsyncIterator[bytes]:
    """`total` bytes of a PNG-looking stream, counting the chunks pulled."""
    block = b"\x89PNG\r\n\x1a\n" + b"\x00" * (chunk - 8)
    for _ in range(total // chunk):
        pulled.append(len(block))
        yield block


async def once(data: bytes) -> AsyncIterator[bytes]:
    yield data


def part(name: str, filename: str, content: bytes, content_type: str = "") -> bytes:
    headers = f'Content-Disposition: form-data; name="{name}"; filename="{filename}"'
    if content_type:
        headers += f"\r\nContent-Type: {content_type}"
    return f"--{BOUNDARY}\r\n{headers}\r\n\r\n".encode() + content + b"\r\n"


def leftovers(directory: Path) -> list[Path]:
    return sorted(directory.iterdir())


def form(*parts: bytes) -> bytes:
    return b"".join(parts) + f"--{BOUNDARY}--\r\n".encode()


# ---- streaming limits -------------------------------------------------------


async def test_receive_refuses_500_mb_at_the_limit_with_bounded_memory(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    pulled: list[int] = []
    tracemalloc.start()

    with pytest.raises(UnsafeFile) as refused:
        await receive(
            endless(500 * MB, pulled),
            directory=tmp_path,
            filename="big.png",
            declared_type="image/png",
            policy=POLICY,
        )

    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert refused.value.code == "too_large"
    assert refused.value.status_code == 413
    assert sum(pulled) <= POLICY.max_bytes + 64 * 1024
    assert peak < 4 * MB
    assert leftovers(tmp_path) == []
    assert [r.levelno for r in caplog.records] == [logging.WARNING]


async def test_multipart_refuses_500_mb_body_at_the_limit(tmp_path: Path) -> None:
    pulled: list[int] = []

    async def body() -> AsyncIterator[bytes]:
        yield f"--{BOUNDARY}\r\n".encode()
        yield b'Content-Disposition: form-data; name="a"; filename="a.png"\r\n\r\n'
        async for chunk in endless(500 * MB, pulled):
            yield chunk

    with pytest.raises(UnsafeFile) as refused:
        await read_multipart(body(), MULTIPART, directory=tmp_path, policy=POLICY)

    assert (refused.value.code, refused.value.status_code) == ("too_large", 413)
    assert sum(pulled) <= POLICY.max_bytes + 64 * 1024
    assert leftovers(tmp_path) == []


async def test_receive_names_the_file_by_uuid_and_extension(tmp_path: Path) -> None:
    checked = await receive(
        once(jpeg()),
        directory=tmp_path,
        filename="../../Holiday Photo.jpeg",
        declared_type="image/jpeg",
        policy=POLICY,
    )

    assert checked.path.parent == tmp_path
    assert checked.path.suffix == ".jpeg"
    assert len(checked.path.stem) == 32
    assert checked.display_name == "Holiday Photo.jpeg"
    assert leftovers(tmp_path) == [checked.path]


async def test_multipart_keeps_every_field_in_order(tmp_path: Path) -> None:
    body = form(part("first", "a.png", png()), part("second", "b.jpg", jpeg()))

    parts = await read_multipart(
        once(body), MULTIPART, directory=tmp_path, policy=POLICY
    )

    assert [(name, f.content_type) for name, f in parts] == [
        ("first", "image/png"),
        ("second", "image/jpeg"),
    ]


async def test_multipart_is_all_or_nothing(tmp_path: Path) -> None:
    body = form(part("good", "a.png", png()), part("bad", "b.png", b"GIF89a junk"))

    with pytest.raises(UnsafeFile):
        await read_multipart(once(body), MULTIPART, directory=tmp_path, policy=POLICY)

    assert leftovers(tmp_path) == []


async def test_multipart_caps_the_number_of_parts(tmp_path: Path) -> None:
    body = form(*(part(f"f{i}", f"{i}.png", png()) for i in range(3)))

    with pytest.raises(UnsafeFile) as refused:
        await read_multipart(
            once(body), MULTIPART, directory=tmp_path, policy=POLICY, max_parts=2
        )

    assert refused.value.code == "too_many_parts"
    assert leftovers(tmp_path) == []


@pytest.mark.parametrize(
    ("content_type", "body"),
    [
        ("multipart/form-data", form(part("a", "a.png", png()))),
        ("application/json", b"{}"),
        (MULTIPART, form(part("a", "a.png", png()))[:-30]),
    ],
    ids=["no_boundary", "not_multipart", "cut_short"],
)
async def test_multipart_refuses_malformed_bodies(
    content_type: str, body: bytes, tmp_path: Path
) -> None:
    with pytest.raises(UnsafeFile) as refused:
        await read_multipart(
            once(body), content_type, directory=tmp_path, policy=POLICY
        )

    assert refused.value.code == "malformed_multipart"
    assert leftovers(tmp_path) == []


# ---- names ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "display"),
    [
        ("photo.png", "photo.png"),
        ("../../etc/passwd", "passwd"),
        ("C:\\Users\\me\\photo.png", "photo.png"),
        ("evil\u202egnp.exe", "evilgnp.exe"),
        ("a\x00b\x1b[31mc.png", "ab[31mc.png"),
        ("cafe\u0301.png", "caf\u00e9.png"),
        ("  .hidden. ", "hidden"),
        ("tab\there\nnewline.jpg", "tabherenewline.jpg"),
        ("many   spaces.png", "many spaces.png"),
        ("../..", ""),
        (None, ""),
    ],
)
def test_safe_display_name(name: str | None, display: str) -> None:
    assert safe_display_name(name) == display


def test_safe_display_name_bounds_length_and_keeps_extension() -> None:
    reduced = safe_display_name("x" * 1000 + ".webp")

    assert len(reduced) <= 180
    assert reduced.endswith(".webp")


# ---- policy -----------------------------------------------------------------


def test_policy_from_legacy_config() -> None:
    policy = SafetyPolicy.from_legacy(5, {"image/png": ".png", "image/JPEG": ".JPG"})

    assert policy.max_bytes == 5 * MB
    assert dict(policy.allowed) == {"image/png": (".png",), "image/jpeg": (".jpg",)}


def test_policy_refuses_types_it_cannot_verify() -> None:
    with pytest.raises(ValueError, match="video/mp4"):
        SafetyPolicy.from_legacy(5, {"video/mp4": ".mp4"})


def test_legacy_policy_refuses_an_extension_it_does_not_list(tmp_path: Path) -> None:
    policy = SafetyPolicy.from_legacy(5, {"image/jpeg": ".jpg"})
    path = tmp_path / "x"
    path.write_bytes(jpeg())

    with pytest.raises(UnsafeFile) as refused:
        check_file(path, filename="x.jpeg", declared_type=None, policy=policy)

    assert refused.value.code == "unsafe_name"


# ---- re-encoding ------------------------------------------------------------


def checked_file(tmp_path: Path, data: bytes, name: str) -> CheckedFile:
    path = tmp_path / name
    path.write_bytes(data)
    return check_file(path, filename=name, declared_type=None, policy=POLICY)


def same_pixels(a: Image.Image, b: Image.Image) -> bool:
    return a.mode == b.mode and a.size == b.size and a.tobytes() == b.tobytes()


def test_reencode_drops_the_workflow_and_keeps_pixels(tmp_path: Path) -> None:
    original = photo().convert("RGBA")
    checked = checked_file(
        tmp_path, png(original, pnginfo=text_chunk("workflow", WORKFLOW)), "w.png"
    )

    clean = reencode(checked)

    assert b"workflow" not in clean.path.read_bytes()
    assert b"tEXt" not in clean.path.read_bytes()
    with Image.open(clean.path) as image:
        assert "workflow" not in image.info
        assert same_pixels(image, original)
    assert clean.sha256 != checked.sha256
    assert clean.path == checked.path


@pytest.mark.parametrize(
    "image",
    [
        photo().convert("L").point(lambda v: v * 257).convert("I;16"),
        photo().convert("P", palette=Image.Palette.ADAPTIVE, colors=8),
        photo().convert("LA"),
        photo().convert("1"),
    ],
    ids=["16_bit", "palette", "grey_alpha", "bilevel"],
)
def test_reencode_keeps_the_mode(image: Image.Image, tmp_path: Path) -> None:
    checked = checked_file(tmp_path, png(image), "m.png")

    with Image.open(reencode(checked).path) as clean:
        assert same_pixels(clean, image)
        if image.mode == "P":
            assert clean.getpalette() == image.getpalette()


def test_reencode_keeps_palette_transparency(tmp_path: Path) -> None:
    image = photo().convert("P", palette=Image.Palette.ADAPTIVE, colors=8)
    checked = checked_file(tmp_path, png(image, transparency=3), "t.png")

    with Image.open(reencode(checked).path) as clean:
        assert clean.info["transparency"] == 3


def animation_of(path: Path) -> tuple[list[bytes], list[int]]:
    pixels, durations = [], []
    with Image.open(path) as image:
        for index in range(getattr(image, "n_frames", 1)):
            image.seek(index)
            pixels.append(image.convert("RGBA").tobytes())
            durations.append(image.info["duration"])
    return pixels, durations


@pytest.mark.parametrize(
    ("fmt", "name", "options"),
    [
        ("PNG", "a.png", {}),
        ("GIF", "a.gif", {"comment": b"workflow"}),
        ("WEBP", "a.webp", {"lossless": True, "exif": exif(1, "workflow")}),
    ],
)
def test_reencode_keeps_frames_and_durations(
    fmt: str, name: str, options: dict[str, object], tmp_path: Path
) -> None:
    first, *rest = frames(4)
    data = encode(
        first,
        fmt,
        save_all=True,
        append_images=rest,
        duration=[40, 80, 120, 160],
        loop=0,
        **options,
    )
    checked = checked_file(tmp_path, data, name)
    before = animation_of(checked.path)

    clean = reencode(checked)

    assert animation_of(clean.path) == before
    assert b"workflow" not in clean.path.read_bytes()
    assert clean.frames == 4


def mean_difference(a: Image.Image, b: Image.Image) -> float:
    histogram = ImageChops.difference(a.convert("L"), b.convert("L")).histogram()
    return sum(value * count for value, count in enumerate(histogram)) / (
        a.width * a.height
    )


def test_reencode_turns_a_rotated_jpeg_upright(tmp_path: Path) -> None:
    checked = checked_file(tmp_path, jpeg(exif=exif(6, "GPS here")), "r.jpg")
    assert (checked.width, checked.height) == (64, 96)
    with Image.open(checked.path) as source:
        upright = source.transpose(Image.Transpose.ROTATE_270)
        wrong_way = source.transpose(Image.Transpose.ROTATE_90)

    clean = reencode(checked)

    with Image.open(clean.path) as image:
        assert image.size == (64, 96)
        assert 0x0112 not in image.getexif()
        assert mean_difference(image, upright) < 4
        assert mean_difference(image, wrong_way) > 20
    assert b"GPS here" not in clean.path.read_bytes()


def test_reencode_keeps_the_icc_profile_unless_told(tmp_path: Path) -> None:
    profile = srgb_profile()
    checked = checked_file(tmp_path, png(icc_profile=profile), "c.png")

    with Image.open(reencode(checked).path) as image:
        assert image.info.get("icc_profile") == profile
    with Image.open(reencode(checked, keep_icc_profile=False).path) as image:
        assert "icc_profile" not in image.info


async def test_receive_output_strips_by_default_and_keeps_when_told(
    tmp_path: Path,
) -> None:
    data = png(pnginfo=text_chunk("workflow", WORKFLOW))

    async def output(policy: SafetyPolicy) -> bytes:
        checked = await receive_output(
            once(data),
            directory=tmp_path,
            filename="ComfyUI_00001_.png",
            declared_type="image/png",
            policy=policy,
        )
        return checked.path.read_bytes()

    assert b"workflow" not in await output(POLICY)
    assert await output(replace(POLICY, strip_metadata=False)) == data


async def test_receive_output_refuses_an_unsafe_output(tmp_path: Path) -> None:
    with pytest.raises(UnsafeFile) as refused:
        await receive_output(
            once(png() + b"<html><script>x</script>"),
            directory=tmp_path,
            filename="ComfyUI_00001_.png",
            declared_type="image/png",
            policy=POLICY,
        )

    assert refused.value.code == "trailing_data"
    assert leftovers(tmp_path) == []


def test_check_reports_the_displayed_size_of_a_rotated_photo(tmp_path: Path) -> None:
    buffer = io.BytesIO()
    photo(120, 40).save(buffer, "JPEG", exif=exif(8))

    checked = checked_file(tmp_path, buffer.getvalue(), "p.jpg")

    assert (checked.width, checked.height) == (40, 120)
