"""Seed data: the AI model catalog, presets and persona examples (data, not logic)."""

from __future__ import annotations

from importlib import resources

from .lookalike import look_alike_styles

APP_ID = "avatar-creator"
INSTANT_MODEL_KEY = "avatar-creator:instant"
# models run on Hugging Face Inference Providers (engines/remote.py), not on this computer
REMOTE_PROVIDER = "hf-inference-providers"
DEFAULT_STYLE = "adventurer"
TIER_ORDER = {"free": 0, "basic": 1, "pro": 2}
# What the model badges say, from the credits an image costs (no model is free: the tier names
# are the catalog's ordering, not a price): (most credits, band, label), cheapest first
PRICE_BANDS = ((2, "low", "Low cost"), (6, "standard", "Standard"), (None, "premium", "Premium"))


def price_band(credit_cost: int) -> tuple[str, str]:
    """The badge of a model costing `credit_cost` credits per image: (band, label)."""
    for most, band, label in PRICE_BANDS:
        if most is None or credit_cost <= most:
            return band, label
    raise AssertionError("the last band has no limit")


def dicebear_styles() -> list[str]:
    """Every style shipped by the dicebear-styles package, by name."""
    folder = resources.files("dicebear_styles")
    return sorted(
        entry.name.removesuffix(".json")
        for entry in folder.iterdir()
        if entry.name.endswith(".json")
    )


def ai_models() -> list[dict]:
    flux_dev = {
        "hfRepo": "black-forest-labs/FLUX.1-dev",
        "gated": True,
        "width": 512,
        "height": 512,
        "minSize": 256,
        "maxSize": 1024,
        "steps": 28,
        "guidance": 3.5,
        "prefersBf16": True,
        "sizeBytes": 33_800_000_000,
        "vramGb": 24,
        "sizeMultiple": 16,
    }
    # IP-Adapter plus-face (h94/IP-Adapter, Apache-2.0) with its ViT-H image encoder, shared by
    # both entries: one copy in the Hugging Face cache
    face_adapter = {
        "repo": "h94/IP-Adapter",
        "imageEncoderFolder": "models/image_encoder",
        "kind": "plus-face",
        "licence": "Apache-2.0",
    }
    realism = {
        **flux_dev,
        "loraRepo": "XLabs-AI/flux-RealismLora",
        "loraWeightName": "lora.safetensors",
        "sizeBytes": 34_000_000_000,
    }
    models = [
        {
            "key": INSTANT_MODEL_KEY,
            "name": "Instant (DiceBear)",
            "description": "Illustrated avatars in about 40 ms each, offline, no download.",
            "provider": "dicebear",
            "tier": "free",
            "credit_cost": 1,
            "deadline_seconds": 60.0,
            "sort_order": 0,
            "capabilities": {
                "styles": dicebear_styles(),
                "defaultStyle": DEFAULT_STYLE,
                # styles with skin or hair colours: a photo's colours make a look-alike
                "lookAlikeStyles": look_alike_styles(),
                "width": 512,
                "height": 512,
                "minSize": 64,
                "maxSize": 1024,
            },
        },
        {
            "key": "avatar-creator:flux-dev-base",
            "name": "FLUX.1-dev Base",
            "description": "High-quality portraits with FLUX.1-dev.",
            "provider": "diffusers",
            "tier": "free",
            "credit_cost": 8,
            "deadline_seconds": 900.0,
            "sort_order": 10,
            "capabilities": flux_dev,
        },
        {
            "key": "avatar-creator:flux-dev-realism",
            "name": "FLUX.1-dev + Realism LoRA",
            "description": "FLUX.1-dev with a realism LoRA for photographic faces.",
            "provider": "diffusers",
            "tier": "basic",
            "credit_cost": 12,
            "deadline_seconds": 900.0,
            "sort_order": 11,
            "capabilities": realism,
        },
        {
            "key": "avatar-creator:flux-dev-hd-realism",
            "name": "FLUX.1-dev HD + Realism LoRA",
            "description": "The realism model at a higher resolution.",
            "provider": "diffusers",
            "tier": "pro",
            "credit_cost": 15,
            "deadline_seconds": 1200.0,
            "sort_order": 12,
            "capabilities": {**realism, "width": 1024, "height": 1024},
        },
        {
            "key": "avatar-creator:flux-schnell-fast",
            "name": "FLUX.1-schnell Fast",
            "description": "FLUX.1-schnell: good portraits in 4 steps.",
            "provider": "diffusers",
            "tier": "basic",
            "credit_cost": 6,
            "deadline_seconds": 600.0,
            "sort_order": 13,
            "capabilities": {
                "hfRepo": "black-forest-labs/FLUX.1-schnell",
                "gated": False,
                "width": 512,
                "height": 512,
                "minSize": 256,
                "maxSize": 1024,
                "steps": 4,
                "guidance": 0.0,
                "prefersBf16": True,
                "sizeBytes": 33_800_000_000,
                "vramGb": 24,
                "sizeMultiple": 16,
            },
        },
        {
            "key": "avatar-creator:sd-turbo",
            "name": "SD Turbo",
            "description": "Stable Diffusion Turbo: a portrait in 1-4 steps; runs on most laptops, "
            "even without a GPU. The recommended first download.",
            "provider": "diffusers",
            "tier": "free",
            "credit_cost": 2,
            "deadline_seconds": 600.0,
            "sort_order": 5,
            "capabilities": {
                "hfRepo": "stabilityai/sd-turbo",
                "variant": "fp16",
                "gated": False,
                "recommended": True,
                "width": 512,
                "height": 512,
                "minSize": 256,
                "maxSize": 768,
                "steps": 2,
                "minSteps": 1,
                "maxSteps": 4,
                "guidance": 0.0,
                "sizeBytes": 2_600_000_000,
                "vramGb": 4,
            },
        },
        {
            "key": "avatar-creator:sdxl-turbo",
            "name": "SDXL Turbo",
            "description": "Stable Diffusion XL Turbo: sharper 512 px portraits in 1-4 steps; "
            "best with a GPU of 8 GB or more.",
            "provider": "diffusers",
            "tier": "basic",
            "credit_cost": 4,
            "deadline_seconds": 900.0,
            "sort_order": 6,
            "capabilities": {
                "hfRepo": "stabilityai/sdxl-turbo",
                "variant": "fp16",
                "gated": False,
                "width": 512,
                "height": 512,
                "minSize": 512,
                "maxSize": 1024,
                "steps": 2,
                "minSteps": 1,
                "maxSteps": 4,
                "guidance": 0.0,
                "sizeBytes": 6_900_000_000,
                "vramGb": 8,
            },
        },
        {
            "key": "avatar-creator:sd15-lcm-face",
            "name": "Your face: SD 1.5 LCM + IP-Adapter",
            "description": "Keeps the face of your photo: DreamShaper 8 (Stable Diffusion 1.5) "
            "with LCM-LoRA in 4 steps and IP-Adapter plus-face. Runs on a laptop GPU, slowly "
            "without one. Face-ID models built on insightface (IP-Adapter FaceID, InstantID) "
            "are not offered: their weights may not be used commercially.",
            "provider": "diffusers",
            "tier": "free",
            "credit_cost": 3,
            "deadline_seconds": 900.0,
            "sort_order": 7,
            "capabilities": {
                "hfRepo": "Lykon/dreamshaper-8",
                "variant": "fp16",
                "gated": False,
                "loraRepo": "latent-consistency/lcm-lora-sdv1-5",
                "loraWeightName": "pytorch_lora_weights.safetensors",
                "scheduler": "LCMScheduler",
                "ipAdapter": {
                    **face_adapter,
                    "subfolder": "models",
                    "weightName": "ip-adapter-plus-face_sd15.safetensors",
                },
                "width": 512,
                "height": 512,
                "minSize": 256,
                "maxSize": 768,
                "steps": 4,
                "minSteps": 2,
                "maxSteps": 8,
                "guidance": 1.0,
                # pipeline 2.7 GB (fp16) + LCM-LoRA 0.14 + adapter 0.1 + image encoder 2.5
                "sizeBytes": 5_500_000_000,
                "vramGb": 6,
            },
        },
        {
            "key": "avatar-creator:sdxl-turbo-face",
            "name": "Your face: SDXL Turbo + IP-Adapter",
            "description": "Keeps the face of your photo: SDXL Turbo with IP-Adapter plus-face "
            "(ViT-H), sharper; needs a GPU of 12 GB or more. Face-ID models built on "
            "insightface (IP-Adapter FaceID, InstantID) are not offered: their weights may not "
            "be used commercially.",
            "provider": "diffusers",
            "tier": "basic",
            "credit_cost": 5,
            "deadline_seconds": 900.0,
            "sort_order": 8,
            "capabilities": {
                "hfRepo": "stabilityai/sdxl-turbo",
                "variant": "fp16",
                "gated": False,
                "ipAdapter": {
                    **face_adapter,
                    "subfolder": "sdxl_models",
                    "weightName": "ip-adapter-plus-face_sdxl_vit-h.safetensors",
                },
                "width": 512,
                "height": 512,
                "minSize": 512,
                "maxSize": 1024,
                "steps": 4,
                "minSteps": 1,
                "maxSteps": 4,
                "guidance": 0.0,
                # SDXL Turbo 6.9 GB (fp16, shared with its own entry) + adapter 0.85 + encoder 2.5
                "sizeBytes": 10_300_000_000,
                "vramGb": 12,
            },
        },
    ]
    faces: dict[str, dict] = {str(row["key"]): row["capabilities"] for row in models}  # type: ignore[misc]
    return models + pose_models(faces) + remote_models()


def remote_models() -> list[dict]:
    """ORIGIN.md's FLUX models and SDXL on Hugging Face Inference Providers: no download, no
    GPU; the prompt (and, from a photo, its frame) goes to Hugging Face, which bills the
    token's account. "Installed" once a token is set and a provider serves the model."""
    remote = {"remote": True, "minSize": 256, "maxSize": 1024, "sizeMultiple": 16}
    flux_dev = {**remote, "hfRepo": "black-forest-labs/FLUX.1-dev", "gated": True}
    flux_dev.update(width=512, height=512, steps=28, guidance=3.5)
    return [
        {
            "key": "avatar-creator:hf-flux-schnell",
            "name": "FLUX.1-schnell on Hugging Face",
            "description": "FLUX.1-schnell in 4 steps, made by a Hugging Face Inference "
            "Provider: FLUX quality without a GPU.",
            "provider": REMOTE_PROVIDER,
            "tier": "basic",
            "credit_cost": 6,
            "deadline_seconds": 600.0,
            "sort_order": 30,
            "capabilities": {
                **remote,
                "hfRepo": "black-forest-labs/FLUX.1-schnell",
                "gated": False,
                "width": 512,
                "height": 512,
                "steps": 4,
                "guidance": 0.0,
            },
        },
        {
            "key": "avatar-creator:hf-flux-dev",
            "name": "FLUX.1-dev on Hugging Face",
            "description": "FLUX.1-dev (28 steps), made by a Hugging Face Inference Provider. "
            "A gated model: accept its licence on huggingface.co first.",
            "provider": REMOTE_PROVIDER,
            "tier": "free",
            "credit_cost": 8,
            "deadline_seconds": 900.0,
            "sort_order": 31,
            "capabilities": flux_dev,
        },
        {
            "key": "avatar-creator:hf-flux-dev-realism",
            "name": "FLUX.1-dev + Realism LoRA on Hugging Face",
            "description": "FLUX.1-dev with XLabs' realism LoRA, where a provider serves the "
            "LoRA (its mapping on the Hub says which).",
            "provider": REMOTE_PROVIDER,
            "tier": "basic",
            "credit_cost": 12,
            "deadline_seconds": 900.0,
            "sort_order": 32,
            # the LoRA's own repo: providers map it to FLUX.1-dev with the adapter applied
            "capabilities": {**flux_dev, "hfRepo": "XLabs-AI/flux-RealismLora", "gated": False},
        },
        {
            "key": "avatar-creator:hf-sdxl",
            "name": "SDXL on Hugging Face",
            "description": "Stable Diffusion XL base 1.0 (25 steps), made by a Hugging Face "
            "Inference Provider.",
            "provider": REMOTE_PROVIDER,
            "tier": "basic",
            "credit_cost": 4,
            "deadline_seconds": 600.0,
            "sort_order": 33,
            "capabilities": {
                **remote,
                "hfRepo": "stabilityai/stable-diffusion-xl-base-1.0",
                "gated": False,
                "width": 1024,
                "height": 1024,
                "minSize": 512,
                "sizeMultiple": 8,
                "steps": 25,
                "guidance": 7.0,
            },
        },
    ]


def pose_models(face: dict[str, dict]) -> list[dict]:
    """The face models with an OpenPose ControlNet (the Pose Generator's diffusion models): the
    same base, LoRA and IP-Adapter files (shared in the cache), the ControlNet in the same
    download. Sizes are estimates from the Hub's file listings (sizeEstimated)."""
    sd15 = face["avatar-creator:sd15-lcm-face"]
    sdxl = face["avatar-creator:sdxl-turbo-face"]
    return [
        {
            "key": "avatar-creator:sd15-lcm-face-pose",
            "name": "In poses: SD 1.5 LCM + IP-Adapter + OpenPose",
            "description": "Puts an avatar in the poses you choose, keeping its face: the SD 1.5 "
            "face model with the OpenPose ControlNet v1.1 (lllyasviel). Runs on a laptop GPU, "
            "slowly without one.",
            "provider": "diffusers",
            "tier": "free",
            "credit_cost": 4,
            "deadline_seconds": 1200.0,
            "sort_order": 20,
            "capabilities": {
                **sd15,
                "controlNet": {
                    "repo": "lllyasviel/control_v11p_sd15_openpose",
                    "variant": "fp16",
                    "licence": "OpenRAIL",
                },
                # the SD 1.5 face model's 5.5 GB + the ControlNet's fp16 safetensors, 0.72 GB
                "sizeBytes": 6_200_000_000,
                "sizeEstimated": True,
                "vramGb": 7,
            },
        },
        {
            "key": "avatar-creator:sdxl-turbo-face-pose",
            "name": "In poses: SDXL Turbo + IP-Adapter + OpenPose",
            "description": "Puts an avatar in the poses you choose, keeping its face: the SDXL "
            "Turbo face model with xinsir's OpenPose ControlNet for SDXL; sharper, needs a GPU "
            "of 16 GB or more.",
            "provider": "diffusers",
            "tier": "basic",
            "credit_cost": 6,
            "deadline_seconds": 1200.0,
            "sort_order": 21,
            "capabilities": {
                **sdxl,
                "controlNet": {
                    "repo": "xinsir/controlnet-openpose-sdxl-1.0",
                    # the repo holds a second ("twins") checkpoint beside this one
                    "weightName": "diffusion_pytorch_model.safetensors",
                    "licence": "Apache-2.0",
                },
                # the SDXL face model's 10.3 GB + the ControlNet, about 2.5 GB
                "sizeBytes": 12_800_000_000,
                "sizeEstimated": True,
                "vramGb": 16,
            },
        },
    ]


PRESETS = [
    (
        "professional-headshot",
        "Professional headshot",
        "professional",
        "professional headshot, business attire, soft studio lighting, neutral background",
        "personas",
    ),
    (
        "casual-portrait",
        "Casual portrait",
        "casual",
        "casual portrait, friendly smile, natural daylight, relaxed pose",
        "avataaars",
    ),
    (
        "anime-character",
        "Anime character",
        "artistic",
        "anime style character, vibrant colors, expressive eyes, clean line art",
        "lorelei",
    ),
    (
        "fantasy-hero",
        "Fantasy hero",
        "fantasy",
        "fantasy hero portrait, ornate armor, dramatic lighting, epic atmosphere",
        "adventurer",
    ),
    (
        "cyberpunk",
        "Cyberpunk",
        "artistic",
        "cyberpunk portrait, neon lights, futuristic city at night, reflective visor",
        "bottts",
    ),
    (
        "watercolor",
        "Watercolor",
        "artistic",
        "watercolor portrait, soft washes of color, paper texture, gentle light",
        "notionists",
    ),
    (
        "pixel-retro",
        "Retro pixel art",
        "gaming",
        "retro 16-bit pixel art character portrait, limited palette",
        "pixel-art",
    ),
    (
        "vintage-film",
        "Vintage film",
        "casual",
        "vintage film photo portrait, warm grain, 1970s color palette",
        "micah",
    ),
]

PERSONA_EXAMPLES = [
    (
        "tech-founder",
        "Tech founder",
        "Maya Chen",
        34,
        "driven, curious, warm",
        "Runs a small software start-up in Singapore.",
        "portrait of a confident tech founder in a hoodie, modern office, natural light",
    ),
    (
        "travel-vlogger",
        "Travel vlogger",
        "Leo Santos",
        27,
        "adventurous, upbeat",
        "Films cheap-travel guides across South America.",
        "travel vlogger with a backpack, mountain vista behind, golden hour",
    ),
    (
        "fantasy-author",
        "Fantasy author",
        "Ingrid Holm",
        52,
        "thoughtful, wry",
        "Writes epic fantasy novels in a cabin by a fjord.",
        "author portrait in a cozy library, candlelight, thoughtful expression",
    ),
    (
        "esports-player",
        "Esports player",
        "Kenji Mori",
        21,
        "competitive, focused",
        "Plays tactical shooters for a pro team.",
        "esports player wearing a headset, RGB-lit gaming room, determined look",
    ),
]
