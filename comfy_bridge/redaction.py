"""Taking backend addresses and server file paths out of what clients are told.

Backends' own messages (connection errors, ComfyUI's exception texts) can name
a backend's address or a file on its disk; a client learns neither.
"""

from __future__ import annotations

import re
from typing import Any

ADDRESS = "<backend>"
PATH = "<path>"

_URL = re.compile(r"\b[a-z][a-z0-9+.-]*://[^\s'\"()\[\];,<>]+", re.IGNORECASE)
_HOST = re.compile(
    r"(?<![\w.])(?:\d{1,3}(?:\.\d{1,3}){3}|\[[0-9a-f:]+\]|localhost)(?::\d+)?(?![\w.])",
    re.IGNORECASE,
)
# Absolute paths of two parts or more, POSIX or Windows; relative names such
# as a model's `checkpoints/x.safetensors` stay.
_PATH = re.compile(r"(?<![\w.:/])(?:/[\w.@+-]+){2,}/?|\b[a-z]:\\[^\s'\"]+", re.I)


def redact(text: str) -> str:
    text = _URL.sub(ADDRESS, text)
    text = _HOST.sub(ADDRESS, text)
    return _PATH.sub(PATH, text)


def redact_values(value: Any) -> Any:
    """The same structure with every string redacted."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {key: redact_values(item) for key, item in value.items()}
    if isinstance(value, list):
        return [redact_values(item) for item in value]
    return value
