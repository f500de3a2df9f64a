"""What the safety check accepts: allowed types, size, pixel and frame caps."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

SVG = "image/svg+xml"

# The types the check knows how to verify end to end (container walk + decode).
SUPPORTED_TYPES = frozenset({"image/png", "image/jpeg", "image/webp", "image/gif", SVG})

# Names clients and libraries use for the same type as our canonical one.
TYPE_ALIASES = MappingProxyType(
    {
        "image/jpg": "image/jpeg",
        "image/pjpeg": "image/jpeg",
        "image/x-png": "image/png",
        "image/apng": "image/png",
        "image/vnd.mozilla.apng": "image/png",
        "image/svg": SVG,
    }
)

DEFAULT_ALLOWED: Mapping[str, tuple[str, ...]] = MappingProxyType(
    {
        "image/png": (".png",),
        "image/jpeg": (".jpg", ".jpeg"),
        "image/webp": (".webp",),
        "image/gif": (".gif",),
    }
)

MB = 1024 * 1024
_POSITIVE_FIELDS = (
    "max_bytes",
    "max_pixels",
    "max_frames",
    "max_total_pixels",
    "max_metadata_bytes",
)


def canonical_type(content_type: str) -> str:
    """`content_type` lower-cased, without parameters, aliases resolved."""
    bare = content_type.split(";", 1)[0].strip().lower()
    return TYPE_ALIASES.get(bare, bare)


@dataclass(frozen=True)
class SafetyPolicy:
    """Limits and allowlist for one kind of file (client uploads or outputs)."""

    max_bytes: int = 50 * MB
    allowed: Mapping[str, tuple[str, ...]] = field(
        default_factory=lambda: DEFAULT_ALLOWED
    )
    max_pixels: int = 40_000_000
    max_frames: int = 1000
    # Decoding work over all frames of an animation.
    max_total_pixels: int = 400_000_000
    # Sum of non-pixel segments (text chunks, EXIF, XMP, ICC, comments).
    max_metadata_bytes: int = 8 * MB
    allow_svg: bool = False
    strip_metadata: bool = True
    keep_icc_profile: bool = True

    def __post_init__(self) -> None:
        allowed = {
            canonical_type(mime): tuple(ext.lower() for ext in exts)
            for mime, exts in self.allowed.items()
        }
        unknown = sorted(set(allowed) - SUPPORTED_TYPES)
        if unknown:
            raise ValueError(
                f"the safety check cannot verify {', '.join(unknown)}; "
                f"supported: {', '.join(sorted(SUPPORTED_TYPES))}"
            )
        bad = [ext for exts in allowed.values() for ext in exts if ext[:1] != "."]
        if bad:
            raise ValueError(f"extensions must start with a dot: {', '.join(bad)}")
        for name in _POSITIVE_FIELDS:
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be positive")
        object.__setattr__(self, "allowed", MappingProxyType(allowed))

    @classmethod
    def from_legacy(
        cls,
        upload_max_size_mb: float,
        allowed_map: Mapping[str, str | list[str] | tuple[str, ...]],
    ) -> SafetyPolicy:
        """The policy from the original bridge's `UPLOAD_MAX_SIZE` (MB) and
        `ALLOWED_MIME_TYPE_EXTENSION_MAP` ({"image/png": ".png", ...}).

        Other settings keep their defaults; change them with `dataclasses.replace`.
        """
        allowed = {
            mime: (exts,) if isinstance(exts, str) else tuple(exts)
            for mime, exts in allowed_map.items()
        }
        return cls(max_bytes=int(upload_max_size_mb * MB), allowed=allowed)

    def extensions_for(self, content_type: str) -> tuple[str, ...]:
        """The extensions allowed for `content_type` (empty if it is not allowed)."""
        return self.allowed.get(content_type, ())

    def allows_extension(self, extension: str) -> bool:
        """Whether any allowed type uses `extension` (with its dot)."""
        return any(extension in exts for exts in self.allowed.values())
