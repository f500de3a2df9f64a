"""The safety check every file crosses, uploads and outputs alike.

One pipeline: a size limit while streaming; the client's name reduced to a
display name and never used on disk; the type detected from the content and
matched against the allowlist, the extension and the declared type; the
container walked for trailing data, hidden segments and embedded payloads; a
full decode under pixel and frame caps; outputs re-encoded without metadata.
Every refusal is an `UnsafeFile` whose `code` names the rule (see `Rule`).
"""

from comfy_bridge.safety.check import CheckedFile, check_file, detect_type
from comfy_bridge.safety.multipart import read_multipart
from comfy_bridge.safety.names import safe_display_name
from comfy_bridge.safety.policy import SafetyPolicy
from comfy_bridge.safety.reencode import reencode
from comfy_bridge.safety.rules import Rule
from comfy_bridge.safety.streams import receive, receive_output

__all__ = [
    "CheckedFile",
    "Rule",
    "SafetyPolicy",
    "check_file",
    "detect_type",
    "read_multipart",
    "receive",
    "receive_output",
    "reencode",
    "safe_display_name",
]
