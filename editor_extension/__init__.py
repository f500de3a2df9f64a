"""comfy-bridge's editor extension for ComfyUI: marks public inputs, publishes.

It adds no nodes; ComfyUI serves the files under WEB_DIRECTORY to the editor,
which loads every .js file there as an extension.
"""

NODE_CLASS_MAPPINGS: dict[str, type] = {}
NODE_DISPLAY_NAME_MAPPINGS: dict[str, str] = {}
WEB_DIRECTORY = "./web"

__all__ = ["NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS", "WEB_DIRECTORY"]
