"""The v1 API's request and response bodies."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from comfy_bridge.auth import Role
from comfy_bridge.config import backend_url
from comfy_bridge.store import ApiKeyRow

# A request with a field we do not know is refused: a misspelt `input` must
# not quietly run a job with the defaults.
STRICT = ConfigDict(extra="forbid")

# A day: a lease longer than that is no lease.
LEASE_MAX_S = 86_400.0


class JobCreate(BaseModel):
    model_config = STRICT

    workflow: str = Field(description="The alias of a registered workflow.")
    inputs: dict[str, Any] = Field(
        default_factory=dict,
        description="Values by input name; a file input takes an upload id.",
    )
    lease_s: float | None = Field(
        None,
        gt=0,
        le=LEASE_MAX_S,
        allow_inf_nan=False,
        description="Cancel the job if nobody polls or streams it for this long.",
    )
    priority: int = Field(
        0,
        ge=-100,
        le=100,
        description="Higher runs sooner; above 0 needs the admin token.",
    )


class JobError(BaseModel):
    code: str
    message: str
    node_id: str | None = None
    node_type: str | None = None
    reason: str | None = None


class OutputPublic(BaseModel):
    index: int
    node_id: str
    kind: str
    filename: str
    content_type: str
    size: int
    url: str
    # When retention deleted the file: its url answers 410 from then on.
    expired_at_ms: int | None = None


class JobPublic(BaseModel):
    id: str
    workflow: str
    status: str
    progress: float
    priority: int
    inputs: dict[str, Any]
    error: dict[str, Any] | None
    outputs: list[OutputPublic]
    attempts: int
    created_at_ms: int
    updated_at_ms: int
    finished_at_ms: int | None
    lease_s: float | None = None


class JobsPublic(BaseModel):
    jobs: list[JobPublic]
    total: int


class InputPublic(BaseModel):
    name: str
    type: str
    title: str
    description: str = ""
    default: Any = None
    required: bool
    minimum: int | float | None = None
    maximum: int | float | None = None
    step: int | float | None = None
    choices: list[Any] | None = None
    multiline: bool = False


class MissingPublic(BaseModel):
    node_classes: list[str]
    models: list[str]


class WorkflowBackendPublic(BaseModel):
    id: str
    state: str
    runnable: bool
    missing: MissingPublic


class WorkflowPublic(BaseModel):
    alias: str
    description: str
    inputs: list[InputPublic]
    schema_: dict[str, Any] = Field(alias="schema", serialization_alias="schema")
    thumbnail_url: str | None = None
    backends: list[WorkflowBackendPublic] | None = Field(
        None, description="Where it can run: each backend and what it lacks."
    )


class WorkflowsPublic(BaseModel):
    workflows: list[WorkflowPublic]


class InputDeclaration(BaseModel):
    model_config = STRICT

    name: str | None = None
    node: str
    input: str
    title: str | None = None
    description: str | None = None
    default: Any = None
    min: float | None = None
    max: float | None = None
    step: float | None = None
    choices: list[Any] | None = None
    required: bool | None = None


class WorkflowCreate(BaseModel):
    model_config = STRICT

    workflow: dict[str, Any] = Field(description="The graph, in ComfyUI's API format.")
    description: str = ""
    inputs: list[InputDeclaration] = Field(
        default_factory=list,
        description="Inputs to expose besides those marked with _meta.apiinput.",
    )
    thumbnail: str | None = Field(None, description="A base64-encoded image.")
    time_limit_s: float | None = Field(
        None, gt=0, description="Cancel a job of this workflow running longer."
    )
    max_batch_size: int | None = Field(
        None, ge=1, description="The largest batch_size one job may ask for."
    )
    max_pixels: int | None = Field(
        None, ge=1, description="The largest width × height one job may ask for."
    )
    public: bool = Field(
        False, description="Clients may read the graph at /v1/workflows/{alias}/graph."
    )


class UploadPublic(BaseModel):
    id: str
    filename: str
    content_type: str
    size: int
    sha256: str


class BackendCreate(BaseModel):
    model_config = STRICT

    url: str = Field(description="The ComfyUI server's base URL (http or https).")
    slots: int | None = Field(None, ge=1, le=64)

    @field_validator("url")
    @classmethod
    def _checked_url(cls, value: str) -> str:
        return backend_url(value)


class BackendPublic(BaseModel):
    id: str
    state: str
    slots: int
    in_flight: int
    queue_remaining: int
    url: str
    node_classes: int
    models: int
    checkpoint: str | None = None
    vram_total: int | None = None
    vram_free: int | None = None
    jobs_done: int
    degraded: bool = False


class BackendsPublic(BaseModel):
    backends: list[BackendPublic]


class KeyCreate(BaseModel):
    model_config = STRICT

    name: str = Field(min_length=1, max_length=128, description="Whose key it is.")
    role: Role = Field(Role.CLIENT, description="`client` or `admin`.")


class KeyPublic(BaseModel):
    id: str
    name: str
    role: Role
    created_at_ms: int
    last_used_at_ms: int | None
    revoked: bool

    @classmethod
    def of(cls, row: ApiKeyRow) -> KeyPublic:
        return cls(
            id=row.id,
            name=row.name,
            role=Role(row.role),
            created_at_ms=row.created_at_ms,
            last_used_at_ms=row.last_used_at_ms,
            revoked=row.revoked,
        )


class KeyCreated(KeyPublic):
    key: str = Field(description="The key itself; it is shown this once only.")


class KeysPublic(BaseModel):
    keys: list[KeyPublic]
