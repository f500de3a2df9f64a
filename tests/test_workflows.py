from __future__ import annotations

import copy
import gzip
import json
import logging
from pathlib import Path
from typing import Any

import pytest

from comfy_bridge.exceptions import InputInvalid, WorkflowInvalid
from comfy_bridge.workflows import (
    InputDeclaration,
    InputType,
    Workflow,
    bind,
    build_workflow,
    json_schema,
    load_directory,
    output_nodes,
    parse_graph,
    requirements,
    validate_alias,
    validate_values,
)

SHARED = Path("/work/shared")
REAL = SHARED / "workflows"
PROTOCOL = SHARED / "comfyui-protocol"
API_FILES = sorted(
    [
        *REAL.glob("*_api.json"),
        *(PROTOCOL / "workflows").glob("wf_*.json"),
        *(PROTOCOL / "workflows" / "templates").glob("*.api.json"),
    ]
)
UI_FILES = sorted(
    [
        REAL / "flux_fp8_txt2img_UI_FORMAT.json",
        *(PROTOCOL / "workflows" / "templates").glob("*.ui.json"),
    ]
)
SEED_MAX = 2**64 - 1

pytestmark = pytest.mark.skipif(not SHARED.is_dir(), reason="shared test data absent")


@pytest.fixture(scope="module")
def object_info() -> dict[str, Any]:
    with gzip.open(PROTOCOL / "object_info.json.gz") as f:
        info: dict[str, Any] = json.load(f)
    return info


def graph_of(path: Path) -> dict[str, Any]:
    graph: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return graph


def sd15(**meta: dict[str, Any]) -> dict[str, Any]:
    """The sd15 img2img graph with extra `_meta` keys per node id."""
    graph = graph_of(REAL / "sd15_img2img_api.json")
    for node_id, extra in meta.items():
        graph[node_id.lstrip("n")]["_meta"].update(extra)
    return graph


def build(
    graph: dict[str, Any], object_info: dict[str, Any], **kwargs: Any
) -> Workflow:
    return build_workflow("test", graph, object_info=object_info, **kwargs)


# Parsing


@pytest.mark.parametrize("path", API_FILES, ids=lambda p: p.name)
def test_every_api_workflow_builds(path: Path, object_info: dict[str, Any]) -> None:
    workflow = build(graph_of(path), object_info)
    assert workflow.output_nodes
    assert workflow.inputs == ()
    assert workflow.schema["properties"] == {}


@pytest.mark.parametrize("path", UI_FILES, ids=lambda p: p.name)
def test_editor_format_is_refused_with_export_hint(path: Path) -> None:
    with pytest.raises(WorkflowInvalid) as caught:
        parse_graph(graph_of(path))
    assert "editor's format" in caught.value.detail
    assert "Export (API)" in caught.value.detail


def test_list_of_nodes_is_the_editor_format() -> None:
    with pytest.raises(WorkflowInvalid, match="editor's format.*Export \\(API\\)"):
        parse_graph([{"id": 1, "type": "SaveImage"}])


@pytest.mark.parametrize("body", [42, None, "[1, 2", b"\xff"])
def test_body_that_is_not_an_object_is_refused(body: object) -> None:
    with pytest.raises(WorkflowInvalid, match="JSON object|not valid JSON"):
        parse_graph(body)


def test_prompt_wrapper_and_json_text_are_accepted() -> None:
    graph = graph_of(REAL / "sd15_txt2img_api.json")
    assert parse_graph({"prompt": graph, "client_id": "c"}) == graph
    assert parse_graph(json.dumps(graph)) == graph


@pytest.mark.parametrize("body", [{}, {"prompt": {}}])
def test_graph_without_nodes_is_refused(body: object) -> None:
    with pytest.raises(WorkflowInvalid, match="no nodes"):
        parse_graph(body)


def test_node_without_class_type_or_inputs_is_named() -> None:
    with pytest.raises(WorkflowInvalid, match="node '7' has no class_type"):
        parse_graph({"7": {"inputs": {}}})
    with pytest.raises(WorkflowInvalid, match="node '7' \\(SaveImage\\) has no inputs"):
        parse_graph({"7": {"class_type": "SaveImage"}})


def test_dangling_link_names_node_input_and_target() -> None:
    graph = graph_of(REAL / "sd15_txt2img_api.json")
    graph["8"]["inputs"]["samples"] = ["99", 0]
    with pytest.raises(WorkflowInvalid) as caught:
        parse_graph(graph)
    assert "node '8' input 'samples' links to node '99'" in caught.value.detail


def test_graph_without_output_node_is_refused(object_info: dict[str, Any]) -> None:
    graph = {"1": {"class_type": "EmptyImage", "inputs": {"width": 8, "height": 8}}}
    with pytest.raises(WorkflowInvalid, match="no output node"):
        build(graph, object_info)


def test_parse_returns_a_copy() -> None:
    graph = graph_of(REAL / "sd15_txt2img_api.json")
    parsed = parse_graph(graph)
    parsed["3"]["inputs"]["seed"] = 1
    assert graph["3"]["inputs"]["seed"] != 1


# Input discovery


def test_apiinput_exposes_inputs_named_node_slash_input(
    object_info: dict[str, Any],
) -> None:
    graph = sd15(n3={"apiinput": " seed ,steps,, denoise"}, n6={"apiinput": "text"})
    workflow = build(graph, object_info)
    names = [spec.name for spec in workflow.inputs]
    assert names == ["3/seed", "3/steps", "3/denoise", "6/text"]
    seed = workflow.inputs[0]
    assert (seed.node_id, seed.input, seed.class_type) == ("3", "seed", "KSampler")
    assert seed.title == "KSampler / seed"
    assert seed.legacy_type == "int"
    assert (seed.minimum, seed.maximum, seed.default) == (0, SEED_MAX, 895988836787787)
    assert not seed.required
    assert workflow.inputs[3].multiline
    assert workflow.inputs[3].title == "CLIP Text Encode (Prompt) / text"


def test_title_falls_back_to_class_type(object_info: dict[str, Any]) -> None:
    graph = graph_of(PROTOCOL / "workflows" / "wf_sleep_progress.json")
    graph["2"]["_meta"] = {"apiinput": "seconds,fail"}
    workflow = build(graph, object_info)
    seconds, fail = workflow.inputs
    assert seconds.title == "BridgeTestSleep / seconds"
    assert (seconds.type, seconds.legacy_type) == (InputType.FLOAT, "float")
    assert (fail.type, fail.legacy_type, fail.default) == (
        InputType.BOOLEAN,
        "bool",
        False,
    )


def test_nonexistent_exposed_input_is_refused(object_info: dict[str, Any]) -> None:
    with pytest.raises(WorkflowInvalid) as caught:
        build(sd15(n3={"apiinput": "seed,sed"}), object_info)
    assert "node '3' (KSampler) input 'sed' does not exist" in caught.value.detail
    assert "seed" in caught.value.detail


def test_optional_input_known_to_object_info_can_be_exposed(
    object_info: dict[str, Any],
) -> None:
    graph = graph_of(REAL / "flux_inpaint_custom_nodes_api.json")
    del graph["11"]["inputs"]["device"]
    graph["11"]["_meta"]["apiinput"] = "device"
    (device,) = build(graph, object_info).inputs
    assert device.choices == ("default", "cpu")
    assert device.required


def test_linked_input_cannot_be_exposed(object_info: dict[str, Any]) -> None:
    with pytest.raises(WorkflowInvalid, match="'model' is a link from node '14'"):
        build(sd15(n3={"apiinput": "model"}), object_info)


def test_link_typed_input_without_value_cannot_be_exposed(
    object_info: dict[str, Any],
) -> None:
    graph = sd15(n3={"apiinput": "model"})
    del graph["3"]["inputs"]["model"]
    with pytest.raises(WorkflowInvalid, match="takes a link"):
        build(graph, object_info)


def test_duplicate_public_names_are_refused(object_info: dict[str, Any]) -> None:
    declarations = [
        {"node": "6", "input": "text", "name": "prompt"},
        {"node": "7", "input": "text", "name": "prompt"},
    ]
    with pytest.raises(WorkflowInvalid, match="two inputs are named 'prompt'"):
        build(sd15(), object_info, declarations=declarations)


def test_reserved_name_is_refused(object_info: dict[str, Any]) -> None:
    declarations = [{"node": "6", "input": "text", "name": "workflow"}]
    with pytest.raises(WorkflowInvalid, match="'workflow' cannot be"):
        build(sd15(), object_info, declarations=declarations)


def test_declarations_expose_rename_and_describe(object_info: dict[str, Any]) -> None:
    declarations = [
        InputDeclaration(node="6", input="text", name="prompt", title="Prompt"),
        {"node": "3", "input": "steps", "description": "more is slower", "max": 50},
    ]
    workflow = build(
        sd15(n3={"apiinput": "steps"}), object_info, declarations=declarations
    )
    steps, prompt = workflow.inputs
    assert (steps.name, steps.description, steps.maximum) == (
        "3/steps",
        "more is slower",
        50,
    )
    assert (prompt.name, prompt.title, prompt.input) == ("prompt", "Prompt", "text")
    assert workflow.input("prompt") is prompt


def test_declaration_for_missing_node_or_with_unknown_key_is_refused(
    object_info: dict[str, Any],
) -> None:
    with pytest.raises(WorkflowInvalid, match="names node '42'"):
        build(sd15(), object_info, declarations=[{"node": "42", "input": "x"}])
    with pytest.raises(WorkflowInvalid, match="unknown keys \\['maximum'\\]"):
        build(
            sd15(),
            object_info,
            declarations=[{"node": "3", "input": "steps", "maximum": 5}],
        )


def test_declarations_may_tighten_bounds(object_info: dict[str, Any]) -> None:
    declarations = [{"node": "3", "input": "steps", "min": 5, "max": 40, "step": 5}]
    (steps,) = build(sd15(), object_info, declarations=declarations).inputs
    assert (steps.minimum, steps.maximum, steps.step) == (5, 40, 5)
    schema = json_schema([steps])["properties"]["3/steps"]
    assert (schema["minimum"], schema["maximum"], schema["multipleOf"]) == (5, 40, 5)


@pytest.mark.parametrize(
    ("bounds", "message"),
    [
        ({"min": 0}, "min 0 is below the node's minimum 1"),
        ({"max": 20000}, "max 20000 is above the node's maximum 10000"),
        ({"min": 30, "max": 10}, "min 30 is greater than max 10"),
    ],
)
def test_declarations_may_not_widen_bounds(
    bounds: dict[str, int], message: str, object_info: dict[str, Any]
) -> None:
    declarations = [{"node": "3", "input": "steps", **bounds}]
    with pytest.raises(WorkflowInvalid) as caught:
        build(sd15(), object_info, declarations=declarations)
    assert message in caught.value.detail
    assert "input '3/steps'" in caught.value.detail


def test_bounds_are_free_where_object_info_lacks_the_class() -> None:
    declarations = [{"node": "3", "input": "steps", "min": -5, "max": 99999}]
    (steps,) = build_workflow("t", sd15(), declarations=declarations).inputs
    assert (steps.minimum, steps.maximum) == (-5, 99999)


def test_choices_may_be_narrowed_not_widened(object_info: dict[str, Any]) -> None:
    narrowed = [
        {"node": "3", "input": "sampler_name", "choices": ["euler", "dpmpp_2m"]}
    ]
    (sampler,) = build(sd15(), object_info, declarations=narrowed).inputs
    assert sampler.choices == ("euler", "dpmpp_2m")
    widened = [{"node": "3", "input": "sampler_name", "choices": ["euler", "magic"]}]
    with pytest.raises(WorkflowInvalid, match="\\['magic'\\] are not offered"):
        build(sd15(), object_info, declarations=widened)


def test_default_outside_declared_bounds_is_refused(
    object_info: dict[str, Any],
) -> None:
    declarations = [{"node": "3", "input": "steps", "max": 10}]
    with pytest.raises(
        WorkflowInvalid, match="default 20 is not an integer between 1 and 10"
    ):
        build(sd15(), object_info, declarations=declarations)
    declarations[0]["default"] = 8
    (steps,) = build(sd15(), object_info, declarations=declarations).inputs
    assert steps.default == 8


def test_bridge_inputs_marks_name_describe_and_bound(
    object_info: dict[str, Any],
) -> None:
    marks = {
        "cfg": {
            "name": "guidance",
            "description": "prompt adherence",
            "min": 1,
            "max": 12,
        },
        "scheduler": {"choices": ["normal", "karras"]},
    }
    workflow = build(sd15(n3={"bridge_inputs": marks}), object_info)
    guidance, scheduler = workflow.inputs
    assert (guidance.name, guidance.description) == ("guidance", "prompt adherence")
    assert (guidance.minimum, guidance.maximum, guidance.step) == (1, 12, 0.1)
    assert (scheduler.name, scheduler.choices) == ("3/scheduler", ("normal", "karras"))


def test_declaration_applies_after_mark(object_info: dict[str, Any]) -> None:
    graph = sd15(n3={"bridge_inputs": {"steps": {"name": "steps", "max": 60}}})
    declarations = [{"node": "3", "input": "steps", "max": 30}]
    (steps,) = build(graph, object_info, declarations=declarations).inputs
    assert (steps.name, steps.maximum) == ("steps", 30)
    with pytest.raises(WorkflowInvalid, match="max 90 is above"):
        build(graph, object_info, declarations=[{**declarations[0], "max": 90}])


def test_bridge_inputs_mark_may_not_name_node(object_info: dict[str, Any]) -> None:
    graph = sd15(n3={"bridge_inputs": {"steps": {"node": "6"}}})
    with pytest.raises(WorkflowInvalid, match="implied by the mark"):
        build(graph, object_info)


def test_image_inputs_of_loaders(object_info: dict[str, Any]) -> None:
    graph = graph_of(REAL / "flux_inpaint_custom_nodes_api.json")
    graph["130"]["_meta"]["apiinput"] = "image"
    graph["146"]["_meta"]["apiinput"] = "image,channel"
    image, mask, channel = build(graph, object_info).inputs
    assert (image.type, image.legacy_type, image.required) == (
        InputType.IMAGE,
        "image/jpeg",
        True,
    )
    assert (mask.type, mask.legacy_type) == (InputType.IMAGE, "image/png")
    assert channel.choices == ("alpha", "red", "green", "blue")
    schema = json_schema([image])["properties"]["130/image"]
    assert schema["type"] == "string"
    assert schema["format"] == "upload-id"
    assert schema["x-input-type"] == "image"


def test_types_from_literals_without_object_info() -> None:
    graph = {
        "1": {
            "class_type": "CustomThing",
            "inputs": {"n": 3, "x": 0.5, "on": True, "s": "hi", "pic": "a.JPG"},
            "_meta": {"apiinput": "n,x,on,s,pic"},
        },
        "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0]}},
    }
    n, x, on, s, pic = build_workflow("t", graph).inputs
    assert [n.type, x.type, on.type, s.type] == ["int", "float", "boolean", "string"]
    assert [n.legacy_type, x.legacy_type, s.legacy_type] == ["int", "float", "str"]
    assert (pic.type, pic.legacy_type) == (InputType.IMAGE, "image/jpeg")


def test_model_combo_without_choices_is_a_free_string(
    object_info: dict[str, Any],
) -> None:
    (ckpt,) = build(sd15(n14={"apiinput": "ckpt_name"}), object_info).inputs
    assert (ckpt.type, ckpt.default, ckpt.choices) == (
        InputType.STRING,
        "dreamshaper_8.safetensors",
        None,
    )


def test_combo_options_form_and_unlisted_default(object_info: dict[str, Any]) -> None:
    info = {
        "Pick": {"input": {"required": {"mode": ["COMBO", {"options": ["a", "b"]}]}}}
    }
    graph = {
        "1": {
            "class_type": "Pick",
            "inputs": {"mode": "c"},
            "_meta": {"apiinput": "mode"},
        },
        "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0]}},
    }
    (mode,) = build_workflow("t", graph, object_info={**object_info, **info}).inputs
    assert mode.choices == ("a", "b", "c")
    assert mode.legacy_type == "str"


def test_descimage_is_kept_per_apiinput(object_info: dict[str, Any]) -> None:
    graph = sd15(n3={"apiinput": "seed,steps", "descimage": ["seed.png", None]})
    seed, steps = build(graph, object_info, descimage_dir=Path("/d")).inputs
    assert (seed.descimage, steps.descimage) == (Path("/d/seed.png"), None)
    one = sd15(n3={"apiinput": "seed,steps", "descimage": "ks.png"})
    assert {spec.descimage for spec in build(one, object_info).inputs} == {
        Path("ks.png")
    }


@pytest.mark.parametrize("descimage", [["a.png"], "../secret.png"])
def test_bad_descimage_is_refused(
    descimage: object, object_info: dict[str, Any]
) -> None:
    graph = sd15(n3={"apiinput": "seed,steps", "descimage": descimage})
    with pytest.raises(WorkflowInvalid, match="descimage"):
        build(graph, object_info)


# Schema and values


@pytest.fixture
def img2img(object_info: dict[str, Any]) -> Workflow:
    graph = sd15(
        n3={"apiinput": "seed,cfg,sampler_name"},
        n6={"apiinput": "text", "bridge_inputs": {"text": {"name": "prompt"}}},
        n10={"apiinput": "image"},
    )
    return build(graph, object_info)


def test_json_schema_shape(img2img: Workflow) -> None:
    schema = img2img.schema
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["additionalProperties"] is False
    assert schema["required"] == ["10/image"]
    seed = schema["properties"]["3/seed"]
    assert (seed["type"], seed["minimum"], seed["maximum"]) == ("integer", 0, SEED_MAX)
    assert "multipleOf" not in seed
    assert schema["properties"]["3/cfg"]["type"] == "number"
    assert "multipleOf" not in schema["properties"]["3/cfg"]
    assert "dpmpp_2m" in schema["properties"]["3/sampler_name"]["enum"]
    assert schema["properties"]["prompt"]["type"] == "string"
    assert "default" not in schema["properties"]["10/image"]


def test_width_in_steps_of_eight_gets_multiple_of(object_info: dict[str, Any]) -> None:
    graph = graph_of(REAL / "sd15_txt2img_api.json")
    graph["5"]["_meta"]["apiinput"] = "width,batch_size"
    width, batch = build(graph, object_info).inputs
    assert json_schema([width])["properties"]["5/width"]["multipleOf"] == 8
    assert "multipleOf" not in json_schema([batch])["properties"]["5/batch_size"]


def test_values_merge_with_defaults(img2img: Workflow) -> None:
    values = validate_values(img2img, {"10/image": "upload-1", "3/cfg": 7})
    assert values == {
        "3/seed": 895988836787787,
        "3/cfg": 7,
        "3/sampler_name": "dpmpp_2m",
        "prompt": img2img.graph["6"]["inputs"]["text"],
        "10/image": "upload-1",
    }


@pytest.mark.parametrize(
    ("values", "message"),
    [
        (
            {"3/seed": "abc"},
            "input '3/seed': expected an integer between 0 and "
            "18446744073709551615, got 'abc'",
        ),
        ({"3/seed": True}, "input '3/seed': expected an integer"),
        ({"3/seed": 2**64}, "got 18446744073709551616"),
        ({"3/seed": -1}, "got -1"),
        ({"3/cfg": "7"}, "input '3/cfg': expected a number between 0.0 and 100.0"),
        ({"3/cfg": False}, "input '3/cfg': expected a number"),
        ({"3/sampler_name": "magic"}, "expected one of 'euler', "),
        ({"prompt": 5}, "input 'prompt': expected a string, got 5"),
        ({"10/image": ""}, "expected the id of an uploaded image, got ''"),
    ],
)
def test_bad_values_name_input_expected_and_got(
    values: dict[str, Any], message: str, img2img: Workflow
) -> None:
    with pytest.raises(InputInvalid) as caught:
        validate_values(img2img, {"10/image": "upload-1", **values})
    assert message in caught.value.detail
    assert caught.value.extra["input"] == caught.value.detail.split("'")[1]


def test_unknown_input_lists_known_ones(img2img: Workflow) -> None:
    with pytest.raises(InputInvalid) as caught:
        validate_values(img2img, {"10/image": "u", "steps": 4})
    assert caught.value.extra["input"] == "steps"
    assert "unknown input 'steps'" in caught.value.detail
    assert (
        "'3/seed', '3/cfg', '3/sampler_name', 'prompt', '10/image'"
        in caught.value.detail
    )


def test_missing_required_input(img2img: Workflow) -> None:
    with pytest.raises(InputInvalid, match="input '10/image' is required") as caught:
        validate_values(img2img, {"3/seed": 1})
    assert caught.value.extra["input"] == "10/image"


def test_integral_float_becomes_int(img2img: Workflow) -> None:
    values = validate_values(img2img, {"10/image": "u", "3/seed": 5.0})
    assert values["3/seed"] == 5
    assert isinstance(values["3/seed"], int)


# Binding


def test_bind_writes_values_into_a_fresh_copy(img2img: Workflow) -> None:
    original = copy.deepcopy(img2img.graph)
    values = {"10/image": "upload-1", "3/seed": SEED_MAX, "prompt": "çà 日本語 🎨"}
    graph = bind(img2img, values, {"10/image": "upload-1 (1).png"})
    assert graph["3"]["inputs"]["seed"] == SEED_MAX
    assert graph["6"]["inputs"]["text"] == "çà 日本語 🎨"
    assert graph["10"]["inputs"]["image"] == "upload-1 (1).png"
    assert graph["3"]["inputs"]["cfg"] == 8
    assert img2img.graph == original
    assert (
        json.loads(json.dumps(graph, ensure_ascii=False))["3"]["inputs"]["seed"]
        == SEED_MAX
    )


def test_bind_strips_bridge_meta_but_keeps_titles(img2img: Workflow) -> None:
    graph = bind(img2img, {"10/image": "u"}, {"10/image": "b.png"})
    assert graph["3"]["_meta"] == {"title": "KSampler"}
    assert graph["6"]["_meta"] == {"title": "CLIP Text Encode (Prompt)"}
    assert "apiinput" in img2img.graph["3"]["_meta"]


def test_bind_needs_the_backend_name_of_an_upload(img2img: Workflow) -> None:
    with pytest.raises(InputInvalid, match="was not placed on the backend"):
        bind(img2img, {"10/image": "u"}, {})


def test_optional_image_keeps_graph_file(object_info: dict[str, Any]) -> None:
    declarations = [{"node": "10", "input": "image", "required": False}]
    workflow = build(sd15(), object_info, declarations=declarations)
    assert bind(workflow, {}, {})["10"]["inputs"]["image"] == "example.png"
    assert (
        bind(workflow, {"10/image": "u"}, {"10/image": "x.png"})["10"]["inputs"][
            "image"
        ]
        == "x.png"
    )


def test_bind_refuses_bad_values(img2img: Workflow) -> None:
    with pytest.raises(InputInvalid, match="3/seed"):
        bind(img2img, {"10/image": "u", "3/seed": "x"}, {"10/image": "b.png"})


# Requirements and outputs


@pytest.mark.parametrize(
    "name",
    ["sd15_txt2img_api.json", "sd15_img2img_api.json", "sd15_multi_output_api.json"],
)
def test_requirements_name_sd15_checkpoint(
    name: str, object_info: dict[str, Any]
) -> None:
    needs = requirements(parse_graph(graph_of(REAL / name)), object_info)
    assert needs.models == {("checkpoints", "dreamshaper_8.safetensors")}
    assert {"KSampler", "CheckpointLoaderSimple", "SaveImage"} <= needs.node_classes


def test_requirements_name_custom_nodes_and_their_models(
    object_info: dict[str, Any],
) -> None:
    flux = build(graph_of(REAL / "flux_inpaint_custom_nodes_api.json"), object_info)
    assert {
        "StringFunction|pysssss",
        "GrowMaskWithBlur",
    } <= flux.requirements.node_classes
    assert {
        ("diffusion_models", "flux1-dev.safetensors"),
        ("text_encoders", "t5xxl_fp16.safetensors"),
        ("text_encoders", "clip_l.safetensors"),
        ("vae", "ae.safetensors"),
        ("controlnet", "0930_inpaint_cn.safetensors"),
    } == flux.requirements.models
    video = build(graph_of(REAL / "animatediff_vhs_video_api.json"), object_info)
    custom = video.requirements.node_classes - object_info.keys()
    assert {
        "VHS_VideoCombine",
        "ADE_AnimateDiffLoaderGen1",
        "KSampler (Efficient)",
    } <= custom
    assert ("model_name", "AnimateLCM_sd15_t2v.ckpt") in video.requirements.models
    assert ("controlnet", "openpose-sd1.5-1.1.safetensors") in video.requirements.models


def test_requirements_without_object_info_use_names() -> None:
    graph = parse_graph(
        graph_of(PROTOCOL / "workflows" / "templates" / "esrgan_example.api.json")
    )
    assert requirements(graph).models == {
        ("checkpoints", "DreamShaper_8_pruned.safetensors"),
        ("upscale_models", "RealESRGAN_x4plus.safetensors"),
    }


def test_output_nodes_from_object_info_and_names(object_info: dict[str, Any]) -> None:
    flux = parse_graph(graph_of(REAL / "flux_inpaint_custom_nodes_api.json"))
    assert output_nodes(flux, object_info) == {"76", "136", "145"}
    video = parse_graph(graph_of(REAL / "animatediff_vhs_video_api.json"))
    assert output_nodes(video, object_info) == {"92"}
    assert output_nodes(video, {}) == {"92"}


# Aliases and the legacy directory


@pytest.mark.parametrize("alias", ["", "a b", "../x", ".hidden", "x/y", "é", 5])
def test_unsafe_alias_is_refused(alias: object) -> None:
    with pytest.raises(WorkflowInvalid, match="alias"):
        validate_alias(alias)


def test_safe_alias_is_accepted() -> None:
    assert validate_alias("sd15_txt2img-v1.2") == "sd15_txt2img-v1.2"


def write_json(path: Path, data: object) -> None:
    path.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")


def test_load_directory_reads_the_legacy_layout(
    tmp_path: Path, object_info: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    (tmp_path / "thumbnail").mkdir()
    (tmp_path / "descimage").mkdir()
    (tmp_path / "thumbnail" / "img2img.png").write_bytes(b"png")
    (tmp_path / "descimage" / "seed.png").write_bytes(b"png")
    write_json(
        tmp_path / "img2img.json",
        sd15(n3={"apiinput": "seed,steps", "descimage": ["seed.png", "gone.png"]}),
    )
    write_json(tmp_path / "plain.json", graph_of(REAL / "sd15_txt2img_api.json"))
    write_json(
        tmp_path / "editor.json", graph_of(REAL / "flux_fp8_txt2img_UI_FORMAT.json")
    )
    (tmp_path / "broken.json").write_text("{", encoding="utf-8")
    alias_file = tmp_path / "workflow_alias.json"
    write_json(
        alias_file,
        [
            {
                "alias": "i2i",
                "fn": "img2img.json",
                "description": "Repaint",
                "thumbnail": "img2img.png",
            },
            {
                "alias": "twice",
                "fn": "img2img.json",
                "description": "",
                "thumbnail": "none.png",
            },
            {"alias": "escape", "fn": "../outside.json"},
            {"alias": "bad alias", "fn": "img2img.json"},
            {"fn": "plain.json"},
        ],
    )
    with caplog.at_level(logging.WARNING, logger="comfy_bridge.workflows"):
        workflows = load_directory(tmp_path, alias_file, object_info)

    by_alias = {workflow.alias: workflow for workflow in workflows}
    assert list(by_alias) == ["i2i", "twice", "plain"]
    i2i = by_alias["i2i"]
    assert i2i.description == "Repaint"
    assert i2i.thumbnail == tmp_path / "thumbnail" / "img2img.png"
    seed, steps = i2i.inputs
    assert seed.descimage == tmp_path / "descimage" / "seed.png"
    assert steps.descimage is None
    assert by_alias["twice"].thumbnail is None
    warnings = caplog.text
    for fragment in (
        "editor's format",
        "broken.json",
        "outside",
        "'bad alias'",
        "gone.png",
        "none.png",
        "entry 4",
    ):
        assert fragment in warnings


def test_load_directory_without_alias_file(tmp_path: Path) -> None:
    write_json(tmp_path / "a.json", graph_of(REAL / "sd15_txt2img_api.json"))
    write_json(tmp_path / "b c.json", graph_of(REAL / "sd15_txt2img_api.json"))
    assert [workflow.alias for workflow in load_directory(tmp_path)] == ["a"]


def test_alias_file_that_is_not_a_list_is_refused(tmp_path: Path) -> None:
    write_json(tmp_path / "alias.json", {"alias": "x"})
    with pytest.raises(WorkflowInvalid, match="expected a JSON list"):
        load_directory(tmp_path, tmp_path / "alias.json")


def test_numeric_combo_has_numeric_legacy_type() -> None:
    info = {"Pick": {"input": {"required": {"n": [[1, 2, 4]], "x": [[0.5, 1]]}}}}
    graph = {
        "1": {
            "class_type": "Pick",
            "inputs": {"n": 2, "x": 1},
            "_meta": {"apiinput": "n,x"},
        },
        "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0]}},
    }
    n, x = build_workflow("t", graph, object_info=info).inputs
    assert (n.legacy_type, x.legacy_type) == ("int", "float")
