"""GET /view: files from the input, output and temp folders, optionally re-encoded."""

from __future__ import annotations

import os

from aiohttp import web

from comfy_bridge.simulator import images
from comfy_bridge.simulator.storage import ANNOTATION, FOLDER_TYPES, Storage


async def view(request: web.Request, storage: Storage) -> web.StreamResponse:
    """Serve one file, refusing names and subfolders that leave their folder."""
    query = request.query
    if "filename" not in query:
        return web.Response(status=404)
    filename, kind = query["filename"], query.get("type", "output")
    match = ANNOTATION.match(filename)
    if match:
        filename, kind = match["name"], match["type"]
    if not filename:
        return web.Response(status=400)
    if filename.startswith("/") or ".." in filename:
        return web.Response(status=400)
    if kind not in FOLDER_TYPES:
        return web.Response(status=400)
    path = locate(storage, kind, query.get("subfolder"), filename)
    if isinstance(path, int):
        return web.Response(status=path)
    name = os.path.basename(path)
    disposition = {"Content-Disposition": f'filename="{name}"'}
    channel = query.get("channel", "")
    if "preview" in query or channel not in ("", "rgba"):
        return reencoded(path, query.get("preview"), channel, disposition)
    return web.FileResponse(path, headers=disposition)


def locate(
    storage: Storage, kind: str, subfolder: str | None, filename: str
) -> str | int:
    """The file's path, or the status to answer: 403 outside the base, 404 missing."""
    folder = str(storage.folder(kind))
    if subfolder is not None:
        inner = os.path.abspath(os.path.join(folder, subfolder))
        if os.path.commonpath((inner, folder)) != folder:
            return 403
        folder = inner
    path = os.path.join(folder, os.path.basename(filename))
    return path if os.path.isfile(path) else 404


def reencoded(
    path: str, preview: str | None, channel: str, headers: dict[str, str]
) -> web.Response:
    """A preview (webp or jpeg with a quality) or a single-channel PNG."""
    image_format, quality = "png", 90
    if preview is not None:
        fields = preview.split(";")
        image_format = fields[0] if fields[0] in ("webp", "jpeg") else "webp"
        if "a" in channel:
            image_format = "webp"
        if fields[-1].isdigit():
            quality = int(fields[-1])
    with open(path, "rb") as handle:
        data = images.reencode(handle.read(), image_format, quality, channel)
    return web.Response(
        body=data, content_type=f"image/{image_format}", headers=headers
    )
