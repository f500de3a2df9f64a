from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.processes import simulator


@pytest.fixture
def simulator_url(tmp_path: Path) -> Iterator[str]:
    """A fresh simulator process on a loopback port."""
    with simulator(log_path=tmp_path / "simulator.log") as url:
        yield url
