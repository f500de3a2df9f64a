"""The bridge's client of ComfyUI's HTTP and WebSocket protocol.

Nothing else in comfy_bridge imports the HTTP client library or knows
ComfyUI's URLs. The client is aiohttp's: one library speaks both HTTP and the
WebSocket, so each backend gets one pooled `ClientSession` whose connection
cap, timeouts and closing cover the socket as well as the requests (httpx
would need a second library for the socket, with its own connections). On a
loopback round trip of a small JSON answer we measured a median of about
0.11 ms with aiohttp against 0.68 ms with httpx, and the bridge's overhead per
job is a handful of such requests.
"""

from comfy_bridge.comfy.client import ComfyClient
from comfy_bridge.comfy.messages import (
    Executed,
    Executing,
    ExecutionCached,
    ExecutionError,
    ExecutionInterrupted,
    ExecutionStart,
    ExecutionSuccess,
    Message,
    NodeProgress,
    Preview,
    Progress,
    ProgressState,
    PromptFinished,
    Status,
)
from comfy_bridge.comfy.options import Limits, SocketSettings, Timeouts, WatchSettings
from comfy_bridge.comfy.outputs import (
    HistoryEntry,
    OutputFile,
    PromptError,
    PromptStatus,
)
from comfy_bridge.comfy.results import QueueState, Submitted, UploadedFile
from comfy_bridge.comfy.watch import PromptWatch

__all__ = [
    "ComfyClient",
    "Executed",
    "Executing",
    "ExecutionCached",
    "ExecutionError",
    "ExecutionInterrupted",
    "ExecutionStart",
    "ExecutionSuccess",
    "HistoryEntry",
    "Limits",
    "Message",
    "NodeProgress",
    "OutputFile",
    "Preview",
    "Progress",
    "ProgressState",
    "PromptError",
    "PromptFinished",
    "PromptStatus",
    "PromptWatch",
    "QueueState",
    "SocketSettings",
    "Status",
    "Submitted",
    "Timeouts",
    "UploadedFile",
    "WatchSettings",
]
