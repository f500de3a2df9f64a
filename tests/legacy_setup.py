"""An original bridge's folder (`.env`, config JSON, alias file, workflows), and
a bridge process started in it as the original was: `serve`, no options."""

from __future__ import annotations

import contextlib
import io
import json
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
from PIL import Image

from tests.processes import EXAMPLES, OPEN_UNLIMITED, running

CONFIG = {
    "LOGGING_LEVEL": "DEBUG",
    "CURRENT_STATE": "current_state.json",
    "WORKFLOW_ALIAS": "workflow_alias.json",
    "WORKFLOW_DIR": "workflows",
    "LIMIT_TIMEOUT_COUNT": 30,
    "TIMEOUT_INTERVAL": 2,
    "UPLOAD_MAX_SIZE": 1,
    "ALLOWED_MIME_TYPE_EXTENSION_MAP": {"image/png": ".png", "image/jpeg": ".jpg"},
}
ALIASES = [
    {
        "alias": "invert",
        "fn": "invert_api.json",
        "description": "Inverts a picture.",
        "thumbnail": "invert.png",
    },
    {
        "alias": "txt2img",
        "fn": "txt2img_api.json",
        "description": "Text to image.",
        "thumbnail": "txt2img.png",
    },
]
SEEDED_COUNT = 41


def png(width: int = 64, height: int = 48, colour: int = 0) -> bytes:
    image = Image.linear_gradient("L").resize((width, height)).convert("RGB")
    if colour:
        image.paste((colour, 0, 255 - colour), (0, 0, width // 2, height // 2))
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


def invert_graph() -> dict[str, Any]:
    return {
        "1": {
            "class_type": "LoadImage",
            "inputs": {"image": "example.png"},
            "_meta": {
                "title": "Load Image",
                "apiinput": "image",
                "descimage": "load_image.png",
            },
        },
        "2": {"class_type": "ImageInvert", "inputs": {"image": ["1", 0]}},
        "3": {
            "class_type": "SaveImage",
            "inputs": {"images": ["2", 0], "filename_prefix": "inverted"},
            "_meta": {"title": "Save Image"},
        },
    }


def txt2img_graph() -> dict[str, Any]:
    graph: dict[str, Any] = json.loads((EXAMPLES / "txt2img.json").read_text())
    for node in graph.values():
        node["_meta"].pop("bridge_inputs", None)
    graph["3"]["_meta"]["apiinput"] = "seed, steps"
    graph["6"]["_meta"]["apiinput"] = "text"
    return graph


def write_folder(directory: Path, port: int, backends: list[str]) -> Path:
    """The files an original bridge's user already has, in their formats."""
    directory.mkdir(parents=True, exist_ok=True)
    servers = ",".join(url.removeprefix("http://") for url in backends)
    (directory / ".env").write_text(
        f"HOST=127.0.0.1\nPORT={port}\nCOMFYUI_SERVERS={servers}\nCONFIG=config.json\n"
    )
    (directory / "config.json").write_text(json.dumps(CONFIG, indent=2))
    (directory / "current_state.json").write_text(
        json.dumps({"generation_count": SEEDED_COUNT})
    )
    (directory / "workflow_alias.json").write_text(json.dumps(ALIASES, indent=2))
    workflows = directory / "workflows"
    for folder in ("thumbnail", "descimage"):
        (workflows / folder).mkdir(parents=True)
    (workflows / "invert_api.json").write_text(json.dumps(invert_graph()))
    (workflows / "txt2img_api.json").write_text(json.dumps(txt2img_graph()))
    for name in ("invert.png", "txt2img.png"):
        shutil.copy(EXAMPLES / "thumbnail" / name, workflows / "thumbnail" / name)
    (workflows / "descimage" / "load_image.png").write_bytes(png(8, 8))
    return directory


@contextlib.contextmanager
def legacy_bridge(directory: Path) -> Iterator[str]:
    """`comfy-bridge serve` in the folder, its address read from its `.env`."""
    env = dict(
        line.split("=", 1) for line in (directory / ".env").read_text().splitlines()
    )
    url = f"http://{env['HOST']}:{env['PORT']}"
    # The original bridge had no keys: its tests run in open mode.
    with running(
        ["serve"],
        f"{url}/healthz",
        env=OPEN_UNLIMITED,
        cwd=directory,
        log_path=directory / "bridge.log",
    ):
        wait_ready(url)
        yield url


def wait_ready(url: str, timeout_s: float = 20) -> None:
    deadline = time.monotonic() + timeout_s
    while httpx.get(f"{url}/readyz").status_code != 200:
        if time.monotonic() > deadline:
            raise TimeoutError(f"{url} did not become ready")
        time.sleep(0.1)
