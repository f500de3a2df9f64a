"""A ComfyUI-protocol server for demos and tests.

It speaks ComfyUI 0.3.64's HTTP and WebSocket protocol as recorded in the shared
captures, really runs the model-free image nodes with Pillow, and stands in for
model nodes with timed steps, so the bridge can be tested without a GPU.
"""

from comfy_bridge.simulator.options import Fault, FaultKind, SimulatorOptions

__all__ = ["Fault", "FaultKind", "SimulatorOptions"]
