"""Diffusion benchmark: the app's overhead around a real pipeline call, and the warm pipeline.

A random-weight Stable Diffusion pipeline (tests/tiny_pipeline.py, size "bench": one batch of 4
takes several seconds on a CPU) is saved in Hugging Face cache layout in a temp dir. The real
app then runs in this process (uvicorn in a thread, a temp LUMIKU_HOME), and the benchmark

1. times the bare `pipe(...)` call for a batch of 4 on that pipeline (loaded the same way the
   app loads it), and the app's end-to-end time for the same batch: from just before the POST
   to the `completed` event on /api/events. Target: ratio <= 1.10.
2. times the second job's start-to-first-step (processing event -> first step event), which
   shows the pipeline is not reloaded, next to the first job's (which includes the load).
3. prints the peak resident memory of the process.

Run: python bench/diffusion.py [--device cpu|cuda] [--size 256] [--steps 4] [--rounds 3]
Needs the diffusion extra (torch, diffusers, transformers). No network: the Hub is offline.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

os.environ["HF_HUB_OFFLINE"] = "1"  # before huggingface_hub is imported: nothing leaves
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT))

API = "/api/apps/avatar-creator"
KEY = "avatar-creator:bench"
REPO = "lumiku-bench/random-sd"


def peak_rss_mb() -> float:
    try:
        import resource

        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return peak / 1024 if sys.platform != "darwin" else peak / 1024 / 1024
    except ImportError:  # Windows
        import psutil

        return psutil.Process().memory_info().peak_wset / 1024 / 1024


class Events:
    """Collects /api/events with arrival times (monotonic)."""

    def __init__(self, url: str) -> None:
        import httpx

        self.items: list[tuple[float, dict]] = []
        self.connected = threading.Event()
        self._url = url
        self._client = httpx.Client(timeout=None)
        threading.Thread(target=self._listen, daemon=True).start()

    def _listen(self) -> None:
        with self._client.stream("GET", f"{self._url}/api/events") as stream:
            for line in stream.iter_lines():
                if line.startswith(":"):
                    self.connected.set()
                elif line.startswith("data:") and line[5:].strip():
                    self.items.append((time.monotonic(), json.loads(line[5:])))

    def wait(self, generation_id: str, status: str, timeout: float = 600) -> float:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for moment, event in list(self.items):
                if event.get("id") == generation_id and event.get("status") == status:
                    return moment
            time.sleep(0.002)
        raise TimeoutError(f"{generation_id} never reached {status}")

    def of(self, generation_id: str) -> list[tuple[float, dict]]:
        return [(m, e) for m, e in list(self.items) if e.get("id") == generation_id]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    import httpx
    import torch
    import uvicorn
    from diffusers import DiffusionPipeline
    from tiny_pipeline import add_to_catalog, build_pipeline, save_to_hf_cache

    from lumiku_local.app import create_app
    from lumiku_local.config import load_settings
    from lumiku_local.engines import engine_for

    work = Path(tempfile.mkdtemp(prefix="lumiku-bench-diffusion-"))
    cache = work / "hf-cache"
    save_to_hf_cache(build_pipeline("bench"), cache, repo_id=REPO)
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
    add_to_catalog(
        KEY, REPO, cost=1, deadline=3600, width=args.size, height=args.size, steps=args.steps
    )

    events = Events(url)
    events.connected.wait(10)
    http = httpx.Client(base_url=url, timeout=600)
    project = http.post(f"{API}/projects", json={"name": "bench"}).json()["id"]

    def app_batch(seed: int) -> tuple[float, str]:
        started = time.monotonic()
        response = http.post(
            f"{API}/projects/{project}/avatars/generate",
            json={"prompt": "a portrait of a benchmark", "modelKey": KEY, "count": 4, "seed": seed},
        )
        generation_id = response.json()["generation"]["id"]
        return events.wait(generation_id, "completed") - started, generation_id

    def start_to_first_step(generation_id: str) -> float:
        timeline = events.of(generation_id)
        processing = next(m for m, e in timeline if e["status"] == "processing")
        first_step = next(m for m, e in timeline if e.get("step", "").startswith("step 1 "))
        return first_step - processing

    # the first job loads the pipeline; it is measured apart
    first_time, first_id = app_batch(seed=1)
    first_load_to_step = start_to_first_step(first_id)

    pipe = DiffusionPipeline.from_pretrained(
        REPO, cache_dir=str(cache), local_files_only=True, dtype=dtype
    ).to(args.device)
    pipe.set_progress_bar_config(disable=True)

    def bare_batch(seed: int) -> float:
        generators = [torch.Generator(args.device).manual_seed(seed + n) for n in range(4)]
        started = time.monotonic()
        with torch.inference_mode():
            pipe(
                prompt=["a portrait of a benchmark"] * 4,
                num_inference_steps=args.steps,
                guidance_scale=0.0,
                width=args.size,
                height=args.size,
                generator=generators,
            )
        if args.device.startswith("cuda"):
            torch.cuda.synchronize()
        return time.monotonic() - started

    bare_batch(seed=0)  # warm the bare pipeline the same way the app's is warm
    bare, app, warm_to_step = [], [], []
    for round_number in range(args.rounds):  # interleaved, so drift hits both alike
        bare.append(bare_batch(seed=100 + round_number))
        elapsed, generation_id = app_batch(seed=200 + round_number)
        app.append(elapsed)
        warm_to_step.append(start_to_first_step(generation_id))

    engine_loads = engine_for("diffusers").load_count
    server.should_exit = True

    bare_median, app_median = statistics.median(bare), statistics.median(app)
    ratio = app_median / bare_median
    print(
        f"diffusion benchmark: {args.device}, batch of 4 at {args.size}x{args.size}, "
        f"{args.steps} steps, {args.rounds} rounds, torch {torch.__version__}"
    )
    print(f"{'measure':56}{'value':>12}  {'target':10}result")
    print("-" * 86)
    print(f"{'bare pipe(...) batch of 4 (median)':56}{bare_median:11.2f}s")
    print(f"{'app end to end: POST -> completed event (median)':56}{app_median:11.2f}s")
    verdict = "PASS" if ratio <= 1.10 else "FAIL"
    print(f"{'ratio app / bare':56}{ratio:11.3f}x  {'<= 1.10':10}{verdict}")
    print(f"{'  per round bare':56}{', '.join(f'{t:.2f}' for t in bare):>12}")
    print(f"{'  per round app':56}{', '.join(f'{t:.2f}' for t in app):>12}")
    print(f"{'first job (cold): processing -> first step':56}{first_load_to_step:11.3f}s")
    print(f"{'  first job end to end':56}{first_time:11.2f}s")
    print(
        f"{'later jobs (warm): processing -> first step (median)':56}"
        f"{statistics.median(warm_to_step):11.3f}s"
    )
    print(
        f"{'pipeline loads from disk over all jobs':56}{engine_loads:12d}  {'1':10}"
        f"{'PASS' if engine_loads == 1 else 'FAIL'}"
    )
    print(f"{'peak resident memory':56}{peak_rss_mb():10.0f}MB")
    return 0 if ratio <= 1.10 and engine_loads == 1 else 1


if __name__ == "__main__":
    raise SystemExit(main())
