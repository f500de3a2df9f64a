"""The original bridge's state file: a JSON object holding `generation_count`.

The store's counter is the truth. The file seeds it at start, so a count the
original bridge reached carries on, and is rewritten as the count grows, so
tools that read the file keep working.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

KEY = "generation_count"


class StateFile:
    """Reads and writes the count; a write never lowers what was written."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._written = -1
        self._lock = asyncio.Lock()

    async def read_count(self) -> int:
        state = await asyncio.to_thread(self._read)
        count = state.get(KEY, 0)
        return count if isinstance(count, int) and count >= 0 else 0

    async def write_count(self, count: int) -> None:
        # Serialised, so concurrent jobs never write an older count last.
        async with self._lock:
            if count <= self._written:
                return
            try:
                await asyncio.to_thread(self._write, count)
            except OSError as exc:
                logger.warning("cannot write the state file %s: %s", self.path, exc)
                return
            self._written = count

    def _read(self) -> dict[str, Any]:
        try:
            state = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            logger.warning("cannot read the state file %s: %s", self.path, exc)
            return {}
        return state if isinstance(state, dict) else {}

    def _write(self, count: int) -> None:
        # Other keys the operator keeps there stay; the swap is atomic.
        state = {**self._read(), KEY: count}
        temporary = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        temporary.write_text(json.dumps(state, indent=2), encoding="utf-8")
        temporary.replace(self.path)
