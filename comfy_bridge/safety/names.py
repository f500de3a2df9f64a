"""Client file names, reduced to something safe to show and never used on disk.

A name is *reduced*, not refused, when it carries directories, traversal, control
or bidirectional characters: the bridge never uses it as a path, so only its
display matters. `unsafe_name` fires in `check_file` when nothing usable is left
after the reduction, or when the extension left is not one the allowlist knows
(`photo.php`, `photo<U+202E>gnp.exe`, `../../cron.d/job.sh`).
"""

from __future__ import annotations

import unicodedata

MAX_NAME_CHARS = 180
MAX_EXTENSION_CHARS = 16

# Cc: C0/C1 controls (NUL, ESC, DEL...); Cf: format characters, which include
# the bidirectional overrides (U+202E) that make "gpj.exe" read as "exe.jpg";
# Zl/Zp: line and paragraph separators; Cs: lone surrogates.
_DROPPED_CATEGORIES = frozenset({"Cc", "Cf", "Zl", "Zp", "Cs"})


def safe_display_name(name: str | None) -> str:
    """`name` reduced to a safe base name for display ("" if nothing is left).

    Keeps the last path component (either separator), NFC-normalised, without
    control, format or bidirectional characters, with whitespace collapsed,
    leading and trailing dots and spaces removed, and at most MAX_NAME_CHARS
    characters (the stem is shortened, the extension kept).
    """
    if not name:
        return ""
    base = name.replace("\\", "/").rsplit("/", 1)[-1]
    base = unicodedata.normalize("NFC", base)
    kept = "".join(
        ch for ch in base if unicodedata.category(ch) not in _DROPPED_CATEGORIES
    )
    collapsed = " ".join(kept.split())
    return _bounded(collapsed.strip(" ."))


def split_extension(name: str) -> tuple[str, str]:
    """(stem, lower-cased extension with its dot, or "") of a display name."""
    stem, dot, ext = name.rpartition(".")
    if not dot or not stem or not ext or len(ext) + 1 > MAX_EXTENSION_CHARS:
        return name, ""
    return stem, "." + ext.lower()


def _bounded(name: str) -> str:
    if len(name) <= MAX_NAME_CHARS:
        return name
    stem, _ = split_extension(name)
    extension = name[len(stem) :]
    return stem[: MAX_NAME_CHARS - len(extension)].rstrip(" .") + extension
