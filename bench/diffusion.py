"""Diffusion benchmark: the app's overhead around a real pipeline call, and the warm pipeline.

A random-weight Stable Diffusion pipeline (tests/tiny_pipeline.py, size "bench": one batch of 4
takes several seconds on a CPU) is saved in Hugging Face cache layout in a temp dir. The real
app then runs in this process (uvicorn in a thread, a temp LUMIKU_HOME), and the benchmark

1. times the bare `pipe(...)` call for a batch of 4 on that pipeline (loaded the same way the
   app loads it), and the app's end-to-end time for the same batch: from just before the POST
   to the `completed` event on /api/events. Target: ratio <= 1.10.
2. times the second job's start-to-first-step (processing event -> first step event), which
   shows the pipeline is not reloaded, next to the first job's (which includes the load).
3. the reference paths, the same way (app end to end / bare call, target <= 1.10 each), with
   a new uploaded photo per round so nothing is reused across rounds:
   - img2img: the app with `referenceAvatarId` on the same model, against a bare
     `AutoPipelineForImage2Image.from_pipe(pipe)(image=..., strength=...)` call on the frame
     the engine cuts (reference_image.init_image), at the engine's strength and raised steps;
   - IP-Adapter plus-face: a model with a generated plus adapter and a small CLIP image encoder
     (tiny_pipeline.ip_adapter_files) against a bare pipeline with the same adapter loaded by
     `load_ip_adapter`, timed from encoding the face crop (prepare_ip_adapter_image_embeds) to
     the images; and the image-encoder runs per generation (target 1);
4. the ControlNet OpenPose path (the Pose Generator), the same way: the app's
   POST /api/apps/pose-generator/generate (a new uploaded photo as the source avatar, 2 poses x
   2 variations = a batch of 4) on a model with the plus adapter and a generated ControlNet
   (tiny_pipeline.controlnet_files), against a bare `AutoPipelineForText2Image.from_pipe(pipe,
   controlnet=...)` call timed from encoding the face crop and drawing the skeletons to the
   images (the pose generator's likeness, 1.0, as the adapter's scale); and the ControlNet
   loads over all jobs (target 1);
5. prints the peak resident memory of the process.

Run: python bench/diffusion.py [--device cpu|cuda] [--size 256] [--steps 4] [--rounds 3]
                               [--paths text,img2img,ipadapter,controlnet] [--likeness 0.5]
Needs the diffusion extra (torch, diffusers, transformers). No network: the Hub is offline.
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

from sse import Events  # bench/sse.py: the script's folder is on sys.path

os.environ["HF_HUB_OFFLINE"] = "1"  # before huggingface_hub is imported: nothing leaves
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT))

API = "/api/apps/avatar-creator"
KEY = "avatar-creator:bench"
FACE_KEY = "avatar-creator:bench-face"
POSE_KEY = "avatar-creator:bench-pose"
POSES_API = "/api/apps/pose-generator"
CONTROLNET_REPO = "lumiku-bench/random-controlnet-openpose"
POSE_LIKENESS = 1.0  # what a pose generation's reference gets (references.resolve, mode "pose")
REPO = "lumiku-bench/random-sd"
ADAPTER_REPO = "lumiku-bench/random-ip-adapter"
PROMPT = "a portrait of a benchmark"


def peak_rss_mb() -> float:
    try:
        import resource

        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return peak / 1024 if sys.platform != "darwin" else peak / 1024 / 1024
    except ImportError:  # Windows
        import psutil

        return psutil.Process().memory_info().peak_wset / 1024 / 1024


def portrait(n: int) -> bytes:
    """A 320x400 photo-like portrait, different for every n (so every round's photo is new)."""
    import io
    import random

    from PIL import Image, ImageDraw

    rng = random.Random(n)

    def colour() -> tuple[int, int, int]:
        return (rng.randrange(256), rng.randrange(256), rng.randrange(256))

    image = Image.new("RGB", (320, 400), colour())
    draw = ImageDraw.Draw(image)
    draw.ellipse((90, 60, 230, 150), fill=colour())
    draw.ellipse((100, 90, 220, 250), fill=colour())
    draw.ellipse((130, 140, 150, 160), fill=(20, 20, 20))
    draw.ellipse((170, 140, 190, 160), fill=(20, 20, 20))
    out = io.BytesIO()
    image.save(out, "PNG")
    return out.getvalue()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--paths", default="text,img2img,ipadapter,controlnet")
    parser.add_argument("--likeness", type=float, default=0.5)
    args = parser.parse_args()
    paths = args.paths.split(",")

    import hashlib

    import httpx
    import torch
    import uvicorn
    from diffusers import (
        AutoPipelineForImage2Image,
        AutoPipelineForText2Image,
        ControlNetModel,
        DiffusionPipeline,
    )
    from tiny_pipeline import (
        IP_ADAPTER_WEIGHT,
        add_to_catalog,
        build_pipeline,
        controlnet_files,
        ip_adapter_files,
        save_to_hf_cache,
        write_hf_cache,
    )

    from lumiku_local import pose_library, skeleton
    from lumiku_local.app import create_app
    from lumiku_local.config import load_settings
    from lumiku_local.engines import engine_for, reference_image
    from lumiku_local.engines.base import FaceBox, Reference
    from lumiku_local.engines.diffusers import img2img_steps, img2img_strength

    work = Path(tempfile.mkdtemp(prefix="lumiku-bench-diffusion-"))
    cache = work / "hf-cache"
    save_to_hf_cache(build_pipeline("bench"), cache, repo_id=REPO)
    adapter = {
        "repo": ADAPTER_REPO,
        "subfolder": "models",
        "weightName": IP_ADAPTER_WEIGHT,
        "imageEncoderFolder": "models/image_encoder",
    }
    face_paths = {"ipadapter", "controlnet"} & set(paths)
    if face_paths:
        write_hf_cache(ip_adapter_files("bench"), cache, repo_id=ADAPTER_REPO)
    if "controlnet" in paths:
        write_hf_cache(controlnet_files("bench"), cache, repo_id=CONTROLNET_REPO)
    dtype = torch.float16 if args.device.startswith("cuda") else torch.float32

    settings = load_settings(
        {
            "home": str(work / "home"),
            "hf_cache_dir": str(cache),
            "device": args.device,
            "open_browser": False,
            "workers": 1,
        },
        environ={},
    )
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    server = uvicorn.Server(uvicorn.Config(create_app(settings), log_level="warning"))
    threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True).start()
    while not server.started:
        time.sleep(0.01)
    sizes = {"width": args.size, "height": args.size, "steps": args.steps}
    add_to_catalog(KEY, REPO, cost=1, deadline=3600, **sizes)
    add_to_catalog(FACE_KEY, REPO, cost=1, deadline=3600, ipAdapter=adapter, **sizes)
    control = {"repo": CONTROLNET_REPO}
    add_to_catalog(
        POSE_KEY, REPO, cost=1, deadline=3600, ipAdapter=adapter, controlNet=control, **sizes
    )
    pose_ids = [pose.id for pose in pose_library.poses()[:: len(pose_library.poses()) // 2][:2]]

    events = Events(url)
    events.connected.wait(10)
    http = httpx.Client(base_url=url, timeout=600)
    project = http.post(f"{API}/projects", json={"name": "bench"}).json()["id"]
    engine = engine_for("diffusers")

    def upload(n: int) -> dict:
        response = http.post(
            f"{API}/projects/{project}/avatars/upload",
            files={"file": (f"photo-{n}.png", portrait(n), "image/png")},
        )
        response.raise_for_status()
        return response.json()["avatar"]

    def app_batch(seed: int, key: str = KEY, photo: dict | None = None) -> tuple[float, str]:
        body: dict = {"prompt": PROMPT, "modelKey": key, "count": 4, "seed": seed}
        if photo is not None:
            body.update(referenceAvatarId=photo["id"], likeness=args.likeness)
        started = time.monotonic()
        response = http.post(f"{API}/projects/{project}/avatars/generate", json=body)
        response.raise_for_status()
        generation_id = response.json()["generation"]["id"]
        return events.wait(generation_id, "completed") - started, generation_id

    def app_pose_batch(seed: int, key: str = POSE_KEY, photo: dict | None = None):
        assert photo is not None
        body = {
            "avatarId": photo["id"],
            "mode": "gallery",
            "poseIds": pose_ids,
            "variations": 2,
            "modelKey": key,
            "seed": seed,
        }
        started = time.monotonic()
        response = http.post(f"{POSES_API}/generate", json=body)
        response.raise_for_status()
        generation_id = response.json()["generation"]["id"]
        return events.wait(generation_id, "completed") - started, generation_id

    def start_to_first_step(generation_id: str) -> float:
        timeline = events.of(generation_id)
        processing = next(m for m, e in timeline if e["status"] == "processing")
        first_step = next(m for m, e in timeline if e.get("step", "").startswith("step 1 "))
        return first_step - processing

    def as_reference(photo: dict, n: int) -> Reference:
        png = portrait(n)  # the generation keeps these bytes: its copy has the same sha256
        box = photo["faceBox"]
        return Reference(
            png,
            hashlib.sha256(png).hexdigest(),
            photo["width"],
            photo["height"],
            FaceBox(box["x"], box["y"], box["size"], box["source"]),
            args.likeness,
            "",
        )

    def timed(call) -> float:
        started = time.monotonic()
        with torch.inference_mode():
            call()
        if args.device.startswith("cuda"):
            torch.cuda.synchronize()
        return time.monotonic() - started

    def generators(seed: int) -> list:
        return [torch.Generator(args.device).manual_seed(seed + n) for n in range(4)]

    # the first job loads the pipeline; it is measured apart
    first_time, first_id = app_batch(seed=1)
    first_load_to_step = start_to_first_step(first_id)

    pipe = DiffusionPipeline.from_pretrained(
        REPO, cache_dir=str(cache), local_files_only=True, dtype=dtype
    ).to(args.device)
    pipe.set_progress_bar_config(disable=True)
    common = {"guidance_scale": 0.0, "width": args.size, "height": args.size}

    def bare_text(seed: int, photo: dict | None = None, n: int = 0) -> float:
        return timed(
            lambda: pipe(
                prompt=[PROMPT] * 4,
                num_inference_steps=args.steps,
                generator=generators(seed),
                **common,
            )
        )

    strength = img2img_strength(args.likeness)
    raised = img2img_steps(args.steps, strength)
    img2img = AutoPipelineForImage2Image.from_pipe(pipe) if "img2img" in paths else None
    if img2img is not None:
        img2img.set_progress_bar_config(disable=True)

    def bare_img2img(seed: int, photo: dict | None = None, n: int = 0) -> float:
        assert photo is not None and img2img is not None
        reference = as_reference(photo, n)

        def call() -> None:
            init = reference_image.init_image(reference, args.size, args.size)
            img2img(
                prompt=[PROMPT] * 4,
                image=[init] * 4,
                strength=strength,
                num_inference_steps=raised,
                generator=generators(seed),
                **common,
            )

        return timed(call)

    face_pipe = None
    if face_paths:
        face_pipe = DiffusionPipeline.from_pretrained(
            REPO, cache_dir=str(cache), local_files_only=True, dtype=dtype
        )
        face_pipe.load_ip_adapter(
            ADAPTER_REPO,
            subfolder=adapter["subfolder"],
            weight_name=adapter["weightName"],
            image_encoder_folder=adapter["imageEncoderFolder"],
            cache_dir=str(cache),
            local_files_only=True,
        )
        face_pipe.to(args.device)
        face_pipe.set_progress_bar_config(disable=True)
        face_pipe.set_ip_adapter_scale(args.likeness)

    pose_pipe = None
    if "controlnet" in paths:
        assert face_pipe is not None
        controlnet = ControlNetModel.from_pretrained(
            CONTROLNET_REPO, cache_dir=str(cache), local_files_only=True, dtype=dtype
        ).to(args.device)
        pose_pipe = AutoPipelineForText2Image.from_pipe(face_pipe, controlnet=controlnet)
        pose_pipe.set_progress_bar_config(disable=True)

    def bare_ip_adapter(seed: int, photo: dict | None = None, n: int = 0) -> float:
        assert photo is not None and face_pipe is not None
        reference = as_reference(photo, n)

        def call() -> None:
            embeds = face_pipe.prepare_ip_adapter_image_embeds(
                reference_image.face_crop(reference), None, args.device, 1, False
            )
            face_pipe(
                prompt=[PROMPT] * 4,
                num_inference_steps=args.steps,
                generator=generators(seed),
                ip_adapter_image_embeds=embeds,
                **common,
            )

        return timed(call)

    def bare_controlnet(seed: int, photo: dict | None = None, n: int = 0) -> float:
        assert photo is not None and face_pipe is not None and pose_pipe is not None
        reference = as_reference(photo, n)

        def call() -> None:
            face_pipe.set_ip_adapter_scale(POSE_LIKENESS)  # the UNet both pipelines share
            embeds = face_pipe.prepare_ip_adapter_image_embeds(
                reference_image.face_crop(reference), None, args.device, 1, False
            )
            skeletons = [
                skeleton.draw(pose_library.find(pose_id).keypoints, args.size)
                for pose_id in pose_ids
            ]
            pose_pipe(
                prompt=[PROMPT] * 4,
                image=[skeletons[0], skeletons[0], skeletons[1], skeletons[1]],
                num_inference_steps=args.steps,
                generator=generators(seed),
                ip_adapter_image_embeds=embeds,
                **common,
            )

        return timed(call)  # after the IP-Adapter path's rounds: its scale is not needed again

    results: list[tuple[str, list[float], list[float]]] = []
    warm_to_step: list[float] = []
    encoder_runs: list[int] = []
    photo_number = 0
    pose_encoder_runs: list[int] = []
    plan = [
        ("text", "text to image", KEY, bare_text, False, app_batch),
        ("img2img", "img2img from a photo", KEY, bare_img2img, True, app_batch),
        ("ipadapter", "IP-Adapter plus-face", FACE_KEY, bare_ip_adapter, True, app_batch),
        (
            "controlnet",
            "ControlNet OpenPose + IP-Adapter (2 poses x 2)",
            POSE_KEY,
            bare_controlnet,
            True,
            app_pose_batch,
        ),
    ]
    for path, label, key, bare_batch, with_photo, app_call in plan:
        if path not in paths:
            continue
        warm_photo = upload(photo_number := photo_number + 1) if with_photo else None
        bare_batch(0, warm_photo, photo_number)  # warm the bare call as the app's is warm
        app_call(2, key, warm_photo)  # and the app's (a model switch loads)
        bare, app = [], []
        for round_number in range(args.rounds):  # interleaved, so drift hits both alike
            photo = upload(photo_number := photo_number + 1) if with_photo else None
            bare.append(bare_batch(100 + round_number, photo, photo_number))
            runs = engine.image_encoder_runs
            elapsed, generation_id = app_call(200 + round_number, key, photo)
            app.append(elapsed)
            if path == "text":
                warm_to_step.append(start_to_first_step(generation_id))
            if path == "ipadapter":
                encoder_runs.append(engine.image_encoder_runs - runs)
            if path == "controlnet":
                pose_encoder_runs.append(engine.image_encoder_runs - runs)
        results.append((label, bare, app))

    engine_loads = engine.load_count
    controlnet_loads = engine.controlnet_loads
    server.should_exit = True

    print(
        f"diffusion benchmark: {args.device}, batch of 4 at {args.size}x{args.size}, "
        f"{args.steps} steps, {args.rounds} rounds, likeness {args.likeness} "
        f"(img2img strength {strength}, {raised} steps), torch {torch.__version__}"
    )
    print(f"{'measure':56}{'value':>12}  {'target':10}result")
    print("-" * 86)
    ok = True
    for label, bare, app in results:
        bare_median, app_median = statistics.median(bare), statistics.median(app)
        ratio = app_median / bare_median
        ok = ok and ratio <= 1.10
        print(f"{label}:")
        print(f"{'  bare call, batch of 4 (median)':56}{bare_median:11.2f}s")
        print(f"{'  app end to end: POST -> completed event (median)':56}{app_median:11.2f}s")
        verdict = "PASS" if ratio <= 1.10 else "FAIL"
        print(f"{'  ratio app / bare':56}{ratio:11.3f}x  {'<= 1.10':10}{verdict}")
        print(f"{'    per round bare':56}{', '.join(f'{t:.2f}' for t in bare):>12}")
        print(f"{'    per round app':56}{', '.join(f'{t:.2f}' for t in app):>12}")
    if encoder_runs:
        once = all(runs == 1 for runs in encoder_runs)
        ok = ok and once
        print(
            f"{'image-encoder runs per IP-Adapter generation':56}"
            f"{', '.join(map(str, encoder_runs)):>12}  {'1':10}{'PASS' if once else 'FAIL'}"
        )
    if pose_encoder_runs:
        once = all(runs == 1 for runs in pose_encoder_runs)
        ok = ok and once
        print(
            f"{'image-encoder runs per pose generation':56}"
            f"{', '.join(map(str, pose_encoder_runs)):>12}  {'1':10}{'PASS' if once else 'FAIL'}"
        )
    if "controlnet" in paths:
        ok = ok and controlnet_loads == 1
        print(
            f"{'ControlNet loads from disk over all jobs':56}{controlnet_loads:12d}  "
            f"{'1':10}{'PASS' if controlnet_loads == 1 else 'FAIL'}"
        )
    print(f"{'first job (cold): processing -> first step':56}{first_load_to_step:11.3f}s")
    print(f"{'  first job end to end':56}{first_time:11.2f}s")
    if warm_to_step:
        print(
            f"{'later jobs (warm): processing -> first step (median)':56}"
            f"{statistics.median(warm_to_step):11.3f}s"
        )
    # one load per model: the plain pipeline serves text and img2img (from_pipe), the face
    # model is another pipeline, which the pose model shares (its ControlNet pipeline is
    # from_pipe on it)
    expected_loads = 1 + bool(face_paths)
    print(
        f"{'pipeline loads from disk over all jobs':56}{engine_loads:12d}  "
        f"{expected_loads!s:10}{'PASS' if engine_loads == expected_loads else 'FAIL'}"
    )
    print(f"{'peak resident memory':56}{peak_rss_mb():10.0f}MB")
    return 0 if ok and engine_loads == expected_loads else 1


if __name__ == "__main__":
    raise SystemExit(main())
