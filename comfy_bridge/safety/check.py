"""The check itself: one file on disk, from a client or from a backend.

The rules run from the cheapest to the dearest, and the first that fails is
the one reported: size, content type (allowlist, SVG), declared type, name,
container structure (truncation, trailing data, frames, metadata size),
embedded payloads, then a full decode under the pixel and frame caps.
"""

from __future__ import annotations

import hashlib
import mmap
from dataclasses import dataclass
from pathlib import Path

import magic

from comfy_bridge.exceptions import UnsafeFile
from comfy_bridge.safety import containers, images, payloads
from comfy_bridge.safety.names import safe_display_name, split_extension
from comfy_bridge.safety.policy import SVG, SafetyPolicy, canonical_type
from comfy_bridge.safety.rules import Rule, log_refusal, refuse
from comfy_bridge.safety.svg import check_svg

_HEAD_BYTES = 64 * 1024
_HASH_BLOCK = 1 << 20
# A declared type that claims nothing: many clients send it for every file.
_NO_CLAIM = frozenset({"", "application/octet-stream", "binary/octet-stream"})


@dataclass(frozen=True)
class CheckedFile:
    """A file that passed the check, stored under a name the bridge chose.

    `width` and `height` are as displayed (EXIF orientation applied); both are
    None for SVG. `display_name` is the client's name reduced for display only.
    """

    path: Path
    size: int
    sha256: str
    content_type: str
    extension: str
    display_name: str
    width: int | None
    height: int | None
    frames: int


def check_file(
    path: Path,
    *,
    filename: str | None,
    declared_type: str | None,
    policy: SafetyPolicy,
    origin: str = "output",
) -> CheckedFile:
    """Check the file at `path`; raise `UnsafeFile` (logged once) if it is refused.

    The file is neither moved nor deleted: the caller owns it either way.
    `origin` labels the log line of a refusal (`upload`, `output`).
    """
    size, sha256 = file_digest(path)
    try:
        return check_hashed(
            path,
            size=size,
            sha256=sha256,
            filename=filename,
            declared_type=declared_type,
            policy=policy,
        )
    except UnsafeFile as exc:
        log_refusal(exc, sha256, origin=origin)
        raise


def file_digest(path: Path) -> tuple[int, str]:
    """(size, sha256 hex) of the file at `path`, read in blocks."""
    digest, size = hashlib.sha256(), 0
    with path.open("rb") as stream:
        while block := stream.read(_HASH_BLOCK):
            digest.update(block)
            size += len(block)
    return size, digest.hexdigest()


def check_hashed(
    path: Path,
    *,
    size: int,
    sha256: str,
    filename: str | None,
    declared_type: str | None,
    policy: SafetyPolicy,
) -> CheckedFile:
    """The check without the logging, for callers that hashed while streaming."""
    _check_size(size, policy)
    with path.open("rb") as stream:
        head = stream.read(_HEAD_BYTES)
    content_type = detect_type(head)
    _check_type(content_type, policy)
    _check_declared(content_type, declared_type)
    display_name, extension = _name_for(filename, content_type, policy)
    if content_type == SVG:
        check_svg(path.read_bytes())
        width = height = None
        frames = 1
    else:
        _check_structure(path, content_type, size, policy)
        decoded = images.decode(path, content_type, policy)
        width, height, frames = decoded.width, decoded.height, decoded.frames
    return CheckedFile(
        path=path,
        size=size,
        sha256=sha256,
        content_type=content_type,
        extension=extension,
        display_name=display_name,
        width=width,
        height=height,
        frames=frames,
    )


def detect_type(head: bytes) -> str:
    """The content type of a file from its first bytes (libmagic, plus SVG)."""
    detected = canonical_type(magic.from_buffer(head, mime=True))
    if detected != SVG and _looks_like_svg(head):
        return SVG
    return detected


def _looks_like_svg(head: bytes) -> bool:
    # libmagic calls an SVG "text/plain" when a BOM, a comment or a long prolog
    # comes before the root element; browsers still render it as SVG.
    if b"\x00" in head[:512] and not head.startswith((b"\xff\xfe", b"\xfe\xff")):
        return False
    for encoding in ("utf-8-sig", "utf-16"):
        try:
            text = head.decode(encoding).lower()
        except UnicodeDecodeError:
            continue
        return text.lstrip().startswith("<") and "<svg" in text
    return False


def _check_size(size: int, policy: SafetyPolicy) -> None:
    if size == 0:
        raise refuse(Rule.EMPTY_FILE, "the file is empty")
    if size > policy.max_bytes:
        raise refuse(
            Rule.TOO_LARGE,
            f"the file is {size} bytes, at most {policy.max_bytes} are allowed",
        )


def _check_type(content_type: str, policy: SafetyPolicy) -> None:
    if content_type == SVG and not policy.allow_svg:
        raise refuse(Rule.SVG_NOT_ALLOWED, "the content is SVG, which is not allowed")
    if not policy.extensions_for(content_type):
        allowed = ", ".join(sorted(policy.allowed))
        raise refuse(
            Rule.TYPE_NOT_ALLOWED,
            f"the content is {content_type}; allowed: {allowed}",
        )


def _check_declared(content_type: str, declared_type: str | None) -> None:
    declared = canonical_type(declared_type or "")
    if declared not in _NO_CLAIM and declared != content_type:
        raise refuse(
            Rule.TYPE_MISMATCH,
            f"the content is {content_type} but it was declared {declared}",
        )


def _name_for(
    filename: str | None, content_type: str, policy: SafetyPolicy
) -> tuple[str, str]:
    """(display name, extension) for a file of `content_type` sent as `filename`."""
    extensions = policy.extensions_for(content_type)
    if not filename:
        return f"file{extensions[0]}", extensions[0]
    display_name = safe_display_name(filename)
    stem, extension = split_extension(display_name)
    if not stem:
        raise refuse(
            Rule.UNSAFE_NAME, f"nothing of the name {filename!r} is safe to keep"
        )
    if not extension:
        return display_name + extensions[0], extensions[0]
    if not policy.allows_extension(extension):
        known = ", ".join(ext for exts in policy.allowed.values() for ext in exts)
        raise refuse(
            Rule.UNSAFE_NAME,
            f"the name ends in {extension}; allowed: {known}",
        )
    if extension not in extensions:
        raise refuse(
            Rule.TYPE_MISMATCH,
            f"the content is {content_type} but the name ends in {extension}",
        )
    return display_name, extension


def _check_structure(
    path: Path, content_type: str, size: int, policy: SafetyPolicy
) -> None:
    with (
        path.open("rb") as stream,
        mmap.mmap(stream.fileno(), 0, access=mmap.ACCESS_READ) as data,
    ):
        layout = containers.walk(content_type, data)
        _check_layout(layout, size, policy)
        found = payloads.find_in_segments(data, layout.segments)
        found = found or payloads.find_in_file(data)
    if found:
        raise refuse(Rule.EMBEDDED_PAYLOAD, f"the file contains {found}")


def _check_layout(layout: containers.Layout, size: int, policy: SafetyPolicy) -> None:
    if size > layout.end:
        raise refuse(
            Rule.TRAILING_DATA,
            f"{size - layout.end} bytes follow the end of the image "
            f"at byte {layout.end}",
        )
    if layout.frames > policy.max_frames:
        raise refuse(
            Rule.TOO_MANY_FRAMES,
            f"the image declares {layout.frames} frames, "
            f"at most {policy.max_frames} are allowed",
        )
    if layout.metadata_bytes > policy.max_metadata_bytes:
        raise refuse(
            Rule.METADATA_TOO_LARGE,
            f"the image carries {layout.metadata_bytes} bytes of metadata, "
            f"at most {policy.max_metadata_bytes} are allowed",
        )
