"""Logging set-up, applied only by the entry points."""

from __future__ import annotations

import logging.config
from typing import Any


def configure(level: str = "INFO") -> dict[str, Any]:
    """Apply our format to the bridge's and uvicorn's loggers; returns the config."""
    config: dict[str, Any] = {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {
            "plain": {"format": "%(asctime)s %(levelname)-7s %(name)s: %(message)s"},
        },
        "handlers": {
            "stderr": {"class": "logging.StreamHandler", "formatter": "plain"},
        },
        "loggers": {
            "comfy_bridge": {"level": level.upper()},
            "uvicorn": {"level": "INFO"},
            "uvicorn.access": {"level": "WARNING"},
        },
        "root": {"handlers": ["stderr"], "level": "WARNING"},
    }
    logging.config.dictConfig(config)
    return config
