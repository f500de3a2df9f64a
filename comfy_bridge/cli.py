"""The `comfy-bridge` command line: serve, demo, simulate, run, workflows, keys."""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from importlib import resources
from pathlib import Path
from types import FrameType
from typing import Annotated, Any, TypeVar

import httpx
import typer
import uvicorn
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from comfy_bridge import logs
from comfy_bridge.app import create_app
from comfy_bridge.auth import Keys, Role, open_mode_refusal
from comfy_bridge.bridge import Bridge
from comfy_bridge.config import Settings
from comfy_bridge.editor_extension import app as editor_extension_app
from comfy_bridge.simulator.cli import simulate
from comfy_bridge.store import ApiKeyRow, Store

app = typer.Typer(
    help="One front door for many ComfyUI servers.",
    no_args_is_help=True,
    add_completion=False,
)
workflows_app = typer.Typer(help="List, show and add workflows.", no_args_is_help=True)
app.add_typer(workflows_app, name="workflows")
keys_app = typer.Typer(
    help="Make, list and revoke API keys (in the configured store).",
    no_args_is_help=True,
)
app.add_typer(keys_app, name="keys")
app.add_typer(editor_extension_app, name="editor-extension")
app.command(help="Serve a simulated ComfyUI backend.")(simulate)

console = Console()
T = TypeVar("T")
DEMO_MODEL = "checkpoints/demo-sd15.safetensors"

BridgeUrl = Annotated[
    str, typer.Option("--url", envvar="BRIDGE_URL", help="The bridge's base URL.")
]
AdminToken = Annotated[
    str | None,
    typer.Option("--token", envvar="BRIDGE_ADMIN_TOKEN", help="The admin token."),
]
ClientKey = Annotated[
    str | None,
    typer.Option("--key", envvar="BRIDGE_KEY", help="An API key (cb_…)."),
]


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Address to bind.")] = None,
    port: Annotated[int | None, typer.Option(help="Port to bind.")] = None,
) -> None:
    """Serve the bridge with the configured settings."""
    overrides: dict[str, Any] = {}
    if host is not None:
        overrides["host"] = host
    if port is not None:
        overrides["port"] = port
    _serve(Settings(**overrides))


def _serve(settings: Settings) -> None:
    refusal = open_mode_refusal(settings)
    if refusal is not None:
        console.print(f"[red]{refusal}[/]", soft_wrap=True)
        raise typer.Exit(2)
    log_config = logs.configure(settings.log_level)
    app = create_app(settings)
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        log_config=log_config,
        ws_ping_interval=20,
        timeout_graceful_shutdown=round(settings.timeout_graceful_shutdown_s),
    )
    BridgeServer(config, app.state.bridge).run()


class BridgeServer(uvicorn.Server):
    """uvicorn's server, telling the bridge the moment a stop is asked for."""

    def __init__(self, config: uvicorn.Config, bridge: Bridge) -> None:
        super().__init__(config)
        self.bridge = bridge

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        # Before the open requests drain: no new job is taken or dispatched,
        # and long waits answer now with the job as it is.
        self.bridge.stop_accepting()
        super().handle_exit(sig, frame)


@app.command()
def demo(
    port: Annotated[int, typer.Option(help="The bridge's port.")] = 8000,
    backends: Annotated[int, typer.Option(help="Simulated backends.")] = 2,
) -> None:
    """Run the bridge on 127.0.0.1 with simulated backends and example workflows."""
    examples = resources.files("comfy_bridge") / "examples" / "workflows"
    token = secrets.token_urlsafe(16)
    # uvicorn raises SIGTERM again once it has shut down; as an exception it
    # unwinds through the block below, which stops the simulators too.
    signal.signal(signal.SIGTERM, _exit_quietly)
    with _simulators(backends) as urls:
        settings = Settings(
            host="127.0.0.1",
            port=port,
            backends=urls,
            workflows_dir=Path(str(examples)),
            alias_file=Path(str(examples / "workflow_alias.json")),
            data_dir=Path("var/demo"),
            admin_token=token,
            open=True,
        )
        _print_welcome(settings, token)
        _serve(settings)


def _exit_quietly(_signum: int, _frame: object) -> None:
    raise SystemExit(0)


@contextlib.contextmanager
def _simulators(count: int) -> Iterator[list[str]]:
    processes, urls = [], []
    try:
        for _ in range(count):
            port = _free_port()
            processes.append(
                subprocess.Popen(
                    [
                        sys.executable,
                        "-m",
                        "comfy_bridge",
                        "simulate",
                        "--host",
                        "127.0.0.1",
                        "--port",
                        str(port),
                        "--model",
                        DEMO_MODEL,
                    ],
                )
            )
            urls.append(f"http://127.0.0.1:{port}")
        for url in urls:
            _wait_until_up(url)
        yield urls
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            process.wait(timeout=10)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_until_up(url: str, timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{url}/system_stats", timeout=1).status_code == 200:
                return
        time.sleep(0.1)
    console.print(f"[red]the simulator at {url} did not start[/]")
    raise typer.Exit(1)


def _print_welcome(settings: Settings, token: str) -> None:
    base = f"http://{settings.host}:{settings.port}"
    body = json.dumps(
        {"workflow": "txt2img", "inputs": {"prompt": "a red fox", "seed": 7}}
    )
    console.print(
        f"[bold]comfy-bridge demo[/] with {len(settings.backends)} simulated backends"
    )
    console.print(f"  API docs:     {base}/docs")
    console.print(f"  workflows:    {base}/v1/workflows")
    console.print(f"  admin token:  {token}")
    console.print(
        "  [bold yellow]open mode[/]: on 127.0.0.1 anyone runs workflows without a key"
    )
    console.print("  run a job:")
    console.print(
        f"    curl -s -X POST '{base}/v1/jobs?wait=30' "
        f"-H 'content-type: application/json' -d '{body}'",
        soft_wrap=True,
        highlight=False,
    )
    console.print("  Ctrl-C stops it.")


@app.command()
def run(
    alias: Annotated[str, typer.Argument(help="The workflow to run.")],
    input_: Annotated[
        list[str], typer.Option("--input", "-i", help="An input value, NAME=VALUE.")
    ] = [],  # noqa: B006 (typer reads the default, never mutates it)
    file: Annotated[
        list[str], typer.Option("--file", "-f", help="A file input, NAME=PATH.")
    ] = [],  # noqa: B006
    out: Annotated[Path, typer.Option(help="Where to save the outputs.")] = Path("."),
    url: BridgeUrl = "http://127.0.0.1:8000",
    key: ClientKey = None,
) -> None:
    """Run a workflow through a bridge, show its progress and save its outputs.

    A value is read as JSON (`-i steps=20`, `-i 'size=[1,2]'`), except for text
    inputs, which take it as it is (`-i prompt=123`).
    """
    try:
        _run(alias, input_, file, out, url, key)
    except httpx.HTTPError as exc:
        console.print(f"[red]could not reach the bridge at {url}[/]: {exc}")
        raise typer.Exit(1) from exc
    except OSError as exc:
        console.print(f"[red]{exc.strerror}[/]: {exc.filename}")
        raise typer.Exit(1) from exc


def _run(
    alias: str,
    input_: list[str],
    file: list[str],
    out: Path,
    url: str,
    key: str | None,
) -> None:
    with httpx.Client(base_url=url, timeout=60, headers=_bearer(key)) as client:
        workflow = _check(client.get(f"/v1/workflows/{alias}"))
        texts = {s["name"] for s in workflow["inputs"] if s["type"] == "string"}
        inputs = dict(_parse_value(item, texts) for item in input_)
        for name, path in (_split(item) for item in file):
            inputs[name] = _upload(client, Path(path))
        job = _check(
            client.post("/v1/jobs", json={"workflow": alias, "inputs": inputs})
        )
        job = _follow(client, job)
        if job["status"] != "succeeded":
            console.print(f"[red]job {job['id']} {job['status']}[/]: {job['error']}")
            raise typer.Exit(1)
        out.mkdir(parents=True, exist_ok=True)
        for output in job["outputs"]:
            target = (
                out / f"{job['id']}-{output['index']}-{Path(output['filename']).name}"
            )
            target.write_bytes(_check_bytes(client.get(output["url"])))
            console.print(f"saved {target}")


def _follow(client: httpx.Client, job: dict[str, Any]) -> dict[str, Any]:
    columns = (TextColumn("{task.description}"), BarColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console) as bar:
        task = bar.add_task(job["status"], total=1.0)
        while job["status"] not in ("succeeded", "failed", "cancelled"):
            job = _check(client.get(f"/v1/jobs/{job['id']}", params={"wait": 0.5}))
            bar.update(task, completed=job["progress"], description=job["status"])
            time.sleep(0.1)
        bar.update(task, completed=job["progress"], description=job["status"])
    return job


def _upload(client: httpx.Client, path: Path) -> str:
    with path.open("rb") as handle:
        upload = _check(client.post("/v1/uploads", files={"file": (path.name, handle)}))
    return str(upload["id"])


def _split(item: str) -> tuple[str, str]:
    name, sep, value = item.partition("=")
    if not sep or not name:
        raise typer.BadParameter(f"expected NAME=VALUE, got {item!r}")
    return name, value


def _parse_value(item: str, texts: set[str]) -> tuple[str, Any]:
    name, value = _split(item)
    if name in texts:
        return name, value
    try:
        return name, json.loads(value)
    except json.JSONDecodeError:
        return name, value


def _check(response: httpx.Response) -> Any:
    if response.is_error:
        console.print(f"[red]{response.status_code}[/] {response.text}")
        raise typer.Exit(1)
    return response.json()


def _check_bytes(response: httpx.Response) -> bytes:
    if response.is_error:
        console.print(f"[red]{response.status_code}[/] {response.text}")
        raise typer.Exit(1)
    return response.content


@workflows_app.command("list")
def workflows_list(
    url: BridgeUrl = "http://127.0.0.1:8000", key: ClientKey = None
) -> None:
    """List the bridge's workflows."""
    body = _check(httpx.get(f"{url}/v1/workflows", timeout=30, headers=_bearer(key)))
    table = Table("alias", "inputs", "description")
    for workflow in body["workflows"]:
        names = ", ".join(spec["name"] for spec in workflow["inputs"])
        table.add_row(workflow["alias"], names, workflow["description"])
    console.print(table)


@workflows_app.command("show")
def workflows_show(
    alias: str, url: BridgeUrl = "http://127.0.0.1:8000", key: ClientKey = None
) -> None:
    """Show one workflow's inputs."""
    workflow = _check(
        httpx.get(f"{url}/v1/workflows/{alias}", timeout=30, headers=_bearer(key))
    )
    table = Table("input", "type", "default", "bounds / choices", "title")
    for spec in workflow["inputs"]:
        bounds = spec["choices"] or [spec["minimum"], spec["maximum"]]
        table.add_row(
            spec["name"],
            spec["type"],
            repr(spec["default"]),
            str(bounds),
            spec["title"],
        )
    console.print(f"[bold]{workflow['alias']}[/]: {workflow['description']}")
    console.print(table)


@workflows_app.command("add")
def workflows_add(
    alias: str,
    path: Annotated[Path, typer.Argument(help="An API-format workflow file.")],
    description: Annotated[str, typer.Option(help="What it does.")] = "",
    url: BridgeUrl = "http://127.0.0.1:8000",
    token: AdminToken = None,
) -> None:
    """Register (or replace) a workflow on a bridge."""
    try:
        graph = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        console.print(f"[red]cannot read {path} as JSON[/]: {exc}")
        raise typer.Exit(1) from exc
    body = {"workflow": graph, "description": description}
    headers = _bearer(token)
    workflow = _check(
        httpx.put(f"{url}/v1/workflows/{alias}", json=body, headers=headers, timeout=30)
    )
    console.print(
        f"registered {workflow['alias']} with {len(workflow['inputs'])} inputs"
    )


def _bearer(key: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"} if key else {}


@keys_app.command("create")
def keys_create(
    name: Annotated[str, typer.Argument(help="Whose key it is.")],
    role: Annotated[Role, typer.Option(help="client or admin.")] = Role.CLIENT,
) -> None:
    """Make a key and print it: it is shown this once, and stored only hashed."""
    made = asyncio.run(_with_keys(lambda keys: keys.create(name, role)))
    console.print(f"key {made.row.id} ({made.row.name}, {made.row.role}):")
    print(made.secret)


@keys_app.command("list")
def keys_list() -> None:
    """List the keys (never their secrets)."""
    rows = asyncio.run(_with_keys(lambda keys: keys.store.keys()))
    table = Table("id", "name", "role", "created", "last used", "revoked")
    for row in rows:
        table.add_row(
            row.id,
            row.name,
            row.role,
            _when(row.created_at_ms),
            _when(row.last_used_at_ms),
            "yes" if row.revoked else "",
        )
    console.print(table)


@keys_app.command("revoke")
def keys_revoke(key_id: str) -> None:
    """Revoke a key; a running bridge refuses it from its next request."""
    row: ApiKeyRow | None = asyncio.run(_with_keys(lambda keys: keys.revoke(key_id)))
    if row is None:
        console.print(f"[red]no key {key_id!r}[/]")
        raise typer.Exit(1)
    console.print(f"revoked key {row.id} ({row.name})")


async def _with_keys(action: Callable[[Keys], Awaitable[T]]) -> T:
    settings = Settings()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    store = Store(settings.database)
    try:
        await store.open()
        return await action(Keys(store, settings))
    finally:
        await store.aclose()


def _when(at_ms: int | None) -> str:
    if at_ms is None:
        return ""
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(at_ms / 1000))


def main() -> None:
    app()
