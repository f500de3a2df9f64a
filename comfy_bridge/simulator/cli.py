"""`comfy-bridge simulate`: run a simulated ComfyUI backend."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated

import typer

from comfy_bridge.simulator.options import Fault, FaultKind, SimulatorOptions
from comfy_bridge.simulator.server import serve

FAULT_HELP = (
    "Misbehave (repeatable): "
    + ", ".join(kind.value for kind in FaultKind)
    + ". `die-after N` exits when prompt N+1 starts."
)


def simulate(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8188,
    speed: Annotated[
        float, typer.Option(help="Speed multiplier: model step time is divided by it.")
    ] = 1.0,
    step_seconds: Annotated[
        float, typer.Option(help="Seconds of one model step at speed 1.")
    ] = 0.05,
    model: Annotated[
        list[str] | None,
        typer.Option(help="Claim a model file, as folder/name (repeatable)."),
    ] = None,
    node: Annotated[
        list[str] | None, typer.Option(help="Claim an extra node class (repeatable).")
    ] = None,
    claim_workflow: Annotated[
        list[Path] | None,
        typer.Option(
            help="Claim the classes and models an API-format workflow uses "
            "(repeatable).",
            exists=True,
            dir_okay=False,
        ),
    ] = None,
    vram_gb: Annotated[float, typer.Option(help="VRAM the GPU reports.")] = 8.0,
    fault: Annotated[list[str] | None, typer.Option(help=FAULT_HELP)] = None,
    data_dir: Annotated[
        Path | None,
        typer.Option(help="Folder for input/output/temp (default: a new temp dir)."),
    ] = None,
    log_level: Annotated[str, typer.Option(help="Logging level.")] = "INFO",
) -> None:
    """Serve a simulated ComfyUI backend."""
    logging.basicConfig(
        level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s %(message)s"
    )
    try:
        faults = [Fault.parse(text) for text in fault or []]
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--fault") from exc
    options = SimulatorOptions(
        host=host,
        port=port,
        speed=speed,
        step_seconds=step_seconds,
        models=list(model or []),
        nodes=list(node or []),
        claim_workflows=list(claim_workflow or []),
        vram_gb=vram_gb,
        faults=faults,
        data_dir=data_dir,
    )
    serve(options)
