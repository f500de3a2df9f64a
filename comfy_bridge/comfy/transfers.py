"""Streaming files between disk and a backend without holding them in memory."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterable, AsyncIterator
from pathlib import Path
from typing import IO

from comfy_bridge.exceptions import UnsafeFile

CHUNK_BYTES = 256 * 1024


def too_large(what: str, limit_bytes: int) -> UnsafeFile:
    """The error for a file that passed its size limit."""
    return UnsafeFile(
        "too_large",
        f"{what} is larger than the limit of {limit_bytes} bytes",
        status_code=413,
    )


async def save_chunks(chunks: AsyncIterable[bytes], dest: Path) -> int:
    """Write chunks to `dest` as they come; returns the bytes written.

    If the stream fails (it passed its size limit, the backend went away), the
    partial file is removed.
    """
    written = 0
    out = await asyncio.to_thread(dest.open, "wb")
    try:
        async for chunk in chunks:
            written += len(chunk)
            await asyncio.to_thread(out.write, chunk)
    except BaseException:
        await asyncio.to_thread(_discard, out, dest)
        raise
    await asyncio.to_thread(out.close)
    return written


def _discard(out: IO[bytes], dest: Path) -> None:
    with contextlib.suppress(OSError):
        out.close()
    dest.unlink(missing_ok=True)


async def file_chunks(
    source: IO[bytes], deadline: asyncio.Timeout, write_s: float
) -> AsyncIterator[bytes]:
    """Read `source` in chunks, pushing `deadline` back each time one is taken.

    aiohttp asks for the next chunk only once the previous one was written, so
    a stalled send lets `deadline` expire: that is the upload's write timeout.
    The caller owns `source` and closes it, even if the send is abandoned.
    """
    loop = asyncio.get_running_loop()
    while chunk := await asyncio.to_thread(source.read, CHUNK_BYTES):
        deadline.reschedule(loop.time() + write_s)
        yield chunk
    # The body is sent; from here the read timeout guards the answer.
    deadline.reschedule(None)
