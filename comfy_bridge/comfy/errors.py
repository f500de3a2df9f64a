"""Translation of transport failures and backend refusals into bridge errors.

Every call to a backend runs inside `backend_errors`, so no aiohttp or asyncio
exception leaves this package; the most specific match wins.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import aiohttp

from comfy_bridge.exceptions import (
    BackendProtocolError,
    BackendTimeout,
    BackendUnavailable,
    PromptRejected,
)

# ComfyUI names the culprit of an `invalid_prompt` only inside its details text.
_NODE_ID_IN_DETAILS = re.compile(r"#(\S+?)'?$")


@contextmanager
def backend_errors(backend_id: str, action: str) -> Iterator[None]:
    """Re-raise the transport errors of `action` as BackendError subclasses."""
    try:
        yield
    except aiohttp.ConnectionTimeoutError as exc:
        # aiohttp's connect deadline also covers the wait for a pooled
        # connection: either way the backend cannot take more work now.
        raise BackendUnavailable(
            f"{action}: no connection to the backend within the deadline "
            "(backend unreachable or its connection pool is full)",
            backend_id=backend_id,
        ) from exc
    except (aiohttp.ServerTimeoutError, TimeoutError) as exc:
        raise BackendTimeout(
            f"{action}: the backend stopped answering", backend_id=backend_id
        ) from exc
    except aiohttp.ClientConnectionError as exc:
        raise BackendUnavailable(
            f"{action}: connection failed ({exc})", backend_id=backend_id
        ) from exc
    except (
        aiohttp.ClientResponseError,
        aiohttp.ClientPayloadError,
        json.JSONDecodeError,
        UnicodeDecodeError,
    ) as exc:
        raise BackendProtocolError(
            f"{action}: unreadable answer ({exc})", backend_id=backend_id
        ) from exc
    except aiohttp.ClientError as exc:
        raise BackendProtocolError(
            f"{action}: {type(exc).__name__}: {exc}", backend_id=backend_id
        ) from exc


def unexpected_status(
    backend_id: str, action: str, status: int, body: str
) -> BackendProtocolError:
    """The error for an HTTP status the protocol does not foresee."""
    excerpt = " ".join(body.split())[:200]
    return BackendProtocolError(
        f"{action}: the backend answered {status}: {excerpt or '(empty body)'}",
        backend_id=backend_id,
        status=status,
    )


def prompt_rejected(backend_id: str, prompt_id: str, body: Any) -> PromptRejected:
    """Turn the body of a 400 on POST /prompt into PromptRejected.

    The headline names the first failing node; `extra` carries the error type,
    that node's id and class, its messages, and every failing node.
    """
    if not isinstance(body, dict):
        raise BackendProtocolError(
            "submit: a 400 without a JSON error object", backend_id=backend_id
        )
    error = body.get("error")
    if not isinstance(error, dict):
        error = {}
    nodes = _failing_nodes(body.get("node_errors"))
    if not nodes:
        nodes = _node_from_details(error)
    first = nodes[0] if nodes else {"node_id": None, "node_type": None, "errors": []}
    headline = _headline(error, first)
    return PromptRejected(
        headline,
        backend_id=backend_id,
        prompt_id=prompt_id,
        error_type=str(error.get("type", "")),
        node_id=first["node_id"],
        node_type=first["node_type"],
        messages=[e["message"] for e in first["errors"]],
        node_errors=nodes,
    )


def _failing_nodes(node_errors: Any) -> list[dict[str, Any]]:
    if not isinstance(node_errors, dict):
        return []
    nodes = []
    for node_id, entry in node_errors.items():
        if not isinstance(entry, dict):
            continue
        errors = [
            _error_line(e) for e in entry.get("errors", []) if isinstance(e, dict)
        ]
        nodes.append(
            {
                "node_id": str(node_id),
                "node_type": entry.get("class_type"),
                "errors": errors,
            }
        )
    return nodes


def _error_line(error: dict[str, Any]) -> dict[str, str]:
    return {
        "type": str(error.get("type", "")),
        "message": str(error.get("message", "")),
        "details": str(error.get("details", "")),
    }


def _node_from_details(error: dict[str, Any]) -> list[dict[str, Any]]:
    match = _NODE_ID_IN_DETAILS.search(str(error.get("details", "")))
    if match is None:
        return []
    return [{"node_id": match.group(1), "node_type": None, "errors": []}]


def _headline(error: dict[str, Any], first: dict[str, Any]) -> str:
    if first["errors"]:
        line = first["errors"][0]
        reason = str(line["message"])
        if line["details"]:
            reason = f"{reason}: {line['details']}"
    else:
        reason = str(error.get("message") or "the backend refused the prompt")
    if first["node_id"] is None:
        return reason
    node = f"node {first['node_id']}"
    if first["node_type"]:
        node = f"{node} ({first['node_type']})"
    return f"{node}: {reason}"
