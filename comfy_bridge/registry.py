"""The live set of workflows: the workflows directory plus those added at run time.

Input types and bounds come from the backends' object_info, which changes as
backends come and go, so each workflow is rebuilt from its source when it does.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from comfy_bridge.exceptions import WorkflowInvalid, WorkflowNotFound
from comfy_bridge.store import Store
from comfy_bridge.workflows import (
    Workflow,
    WorkflowLimits,
    build_workflow,
    load_directory,
)

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class WorkflowOptions:
    """What an operator may set on a workflow besides its graph and inputs."""

    time_limit_s: float | None = None
    max_batch_size: int | None = None
    max_pixels: int | None = None
    # A public workflow's graph may be read by clients.
    public: bool = False

    @classmethod
    def from_mapping(cls, values: dict[str, Any]) -> WorkflowOptions:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in values.items() if k in known})

    @property
    def limits(self) -> WorkflowLimits:
        return WorkflowLimits(self.max_batch_size, self.max_pixels)


@dataclass
class _Source:
    graph: dict[str, Any]
    description: str
    declarations: list[dict[str, Any]] = field(default_factory=list)
    thumbnail: bytes | None = None
    options: WorkflowOptions = field(default_factory=lambda: WorkflowOptions())


class WorkflowRegistry:
    """Workflows by alias; the directory's are read-only, the store's editable."""

    def __init__(
        self, store: Store, workflows_dir: Path | None, alias_file: Path | None
    ) -> None:
        self._store = store
        self._workflows_dir = workflows_dir
        self._alias_file = alias_file
        self._stored: dict[str, _Source] = {}
        self._directory: dict[str, Workflow] = {}
        self._workflows: dict[str, Workflow] = {}

    async def load(self, object_info: dict[str, Any]) -> None:
        for row in await self._store.workflows():
            self._stored[row.alias] = _Source(
                row.graph,
                row.description,
                list(row.declarations),
                row.thumbnail,
                WorkflowOptions.from_mapping(row.options),
            )
        self.refresh(object_info)
        logger.info("workflows loaded: %d", len(self._workflows))

    def refresh(self, object_info: dict[str, Any]) -> None:
        """Rebuild every workflow against the backends' current node definitions."""
        workflows: dict[str, Workflow] = {}
        if self._workflows_dir is not None and self._workflows_dir.is_dir():
            loaded = load_directory(self._workflows_dir, self._alias_file, object_info)
            self._directory = {workflow.alias: workflow for workflow in loaded}
            workflows.update(self._directory)
        for alias, source in self._stored.items():
            try:
                workflows[alias] = self._build(alias, source, object_info)
            except WorkflowInvalid as exc:
                logger.warning("workflow %s no longer builds: %s", alias, exc.detail)
        self._workflows = workflows

    def _build(
        self, alias: str, source: _Source, object_info: dict[str, Any]
    ) -> Workflow:
        return build_workflow(
            alias,
            source.graph,
            description=source.description,
            declarations=source.declarations,
            object_info=object_info,
        )

    def get(self, alias: str) -> Workflow:
        workflow = self._workflows.get(alias)
        if workflow is None:
            raise WorkflowNotFound(f"no workflow is registered as {alias!r}")
        return workflow

    def all(self) -> list[Workflow]:
        return [self._workflows[alias] for alias in sorted(self._workflows)]

    def thumbnail(self, alias: str) -> bytes | None:
        source = self._stored.get(alias)
        if source is not None:
            return source.thumbnail
        workflow = self.get(alias)
        if workflow.thumbnail is None or not Path(workflow.thumbnail).is_file():
            return None
        return Path(workflow.thumbnail).read_bytes()

    def options(self, alias: str) -> WorkflowOptions:
        """The operator's options for this workflow (defaults if it has none)."""
        source = self._stored.get(alias)
        return source.options if source else WorkflowOptions()

    def editable(self, alias: str) -> bool:
        return alias not in self._directory or alias in self._stored

    async def put(
        self,
        alias: str,
        graph: dict[str, Any],
        *,
        description: str,
        declarations: list[dict[str, Any]],
        thumbnail: bytes | None,
        object_info: dict[str, Any],
        options: WorkflowOptions | None = None,
    ) -> Workflow:
        """Add or replace a workflow; it is refused whole if it does not build."""
        options = options or WorkflowOptions()
        source = _Source(graph, description, declarations, thumbnail, options)
        workflow = self._build(alias, source, object_info)
        await self._store.put_workflow(
            alias,
            description=description,
            graph=graph,
            declarations=declarations,
            thumbnail=thumbnail,
            options=asdict(options),
        )
        self._stored[alias] = source
        self._workflows[alias] = workflow
        logger.info("workflow %s registered (%d inputs)", alias, len(workflow.inputs))
        return workflow

    async def delete(self, alias: str) -> None:
        self.get(alias)
        if alias not in self._stored:
            raise WorkflowInvalid(
                f"workflow {alias!r} comes from the workflows directory; "
                "remove its file there instead"
            )
        await self._store.delete_workflow(alias)
        del self._stored[alias]
        self._workflows.pop(alias, None)
        if alias in self._directory:
            self._workflows[alias] = self._directory[alias]
        logger.info("workflow %s deleted", alias)
