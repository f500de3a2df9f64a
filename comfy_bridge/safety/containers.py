"""Walk an image's container to find where its data ends and what is not pixels.

Neither libmagic (it reads the first bytes) nor Pillow (it stops reading once the
pixels are decoded) says where an image's data ends, so a payload appended after
it, or hidden in a chunk no decoder reads, would pass both. These walkers follow
each format's own framing (PNG chunks, JPEG markers, GIF blocks, RIFF chunks)
without decoding anything, and report the end offset, the frame count the file
declares, and the non-pixel segments (text, EXIF, XMP, ICC, comments, unknown).
"""

from __future__ import annotations

import mmap
import struct
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from comfy_bridge.safety.rules import Rule, refuse


@dataclass(frozen=True)
class Segment:
    """A non-pixel part of the file: `label` names it (`tEXt`, `APP1`, `EXIF`)."""

    label: str
    start: int
    length: int


@dataclass
class Layout:
    """What the walk found: end of the image data, frames, metadata segments."""

    end: int = 0
    frames: int = 1
    lossless: bool = True
    segments: list[Segment] = field(default_factory=list)

    @property
    def metadata_bytes(self) -> int:
        """Bytes held by the non-pixel segments."""
        return sum(segment.length for segment in self.segments)


Data = bytes | mmap.mmap


def walk(content_type: str, data: Data) -> Layout:
    """The layout of `data`, an image of `content_type`; raises `decode_failed`."""
    walker = _WALKERS[content_type]
    try:
        return walker(data)
    except (IndexError, struct.error) as exc:
        raise refuse(
            Rule.DECODE_FAILED, f"the {content_type} data is truncated"
        ) from exc


def _broken(content_type: str, what: str) -> Exception:
    return refuse(Rule.DECODE_FAILED, f"malformed {content_type}: {what}")


def _need(data: Data, end: int) -> None:
    if end > len(data):
        raise IndexError(end)


# PNG: signature, then chunks (length, type, data, CRC) until IEND.
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_PNG_PIXEL_CHUNKS = frozenset({b"IHDR", b"PLTE", b"IDAT", b"IEND", b"tRNS", b"fdAT"})
_PNG_ANIMATION_CHUNKS = frozenset({b"acTL", b"fcTL"})


def png_chunks(data: Data) -> Iterator[tuple[bytes, int, int]]:
    """Each chunk of a PNG already walked: its type and its whole span."""
    pos = 8
    while pos < len(data):
        length, kind = struct.unpack_from(">I4s", data, pos)
        end = pos + 12 + length
        yield kind, pos, end
        if kind == b"IEND":
            return
        pos = end


def _walk_png(data: Data) -> Layout:
    if bytes(data[:8]) != _PNG_SIGNATURE:
        raise _broken("image/png", "bad signature")
    layout, pos, controls, declared = Layout(), 8, 0, 1
    while True:
        _need(data, pos + 8)
        length, kind = struct.unpack_from(">I4s", data, pos)
        if length > 0x7FFFFFFF or not kind.isalpha():
            raise _broken("image/png", f"bad chunk header at byte {pos}")
        body, pos = pos + 8, pos + 12 + length
        _need(data, pos)
        if kind == b"IEND":
            break
        if kind == b"acTL":
            declared = struct.unpack_from(">I", data, body)[0]
        controls += kind == b"fcTL"
        if kind not in _PNG_PIXEL_CHUNKS | _PNG_ANIMATION_CHUNKS:
            layout.segments.append(Segment(kind.decode("ascii"), body, length))
    layout.end, layout.frames = pos, max(declared, controls, 1)
    return layout


# JPEG: markers; entropy-coded data follows each SOS until the next real marker.
_JPEG_STANDALONE = frozenset({0x01, *range(0xD0, 0xD8)})


def _walk_jpeg(data: Data) -> Layout:
    if bytes(data[:2]) != b"\xff\xd8":
        raise _broken("image/jpeg", "no start-of-image marker")
    layout, pos, frames = Layout(lossless=False), 2, 0
    while True:
        pos = _next_jpeg_marker(data, pos)
        marker, pos = data[pos + 1], pos + 2
        if marker == 0xD9:
            break
        if marker in _JPEG_STANDALONE:
            continue
        length = struct.unpack_from(">H", data, pos)[0]
        if length < 2:
            raise _broken("image/jpeg", f"bad segment length at byte {pos}")
        _need(data, pos + length)
        if 0xE0 <= marker <= 0xEF or marker == 0xFE:
            label = "COM" if marker == 0xFE else f"APP{marker - 0xE0}"
            layout.segments.append(Segment(label, pos + 2, length - 2))
        frames += marker in _JPEG_FRAME_MARKERS
        pos += length
        if marker == 0xDA:
            pos = _skip_entropy_data(data, pos)
    if not frames:
        raise _broken("image/jpeg", "no frame header")
    layout.end = pos
    return layout


_JPEG_FRAME_MARKERS = frozenset(set(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC})


def _next_jpeg_marker(data: Data, pos: int) -> int:
    if data[pos] != 0xFF:
        raise _broken("image/jpeg", f"expected a marker at byte {pos}")
    # Any number of 0xFF fill bytes may precede a marker.
    while data[pos + 1] == 0xFF:
        pos += 1
    return pos


def _skip_entropy_data(data: Data, pos: int) -> int:
    """The offset of the first marker after a scan (0xFF not stuffed, not RSTn)."""
    while True:
        pos = data.find(b"\xff", pos)
        if pos < 0:
            raise IndexError(pos)
        following = data[pos + 1]
        if following != 0x00 and not 0xD0 <= following <= 0xD7 and following != 0xFF:
            return pos
        pos += 1 if following == 0xFF else 2


# GIF: header, screen descriptor, colour table, blocks until the 0x3B trailer.
def _walk_gif(data: Data) -> Layout:
    if bytes(data[:6]) not in (b"GIF87a", b"GIF89a"):
        raise _broken("image/gif", "bad signature")
    layout, frames = Layout(), 0
    pos = 13 + _colour_table_size(data[10])
    while True:
        block = data[pos]
        if block == 0x3B:
            break
        if block == 0x21:
            start = pos
            pos = _skip_sub_blocks(data, pos + 2)
            if data[start + 1] != 0xF9:
                layout.segments.append(
                    Segment(f"ext{data[start + 1]:02x}", start, pos - start)
                )
        elif block == 0x2C:
            frames += 1
            pos += 10 + _colour_table_size(data[pos + 9])
            pos = _skip_sub_blocks(data, pos + 1)
        else:
            raise _broken("image/gif", f"unknown block 0x{block:02x} at byte {pos}")
    if not frames:
        raise _broken("image/gif", "no image")
    layout.end, layout.frames = pos + 1, frames
    return layout


def _colour_table_size(packed: int) -> int:
    return 3 * (2 << (packed & 0x07)) if packed & 0x80 else 0


def _skip_sub_blocks(data: Data, pos: int) -> int:
    while size := data[pos]:
        pos += 1 + size
    _need(data, pos + 1)
    return pos + 1


# WebP: a RIFF container whose header gives its length; chunks padded to even.
_WEBP_PIXEL_CHUNKS = frozenset({b"VP8 ", b"VP8L", b"VP8X", b"ALPH", b"ANIM", b"ANMF"})


def _walk_webp(data: Data) -> Layout:
    riff, size, form = struct.unpack_from("<4sI4s", data, 0)
    if riff != b"RIFF" or form != b"WEBP":
        raise _broken("image/webp", "bad RIFF header")
    end = _riff_end(data, size)
    layout, pos, frames = Layout(end=end), 12, 0
    while pos < 8 + size:
        kind, length = struct.unpack_from("<4sI", data, pos)
        body, pos = pos + 8, pos + 8 + length + (length & 1)
        if pos > end:
            raise _broken("image/webp", f"chunk {kind!r} runs past the RIFF end")
        frames += kind == b"ANMF"
        codec = _frame_codec(data, body) if kind == b"ANMF" else kind
        layout.lossless = layout.lossless and codec != b"VP8 "
        if kind not in _WEBP_PIXEL_CHUNKS:
            layout.segments.append(
                Segment(kind.decode("latin-1").strip(), body, length)
            )
    layout.frames = max(frames, 1)
    return layout


def _riff_end(data: Data, size: int) -> int:
    end = 8 + size
    _need(data, end)
    # An odd-sized RIFF body is followed by one zero pad byte.
    if size & 1 and len(data) > end and data[end] == 0:
        end += 1
    return end


def _frame_codec(data: Data, body: int) -> bytes:
    """The bitstream kind of an animation frame (after its 16-byte header)."""
    pos = body + 16
    kind, length = struct.unpack_from("<4sI", data, pos)
    if kind == b"ALPH":
        kind = struct.unpack_from("<4s", data, pos + 8 + length + (length & 1))[0]
    return bytes(kind)


_WALKERS: dict[str, Callable[[Data], Layout]] = {
    "image/png": _walk_png,
    "image/jpeg": _walk_jpeg,
    "image/gif": _walk_gif,
    "image/webp": _walk_webp,
}
