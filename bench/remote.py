"""Remote benchmark: the app's overhead around Hugging Face Inference Providers' answers.

The Hub and router are tests/hub_server.py's emulator in this process, answering each image after
`--delay` seconds (the provider's own time), a PNG of the asked size. The real app runs here too
(uvicorn in a thread, a temp LUMIKU_HOME, the real InferenceClient), and the benchmark times:

1. the baseline: the same 4 requests made directly with InferenceClient, one after the other, in
   this process (what a script calling Hugging Face itself would wait);
2. the app end to end for a batch of 4 (POST -> `completed` event on /api/events), with
   hf_inference_concurrency 1, against the sum of the emulator's own response times for that
   batch (measured by the emulator, from the request line to the last byte). Target <= 1.10;
3. the same batch with hf_inference_concurrency 2: its time against (1)'s. Target <= 0.55 (two
   requests at a time halve the batch).

Run: python bench/remote.py [--delay 0.5] [--size 512] [--rounds 3]
No network: everything answers on 127.0.0.1.
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

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT))

API = "/api/apps/avatar-creator"
KEY = "avatar-creator:hf-flux-schnell"
REPO = "black-forest-labs/FLUX.1-schnell"
TOKEN = "hf_BenchRemoteToken123"
PROMPT = "a portrait of a benchmark"


class App:
    """The app for these settings, served by uvicorn in a thread of this process."""

    def __init__(self, home: Path, hub_url: str, concurrency: int) -> None:
        import httpx
        import uvicorn

        from lumiku_local.app import create_app
        from lumiku_local.config import load_settings

        settings = load_settings(
            {
                "home": str(home),
                "open_browser": False,
                "workers": 1,
                "hf_endpoint": hub_url,
                "hf_inference_endpoint": hub_url,
                "hf_inference_concurrency": concurrency,
            },
            environ={},
        )
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.server = uvicorn.Server(uvicorn.Config(create_app(settings), log_level="warning"))
        self.thread = threading.Thread(
            target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True
        )
        self.thread.start()
        while not self.server.started:
            time.sleep(0.01)
        self.events = Events(self.url)
        self.events.connected.wait(10)
        self.http = httpx.Client(base_url=self.url, timeout=120)
        self.http.post(f"{API}/models/{KEY}/remote-consent").raise_for_status()
        self.project = self.http.post(f"{API}/projects", json={"name": "bench"}).json()["id"]

    def batch(self, seed: int, size: int) -> tuple[float, str]:
        body = {"prompt": PROMPT, "modelKey": KEY, "count": 4, "seed": seed}
        body.update(width=size, height=size)
        started = time.monotonic()
        response = self.http.post(f"{API}/projects/{self.project}/avatars/generate", json=body)
        response.raise_for_status()
        generation_id = response.json()["generation"]["id"]
        return self.events.wait(generation_id, "completed") - started, generation_id

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(30)
        self.sock.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--delay", type=float, default=0.5)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    from hub_server import HubServer

    work = Path(tempfile.mkdtemp(prefix="lumiku-bench-remote-"))
    os.environ["HF_TOKEN"] = TOKEN  # huggingface_hub reads it at each use; never this user's
    os.environ["HF_HOME"] = str(work / "hf-home")
    hub = HubServer(token=TOKEN).start()
    hub.add_inference_model(REPO, {"hf-inference": "text-to-image"})
    hub.inference_delay = args.delay

    from huggingface_hub import InferenceClient

    def emulator_seconds(seeds: set[int]) -> float:
        return sum(c.seconds or 0.0 for c in list(hub.inference_calls) if c.seed in seeds)

    # 1. the baseline: InferenceClient alone, the same 4 requests one after the other
    client = InferenceClient(provider="hf-inference", token=TOKEN, timeout=120)
    url = f"{hub.url}/hf-inference/models/{REPO}"
    client.text_to_image(PROMPT, model=url, width=64, height=64, seed=1)  # warm the connection
    baseline: list[float] = []
    baseline_emulator: list[float] = []
    for round_number in range(args.rounds):
        seeds = {10_000 + round_number * 10 + n for n in range(4)}
        started = time.monotonic()
        for seed in sorted(seeds):
            client.text_to_image(
                PROMPT,
                model=url,
                width=args.size,
                height=args.size,
                num_inference_steps=4,
                guidance_scale=0.0,
                seed=seed,
            )
        baseline.append(time.monotonic() - started)
        baseline_emulator.append(emulator_seconds(seeds))

    # 2. and 3. the app with 1 and with 2 requests at a time
    results: dict[int, tuple[list[float], list[float]]] = {}
    seed = 20_000
    for concurrency in (1, 2):
        app = App(work / f"home-{concurrency}", hub.url, concurrency)
        try:
            app.batch(seed, 256)  # the first job: connections and caches warm
            seed += 10
            times, sums = [], []
            for _ in range(args.rounds):
                elapsed, _ = app.batch(seed, args.size)
                times.append(elapsed)
                sums.append(emulator_seconds({seed + n for n in range(4)}))
                seed += 10
            results[concurrency] = (times, sums)
        finally:
            app.stop()
    hub.stop()

    median = statistics.median
    one, two = results[1], results[2]
    overhead = median(one[0]) / median(one[1])
    halved = median(two[0]) / median(one[0])
    print(
        f"remote benchmark: batch of 4 at {args.size}x{args.size}, each answer after "
        f"{args.delay:.2f} s, {args.rounds} rounds, medians"
    )
    print(f"{'measure':52}{'baseline':>10}{'app c=1':>10}{'app c=2':>10}  target   result")
    print("-" * 100)
    print(
        f"{'batch time (baseline: InferenceClient, in turn)':52}{median(baseline):9.3f}s"
        f"{median(one[0]):9.3f}s{median(two[0]):9.3f}s"
    )
    print(
        f"{'sum of the emulator response times':52}{median(baseline_emulator):9.3f}s"
        f"{median(one[1]):9.3f}s{median(two[1]):9.3f}s"
    )
    direct = median(baseline) / median(baseline_emulator)
    ok_overhead = overhead <= 1.10
    print(
        f"{'batch time / sum of emulator times':52}{direct:9.3f}x{overhead:9.3f}x"
        f"{median(two[0]) / median(two[1]):9.3f}x  <= 1.10   "
        f"{'PASS' if ok_overhead else 'FAIL'} (c=1)"
    )
    ok_halved = halved <= 0.55
    print(
        f"{'batch time c=2 / c=1':52}{'':10}{'':10}{halved:9.3f}x  <= 0.55   "
        f"{'PASS' if ok_halved else 'FAIL'}"
    )
    for label, values in (
        ("  per round baseline", baseline),
        ("  per round app c=1", one[0]),
        ("  per round app c=2", two[0]),
    ):
        print(f"{label:52}{', '.join(f'{t:.3f}' for t in values)}")
    return 0 if ok_overhead and ok_halved else 1


if __name__ == "__main__":
    raise SystemExit(main())
