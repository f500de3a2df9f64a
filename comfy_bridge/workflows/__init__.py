"""The workflow registry's logic: graphs, exposed inputs, schemas and binding.

Pure functions and frozen dataclasses; nothing here touches the network or the
store. `loading` reads the original bridge's workflow directory.
"""

from comfy_bridge.workflows.binding import bind, validate_values
from comfy_bridge.workflows.discovery import RESERVED_NAMES
from comfy_bridge.workflows.graph import (
    BRIDGE_META_KEYS,
    Graph,
    Requirements,
    is_link,
    model_files,
    output_nodes,
    parse_graph,
    requirements,
    strip_bridge_meta,
)
from comfy_bridge.workflows.limits import WorkflowLimits, check_limits
from comfy_bridge.workflows.loading import load_directory
from comfy_bridge.workflows.model import Workflow, build_workflow, validate_alias
from comfy_bridge.workflows.objectinfo import ObjectInfo
from comfy_bridge.workflows.schema import json_schema
from comfy_bridge.workflows.specs import InputDeclaration, InputSpec, InputType

__all__ = [
    "BRIDGE_META_KEYS",
    "RESERVED_NAMES",
    "Graph",
    "InputDeclaration",
    "InputSpec",
    "InputType",
    "ObjectInfo",
    "Requirements",
    "Workflow",
    "WorkflowLimits",
    "bind",
    "check_limits",
    "build_workflow",
    "is_link",
    "json_schema",
    "load_directory",
    "model_files",
    "output_nodes",
    "parse_graph",
    "requirements",
    "strip_bridge_meta",
    "validate_alias",
    "validate_values",
]
