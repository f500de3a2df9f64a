"""The `comfy-bridge` command line."""

from __future__ import annotations

import typer

from comfy_bridge.simulator.cli import simulate

app = typer.Typer(
    help="One front door for many ComfyUI servers.",
    no_args_is_help=True,
    add_completion=False,
)
app.command(help="Serve a simulated ComfyUI backend.")(simulate)


def main() -> None:
    app()
