"""The bridge's exceptions, each with an HTTP status and a short stable code.

    BridgeError
    ├── BackendError                 a backend failed us (502)
    │   ├── BackendUnavailable       cannot connect, or it is down (503)
    │   ├── BackendTimeout           it did not answer in time (504)
    │   └── BackendProtocolError     it answered something we cannot read (502)
    ├── BackendNotFound              no backend with that id (404)
    ├── BackendExists                that backend is registered already (409)
    ├── PromptRejected               the backend refused the graph (node_errors) (422)
    ├── JobError
    │   ├── JobNotFound              (404)
    │   └── JobStateConflict         the job is not in a state that allows it (409)
    ├── WorkflowError
    │   ├── WorkflowNotFound         (404)
    │   └── WorkflowInvalid          refused at registration (422)
    ├── InputInvalid                 a client's input value is refused (422)
    ├── NoBackendAvailable           no healthy backend can run it (503)
    ├── Unrunnable                   no registered backend could ever run it (409)
    ├── UploadError
    │   ├── UploadNotFound           (404)
    │   └── UnsafeFile               the safety check refused a file (4xx, code = rule)
    ├── OutputNotFound               (404)
    ├── OutputExpired                retention deleted the file; the job stays (410)
    ├── Unauthorized                 missing or wrong token (401)
    ├── KeyNotFound                  no API key with that id (404)
    ├── Forbidden                    the caller may not do that (403)
    └── RateLimited                  over a client limit; says when to retry (429)

`comfy/` translates the HTTP client's errors into the BackendError family; the API
renders every BridgeError in one place (`api/errors.py`).
"""

from __future__ import annotations

from typing import Any


class BridgeError(Exception):
    status_code = 500
    code = "internal_error"

    def __init__(
        self,
        detail: str,
        *,
        job_id: str | None = None,
        backend_id: str | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(detail)
        self.detail = detail
        self.job_id = job_id
        self.backend_id = backend_id
        self.extra = extra


class BackendError(BridgeError):
    status_code = 502
    code = "backend_error"


class BackendUnavailable(BackendError):
    status_code = 503
    code = "backend_unavailable"


class BackendTimeout(BackendError):
    status_code = 504
    code = "backend_timeout"


class BackendProtocolError(BackendError):
    status_code = 502
    code = "backend_protocol_error"


class BackendNotFound(BridgeError):
    status_code = 404
    code = "backend_not_found"


class BackendExists(BridgeError):
    status_code = 409
    code = "backend_exists"


class PromptRejected(BridgeError):
    """The backend refused the prompt; `extra` holds node_id, node_type, errors."""

    status_code = 422
    code = "prompt_rejected"


class JobError(BridgeError):
    status_code = 400
    code = "job_error"


class JobNotFound(JobError):
    status_code = 404
    code = "job_not_found"


class JobStateConflict(JobError):
    status_code = 409
    code = "job_state_conflict"


class WorkflowError(BridgeError):
    status_code = 400
    code = "workflow_error"


class WorkflowNotFound(WorkflowError):
    status_code = 404
    code = "workflow_not_found"


class WorkflowInvalid(WorkflowError):
    status_code = 422
    code = "invalid_workflow"


class InputInvalid(BridgeError):
    """A client's input value is refused; `extra["input"]` names the input."""

    status_code = 422
    code = "invalid_input"


class NoBackendAvailable(BridgeError):
    status_code = 503
    code = "no_backend_available"


class Unrunnable(BridgeError):
    """No registered backend has what the job needs; `extra["missing"]` says what."""

    status_code = 409
    code = "unrunnable"


class UploadError(BridgeError):
    status_code = 400
    code = "upload_error"


class UploadNotFound(UploadError):
    status_code = 404
    code = "upload_not_found"


class UnsafeFile(UploadError):
    """The safety check refused a file; `code` is the rule that fired."""

    status_code = 422

    def __init__(self, rule: str, detail: str, *, status_code: int = 422) -> None:
        super().__init__(detail)
        self.code = rule
        self.status_code = status_code


class OutputNotFound(BridgeError):
    status_code = 404
    code = "output_not_found"


class OutputExpired(BridgeError):
    status_code = 410
    code = "output_expired"


class Unauthorized(BridgeError):
    status_code = 401
    code = "unauthorized"


class Forbidden(BridgeError):
    status_code = 403
    code = "forbidden"


class KeyNotFound(BridgeError):
    status_code = 404
    code = "key_not_found"


class RateLimited(BridgeError):
    """Over one of the client's limits; `retry_after_s` says when to try again."""

    status_code = 429
    code = "rate_limited"

    def __init__(self, detail: str, *, retry_after_s: float, limit: str) -> None:
        super().__init__(detail, limit=limit)
        self.retry_after_s = retry_after_s
