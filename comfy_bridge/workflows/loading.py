"""Loading workflows from the original bridge's directory layout.

    workflows/              API-format graphs (*.json)
    workflows/thumbnail/    images named by the alias file's `thumbnail`
    workflows/descimage/    images named by the nodes' `_meta.descimage`
    alias file              JSON list of {alias, fn, description, thumbnail}

A graph with no alias entry registers under its file's stem. A bad entry or
file is logged and skipped so that the others still load.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from comfy_bridge.exceptions import WorkflowInvalid
from comfy_bridge.workflows.model import Workflow, build_workflow, validate_alias
from comfy_bridge.workflows.objectinfo import ObjectInfo
from comfy_bridge.workflows.specs import InputSpec

logger = logging.getLogger(__name__)

THUMBNAIL_DIR = "thumbnail"
DESCIMAGE_DIR = "descimage"


@dataclass(frozen=True)
class _Entry:
    alias: str
    fn: str
    description: str = ""
    thumbnail: str | None = None


def load_directory(
    workflows_dir: Path | str,
    alias_file: Path | str | None = None,
    object_info: ObjectInfo | None = None,
) -> list[Workflow]:
    """Every workflow that loads from the directory, alias entries first."""
    directory = Path(workflows_dir)
    aliases = Path(alias_file) if alias_file is not None else None
    entries = _read_alias_file(aliases) if aliases is not None else []
    entries += _unlisted(directory, entries, aliases)
    workflows: list[Workflow] = []
    for entry in entries:
        if any(workflow.alias == entry.alias for workflow in workflows):
            logger.warning(
                "skipping %s: alias %r is already taken", entry.fn, entry.alias
            )
            continue
        workflow = _load_entry(directory, entry, object_info or {})
        if workflow is not None:
            workflows.append(workflow)
    logger.info(
        "loaded %d of %d workflows from %s", len(workflows), len(entries), directory
    )
    return workflows


def _read_alias_file(path: Path) -> list[_Entry]:
    items = _read_json(path)
    if not isinstance(items, list):
        raise WorkflowInvalid(
            f"alias file {path}: expected a JSON list, got {type(items).__name__}"
        )
    entries = [_entry(path, index, item) for index, item in enumerate(items)]
    return [entry for entry in entries if entry is not None]


def _entry(path: Path, index: int, item: Any) -> _Entry | None:
    fields = ("alias", "fn", "description", "thumbnail")
    if (
        isinstance(item, dict)
        and isinstance(item.get("alias"), str)
        and isinstance(item.get("fn"), str)
        and isinstance(item.get("description") or "", str)
        and isinstance(item.get("thumbnail") or "", str)
    ):
        return _Entry(**{key: item[key] for key in fields if item.get(key) is not None})
    logger.warning(
        "alias file %s: skipping entry %d, expected {alias, fn, description, "
        "thumbnail} with string values, got %.200r",
        path,
        index,
        item,
    )
    return None


def _unlisted(
    directory: Path, entries: Iterable[_Entry], alias_file: Path | None
) -> list[_Entry]:
    listed = {entry.fn for entry in entries}
    skip = alias_file.resolve() if alias_file is not None else None
    return [
        _Entry(alias=path.stem, fn=path.name)
        for path in sorted(directory.glob("*.json"))
        if path.name not in listed and path.resolve() != skip
    ]


def _load_entry(
    directory: Path, entry: _Entry, object_info: ObjectInfo
) -> Workflow | None:
    try:
        workflow = build_workflow(
            validate_alias(entry.alias),
            _read_json(_inside(directory, entry.fn)),
            description=entry.description,
            object_info=object_info,
            thumbnail=_thumbnail(directory, entry),
            descimage_dir=directory / DESCIMAGE_DIR,
        )
    except WorkflowInvalid as exc:
        logger.warning(
            "skipping workflow %r (%s): %s", entry.alias, entry.fn, exc.detail
        )
        return None
    return replace(
        workflow,
        file_name=entry.fn,
        inputs=tuple(
            _with_existing_descimage(workflow.alias, spec) for spec in workflow.inputs
        ),
    )


def _thumbnail(directory: Path, entry: _Entry) -> Path | None:
    if not entry.thumbnail:
        return None
    path = _inside(directory / THUMBNAIL_DIR, entry.thumbnail)
    if path.is_file():
        return path
    logger.warning("workflow %r: thumbnail %s does not exist", entry.alias, path)
    return None


def _with_existing_descimage(alias: str, spec: InputSpec) -> InputSpec:
    if spec.descimage is None or spec.descimage.is_file():
        return spec
    logger.warning(
        "workflow %r input %r: descimage %s does not exist",
        alias,
        spec.name,
        spec.descimage,
    )
    return replace(spec, descimage=None)


def _inside(directory: Path, name: str) -> Path:
    # Names come from a config file; none may reach outside its folder.
    path = (directory / name).resolve()
    if not path.is_relative_to(directory.resolve()):
        raise WorkflowInvalid(f"{name!r} points outside {directory}")
    return path


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise WorkflowInvalid(f"cannot read {path}: {exc}") from exc
