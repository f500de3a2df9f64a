"""Throughput of the safety check on typical photos, and the bridge's memory.

Throughput: builds typical files (12 MP camera JPEGs, 1 MP ComfyUI-style PNGs
with a workflow chunk, 1 MP WebP), then, in the same run and alternating so both
see the same machine load, times a plain `Image.open().load()` (the baseline) and
the full `check_file` on each; also times `reencode` on the PNG outputs.

Memory: starts a real bridge process on loopback with a 64 MB upload limit and
reads its peak RSS (/proc/<pid>/status VmHWM, reset before each upload) while a
500 MB body, sent chunked without Content-Length, is refused at the limit, and
while a 50 MB image (4096x4300 random RGB pixels as PNG, inside the default
pixel cap) is accepted. An accepted image costs its decoded pixels (4 bytes a
pixel for RGB): the cap on pixels, not the file's size, bounds that.

Prints two tables, then one JSON line with the figures.

    .venv/bin/python bench/uploads.py [--rounds 5]
"""

from __future__ import annotations

import argparse
import io
import json
import random
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from PIL import Image, PngImagePlugin

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from comfy_bridge.safety import SafetyPolicy, check_file, reencode  # noqa: E402
from tests.processes import bridge_process  # noqa: E402
from tests.uploading import (  # noqa: E402
    file_part,
    peak_growth_mb,
    post_streamed,
    zeros_part,
)

POLICY = SafetyPolicy()
MB = 1024 * 1024
LIMIT_BYTES = 64 * MB
REFUSED_BYTES = 500 * MB
# 4096 x 4300 random RGB pixels: a PNG of about 50 MB, 17.6 MP.
BIG_SIZE = (4096, 4300)


def picture(width: int, height: int, seed: int) -> Image.Image:
    """Gradients with fine noise: compresses about as well as a photo."""
    rng = random.Random(seed)
    noise = Image.frombytes("L", (width, height), rng.randbytes(width * height))
    noise = noise.point(lambda v: 96 + v // 4)
    return Image.merge(
        "RGB",
        [
            Image.linear_gradient("L").resize((width, height)),
            noise,
            Image.radial_gradient("L").resize((width, height)),
        ],
    )


def typical_files(directory: Path) -> dict[str, list[Path]]:
    workflow = PngImagePlugin.PngInfo()
    workflow.add_text(
        "workflow", json.dumps({str(i): {"inputs": {}} for i in range(400)})
    )
    kinds: dict[str, tuple[Callable[[int], Image.Image], str, dict[str, object]]] = {
        "jpeg 12 MP": (lambda s: picture(4000, 3000, s), "JPEG", {"quality": 90}),
        "png 1 MP": (lambda s: picture(1024, 1024, s), "PNG", {"pnginfo": workflow}),
        "webp 1 MP": (lambda s: picture(1024, 1024, s), "WEBP", {"quality": 90}),
    }
    files: dict[str, list[Path]] = {}
    for kind, (make, fmt, options) in kinds.items():
        files[kind] = []
        for seed in range(3):
            buffer = io.BytesIO()
            make(seed).save(buffer, fmt, **options)
            path = directory / f"{kind.split()[0]}-{seed}.{fmt.lower()}"
            path.write_bytes(buffer.getvalue())
            files[kind].append(path)
    return files


def pillow_decode(path: Path) -> None:
    with Image.open(path) as image:
        image.load()


def safety_check(path: Path) -> None:
    check_file(path, filename=path.name, declared_type=None, policy=POLICY)


def timed(action: Callable[[Path], None], path: Path) -> float:
    started = time.perf_counter()
    action(path)
    return time.perf_counter() - started


def measure(files: dict[str, list[Path]], rounds: int) -> dict[str, dict[str, float]]:
    """Seconds spent per kind and per action, alternating decode and check."""
    totals: dict[str, dict[str, float]] = {}
    for kind, paths in files.items():
        spent = {"decode": 0.0, "check": 0.0, "bytes": 0.0}
        for _ in range(rounds):
            for path in paths:
                spent["decode"] += timed(pillow_decode, path)
                spent["check"] += timed(safety_check, path)
                spent["bytes"] += path.stat().st_size
        totals[kind] = spent
    return totals


def measure_reencode(paths: list[Path], directory: Path) -> float:
    """MB/s of `reencode` on copies of the PNG outputs."""
    seconds = size = 0.0
    for index, path in enumerate(paths):
        copy = directory / f"copy-{index}.png"
        shutil.copyfile(path, copy)
        checked = check_file(
            copy, filename=copy.name, declared_type=None, policy=POLICY
        )
        started = time.perf_counter()
        reencode(checked)
        seconds += time.perf_counter() - started
        size += checked.size
    return size / MB / seconds


def big_png() -> bytes:
    """A real, allowed image of about 50 MB: noise does not compress."""
    width, height = BIG_SIZE
    pixels = random.Random(0).randbytes(width * height * 3)
    buffer = io.BytesIO()
    # Level 1: the file is as large at any level, and made 5x faster.
    Image.frombytes("RGB", BIG_SIZE, pixels).save(buffer, "PNG", compress_level=1)
    return buffer.getvalue()


def measure_rss(directory: Path) -> dict[str, float]:
    """Peak RSS growth (MB) of a bridge process for a refused and an accepted
    upload, and what each answered."""
    accepted = big_png()
    env = {"BRIDGE_LIMIT_UPLOAD_BYTES": str(LIMIT_BYTES), "BRIDGE_LOG_LEVEL": "INFO"}
    with bridge_process([], directory / "bridge", env=env) as (url, proc):
        refused_mb, refusal = peak_growth_mb(
            proc.pid, lambda: post_streamed(url, zeros_part(REFUSED_BYTES))
        )
        accepted_mb, acceptance = peak_growth_mb(
            proc.pid, lambda: post_streamed(url, file_part(accepted, "big.png"))
        )
    assert refusal.status == 413, refusal
    assert acceptance.status == 201, acceptance
    return {
        "refused_mb": refused_mb,
        "refused_sent_mb": refusal.sent_bytes / MB,
        "accepted_mb": accepted_mb,
        "accepted_size_mb": len(accepted) / MB,
    }


def report(
    totals: dict[str, dict[str, float]],
    reencode_mb_s: float,
    rss: dict[str, float],
) -> None:
    print(
        f"{'files':<12} {'MB':>8} {'decode MB/s':>12} {'check MB/s':>11} {'ratio':>6}"
    )
    for kind, spent in totals.items():
        size = spent["bytes"] / MB
        print(
            f"{kind:<12} {size:>8.1f} {size / spent['decode']:>12.1f} "
            f"{size / spent['check']:>11.1f} {spent['check'] / spent['decode']:>6.2f}"
        )
    size = sum(spent["bytes"] for spent in totals.values()) / MB
    decode = sum(spent["decode"] for spent in totals.values())
    check = sum(spent["check"] for spent in totals.values())
    print(f"reencode (png outputs): {reencode_mb_s:.1f} MB/s")
    print()
    print(f"{'upload (limit 64 MB)':<34} {'sent MB':>8} {'peak RSS growth MB':>19}")
    refused = f"{REFUSED_BYTES // MB} MB chunked, refused (413)"
    print(f"{refused:<34} {rss['refused_sent_mb']:>8.1f} {rss['refused_mb']:>19.1f}")
    accepted = f"{BIG_SIZE[0]}x{BIG_SIZE[1]} PNG, accepted (201)"
    print(f"{accepted:<34} {rss['accepted_size_mb']:>8.1f} {rss['accepted_mb']:>19.1f}")
    figures = {
        "check_mb_s": round(size / check, 1),
        "pillow_decode_mb_s": round(size / decode, 1),
        "check_over_decode": round(check / decode, 3),
        "per_kind_check_mb_s": {
            kind: round(spent["bytes"] / MB / spent["check"], 1)
            for kind, spent in totals.items()
        },
        "reencode_png_mb_s": round(reencode_mb_s, 1),
        "rss_growth_refused_500mb_mb": round(rss["refused_mb"], 1),
        "rss_growth_accepted_50mb_mb": round(rss["accepted_mb"], 1),
        "accepted_file_mb": round(rss["accepted_size_mb"], 1),
    }
    print(json.dumps(figures))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        directory = Path(scratch)
        files = typical_files(directory)
        totals = measure(files, args.rounds)
        reencode_mb_s = measure_reencode(files["png 1 MP"], directory)
        rss = measure_rss(directory)
    report(totals, reencode_mb_s, rss)


if __name__ == "__main__":
    main()
