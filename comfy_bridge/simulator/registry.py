"""What a simulator claims to have: node classes and model files."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from comfy_bridge.simulator import claims
from comfy_bridge.simulator.catalogue import builtin_specs
from comfy_bridge.simulator.options import SimulatorOptions
from comfy_bridge.simulator.specs import NodeSpec, render_node
from comfy_bridge.simulator.storage import Storage

logger = logging.getLogger(__name__)

# The model folders a stock ComfyUI lists at /models.
MODEL_FOLDERS = (
    "checkpoints", "configs", "loras", "vae", "text_encoders", "diffusion_models",
    "clip_vision", "style_models", "embeddings", "diffusers", "vae_approx",
    "controlnet", "gligen", "upscale_models", "custom_nodes", "hypernetworks",
    "photomaker", "classifiers", "model_patches", "audio_encoders",
)  # fmt: skip


class WorkflowFormatError(ValueError):
    """A file given to --claim-workflow is not an API-format workflow."""


class Registry:
    """Node specs by class name, claimed model files by folder, claimed input files."""

    def __init__(self, options: SimulatorOptions, storage: Storage) -> None:
        self.storage = storage
        self.specs: dict[str, NodeSpec] = builtin_specs()
        self.models: dict[str, list[str]] = {}
        self.claimed_inputs: set[str] = set()
        for entry in options.models:
            folder, _, name = entry.partition("/")
            if not name:
                raise ValueError(f"--model wants folder/name, got {entry!r}")
            self.add_model(folder, name)
        for name in options.nodes:
            self.specs.setdefault(name, claims.named_stand_in(name))
        for path in options.claim_workflows:
            self.claim_workflow(path)

    def add_model(self, folder: str, name: str) -> None:
        names = self.models.setdefault(folder, [])
        if name not in names:
            names.append(name)
            names.sort()

    def claim_workflow(self, path: Path) -> None:
        graph = load_api_workflow(path)
        specs, models, inputs = claims.claim(graph, self.specs)
        for spec in specs:
            self.specs.setdefault(spec.name, spec)
        for name, folder in models.items():
            self.add_model(folder, name)
        self.claimed_inputs |= inputs
        logger.info(
            "claimed %s: %d stand-in classes, %d models, %d input files",
            path.name,
            len(specs),
            len(models),
            len(inputs),
        )

    def model_folders(self) -> list[str]:
        return list(MODEL_FOLDERS) + sorted(set(self.models) - set(MODEL_FOLDERS))

    def object_info(self) -> dict[str, Any]:
        files = self.storage.input_files()
        return {
            name: render_node(spec, self.models, files)
            for name, spec in self.specs.items()
        }

    def node_info(self, name: str) -> dict[str, Any]:
        spec = self.specs.get(name)
        if spec is None:
            return {}
        return {name: render_node(spec, self.models, self.storage.input_files())}


def load_api_workflow(path: Path) -> dict[str, dict[str, Any]]:
    """Read an API-format graph (optionally wrapped as `{"prompt": {...}}`)."""
    data = json.loads(path.read_text(encoding="utf-8"))
    if isinstance(data, dict) and isinstance(data.get("prompt"), dict):
        data = data["prompt"]
    if not isinstance(data, dict) or not all(
        isinstance(node, dict) and "class_type" in node for node in data.values()
    ):
        raise WorkflowFormatError(f"{path} is not an API-format workflow")
    return data
