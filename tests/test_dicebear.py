"""The Instant (DiceBear) engine: long prompts, errors that retrying cannot fix, and renders in
worker processes that run in parallel and stop with the server."""

from __future__ import annotations

import os
import signal
import threading
import urllib.request

import psutil
import pytest
from conftest import API, BASE_URL, Client, Server, sibling_generation, wait_for

from lumiku_local.app import create_app
from lumiku_local.engines import (
    EngineJob,
    PermanentEngineError,
    TransientEngineError,
    Variation,
    engine_for,
)
from lumiku_local.engines.dicebear import SEED_MAX_LENGTH, DiceBearEngine, _render, engine_seed

LONG_PROMPT = ("a knight with a silver helmet, a red cape and a friendly smile, " * 40)[:2000]


def workers_of(engine: DiceBearEngine) -> list[psutil.Process]:
    return [psutil.Process(pid) for pid in engine.pool.worker_pids()]


def job(count: int, side: int = 256, prompt: str = "a wizard") -> EngineJob:
    return EngineJob(
        generation_id="g",
        model_key="avatar-creator:instant",
        capabilities={"defaultStyle": "adventurer"},
        prompt=prompt,
        width=side,
        height=side,
        variations=[Variation(key=f"v{n}", seed=n) for n in range(count)],
    )


@pytest.fixture
def engine():
    engine = DiceBearEngine(processes=2)
    yield engine
    engine.close()


def test_a_2000_character_prompt_generates_and_stays_deterministic(client):
    project = client.project()
    first = client.generate(project, prompt=LONG_PROMPT, count=2, seed=5)["generation"]
    done = client.wait_generation(first["id"])
    assert done["status"] == "completed", done["errorMessage"]
    assert done["attempts"] == 0 and done["countCompleted"] == 2
    images = [client.get(avatar["imageUrl"]).content for avatar in done["avatars"]]
    assert len(set(images)) == 2
    again = client.wait_generation(
        client.generate(project, prompt=LONG_PROMPT, count=2, seed=5)["generation"]["id"]
    )
    assert {client.get(avatar["imageUrl"]).content for avatar in again["avatars"]} == set(images)


def test_engine_seed_keeps_short_prompts_and_hashes_long_ones():
    assert engine_seed("a wizard", 7) == "a wizard|7"  # the pixels of every earlier image
    long_seeds = {engine_seed(LONG_PROMPT, n) for n in range(3)}
    assert len(long_seeds) == 3
    assert all(len(seed) <= SEED_MAX_LENGTH for seed in long_seeds)
    assert engine_seed(LONG_PROMPT, 1) == engine_seed(LONG_PROMPT, 1)
    assert engine_seed(LONG_PROMPT, 1) != engine_seed(LONG_PROMPT[:-1] + "?", 1)


def test_options_dicebear_refuses_are_a_permanent_error():
    with pytest.raises(PermanentEngineError, match="seed maxLength"):
        _render("adventurer", "x" * (SEED_MAX_LENGTH + 1), 64, 64)


def test_a_job_the_engine_cannot_draw_fails_at_once_without_retries(client):
    project = client.project()
    first = client.wait_generation(client.generate(project)["generation"]["id"])
    # DiceBear draws at most 4096 px; the API stops larger sizes, an old or edited row may not
    row = sibling_generation(first["id"], options={"width": 5000, "height": 5000, "seed": 1})
    client.app.state.runtime.enqueue(row.id)
    done = client.wait_generation(row.id)
    assert done["status"] == "failed"
    assert "cannot draw" in done["errorMessage"]
    assert "attempts" not in done["errorMessage"] and "Retrying" not in done["errorMessage"]


def test_renders_run_in_two_worker_processes_not_in_this_one(engine):
    for warming in engine.warm_up():
        warming.result(timeout=60)
    workers = workers_of(engine)
    assert len(workers) == 2
    here, before = psutil.Process(), {}
    mine_before = sum(here.cpu_times()[:2])
    for worker in workers:
        before[worker.pid] = sum(worker.cpu_times()[:2])
    delivered: list[bytes] = []

    def make(prompt: str) -> None:
        engine.generate(
            job(12, prompt=prompt),
            lambda variation, png: delivered.append(png),
            lambda fraction, message: None,
            lambda: False,
        )

    makers = [threading.Thread(target=make, args=(prompt,)) for prompt in ("elf", "dwarf")]
    for maker in makers:
        maker.start()
    for maker in makers:
        maker.join(120)
    mine = sum(here.cpu_times()[:2]) - mine_before
    theirs = {worker.pid: sum(worker.cpu_times()[:2]) - before[worker.pid] for worker in workers}
    assert len(delivered) == 24 and len(set(delivered)) == 24
    assert all(spent > 0 for spent in theirs.values()), theirs  # both processes drew
    assert sum(theirs.values()) > 2 * mine, (theirs, mine)  # the drawing is theirs, not ours


def test_a_killed_render_process_is_a_transient_error_and_the_pool_recovers(engine):
    for warming in engine.warm_up():
        warming.result(timeout=60)
    for worker in workers_of(engine):
        os.kill(worker.pid, signal.SIGKILL)
    with pytest.raises(TransientEngineError):
        engine.pool.run(_render, "adventurer", "x", 64, 64)
    assert engine.pool.run(_render, "adventurer", "x", 64, 64).startswith(b"\x89PNG")


def test_render_processes_stop_with_the_server(settings):
    with Client(app=create_app(settings), base_url=BASE_URL) as client:
        project = client.project()
        done = client.wait_generation(client.generate(project, count=2)["generation"]["id"])
        assert done["status"] == "completed"
        engine = engine_for("dicebear")
        assert isinstance(engine, DiceBearEngine)
        workers = workers_of(engine)
        assert workers
    gone, alive = psutil.wait_procs(workers, timeout=0)
    assert not alive, alive


def test_opening_a_project_page_starts_the_render_processes(client):
    engine = engine_for("dicebear")
    assert isinstance(engine, DiceBearEngine)
    project = client.project()
    assert engine.pool.worker_pids() == []  # a server that drew nothing keeps none
    assert client.get(f"/projects/{project}", headers={"accept": "text/html"}).status_code == 200
    wait_for(lambda: len(engine.pool.worker_pids()) == 2)


def test_render_processes_end_when_the_server_is_killed(tmp_path):
    server = Server(tmp_path / "home")
    try:
        project = server.request("POST", f"{API}/projects", {"name": "killed"})[1]["id"]
        with urllib.request.urlopen(f"{server.url}/projects/{project}", timeout=30) as page:
            page.read()  # the project page starts the render processes
        wait_for(lambda: len(spawned_children(server.process.pid)) == 2)
        workers = spawned_children(server.process.pid)
    finally:
        server.kill()  # SIGKILL: no shutdown runs
    gone, alive = psutil.wait_procs(workers, timeout=15)
    assert not alive, alive


def spawned_children(pid: int) -> list[psutil.Process]:
    return [
        child
        for child in psutil.Process(pid).children()
        if "spawn_main" in " ".join(child.cmdline())
    ]
