"""POST /upload/image: ComfyUI's renaming, dedupe, overwrite and path refusals."""

from __future__ import annotations

import os
from pathlib import Path

from aiohttp import web

from comfy_bridge.simulator.storage import FOLDER_TYPES, Storage


class BareServerError(Exception):
    """Where ComfyUI itself crashes: answered with aiohttp's plain 500."""


async def upload_image(request: web.Request, storage: Storage) -> web.Response:
    """Store a multipart `image` part under the name ComfyUI would choose."""
    form = await request.post()
    image = form.get("image")
    if not isinstance(image, web.FileField):
        return web.Response(status=400)
    kind = str(form.get("type") or "input")
    if kind not in FOLDER_TYPES:
        raise BareServerError(f"upload type {kind!r}")
    filename = image.filename
    if not filename:
        return web.Response(status=400)
    if os.path.isabs(filename):
        raise BareServerError(f"absolute upload name {filename!r}")
    subfolder = str(form.get("subfolder", ""))
    folder = target_folder(storage, kind, subfolder, filename)
    if folder is None:
        return web.Response(status=400)
    data = image.file.read()
    overwrite = str(form.get("overwrite", "")) in ("true", "1")
    name = store(folder, filename, data, overwrite)
    return web.json_response({"name": name, "subfolder": subfolder, "type": kind})


def target_folder(
    storage: Storage, kind: str, subfolder: str, filename: str
) -> Path | None:
    """The folder to write into, created; None when the name leaves the base."""
    base = str(storage.folder(kind))
    folder = os.path.join(base, os.path.normpath(subfolder))
    target = os.path.abspath(os.path.join(folder, filename))
    if os.path.commonpath((base, target)) != base:
        return None
    os.makedirs(folder, exist_ok=True)
    return Path(folder)


def store(folder: Path, filename: str, data: bytes, overwrite: bool) -> str:
    """Write the bytes; a taken name becomes `stem (N).ext` unless they are equal."""
    stem, extension = os.path.splitext(filename)
    name = filename
    counter = 1
    while not overwrite and (folder / name).exists():
        if (folder / name).read_bytes() == data:
            return name
        name = f"{stem} ({counter}){extension}"
        counter += 1
    try:
        (folder / name).write_bytes(data)
    except (FileNotFoundError, NotADirectoryError) as exc:
        # A name with a directory part: ComfyUI does not create it and fails.
        raise BareServerError(str(exc)) from exc
    return name
