"""The rules of the safety check: each refusal names one, with its HTTP status."""

from __future__ import annotations

import logging
from enum import StrEnum

from comfy_bridge.exceptions import UnsafeFile

logger = logging.getLogger("comfy_bridge.safety")


class Rule(StrEnum):
    """The stable codes a refusal carries (`UnsafeFile.code`)."""

    TOO_LARGE = "too_large"
    TOO_MANY_PARTS = "too_many_parts"
    MALFORMED_MULTIPART = "malformed_multipart"
    EMPTY_FILE = "empty_file"
    UNSAFE_NAME = "unsafe_name"
    TYPE_NOT_ALLOWED = "type_not_allowed"
    TYPE_MISMATCH = "type_mismatch"
    SVG_NOT_ALLOWED = "svg_not_allowed"
    DECODE_FAILED = "decode_failed"
    TOO_MANY_PIXELS = "too_many_pixels"
    TOO_MANY_FRAMES = "too_many_frames"
    METADATA_TOO_LARGE = "metadata_too_large"
    TRAILING_DATA = "trailing_data"
    EMBEDDED_PAYLOAD = "embedded_payload"


_STATUS = {
    Rule.TOO_LARGE: 413,
    Rule.TOO_MANY_PARTS: 413,
    Rule.TYPE_NOT_ALLOWED: 415,
    Rule.TYPE_MISMATCH: 415,
    Rule.SVG_NOT_ALLOWED: 415,
}


def refuse(rule: Rule, detail: str) -> UnsafeFile:
    """The exception for `rule`, with its status (413 size, 415 type, 422 else)."""
    return UnsafeFile(rule.value, detail, status_code=_STATUS.get(rule, 422))


def log_refusal(exc: UnsafeFile, sha256: str, *, origin: str) -> None:
    """Log one refusal: its rule and the file's digest, never its bytes."""
    logger.warning(
        "file refused: rule=%s origin=%s sha256=%s detail=%s",
        exc.code,
        origin,
        sha256,
        exc.detail,
    )
