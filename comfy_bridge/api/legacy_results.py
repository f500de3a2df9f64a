"""The original bridge's `/history` bodies, streamed from the stored outputs.

Neither form holds a whole output in memory: files are read in chunks, and the
base64 form encodes each chunk as it goes (chunks are a multiple of 3 bytes,
so the pieces join into one valid base64 string).
"""

from __future__ import annotations

import base64
import json
import secrets
from collections.abc import AsyncIterator, Iterable
from pathlib import Path

import anyio

from comfy_bridge.jobs import JobOutput

CHUNK = 3 * 64 * 1024


def multipart_body(outputs: Iterable[JobOutput]) -> tuple[AsyncIterator[bytes], str]:
    """A multipart/form-data body with parts `result_0`, `result_1`, …; its type."""
    boundary = secrets.token_hex(16)
    return _multipart(list(outputs), boundary), (
        f"multipart/form-data; boundary={boundary}"
    )


async def base64_body(outputs: Iterable[JobOutput]) -> AsyncIterator[bytes]:
    """`{"files": [{"file_name", "content_type", "content"}]}`, content in base64."""
    yield b'{"files": ['
    for index, output in enumerate(outputs):
        head = json.dumps(
            {"file_name": output.filename, "content_type": output.content_type}
        )
        yield (", " if index else "").encode() + head[:-1].encode() + b', "content": "'
        async for chunk in _chunks(Path(output.path)):
            yield base64.b64encode(chunk)
        yield b'"}'
    yield b"]}"


async def _multipart(outputs: list[JobOutput], boundary: str) -> AsyncIterator[bytes]:
    for index, output in enumerate(outputs):
        yield (
            f"--{boundary}\r\n"
            f'Content-Disposition: form-data; name="result_{index}"; '
            f'filename="{_quoted(output.filename)}"\r\n'
            f"Content-Type: {output.content_type}\r\n\r\n"
        ).encode()
        async for chunk in _chunks(Path(output.path)):
            yield chunk
        yield b"\r\n"
    yield f"--{boundary}--\r\n".encode()


async def _chunks(path: Path) -> AsyncIterator[bytes]:
    async with await anyio.open_file(path, "rb") as file:
        while chunk := await file.read(CHUNK):
            yield chunk


def _quoted(name: str) -> str:
    # A header value: no line breaks, and quotes escaped as browsers do.
    return name.replace("\r", "").replace("\n", "").replace('"', "%22")
