"""The editor extension: its JavaScript tests, how ComfyUI loads it, what the
bridge makes of the workflows it exports, its installer and CORS."""

from __future__ import annotations

import copy
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from comfy_bridge.app import create_app
from comfy_bridge.config import Settings
from comfy_bridge.editor_extension import PACKAGE_NAME, SOURCE, InstallError, install
from comfy_bridge.workflows import InputType, bind, build_workflow

PACKAGE = Path(__file__).resolve().parent.parent / "editor_extension"
FIXTURES = PACKAGE / "tests" / "fixtures"
NODE = shutil.which("node")


@pytest.fixture(scope="module")
def object_info() -> dict[str, Any]:
    info: dict[str, Any] = json.loads((FIXTURES / "object_info.json").read_text())
    return info


@pytest.fixture
def exported() -> dict[str, Any]:
    """The workflow the extension's own test exports with the author's marks."""
    graph: dict[str, Any] = json.loads((FIXTURES / "marked_workflow.json").read_text())
    return graph


@pytest.mark.skipif(NODE is None, reason="node is not installed; JS tests not run")
def test_javascript_tests_pass() -> None:
    assert NODE is not None
    result = subprocess.run(
        [NODE, "--test", "editor_extension/tests/"],
        cwd=PACKAGE.parent,
        capture_output=True,
        text=True,
        timeout=50,
        env={**os.environ, "UPDATE_FIXTURES": ""},
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_package_loads_as_comfyui_loads_custom_nodes(tmp_path: Path) -> None:
    # ComfyUI imports each folder of custom_nodes/ by path, under a module
    # name made from that path, and serves WEB_DIRECTORY relative to it.
    installed = tmp_path / "custom_nodes" / PACKAGE_NAME
    installed.parent.mkdir()
    installed.symlink_to(PACKAGE, target_is_directory=True)
    name = str(installed).replace(".", "_x_")
    spec = importlib.util.spec_from_file_location(name, installed / "__init__.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    finally:
        del sys.modules[name]

    assert module.NODE_CLASS_MAPPINGS == {}
    web = (installed / module.WEB_DIRECTORY).resolve()
    scripts = {path.name for path in web.glob("**/*.js")}
    assert scripts == {"bridge_editor.js", "marks.js", "publish.js", "ui.js"}


def test_scripts_import_only_each_other_and_the_editor() -> None:
    # No bundler and no npm packages: each import is a sibling module or the
    # editor's own compatibility module.
    allowed = re.compile(r"^(\./[a-z_]+\.js|\.\./\.\./scripts/(app|api)\.js)$")
    for path in (PACKAGE / "web").glob("*.js"):
        text = path.read_text()
        specifiers = re.findall(r"(?:from|import\()\s*\"([^\"]+)\"", text)
        assert all(allowed.match(s) for s in specifiers), (path, specifiers)


def test_marks_become_the_inputs_names_descriptions_and_bounds(
    exported: dict[str, Any], object_info: dict[str, Any]
) -> None:
    workflow = build_workflow("editor", exported, object_info=object_info)

    inputs = {spec.name: spec for spec in workflow.inputs}
    assert list(inputs) == ["width", "colour", "method", "3/sigma"]
    width = inputs["width"]
    assert (width.description, width.minimum, width.maximum, width.step) == (
        "Width in pixels",
        64,
        2048,
        8,
    )
    assert width.default == 512
    assert inputs["colour"].description == "Background colour as 0xRRGGBB"
    assert (inputs["colour"].minimum, inputs["colour"].maximum) == (0, 16777215)
    method = inputs["method"]
    assert method.type is InputType.CHOICE
    assert method.choices == ("bilinear", "bicubic", "lanczos")
    assert method.description == "How to resize"
    sigma = inputs["3/sigma"]
    assert (sigma.description, sigma.minimum, sigma.maximum) == (
        "Blur strength",
        0.1,
        5,
    )


def test_apiinput_alone_still_exposes_the_inputs(
    exported: dict[str, Any], object_info: dict[str, Any]
) -> None:
    original = copy.deepcopy(exported)
    for node in original.values():
        node["_meta"].pop("bridge_inputs", None)

    workflow = build_workflow("original", original, object_info=object_info)

    inputs = {spec.name: spec for spec in workflow.inputs}
    assert list(inputs) == ["1/width", "1/color", "2/upscale_method", "3/sigma"]
    assert (inputs["1/width"].minimum, inputs["1/width"].maximum) == (1, 16384)
    assert inputs["2/upscale_method"].choices == (
        "nearest-exact",
        "bilinear",
        "area",
        "bicubic",
        "lanczos",
    )


def test_values_bind_by_the_authors_names_and_marks_stay_home(
    exported: dict[str, Any], object_info: dict[str, Any]
) -> None:
    workflow = build_workflow("editor", exported, object_info=object_info)

    graph = bind(workflow, {"width": 1024, "method": "lanczos"}, {})

    assert graph["1"]["inputs"]["width"] == 1024
    assert graph["2"]["inputs"]["upscale_method"] == "lanczos"
    assert all(
        not {"apiinput", "bridge_inputs"} & set(node.get("_meta", {}))
        for node in graph.values()
    )


def comfyui_dir(tmp_path: Path) -> Path:
    (tmp_path / "comfyui" / "custom_nodes").mkdir(parents=True)
    return tmp_path / "comfyui"


def test_install_copies_the_package_without_its_tests(tmp_path: Path) -> None:
    target = install(comfyui_dir(tmp_path))

    assert target == tmp_path / "comfyui" / "custom_nodes" / PACKAGE_NAME
    assert not target.is_symlink()
    assert (target / "__init__.py").is_file()
    assert (target / "web" / "bridge_editor.js").is_file()
    assert not (target / "tests").exists()


def test_install_links_and_replaces_only_with_force(tmp_path: Path) -> None:
    root = comfyui_dir(tmp_path)
    install(root)

    with pytest.raises(InstallError, match="--force"):
        install(root, link=True)
    target = install(root, link=True, force=True)

    assert target.is_symlink()
    assert target.resolve() == SOURCE.resolve()


def test_install_leaves_a_foreign_folder_alone(tmp_path: Path) -> None:
    root = comfyui_dir(tmp_path)
    (root / "custom_nodes" / PACKAGE_NAME).mkdir()

    with pytest.raises(InstallError, match="not this extension"):
        install(root, force=True)


def test_install_needs_a_comfyui_folder(tmp_path: Path) -> None:
    with pytest.raises(InstallError, match="no custom_nodes"):
        install(tmp_path)


async def preflight(settings: Settings) -> httpx.Response:
    transport = httpx.ASGITransport(app=create_app(settings))
    async with httpx.AsyncClient(transport=transport, base_url="http://b") as client:
        return await client.options(
            "/v1/workflows/blur",
            headers={
                "Origin": "http://127.0.0.1:8188",
                "Access-Control-Request-Method": "PUT",
                "Access-Control-Request-Headers": "authorization,content-type",
            },
        )


async def test_cors_is_closed_by_default(tmp_path: Path) -> None:
    response = await preflight(Settings(data_dir=tmp_path))

    assert "access-control-allow-origin" not in response.headers


async def test_cors_lets_a_listed_editor_publish(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(
        "BRIDGE_CORS_ORIGINS", "http://127.0.0.1:8188, http://127.0.0.1:8190"
    )
    settings = Settings(data_dir=tmp_path)

    response = await preflight(settings)

    assert settings.cors_origins == ["http://127.0.0.1:8188", "http://127.0.0.1:8190"]
    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] == "http://127.0.0.1:8188"
    assert "PUT" in response.headers["access-control-allow-methods"]
