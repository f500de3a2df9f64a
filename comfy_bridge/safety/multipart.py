"""Read a multipart/form-data body as a stream, checking each file as it ends.

Built on python-multipart's push parser: each chunk of the body is parsed as it
arrives and each part's data goes straight to its own spool file, so a body of
any size costs one chunk of memory and is refused at the first byte over a
limit. Every part is taken as a file (the original bridge's `/upload` sends one
file per field); the request is all or nothing: on any refusal every file it
brought is deleted.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from python_multipart import MultipartParser
from python_multipart.exceptions import FormParserError
from python_multipart.multipart import parse_options_header

from comfy_bridge.exceptions import UnsafeFile
from comfy_bridge.safety.check import CheckedFile
from comfy_bridge.safety.policy import SafetyPolicy
from comfy_bridge.safety.rules import Rule, log_refusal, refuse
from comfy_bridge.safety.streams import Spool

if TYPE_CHECKING:
    from python_multipart.multipart import MultipartCallbacks

# Room for one part's headers and boundary, on top of its data.
_PART_OVERHEAD = 16 * 1024


@dataclass
class _Part:
    """One part being received: its headers, then its spool."""

    headers: dict[str, str] = field(default_factory=dict)
    field_name: str = ""
    filename: str | None = None
    content_type: str | None = None
    spool: Spool | None = None


class _Reader:
    """The parser's callbacks: route each part's bytes to a spool of its own."""

    def __init__(self, directory: Path, policy: SafetyPolicy, max_parts: int) -> None:
        self.directory = directory
        self.policy = policy
        self.max_parts = max_parts
        self.parts: list[_Part] = []
        self.finished: list[_Part] = []
        self.checked: list[tuple[str, CheckedFile]] = []
        # The spool whose bytes the current step handles, for the refusal's log.
        self.current: Spool | None = None
        self.ended = False
        self._header_field = b""
        self._header_value = b""

    def callbacks(self) -> MultipartCallbacks:
        """The callbacks to hand to `MultipartParser`."""
        return {
            "on_part_begin": self._on_part_begin,
            "on_header_field": self._on_header_field,
            "on_header_value": self._on_header_value,
            "on_header_end": self._on_header_end,
            "on_headers_finished": self._on_headers_finished,
            "on_part_data": self._on_part_data,
            "on_part_end": self._on_part_end,
            "on_end": self._on_end,
        }

    def _on_part_begin(self) -> None:
        if len(self.parts) >= self.max_parts:
            raise refuse(
                Rule.TOO_MANY_PARTS, f"at most {self.max_parts} files per request"
            )
        self.parts.append(_Part())
        self.current = None

    def _on_header_field(self, data: bytes, start: int, end: int) -> None:
        self._header_field += data[start:end]

    def _on_header_value(self, data: bytes, start: int, end: int) -> None:
        self._header_value += data[start:end]

    def _on_header_end(self) -> None:
        name = self._header_field.decode("latin-1").strip().lower()
        self.parts[-1].headers[name] = self._header_value.decode("latin-1")
        self._header_field = self._header_value = b""

    def _on_headers_finished(self) -> None:
        part = self.parts[-1]
        _, options = parse_options_header(part.headers.get("content-disposition"))
        part.field_name = _text(options.get(b"name", b""))
        filename = options.get(b"filename")
        part.filename = None if filename is None else _text(filename)
        part.content_type = part.headers.get("content-type")
        part.spool = self.current = Spool(self.directory, self.policy.max_bytes)

    def _on_part_data(self, data: bytes, start: int, end: int) -> None:
        spool = self.parts[-1].spool
        assert spool is not None, "part data before its headers"
        spool.write(data[start:end])

    def _on_part_end(self) -> None:
        self.finished.append(self.parts[-1])

    def _on_end(self) -> None:
        self.ended = True

    def check_finished(self) -> None:
        """Check the parts that ended since the last call."""
        while self.finished:
            part = self.finished.pop(0)
            assert part.spool is not None, "a finished part has a spool"
            self.current = part.spool
            checked = part.spool.check(
                filename=part.filename,
                declared_type=part.content_type,
                policy=self.policy,
            )
            self.checked.append((part.field_name, checked))

    def discard(self) -> None:
        """Delete every file of the request, spooled or already checked."""
        for part in self.parts:
            if part.spool is not None:
                part.spool.discard()


def _text(raw: bytes) -> str:
    # Browsers send form field and file names as raw UTF-8 in the header.
    return raw.decode("utf-8", "replace")


async def read_multipart(
    stream: AsyncIterable[bytes],
    content_type: str,
    *,
    directory: Path,
    policy: SafetyPolicy,
    max_parts: int = 16,
) -> list[tuple[str, CheckedFile]]:
    """Every part of a multipart/form-data body, checked: (field name, file).

    Raises `UnsafeFile`: `too_large` (413) as soon as a part or the body crosses
    its limit, `too_many_parts` (413), `malformed_multipart` (422), or the rule
    a file broke; nothing of the request is kept then.
    """
    reader = _Reader(directory, policy, max_parts)
    try:
        parser = _parser(content_type, reader)
        limit = max_parts * (policy.max_bytes + _PART_OVERHEAD)
        await _feed(stream, parser, reader, limit)
        return reader.checked
    except UnsafeFile as exc:
        sha256 = reader.current.sha256 if reader.current else "-"
        log_refusal(exc, sha256, origin="upload")
        reader.discard()
        raise
    except BaseException:
        reader.discard()
        raise


def _parser(content_type: str, reader: _Reader) -> MultipartParser:
    kind, options = parse_options_header(content_type)
    boundary = options.get(b"boundary")
    if kind != b"multipart/form-data" or not boundary:
        raise refuse(
            Rule.MALFORMED_MULTIPART,
            f"expected multipart/form-data with a boundary, got {content_type!r}",
        )
    try:
        return MultipartParser(boundary, reader.callbacks())
    except FormParserError as exc:
        raise refuse(Rule.MALFORMED_MULTIPART, str(exc)) from exc


async def _feed(
    stream: AsyncIterable[bytes], parser: MultipartParser, reader: _Reader, limit: int
) -> None:
    received = 0
    async for chunk in stream:
        received += len(chunk)
        if received > limit:
            raise refuse(Rule.TOO_LARGE, f"the request body exceeds {limit} bytes")
        await asyncio.to_thread(_write, parser, reader, chunk)
    if not reader.ended:
        raise refuse(
            Rule.MALFORMED_MULTIPART, "the body ended before its last boundary"
        )


def _write(parser: MultipartParser, reader: _Reader, chunk: bytes) -> None:
    try:
        parser.write(chunk)
    except FormParserError as exc:
        raise refuse(Rule.MALFORMED_MULTIPART, str(exc)) from exc
    # Each file is checked as soon as its part ends: a bad first file is
    # refused without reading the rest of the body.
    reader.check_finished()
