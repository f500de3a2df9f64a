"""Find payloads hidden inside an image: markup, scripts, executables, archives.

libmagic names a file by its first bytes only, so a polyglot (a valid image that
is also an HTML page, a PHP script or a zip) passes it. Two searches close that:

- the whole file is searched for markers long and specific enough that random
  compressed pixel data will not contain them by chance (odds below 1e-9 per MB);
- the metadata segments, where text is stored as is, are searched for shorter
  markers too, and each is also shown to libmagic, which knows archives and
  executables by their headers.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

import magic

from comfy_bridge.safety.containers import Data, Segment

# Searched everywhere (the data is lower-cased first, so markers are lower case).
_STRONG = re.compile(
    rb"<script[\s>/]|<!doctype\s+html|<iframe[\s>/]|<\?php\s|javascript:"
    rb"|\x7felf[\x01\x02][\x01\x02]\x01"  # ELF identification
    rb"|pk\x03\x04[\x0a\x14\x2d]\x00"  # zip local file header
    rb"|rar!\x1a\x07|7z\xbc\xaf\x27\x1c"
    rb"|this program cannot be run in dos mode"  # PE stub
)
# Searched in metadata only: too short to be safe against random pixel data.
_WEAK = re.compile(rb"<html|<body|<svg|<\?=|<object|<embed|<meta\s")

# What libmagic may call a metadata segment that must not be there.
_DANGEROUS_TYPES = frozenset(
    {
        "application/zip",
        "application/gzip",
        "application/x-bzip2",
        "application/x-xz",
        "application/x-7z-compressed",
        "application/x-rar",
        "application/vnd.rar",
        "application/x-tar",
        "application/java-archive",
        "application/x-executable",
        "application/x-sharedlib",
        "application/x-pie-executable",
        "application/x-mach-binary",
        "application/x-dosexec",
        "application/vnd.microsoft.portable-executable",
        "application/pdf",
        "application/javascript",
        "application/x-shockwave-flash",
        "text/html",
        "text/javascript",
        "text/x-php",
        "text/x-shellscript",
        "image/svg+xml",
    }
)

_WINDOW = 1 << 20
_OVERLAP = 64


def find_in_file(data: Data) -> str | None:
    """The first strong marker anywhere in `data`, or None."""
    for start in range(0, len(data), _WINDOW):
        window = data[start : start + _WINDOW + _OVERLAP].lower()
        if found := _STRONG.search(window):
            return _describe(found, start)
    return None


def find_in_segments(data: Data, segments: Iterable[Segment]) -> str | None:
    """A payload in a metadata segment, by marker or by libmagic, or None."""
    for segment in segments:
        body = bytes(data[segment.start : segment.start + segment.length])
        if found := find_in_text(body):
            return f"{found} in the {segment.label} segment"
    return None


def find_in_text(body: bytes | str) -> str | None:
    """A payload in one metadata value (raw or decoded by Pillow), or None."""
    raw = body.encode("utf-8", "replace") if isinstance(body, str) else body
    lowered = raw.lower()
    if found := _STRONG.search(lowered) or _WEAK.search(lowered):
        return _describe(found, 0)
    for candidate in _heads(raw):
        kind = magic.from_buffer(candidate, mime=True)
        if kind in _DANGEROUS_TYPES:
            return f"{kind} content"
    return None


def _heads(raw: bytes) -> list[bytes]:
    """Where an embedded file may begin: the value, and after a key ending in NUL."""
    heads = [raw[:4096]]
    key_end = raw.find(b"\x00", 0, 80)
    if key_end >= 0:
        heads.append(raw[key_end + 1 : key_end + 4097].lstrip(b"\x00"))
    return [head for head in heads if len(head) >= 8]


def _describe(found: re.Match[bytes], offset: int) -> str:
    marker = found.group().decode("latin-1").strip()
    return f"{marker!r} at byte {offset + found.start()}"
