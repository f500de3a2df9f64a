"""comfy-bridge: one front door for many ComfyUI servers."""

__version__ = "0.1.0"
