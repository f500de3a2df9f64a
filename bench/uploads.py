"""Throughput of the safety check on typical photos, against a plain Pillow decode.

Builds a set of typical files (12 MP camera JPEGs, 1 MP ComfyUI-style PNGs with a
workflow chunk, 1 MP WebP), then, in the same run and alternating so both see the
same machine load, times a plain `Image.open().load()` and the full `check_file`
on each. Also times `reencode` on the PNG outputs. Prints a table, then one JSON
line with the figures.

The memory (RSS) of an upload through the bridge's route is not measured here:
it needs the `/v1/uploads` route, which this benchmark does not start.

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

POLICY = SafetyPolicy()
MB = 1024 * 1024


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


def report(totals: dict[str, dict[str, float]], reencode_mb_s: float) -> None:
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
    figures = {
        "check_mb_s": round(size / check, 1),
        "pillow_decode_mb_s": round(size / decode, 1),
        "check_over_decode": round(check / decode, 3),
        "per_kind_check_mb_s": {
            kind: round(spent["bytes"] / MB / spent["check"], 1)
            for kind, spent in totals.items()
        },
        "reencode_png_mb_s": round(reencode_mb_s, 1),
        # Needs the bridge's upload route; measured once it exists.
        "rss_mb": None,
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
    report(totals, reencode_mb_s)


if __name__ == "__main__":
    main()
