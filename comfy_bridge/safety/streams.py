"""Receive a file as a stream of chunks: spool it under a bridge-made name, check it.

The size limit is enforced on each chunk before it is written, so an oversized
body is refused as soon as it crosses the limit and memory stays at one chunk.
"""

from __future__ import annotations

import asyncio
import hashlib
import uuid
from collections.abc import AsyncIterable
from dataclasses import replace
from pathlib import Path
from typing import BinaryIO

from comfy_bridge.exceptions import UnsafeFile
from comfy_bridge.safety.check import CheckedFile, check_hashed
from comfy_bridge.safety.policy import SafetyPolicy
from comfy_bridge.safety.reencode import reencode
from comfy_bridge.safety.rules import Rule, log_refusal, refuse


class Spool:
    """A file being received: counted, hashed, under a generated `.part` name."""

    def __init__(self, directory: Path, max_bytes: int) -> None:
        self.stem = uuid.uuid4().hex
        self.path = directory / f"{self.stem}.part"
        self.max_bytes = max_bytes
        self.size = 0
        self._digest = hashlib.sha256()
        self._stream: BinaryIO | None = self.path.open("xb")

    @property
    def sha256(self) -> str:
        """The digest of the bytes received so far."""
        return self._digest.hexdigest()

    def write(self, chunk: bytes) -> None:
        """Append `chunk`, or raise `too_large` without writing it."""
        if self.size + len(chunk) > self.max_bytes:
            raise refuse(
                Rule.TOO_LARGE,
                f"the file exceeds {self.max_bytes} bytes "
                f"({self.size + len(chunk)} received so far)",
            )
        assert self._stream is not None, "write after close"
        self._stream.write(chunk)
        self._digest.update(chunk)
        self.size += len(chunk)

    def close(self) -> None:
        """Close the file, keeping it."""
        if self._stream is not None:
            self._stream.close()
            self._stream = None

    def discard(self) -> None:
        """Close and delete the file."""
        self.close()
        self.path.unlink(missing_ok=True)

    def check(
        self, *, filename: str | None, declared_type: str | None, policy: SafetyPolicy
    ) -> CheckedFile:
        """Check the spooled file and give it its final name `<uuid hex><ext>`."""
        self.close()
        checked = check_hashed(
            self.path,
            size=self.size,
            sha256=self.sha256,
            filename=filename,
            declared_type=declared_type,
            policy=policy,
        )
        final = self.path.with_name(self.stem + checked.extension)
        self.path = self.path.rename(final)
        return replace(checked, path=final)


async def receive(
    chunks: AsyncIterable[bytes],
    *,
    directory: Path,
    filename: str | None,
    declared_type: str | None,
    policy: SafetyPolicy,
    origin: str = "upload",
) -> CheckedFile:
    """Stream `chunks` to `directory` and check them; nothing is left on refusal.

    Raises `UnsafeFile` (`too_large` as soon as the limit is crossed, before the
    rest is read), logged once with the sha256 of what was received.
    """
    spool = await asyncio.to_thread(Spool, directory, policy.max_bytes)
    try:
        async for chunk in chunks:
            await asyncio.to_thread(spool.write, chunk)
        return await asyncio.to_thread(
            spool.check, filename=filename, declared_type=declared_type, policy=policy
        )
    except UnsafeFile as exc:
        log_refusal(exc, spool.sha256, origin=origin)
        spool.discard()
        raise
    except BaseException:
        # Synchronous on purpose: no await may be cancelled before the delete.
        spool.discard()
        raise


async def receive_output(
    chunks: AsyncIterable[bytes],
    *,
    directory: Path,
    filename: str | None,
    declared_type: str | None,
    policy: SafetyPolicy,
) -> CheckedFile:
    """`receive` for a backend's output, re-encoded without metadata if the policy
    says so. The job runner fails the job with `unsafe_output` on `UnsafeFile`."""
    spool = await asyncio.to_thread(Spool, directory, policy.max_bytes)
    try:
        async for chunk in chunks:
            await asyncio.to_thread(spool.write, chunk)
        # Check and re-encode in one trip to the thread pool: a job waits on both.
        return await asyncio.to_thread(
            _check_and_reencode, spool, filename, declared_type, policy
        )
    except UnsafeFile as exc:
        log_refusal(exc, spool.sha256, origin="output")
        spool.discard()
        raise
    except BaseException:
        spool.discard()
        raise


def _check_and_reencode(
    spool: Spool, filename: str | None, declared_type: str | None, policy: SafetyPolicy
) -> CheckedFile:
    checked = spool.check(filename=filename, declared_type=declared_type, policy=policy)
    if not policy.strip_metadata:
        return checked
    try:
        return reencode(checked, keep_icc_profile=policy.keep_icc_profile)
    except BaseException:
        checked.path.unlink(missing_ok=True)
        raise
