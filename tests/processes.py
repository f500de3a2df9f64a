"""Start the project's real processes (bridge, simulators) on loopback ports."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"


class ExitedEarly(RuntimeError):
    """A process ended before it answered."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_http(
    url: str, timeout_s: float = 20.0, proc: subprocess.Popen[bytes] | None = None
) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise ExitedEarly(
                f"process exited with {proc.returncode} before {url} answered"
            )
        try:
            with urllib.request.urlopen(url, timeout=1):
                return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            time.sleep(0.05)
    raise TimeoutError(f"{url} did not answer within {timeout_s} s")


@contextlib.contextmanager
def running(
    args: list[str],
    probe_url: str,
    *,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
    log_path: Path | None = None,
) -> Iterator[subprocess.Popen[bytes]]:
    """Run `comfy-bridge ARGS` until the block ends; yields once probe_url answers."""
    full_env = {**os.environ, **(env or {})}
    log = open(log_path, "wb") if log_path else subprocess.DEVNULL  # noqa: SIM115
    proc = subprocess.Popen(
        [sys.executable, "-m", "comfy_bridge", *args],
        env=full_env,
        cwd=cwd or ROOT,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        wait_for_http(probe_url, proc=proc)
        yield proc
    finally:
        stop(proc)
        if log_path:
            log.close()  # type: ignore[union-attr]


def stop(proc: subprocess.Popen[Any], sig: int = signal.SIGTERM) -> None:
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@contextlib.contextmanager
def simulator(*options: str, log_path: Path | None = None) -> Iterator[str]:
    """A simulator on a free loopback port; yields its base URL."""
    with contextlib.ExitStack() as stack:
        yield _start_simulator(stack, options, log_path)


def _start_simulator(
    stack: contextlib.ExitStack, options: tuple[str, ...], log_path: Path | None
) -> str:
    # A port found free can be taken by another process before the simulator
    # binds it; then it exits at once, and a new port is tried.
    for attempt in range(3):
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        command = ["simulate", "--host", "127.0.0.1", "--port", str(port), *options]
        try:
            stack.enter_context(
                running(command, f"{url}/system_stats", log_path=log_path)
            )
        except ExitedEarly:
            if attempt == 2:
                raise
        else:
            return url
    raise AssertionError("not reached")


@contextlib.contextmanager
def bridge(
    backends: list[str],
    data_dir: Path,
    *,
    env: dict[str, str] | None = None,
    log_path: Path | None = None,
    port: int | None = None,
) -> Iterator[str]:
    """A bridge process on a loopback port; yields its base URL.

    It runs in `data_dir` so no `.env` of the developer's can reach it.
    """
    started = bridge_process(backends, data_dir, env=env, log_path=log_path, port=port)
    with started as (url, _):
        yield url


@contextlib.contextmanager
def bridge_process(
    backends: list[str],
    data_dir: Path,
    *,
    env: dict[str, str] | None = None,
    log_path: Path | None = None,
    port: int | None = None,
) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """`bridge`, yielding the process too (for its PID).

    Open mode without client limits unless `env` says otherwise: most tests
    are about something else than keys.
    """
    port = port or free_port()
    url = f"http://127.0.0.1:{port}"
    settings = {
        "BRIDGE_BACKENDS": ",".join(backends),
        "BRIDGE_DATA_DIR": str(data_dir),
        "BRIDGE_ADMIN_TOKEN": ADMIN_TOKEN,
        "BRIDGE_LOG_LEVEL": "DEBUG",
        **OPEN_UNLIMITED,
        **(env or {}),
    }
    data_dir.mkdir(parents=True, exist_ok=True)
    with running(
        ["serve", "--host", "127.0.0.1", "--port", str(port)],
        f"{url}/healthz",
        env=settings,
        cwd=data_dir,
        log_path=log_path,
    ) as proc:
        yield url, proc


ADMIN_TOKEN = "test-admin-token"
OPEN_UNLIMITED = {
    "BRIDGE_OPEN": "true",
    "BRIDGE_LIMIT_CLIENT_JOBS_PER_MINUTE": "0",
    "BRIDGE_LIMIT_CLIENT_QUEUED_JOBS": "0",
    "BRIDGE_LIMIT_CLIENT_RUNNING_JOBS": "0",
    "BRIDGE_LIMIT_CLIENT_UPLOAD_BYTES_PER_HOUR": "0",
}
EXAMPLES = ROOT / "comfy_bridge" / "examples" / "workflows"
DEMO_MODEL = "checkpoints/demo-sd15.safetensors"
