"""Finished prompts, kept in memory only and capped, oldest dropped first."""

from __future__ import annotations

from collections import OrderedDict
from typing import Any


class History:
    """History entries by prompt_id, in the order the prompts finished."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.entries: OrderedDict[str, dict[str, Any]] = OrderedDict()

    def add(self, prompt_id: str, entry: dict[str, Any]) -> None:
        # A reused prompt_id keeps only the last run, at the newest position.
        self.entries.pop(prompt_id, None)
        self.entries[prompt_id] = entry
        while len(self.entries) > self.limit:
            self.entries.popitem(last=False)

    def get(self, prompt_id: str) -> dict[str, Any]:
        entry = self.entries.get(prompt_id)
        return {prompt_id: entry} if entry is not None else {}

    def page(self, max_items: int | None, offset: int) -> dict[str, Any]:
        """`max_items` newest entries, or all from `offset` (oldest first)."""
        items = list(self.entries.items())
        if offset < 0 and max_items is not None:
            offset = len(items) - max_items
        start = max(offset, 0)
        end = start + max_items if max_items is not None else len(items)
        return dict(items[start:end])

    def delete(self, prompt_ids: list[str]) -> None:
        for prompt_id in prompt_ids:
            self.entries.pop(str(prompt_id), None)

    def clear(self) -> None:
        self.entries.clear()
