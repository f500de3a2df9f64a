"""Settings from the environment, `.env` and a config file (ours or the original's).

Precedence, highest first: keyword arguments, environment variables, `.env`, the
config file, defaults. Our own names carry the `BRIDGE_` prefix; the original
bridge's names (`HOST`, `PORT`, `COMFYUI_SERVERS`, `CONFIG` and the upper-case keys
of its JSON config file) are read as they are, so its users switch without edits.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tomllib
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import SplitResult, urlsplit, urlunsplit

from dotenv import dotenv_values
from pydantic import AliasChoices, Field, field_validator
from pydantic.fields import FieldInfo
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from comfy_bridge.scheduler import Policy

MB = 1024 * 1024
DAY_S = 24 * 3600.0

DEFAULT_ALLOWED_TYPES: dict[str, list[str]] = {
    "image/png": [".png"],
    "image/jpeg": [".jpg", ".jpeg"],
    "image/webp": [".webp"],
    "image/gif": [".gif"],
}


def _alias(name: str, *legacy: str) -> AliasChoices:
    return AliasChoices(f"BRIDGE_{name.upper()}", *legacy)


class Settings(BaseSettings):
    """Everything the bridge can be told at start."""

    model_config = SettingsConfigDict(
        env_file=".env", extra="ignore", populate_by_name=True
    )

    host: str = Field("127.0.0.1", validation_alias=_alias("host", "HOST"))
    port: int = Field(8000, validation_alias=_alias("port", "PORT"))
    data_dir: Path = Field(Path("var"), validation_alias=_alias("data_dir"))
    database_url: str | None = Field(None, validation_alias=_alias("database_url"))
    admin_token: str | None = Field(None, validation_alias=_alias("admin_token"))
    # Open mode: callers without a key are anonymous clients. For local use; a
    # bind that is not loopback refuses it unless `open_public` forces it.
    open: bool = Field(False, validation_alias=_alias("open"))
    open_public: bool = Field(False, validation_alias=_alias("open_public"))
    log_level: str = Field("INFO", validation_alias=_alias("log_level"))
    # Browser origins allowed to call the API, such as a ComfyUI editor that
    # publishes workflows with the editor extension; none unless listed.
    cors_origins: Annotated[list[str], NoDecode] = Field(
        default_factory=list, validation_alias=_alias("cors_origins")
    )

    backends: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        validation_alias=_alias("backends", "COMFYUI_SERVERS"),
    )
    backend_slots: int = Field(2, ge=1, validation_alias=_alias("backend_slots"))
    backend_probe_interval_s: float = Field(
        5.0, gt=0, validation_alias=_alias("backend_probe_interval_s")
    )

    # Placement: `ours`; `least_queue` and `round_robin` are the baselines the
    # scheduling benchmark compares it with (they bind every job at submission).
    placement: Policy = Field(Policy.OURS, validation_alias=_alias("placement"))
    placement_switch_s: float = Field(
        5.0, ge=0, validation_alias=_alias("placement_switch_s")
    )
    placement_prior_run_s: float = Field(
        10.0, gt=0, validation_alias=_alias("placement_prior_run_s")
    )

    workflows_dir: Path | None = Field(None, validation_alias=_alias("workflows_dir"))
    alias_file: Path | None = Field(None, validation_alias=_alias("alias_file"))
    state_file: Path | None = Field(None, validation_alias=_alias("state_file"))

    limit_upload_bytes: int = Field(
        100 * MB, gt=0, validation_alias=_alias("limit_upload_bytes")
    )
    limit_output_bytes: int = Field(
        512 * MB, gt=0, validation_alias=_alias("limit_output_bytes")
    )
    limit_pixels: int = Field(64_000_000, gt=0, validation_alias=_alias("limit_pixels"))
    limit_frames: int = Field(1_000, gt=0, validation_alias=_alias("limit_frames"))
    limit_attempts: int = Field(3, ge=1, validation_alias=_alias("limit_attempts"))
    # Per client (per key; 0: no limit). The admin token is never limited.
    limit_client_jobs_per_minute: float = Field(
        60.0, ge=0, validation_alias=_alias("limit_client_jobs_per_minute")
    )
    limit_client_jobs_burst: int = Field(
        0, ge=0, validation_alias=_alias("limit_client_jobs_burst")
    )
    limit_client_queued_jobs: int = Field(
        20, ge=0, validation_alias=_alias("limit_client_queued_jobs")
    )
    limit_client_running_jobs: int = Field(
        4, ge=0, validation_alias=_alias("limit_client_running_jobs")
    )
    limit_client_upload_bytes_per_hour: int = Field(
        1024 * MB, ge=0, validation_alias=_alias("limit_client_upload_bytes_per_hour")
    )
    allowed_types: dict[str, list[str]] = Field(
        default_factory=lambda: dict(DEFAULT_ALLOWED_TYPES),
        validation_alias=_alias("allowed_types"),
    )
    outputs_keep_metadata: bool = Field(
        False, validation_alias=_alias("outputs_keep_metadata")
    )

    timeout_job_s: float = Field(3600.0, gt=0, validation_alias=_alias("timeout_job_s"))
    timeout_silence_s: float = Field(
        300.0, gt=0, validation_alias=_alias("timeout_silence_s")
    )
    timeout_stop_s: float = Field(10.0, gt=0, validation_alias=_alias("timeout_stop_s"))
    timeout_placement_s: float = Field(
        600.0, gt=0, validation_alias=_alias("timeout_placement_s")
    )
    timeout_graceful_shutdown_s: float = Field(
        10.0, ge=0, validation_alias=_alias("timeout_graceful_shutdown_s")
    )
    ws_cancel_grace_s: float = Field(
        3.0, ge=0, validation_alias=_alias("ws_cancel_grace_s")
    )

    # How long files stay; 0 keeps them forever. A job's record outlives them.
    retention_outputs_s: float = Field(
        7 * DAY_S, ge=0, validation_alias=_alias("retention_outputs_s")
    )
    retention_uploads_s: float = Field(
        DAY_S, ge=0, validation_alias=_alias("retention_uploads_s")
    )
    retention_sweep_interval_s: float = Field(
        60.0, gt=0, validation_alias=_alias("retention_sweep_interval_s")
    )
    # Off: a client's file is deleted once the last job using it ends.
    uploads_keep_after_job: bool = Field(
        False, validation_alias=_alias("uploads_keep_after_job")
    )

    @field_validator("backends", "cors_origins", mode="before")
    @classmethod
    def _split_lists(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("backends")
    @classmethod
    def _backend_urls(cls, value: list[str]) -> list[str]:
        return [backend_url(url) for url in value]

    @property
    def database(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{self.data_dir / 'bridge.sqlite3'}"

    @property
    def bridge_id(self) -> str:
        """Stable for one bridge's data, different between bridges."""
        return hashlib.sha256(self.database.encode()).hexdigest()[:12]

    @property
    def uploads_dir(self) -> Path:
        return self.data_dir / "uploads"

    @property
    def outputs_dir(self) -> Path:
        return self.data_dir / "outputs"

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (
            init_settings,
            env_settings,
            dotenv_settings,
            ConfigFileSource(settings_cls),
        )


# Names, IPv4 and (bracket-less, as urlsplit gives them) IPv6 addresses.
_HOST = re.compile(r"[A-Za-z0-9.\-:]+")


def backend_url(value: str) -> str:
    """A ComfyUI server's base URL, checked and written one way; ValueError if not.

    The original bridge lists bare `host:port` pairs, which mean `http://`.
    """
    url = value.strip()
    parts = urlsplit(url if "://" in url else f"http://{url}")
    problem = _url_problem(parts)
    if problem:
        raise ValueError(f"backend URL {value!r}: {problem}")
    return urlunsplit((parts.scheme, parts.netloc, parts.path.rstrip("/"), "", ""))


def _url_problem(parts: SplitResult) -> str | None:
    try:
        port = parts.port
    except ValueError:
        port = 0
    if port == 0:
        return "expected a port from 1 to 65535"
    if parts.scheme not in ("http", "https"):
        return f"expected http or https, got {parts.scheme or 'no scheme'}"
    if not parts.hostname or not _HOST.fullmatch(parts.hostname):
        return "expected a host name or address"
    if parts.username is not None or parts.password is not None:
        return (
            "a user name or password in the URL would be shown to admins; "
            "put the server behind a proxy that adds them instead"
        )
    if parts.query or parts.fragment:
        return "expected no query or fragment"
    if ".." in parts.path.split("/"):
        return "expected a path without '..'"
    return None


class ConfigFileSource(PydanticBaseSettingsSource):
    """The file named by `BRIDGE_CONFIG` or the original `CONFIG`: JSON or TOML."""

    def get_field_value(
        self, field: FieldInfo, field_name: str
    ) -> tuple[Any, str, bool]:
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        path = _config_path()
        if path is None:
            return {}
        return read_config_file(path)


def _config_path() -> Path | None:
    env_file = dotenv_values(".env") if Path(".env").is_file() else {}
    for name in ("BRIDGE_CONFIG", "CONFIG"):
        value = os.environ.get(name) or env_file.get(name)
        if value:
            return Path(value)
    return None


def read_config_file(path: Path) -> dict[str, Any]:
    """Our keys as they are; the original bridge's upper-case keys translated."""
    text = path.read_text(encoding="utf-8")
    raw: dict[str, Any] = (
        tomllib.loads(text) if path.suffix == ".toml" else json.loads(text)
    )
    values = {k: v for k, v in raw.items() if k.islower()}
    values.update(_from_legacy(raw))
    for key in ("workflows_dir", "alias_file", "state_file", "data_dir"):
        if key in values:
            values[key] = _beside(path, values[key])
    return values


def _beside(config: Path, name: str) -> Path:
    # Names are read beside the config file; the original bridge read them from
    # its working folder, so one found only there is taken from there.
    here = config.parent / name
    return Path(name) if not here.exists() and Path(name).exists() else here


def _from_legacy(raw: dict[str, Any]) -> dict[str, Any]:
    renamed = {
        "LOGGING_LEVEL": "log_level",
        "CURRENT_STATE": "state_file",
        "WORKFLOW_ALIAS": "alias_file",
        "WORKFLOW_DIR": "workflows_dir",
        "ALLOWED_MIME_TYPE_EXTENSION_MAP": "allowed_types",
    }
    values = {ours: raw[theirs] for theirs, ours in renamed.items() if theirs in raw}
    if "allowed_types" in values:
        values["allowed_types"] = {
            mime: [ext] if isinstance(ext, str) else list(ext)
            for mime, ext in values["allowed_types"].items()
        }
    if "UPLOAD_MAX_SIZE" in raw:
        values["limit_upload_bytes"] = int(float(raw["UPLOAD_MAX_SIZE"]) * MB)
    if "LIMIT_TIMEOUT_COUNT" in raw and "TIMEOUT_INTERVAL" in raw:
        silence = float(raw["LIMIT_TIMEOUT_COUNT"]) * float(raw["TIMEOUT_INTERVAL"])
        values["timeout_silence_s"] = silence
    return values
