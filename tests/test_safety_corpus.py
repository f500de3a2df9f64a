"""The whole corpus through `check_file` and through the multipart reader."""

from __future__ import annotations

import logging
import re
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from comfy_bridge.exceptions import UnsafeFile
from comfy_bridge.safety import check_file, read_multipart
from tests.corpus import BOUNDARY, Sample, hostile, multipart_body, valid

HOSTILE = hostile()
VALID = valid()


def test_corpus_is_large_enough() -> None:
    assert len(HOSTILE) >= 40
    assert len(VALID) >= 40
    assert len({sample.id for sample in HOSTILE + VALID}) == len(HOSTILE + VALID)


@pytest.mark.parametrize("sample", HOSTILE, ids=lambda sample: sample.id)
def test_hostile_file_is_refused_by_its_rule(
    sample: Sample, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = sample.write(tmp_path)

    with pytest.raises(UnsafeFile) as refused:
        check_file(
            path,
            filename=sample.filename,
            declared_type=sample.declared_type,
            policy=sample.policy,
        )

    assert refused.value.code == sample.rule, refused.value.detail
    records = [r for r in caplog.records if r.name.startswith("comfy_bridge.safety")]
    assert len(records) == 1
    assert records[0].levelno == logging.WARNING
    assert f"rule={sample.rule}" in records[0].getMessage()
    assert re.search(r"sha256=[0-9a-f]{64}", records[0].getMessage())


@pytest.mark.parametrize("sample", VALID, ids=lambda sample: sample.id)
def test_valid_file_is_accepted(sample: Sample, tmp_path: Path) -> None:
    path = sample.write(tmp_path)

    checked = check_file(
        path,
        filename=sample.filename,
        declared_type=sample.declared_type,
        policy=sample.policy,
    )

    assert checked.path == path
    assert checked.size == path.stat().st_size
    assert checked.display_name.lower().endswith(checked.extension)
    assert checked.extension in sample.policy.allowed[checked.content_type]
    assert checked.frames >= 1


def leftovers(directory: Path) -> list[Path]:
    return sorted(directory.iterdir())


async def chunked(body: bytes, size: int = 7_919) -> AsyncIterator[bytes]:
    for start in range(0, len(body), size):
        yield body[start : start + size]


async def post(sample: Sample, directory: Path) -> list[Path]:
    content = sample.build()
    parts = await read_multipart(
        chunked(multipart_body("image", sample, content)),
        f"multipart/form-data; boundary={BOUNDARY}",
        directory=directory,
        policy=sample.policy,
    )
    assert [field for field, _ in parts] == ["image"]
    checked = parts[0][1]
    assert re.fullmatch(r"[0-9a-f]{32}\.[a-z]+", checked.path.name)
    assert checked.path.read_bytes() == content
    return [checked.path]


@pytest.mark.parametrize("sample", HOSTILE, ids=lambda sample: sample.id)
async def test_hostile_upload_is_refused_and_nothing_kept(
    sample: Sample, tmp_path: Path
) -> None:
    store = tmp_path / "uploads"
    store.mkdir()

    with pytest.raises(UnsafeFile) as refused:
        await post(sample, store)

    assert refused.value.code == sample.rule, refused.value.detail
    assert leftovers(store) == []


@pytest.mark.parametrize("sample", VALID, ids=lambda sample: sample.id)
async def test_valid_upload_is_stored_under_a_generated_name(
    sample: Sample, tmp_path: Path
) -> None:
    store = tmp_path / "uploads"
    store.mkdir()

    stored = await post(sample, store)

    assert leftovers(store) == stored
