"""Send an upload over a raw socket and watch the bridge process's memory.

A raw socket, not an HTTP client, because the body is streamed while the
answer is watched: the bridge answers 413 and stops reading long before a
500 MB body is sent, and a client that only reads after sending would block.
"""

from __future__ import annotations

import http.client
import json
import select
import socket
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import urlsplit

MB = 1024 * 1024
BOUNDARY = "----stream-boundary-Qk3vTZ"
CONTENT_TYPE = f"multipart/form-data; boundary={BOUNDARY}"

T = TypeVar("T")


@dataclass(frozen=True)
class Answer:
    """The bridge's answer, and how many body bytes went out before it."""

    status: int
    body: dict[str, Any]
    sent_bytes: int


def part_head(field_name: str, filename: str, content_type: str) -> bytes:
    """The opening of a one-file multipart body."""
    return (
        f"--{BOUNDARY}\r\n"
        f'Content-Disposition: form-data; name="{field_name}"; '
        f'filename="{filename}"\r\n'
        f"Content-Type: {content_type}\r\n\r\n"
    ).encode()


def part_tail() -> bytes:
    return f"\r\n--{BOUNDARY}--\r\n".encode()


def zeros_part(total_bytes: int, chunk_bytes: int = MB) -> Iterator[bytes]:
    """A multipart body whose one file is `total_bytes` of zeros, in chunks."""
    yield part_head("file", "huge.png", "image/png")
    chunk = bytes(chunk_bytes)
    for _ in range(total_bytes // chunk_bytes):
        yield chunk
    yield part_tail()


def file_part(data: bytes, filename: str, chunk_bytes: int = MB) -> Iterator[bytes]:
    """A multipart body carrying `data` as the field `file`, in chunks."""
    yield part_head("file", filename, "application/octet-stream")
    for start in range(0, len(data), chunk_bytes):
        yield data[start : start + chunk_bytes]
    yield part_tail()


def post_streamed(
    url: str,
    chunks: Iterable[bytes],
    *,
    path: str = "/v1/uploads",
    content_length: int | None = None,
    timeout_s: float = 60.0,
) -> Answer:
    """POST `chunks` (chunked unless `content_length` is given); stop sending as
    soon as the answer starts to arrive."""
    address = urlsplit(url)
    with socket.create_connection(
        (address.hostname, address.port), timeout=timeout_s
    ) as sock:
        sock.sendall(_request_head(address.netloc, path, content_length))
        sent = _send_until_answered(sock, chunks, chunked=content_length is None)
        response = http.client.HTTPResponse(sock)
        response.begin()
        body = json.loads(response.read() or b"{}")
        return Answer(response.status, body, sent)


def _request_head(host: str, path: str, content_length: int | None) -> bytes:
    framing = (
        "Transfer-Encoding: chunked"
        if content_length is None
        else f"Content-Length: {content_length}"
    )
    return (
        f"POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: {CONTENT_TYPE}\r\n"
        f"{framing}\r\nConnection: close\r\n\r\n"
    ).encode()


def _send_until_answered(
    sock: socket.socket, chunks: Iterable[bytes], *, chunked: bool
) -> int:
    sent = 0
    try:
        for chunk in chunks:
            if _answered(sock):
                return sent
            sock.sendall(b"%x\r\n%b\r\n" % (len(chunk), chunk) if chunked else chunk)
            sent += len(chunk)
        if chunked:
            sock.sendall(b"0\r\n\r\n")
    except (BrokenPipeError, ConnectionResetError, TimeoutError):
        # The bridge answered and closed while we were still sending.
        pass
    return sent


def _answered(sock: socket.socket) -> bool:
    readable, _, _ = select.select([sock], [], [], 0)
    return bool(readable)


def memory_kb(pid: int) -> dict[str, int]:
    """VmRSS, VmHWM, RssAnon... of a process, in kB, from /proc/<pid>/status."""
    figures = {}
    with open(f"/proc/{pid}/status", encoding="ascii") as status:
        for line in status:
            name, _, value = line.partition(":")
            if value.strip().endswith("kB"):
                figures[name] = int(value.split()[0])
    return figures


def reset_peak(pid: int) -> None:
    """Make VmHWM start again from the current RSS (Linux clear_refs, value 5)."""
    with open(f"/proc/{pid}/clear_refs", "w", encoding="ascii") as clear_refs:
        clear_refs.write("5")


def peak_growth_mb(pid: int, action: Callable[[], T]) -> tuple[float, T]:
    """(MB the process's peak RSS rose above its RSS before, result of action())."""
    reset_peak(pid)
    before = memory_kb(pid)["VmRSS"]
    result = action()
    return (memory_kb(pid)["VmHWM"] - before) / 1024, result
