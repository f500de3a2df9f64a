"""Installing the editor extension into a ComfyUI: `comfy-bridge editor-extension`.

The extension is a custom-node package (`editor_extension/` beside this
package in the source tree); installing it is copying or linking that folder
into ComfyUI's `custom_nodes/`. Nothing of ComfyUI itself is touched.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Annotated

import typer

PACKAGE_NAME = "comfy-bridge-editor"
SOURCE = Path(__file__).resolve().parent.parent / "editor_extension"
# A folder holding this file is an earlier install of this extension.
ENTRY = Path("web") / "bridge_editor.js"
_NOT_COPIED = shutil.ignore_patterns("tests", "docs", "__pycache__", "node_modules")

app = typer.Typer(help="The ComfyUI editor extension.", no_args_is_help=True)


class InstallError(Exception):
    """The extension could not be installed; the message says why."""


def install(
    comfyui_dir: Path,
    *,
    link: bool = False,
    force: bool = False,
    source: Path = SOURCE,
) -> Path:
    """Copy (or link) the extension into `comfyui_dir/custom_nodes/`."""
    if not (source / ENTRY).is_file():
        raise InstallError(
            f"the extension's files are not at {source}; install comfy-bridge "
            "from its source tree (pip install -e .) to use this command"
        )
    custom_nodes = comfyui_dir / "custom_nodes"
    if not custom_nodes.is_dir():
        raise InstallError(
            f"{comfyui_dir} is not a ComfyUI folder: it has no custom_nodes/"
        )
    target = custom_nodes / PACKAGE_NAME
    if _exists(target):
        _replace(target, force=force)
    if link:
        target.symlink_to(source.resolve(), target_is_directory=True)
    else:
        shutil.copytree(source, target, ignore=_NOT_COPIED)
    return target


def _exists(path: Path) -> bool:
    # A dangling link exists too: it is what a moved checkout leaves behind.
    return path.is_symlink() or path.exists()


def _replace(target: Path, *, force: bool) -> None:
    if not (target / ENTRY).is_file() and not target.is_symlink():
        raise InstallError(
            f"{target} exists and is not this extension; move it away first"
        )
    if not force:
        raise InstallError(f"{target} is already installed; --force replaces it")
    if target.is_symlink():
        target.unlink()
    else:
        shutil.rmtree(target)


@app.command("install")
def install_command(
    comfyui_dir: Annotated[
        Path, typer.Argument(help="The ComfyUI folder (the one with custom_nodes/).")
    ],
    link: Annotated[
        bool, typer.Option(help="Link instead of copying, to follow updates.")
    ] = False,
    force: Annotated[
        bool, typer.Option(help="Replace an earlier install of the extension.")
    ] = False,
) -> None:
    """Install the editor extension into a ComfyUI's custom_nodes/."""
    try:
        target = install(comfyui_dir, link=link, force=force)
    except (InstallError, OSError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from exc
    how = f"linked to {os.readlink(target)}" if link else "copied"
    typer.echo(f"installed {target} ({how})")
    typer.echo(
        "Restart ComfyUI, then set the bridge URL and admin token under "
        "Settings > comfy-bridge."
    )
