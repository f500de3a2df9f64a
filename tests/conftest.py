from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.processes import SHARED, simulator

# These replay ComfyUI's recorded traffic and the shared workflows, which sit in
# `shared/` beside the checkout (as in CI); a bare clone leaves them out.
NEEDS_SHARED = [
    "test_comfy_client.py",
    "test_comfy_messages.py",
    "test_comfy_simulator.py",
    "test_shared_workflows.py",
    "test_simulator.py",
    "test_simulator_workflows.py",
    "test_workflows.py",
]
collect_ignore = [] if SHARED.is_dir() else NEEDS_SHARED


def pytest_report_header(config: pytest.Config) -> str | None:
    if SHARED.is_dir():
        return None
    return (
        f"no shared test data at {SHARED}: left out {len(NEEDS_SHARED)} modules "
        "that replay ComfyUI's recorded traffic"
    )


@pytest.fixture
def simulator_url(tmp_path: Path) -> Iterator[str]:
    """A fresh simulator process on a loopback port."""
    with simulator(log_path=tmp_path / "simulator.log") as url:
        yield url
