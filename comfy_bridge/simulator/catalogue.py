"""The node classes a simulator offers by default, declared as /object_info shows them.

Specs are ours: types, defaults, bounds and combos follow the recorded object_info so
validation answers like the real server; descriptions are left empty.
"""

from __future__ import annotations

from comfy_bridge.simulator import nodes
from comfy_bridge.simulator.specs import (
    INT_MAX,
    InputSpec as Input,
    NodeSpec,
    boolean,
    combo,
    hidden,
    integer,
    link,
    model,
    number,
    text,
)

SAMPLERS = (
    "euler", "euler_cfg_pp", "euler_ancestral", "euler_ancestral_cfg_pp", "heun",
    "heunpp2", "dpm_2", "dpm_2_ancestral", "lms", "dpm_fast", "dpm_adaptive",
    "dpmpp_2s_ancestral", "dpmpp_2s_ancestral_cfg_pp", "dpmpp_sde", "dpmpp_sde_gpu",
    "dpmpp_2m", "dpmpp_2m_cfg_pp", "dpmpp_2m_sde", "dpmpp_2m_sde_gpu",
    "dpmpp_2m_sde_heun", "dpmpp_2m_sde_heun_gpu", "dpmpp_3m_sde", "dpmpp_3m_sde_gpu",
    "ddpm", "lcm", "ipndm", "ipndm_v", "deis", "res_multistep", "res_multistep_cfg_pp",
    "res_multistep_ancestral", "res_multistep_ancestral_cfg_pp", "gradient_estimation",
    "gradient_estimation_cfg_pp", "er_sde", "seeds_2", "seeds_3", "sa_solver",
    "sa_solver_pece", "ddim", "uni_pc", "uni_pc_bh2",
)  # fmt: skip
SCHEDULERS = (
    "simple", "sgm_uniform", "karras", "exponential", "ddim_uniform", "beta", "normal",
    "linear_quadratic", "kl_optimal",
)  # fmt: skip
SCALE_METHODS = ("nearest-exact", "bilinear", "area", "bicubic", "lanczos")
WEIGHT_DTYPES = ("default", "fp8_e4m3fn", "fp8_e4m3fn_fast", "fp8_e5m2")
CLIP_TYPES = (
    "stable_diffusion", "stable_cascade", "sd3", "stable_audio", "mochi", "ltxv",
    "pixart", "cosmos", "lumina2", "wan", "hidream", "chroma", "ace", "omnigen2",
    "qwen_image", "hunyuan_image", "flux", "hunyuan_video",
)  # fmt: skip
SAVE_HIDDEN = (hidden("prompt", "PROMPT"), hidden("extra_pnginfo", "EXTRA_PNGINFO"))
IMAGE_FILE = Input("image", "COMBO", {"image_upload": True}, input_files=True)


# Where a CLIP loader puts its text encoder; both CLIP loaders take it.
CLIP_DEVICE = Input(
    "device", "COMBO", {"advanced": True}, "optional", ("default", "cpu")
)


def tip(text: str) -> dict[str, str]:
    return {"tooltip": text}


def _seed(name: str, **extra: str) -> Input:
    return integer(name, 0, 0, INT_MAX, step=None, control_after_generate=True, **extra)


def _cfg(**extra: str) -> Input:
    return number("cfg", 8.0, 0.0, 100.0, 0.1, round=0.01, **extra)


def image_nodes() -> list[NodeSpec]:
    """The model-free nodes the simulator really computes."""
    size = 16384
    return [
        NodeSpec(
            "EmptyImage",
            (
                integer("width", 512, 1, size),
                integer("height", 512, 1, size),
                integer("batch_size", 1, 1, 4096, step=None),
                integer("color", 0, 0, 0xFFFFFF, display="color"),
            ),
            ("IMAGE",),
            nodes.empty_image,
            "image",
        ),
        NodeSpec(
            "LoadImage",
            (IMAGE_FILE,),
            ("IMAGE", "MASK"),
            nodes.load_image,
            "image",
            "Load Image",
            self_validated=frozenset({"image"}),
        ),
        NodeSpec(
            "LoadImageMask",
            (IMAGE_FILE, combo("channel", ("alpha", "red", "green", "blue"))),
            ("MASK",),
            nodes.load_image_mask,
            "mask",
            "Load Image (as Mask)",
            self_validated=frozenset({"image"}),
        ),
        NodeSpec(
            "ImageInvert",
            (link("image", "IMAGE"),),
            ("IMAGE",),
            nodes.invert_image,
            "image",
            "Invert Image",
        ),
        NodeSpec(
            "ImageScale",
            (
                link("image", "IMAGE"),
                Input("upscale_method", "COMBO", choices=SCALE_METHODS, bare=True),
                integer("width", 512, 0, size),
                integer("height", 512, 0, size),
                Input("crop", "COMBO", choices=("disabled", "center"), bare=True),
            ),
            ("IMAGE",),
            nodes.scale_image,
            "image/upscaling",
            "Upscale Image",
        ),
        NodeSpec(
            "ImageScaleToTotalPixels",
            (
                link("image", "IMAGE"),
                Input("upscale_method", "COMBO", choices=SCALE_METHODS, bare=True),
                number("megapixels", 1.0, 0.01, 16.0, 0.01),
            ),
            ("IMAGE",),
            nodes.scale_to_pixels,
            "image/upscaling",
            "Scale Image to Total Pixels",
        ),
        NodeSpec(
            "ImageBlur",
            (
                Input("image", "IMAGE"),
                integer("blur_radius", 1, 1, 31),
                number("sigma", 1.0, 0.1, 10.0, 0.1),
            ),
            ("IMAGE",),
            nodes.blur_image,
            "image/postprocessing",
            python_module="comfy_extras.nodes_post_processing",
        ),
        NodeSpec(
            "MaskToImage",
            (link("mask", "MASK"),),
            ("IMAGE",),
            nodes.mask_to_image,
            "mask",
            "Convert Mask to Image",
        ),
        NodeSpec(
            "ImageCompositeMasked",
            (
                link("destination", "IMAGE"),
                link("source", "IMAGE"),
                integer("x", 0, 0, size),
                integer("y", 0, 0, size),
                boolean("resize_source", False),
                link("mask", "MASK", "optional"),
            ),
            ("IMAGE",),
            nodes.composite_masked,
            "image",
        ),
        *output_nodes(),
    ]


def output_nodes() -> list[NodeSpec]:
    return [
        NodeSpec(
            "SaveImage",
            (
                Input("images", "IMAGE", tip("Images to write to the output folder.")),
                text("filename_prefix", "ComfyUI", tooltip="Start of the file names."),
                *SAVE_HIDDEN,
            ),
            (),
            nodes.save_image,
            "image",
            "Save Image",
            output_node=True,
        ),
        NodeSpec(
            "PreviewImage",
            (link("images", "IMAGE"), *SAVE_HIDDEN),
            (),
            nodes.preview_image,
            "image",
            "Preview Image",
            output_node=True,
        ),
        NodeSpec(
            "SaveImageWebsocket",
            (link("images", "IMAGE"),),
            (),
            nodes.save_image_websocket,
            "api/image",
            output_node=True,
            python_module="custom_nodes.websocket_image_save",
        ),
        NodeSpec(
            "BridgeTestSleep",
            (
                link("image", "IMAGE"),
                number("seconds", 1.0, 0.0, 3600.0, 0.01),
                integer("steps", 5, 1, 10000, step=None),
                boolean("fail", False),
            ),
            ("IMAGE",),
            nodes.bridge_test_sleep,
            "bridge_test",
            "Bridge Test Sleep",
            python_module="custom_nodes.bridge_test_nodes",
        ),
    ]


def loader_nodes() -> list[NodeSpec]:
    """Loaders: they take a model file the simulator claims and load it (slowly)."""
    return [
        NodeSpec(
            "CheckpointLoaderSimple",
            (model("ckpt_name", "checkpoints"),),
            ("MODEL", "CLIP", "VAE"),
            nodes.loader("MODEL", "CLIP", "VAE", name_input="ckpt_name"),
            "loaders",
            "Load Checkpoint",
        ),
        NodeSpec(
            "LoraLoader",
            (
                Input("model", "MODEL", {}),
                Input("clip", "CLIP", {}),
                model("lora_name", "loras"),
                number("strength_model", 1.0, -100.0, 100.0, 0.01),
                number("strength_clip", 1.0, -100.0, 100.0, 0.01),
            ),
            ("MODEL", "CLIP"),
            nodes.lora_loader,
            "loaders",
            "Load LoRA",
        ),
        NodeSpec(
            "VAELoader",
            (model("vae_name", "vae"),),
            ("VAE",),
            nodes.loader("VAE", name_input="vae_name"),
            "loaders",
            "Load VAE",
        ),
        NodeSpec(
            "UNETLoader",
            (
                model("unet_name", "diffusion_models"),
                combo("weight_dtype", WEIGHT_DTYPES),
            ),
            ("MODEL",),
            nodes.loader("MODEL", name_input="unet_name"),
            "advanced/loaders",
            "Load Diffusion Model",
        ),
        NodeSpec(
            "CLIPLoader",
            (
                model("clip_name", "text_encoders"),
                combo("type", CLIP_TYPES),
                CLIP_DEVICE,
            ),
            ("CLIP",),
            nodes.loader("CLIP", name_input="clip_name"),
            "advanced/loaders",
            "Load CLIP",
        ),
        NodeSpec(
            "DualCLIPLoader",
            (
                model("clip_name1", "text_encoders"),
                model("clip_name2", "text_encoders"),
                combo("type", ("sdxl", "sd3", "flux", "hunyuan_video", "hidream")),
                CLIP_DEVICE,
            ),
            ("CLIP",),
            nodes.loader("CLIP", name_input="clip_name1"),
            "advanced/loaders",
        ),
        NodeSpec(
            "ControlNetLoader",
            (model("control_net_name", "controlnet"),),
            ("CONTROL_NET",),
            nodes.loader("CONTROL_NET", name_input="control_net_name"),
            "loaders",
            "Load ControlNet Model",
        ),
        NodeSpec(
            "UpscaleModelLoader",
            (model("model_name", "upscale_models"),),
            ("UPSCALE_MODEL",),
            nodes.loader("UPSCALE_MODEL", name_input="model_name"),
            "loaders",
            "Load Upscale Model",
        ),
    ]


def sampling_nodes() -> list[NodeSpec]:
    """Text encoding, latents, samplers and VAE: timed stand-ins with progress."""
    latent_size = (
        integer("width", 512, 16, 16384, step=8),
        integer("height", 512, 16, 16384, step=8),
        integer("batch_size", 1, 1, 4096, step=None),
    )
    return [
        NodeSpec(
            "CLIPTextEncode",
            (text("text", multiline=True), Input("clip", "CLIP", {})),
            ("CONDITIONING",),
            nodes.encode_text,
            "conditioning",
            "CLIP Text Encode (Prompt)",
        ),
        NodeSpec(
            "CLIPTextEncodeFlux",
            (
                Input("clip", "CLIP"),
                text("clip_l", multiline=True),
                text("t5xxl", multiline=True),
                number("guidance", 3.5, 0.0, 100.0, 0.1),
            ),
            ("CONDITIONING",),
            nodes.encode_text,
            "advanced/conditioning/flux",
        ),
        NodeSpec(
            "EmptyLatentImage",
            latent_size,
            ("LATENT",),
            nodes.empty_latent,
            "latent",
            "Empty Latent Image",
        ),
        NodeSpec(
            "EmptySD3LatentImage",
            latent_size,
            ("LATENT",),
            nodes.empty_latent,
            "latent/sd3",
        ),
        NodeSpec(
            "LatentUpscale",
            (
                link("samples", "LATENT"),
                Input("upscale_method", "COMBO", choices=SCALE_METHODS[:-1], bare=True),
                integer("width", 512, 0, 16384, step=8),
                integer("height", 512, 0, 16384, step=8),
                Input("crop", "COMBO", choices=("disabled", "center"), bare=True),
            ),
            ("LATENT",),
            nodes.upscale_latent,
            "latent",
            "Upscale Latent",
        ),
        NodeSpec(
            "KSampler",
            (
                Input(
                    "model", "MODEL", tip("Diffusion model that denoises the latent.")
                ),
                _seed("seed", tooltip="Seed for the starting noise."),
                integer(
                    "steps", 20, 1, 10000, step=None, tooltip="Denoising steps to run."
                ),
                _cfg(
                    tooltip="Guidance scale: how closely the result follows the text."
                ),
                combo("sampler_name", SAMPLERS, tooltip="Sampling algorithm."),
                combo("scheduler", SCHEDULERS, tooltip="How the noise level falls."),
                Input(
                    "positive", "CONDITIONING", tip("Conditioning to steer towards.")
                ),
                Input(
                    "negative", "CONDITIONING", tip("Conditioning to steer away from.")
                ),
                Input("latent_image", "LATENT", tip("Latent to denoise.")),
                number(
                    "denoise",
                    1.0,
                    0.0,
                    1.0,
                    0.01,
                    tooltip="Share of the noise to remove; below 1 keeps the input.",
                ),
            ),
            ("LATENT",),
            nodes.sample,
            "sampling",
            output_tooltips=("Denoised latent.",),
        ),
        NodeSpec(
            "KSamplerAdvanced",
            (
                link("model", "MODEL"),
                Input("add_noise", "COMBO", choices=("enable", "disable"), bare=True),
                _seed("noise_seed"),
                integer("steps", 20, 1, 10000, step=None),
                _cfg(),
                Input("sampler_name", "COMBO", choices=SAMPLERS, bare=True),
                Input("scheduler", "COMBO", choices=SCHEDULERS, bare=True),
                link("positive", "CONDITIONING"),
                link("negative", "CONDITIONING"),
                link("latent_image", "LATENT"),
                integer("start_at_step", 0, 0, 10000, step=None),
                integer("end_at_step", 10000, 0, 10000, step=None),
                Input(
                    "return_with_leftover_noise",
                    "COMBO",
                    choices=("disable", "enable"),
                    bare=True,
                ),
            ),
            ("LATENT",),
            nodes.sample,
            "sampling",
            "KSampler (Advanced)",
        ),
        *custom_sampling_nodes(),
        *vae_nodes(),
    ]


def custom_sampling_nodes() -> list[NodeSpec]:
    return [
        NodeSpec(
            "KSamplerSelect",
            (combo("sampler_name", SAMPLERS),),
            ("SAMPLER",),
            nodes.resource("SAMPLER", "sampler_name"),
            "sampling/custom_sampling/samplers",
        ),
        NodeSpec(
            "BasicScheduler",
            (
                link("model", "MODEL"),
                combo("scheduler", SCHEDULERS),
                integer("steps", 20, 1, 10000, step=None),
                number("denoise", 1.0, 0.0, 1.0, 0.01),
            ),
            ("SIGMAS",),
            nodes.make_scheduler,
            "sampling/custom_sampling/schedulers",
        ),
        NodeSpec(
            "RandomNoise",
            (_seed("noise_seed"),),
            ("NOISE",),
            nodes.resource("NOISE", "noise_seed"),
            "sampling/custom_sampling/noise",
        ),
        NodeSpec(
            "CFGGuider",
            (
                link("model", "MODEL"),
                link("positive", "CONDITIONING"),
                link("negative", "CONDITIONING"),
                number("cfg", 8.0, 0.0, 100.0, 0.1, round=0.01),
            ),
            ("GUIDER",),
            nodes.resource("GUIDER", "cfg"),
            "sampling/custom_sampling/guiders",
        ),
        NodeSpec(
            "SamplerCustomAdvanced",
            (
                link("noise", "NOISE"),
                link("guider", "GUIDER"),
                link("sampler", "SAMPLER"),
                link("sigmas", "SIGMAS"),
                link("latent_image", "LATENT"),
            ),
            ("LATENT", "LATENT"),
            nodes.sample_custom,
            "sampling/custom_sampling",
            output_names=("output", "denoised_output"),
        ),
        NodeSpec(
            "ControlNetApplyAdvanced",
            (
                link("positive", "CONDITIONING"),
                link("negative", "CONDITIONING"),
                link("control_net", "CONTROL_NET"),
                link("image", "IMAGE"),
                number("strength", 1.0, 0.0, 10.0, 0.01),
                number("start_percent", 0.0, 0.0, 1.0, 0.001),
                number("end_percent", 1.0, 0.0, 1.0, 0.001),
                link("vae", "VAE", "optional"),
            ),
            ("CONDITIONING", "CONDITIONING"),
            nodes.apply_controlnet,
            "conditioning/controlnet",
            "Apply ControlNet",
            output_names=("positive", "negative"),
        ),
    ]


def vae_nodes() -> list[NodeSpec]:
    return [
        NodeSpec(
            "VAEDecode",
            (Input("samples", "LATENT", {}), Input("vae", "VAE", {})),
            ("IMAGE",),
            nodes.decode_latent,
            "latent",
            "VAE Decode",
        ),
        NodeSpec(
            "VAEEncode",
            (link("pixels", "IMAGE"), link("vae", "VAE")),
            ("LATENT",),
            nodes.encode_image,
            "latent",
            "VAE Encode",
        ),
        NodeSpec(
            "VAEEncodeForInpaint",
            (
                link("pixels", "IMAGE"),
                link("vae", "VAE"),
                link("mask", "MASK"),
                integer("grow_mask_by", 6, 0, 64),
            ),
            ("LATENT",),
            nodes.encode_image,
            "latent/inpaint",
            "VAE Encode (for Inpainting)",
        ),
        NodeSpec(
            "ImageUpscaleWithModel",
            (link("upscale_model", "UPSCALE_MODEL"), link("image", "IMAGE")),
            ("IMAGE",),
            nodes.upscale_with_model,
            "image/upscaling",
            "Upscale Image (using Model)",
        ),
    ]


def builtin_specs() -> dict[str, NodeSpec]:
    """Every class a simulator offers without being asked for more."""
    specs = [*image_nodes(), *loader_nodes(), *sampling_nodes()]
    return {spec.name: spec for spec in specs}
