"""SVG, when a policy allows it: well-formed XML with no active content.

An SVG is a document a browser runs, not a picture, so beyond the allowlist it
must carry no script, event handler, script URL, embedded HTML or external
reference. A DTD is refused outright: entity expansion is the usual way to
smuggle or multiply content past a checker.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ElementTree

from comfy_bridge.safety.rules import Rule, refuse

_ACTIVE_ELEMENTS = frozenset(
    {"script", "foreignobject", "iframe", "embed", "object", "handler", "listener"}
)
_LINK_ATTRIBUTES = frozenset({"href", "src"})
_SAFE_DATA_URL = re.compile(r"data:image/(png|jpeg|gif|webp)[;,]")
_INVISIBLE = re.compile(r"[\s\x00-\x1f]+")


def check_svg(data: bytes) -> None:
    """Refuse (`embedded_payload`, `decode_failed`) an SVG with active content."""
    if re.search(rb"<!(doctype|entity)", data, re.IGNORECASE):
        raise refuse(Rule.EMBEDDED_PAYLOAD, "the SVG declares a DTD or entities")
    try:
        root = ElementTree.fromstring(data)
    except ElementTree.ParseError as exc:
        raise refuse(Rule.DECODE_FAILED, f"the SVG is not well-formed: {exc}") from exc
    for element in root.iter():
        if found := _active_content(element):
            raise refuse(Rule.EMBEDDED_PAYLOAD, f"the SVG contains {found}")


def _local(name: str) -> str:
    return name.rsplit("}", 1)[-1].lower()


def _active_content(element: ElementTree.Element) -> str | None:
    tag = _local(element.tag)
    if tag in _ACTIVE_ELEMENTS:
        return f"a <{tag}> element"
    if tag == "style" and _unsafe_style(element.text or ""):
        return "a style sheet loading or running content"
    for name, value in element.attrib.items():
        if found := _unsafe_attribute(_local(name), value):
            return f"{found} on <{tag}>"
    return None


def _unsafe_attribute(name: str, value: str) -> str | None:
    compact = _INVISIBLE.sub("", value).lower()
    if name.startswith("on"):
        return f"an event handler ({name})"
    if "javascript:" in compact or "vbscript:" in compact:
        return f"a script URL in {name}"
    if name == "style" and _unsafe_style(value):
        return "a style loading or running content"
    if name in _LINK_ATTRIBUTES and not _local_reference(compact):
        return f"an external reference in {name}"
    return None


def _local_reference(url: str) -> bool:
    return url.startswith("#") or bool(_SAFE_DATA_URL.match(url))


def _unsafe_style(css: str) -> bool:
    compact = _INVISIBLE.sub("", css).lower()
    urls = re.findall(r"url\(['\"]?([^'\")]*)", compact)
    return (
        "@import" in compact
        or "expression(" in compact
        or any(not _local_reference(url) for url in urls)
    )
