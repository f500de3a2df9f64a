"""Uploads: client files, checked while they stream in."""

from __future__ import annotations

import asyncio
import os

from fastapi import APIRouter, Request, status
from fastapi.responses import FileResponse

from comfy_bridge.api.deps import BridgeDep, ClientDep, owned_upload
from comfy_bridge.api.v1.schemas import UploadPublic
from comfy_bridge.exceptions import UploadError, UploadNotFound

router = APIRouter(prefix="/v1/uploads", tags=["uploads"])


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "multipart/form-data": {
                    "schema": {
                        "type": "object",
                        "required": ["file"],
                        "properties": {"file": {"type": "string", "format": "binary"}},
                    }
                }
            },
        }
    },
)
async def create_upload(
    request: Request, bridge: BridgeDep, client: ClientDep
) -> UploadPublic:
    """Upload a file (multipart field `file`); a job's file input takes its id."""
    uploads = await bridge.receive_uploads(
        request.stream(),
        content_type=request.headers.get("content-type", ""),
        content_length=request.headers.get("content-length"),
        max_parts=1,
        owner=client.owner,
    )
    if [field for field, _ in uploads] != ["file"]:
        raise UploadError("expected one multipart field named 'file'")
    row = uploads[0][1]
    return UploadPublic(
        id=row.id,
        filename=row.display_name,
        content_type=row.content_type,
        size=row.size,
        sha256=row.sha256,
    )


@router.get("/{upload_id}/content", response_class=FileResponse)
async def get_upload_content(
    upload_id: str, bridge: BridgeDep, client: ClientDep
) -> FileResponse:
    """The file of an upload, as it passed the check."""
    row = await owned_upload(bridge, client, upload_id)
    path = bridge.settings.uploads_dir / row.filename
    try:
        # Read now: retention may delete the file while its row is still there.
        found = await asyncio.to_thread(os.stat, path)
    except FileNotFoundError as exc:
        raise UploadNotFound(f"upload {upload_id!r} was deleted") from exc
    # nosniff: browsers take the checked type, never guess another from the bytes.
    return FileResponse(
        path,
        stat_result=found,
        media_type=row.content_type,
        filename=row.display_name,
        headers={"X-Content-Type-Options": "nosniff"},
    )
