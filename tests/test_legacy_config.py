"""The original bridge's `.env`, config JSON and state file, read as they are."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from comfy_bridge.config import MB, Settings
from comfy_bridge.state_file import StateFile
from tests.legacy_setup import CONFIG, SEEDED_COUNT, write_folder


@pytest.fixture
def old_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for name in list(os.environ):
        if name.startswith("BRIDGE_") or name in ("HOST", "PORT", "CONFIG"):
            monkeypatch.delenv(name)
    folder = write_folder(tmp_path, 8123, ["http://127.0.0.1:8188", "127.0.0.1:8189"])
    monkeypatch.chdir(folder)
    return folder


def test_every_key_of_the_original_files_has_its_effect(old_folder: Path) -> None:
    settings = Settings()

    assert (settings.host, settings.port) == ("127.0.0.1", 8123)
    assert settings.backends == ["http://127.0.0.1:8188", "http://127.0.0.1:8189"]
    assert settings.log_level == "DEBUG"
    assert settings.state_file == Path("current_state.json")
    assert settings.alias_file == Path("workflow_alias.json")
    assert settings.workflows_dir == Path("workflows")
    assert settings.timeout_silence_s == 30 * 2
    assert settings.limit_upload_bytes == CONFIG["UPLOAD_MAX_SIZE"] * MB
    assert settings.allowed_types == {"image/png": [".png"], "image/jpeg": [".jpg"]}


def test_names_in_a_config_elsewhere_are_found_in_the_working_folder(
    old_folder: Path,
) -> None:
    (old_folder / "conf").mkdir()
    (old_folder / "config.json").rename(old_folder / "conf" / "config.json")
    env = (old_folder / ".env").read_text().replace("CONFIG=", "CONFIG=conf/")
    (old_folder / ".env").write_text(env)

    settings = Settings()

    assert settings.workflows_dir == Path("workflows")
    assert settings.alias_file == Path("workflow_alias.json")


async def test_the_state_file_keeps_other_keys_and_never_goes_back(
    tmp_path: Path,
) -> None:
    path = tmp_path / "state.json"
    path.write_text(json.dumps({"generation_count": SEEDED_COUNT, "note": "kept"}))
    state = StateFile(path)

    assert await state.read_count() == SEEDED_COUNT
    await state.write_count(SEEDED_COUNT + 2)
    await state.write_count(SEEDED_COUNT + 1)

    assert json.loads(path.read_text()) == {
        "generation_count": SEEDED_COUNT + 2,
        "note": "kept",
    }
    assert await StateFile(tmp_path / "missing.json").read_count() == 0
