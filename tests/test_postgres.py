"""PostgreSQL + Redis (issue 13): the guarantees SQLite gives by its one write lock hold on a
shared server too."""

from __future__ import annotations

import threading

import pytest
from conftest import API, make_settings

from lumiku_local import credits, doctor, generations
from lumiku_local.db import connection, write_transaction
from lumiku_local.errors import InsufficientCredits
from lumiku_local.models import CreditLedger, User

CALLERS = 50
AFFORDABLE = 10


@pytest.fixture
def pg_settings(tmp_path, postgres_url, redis_url):
    return make_settings(tmp_path / "home", database_url=postgres_url, queue_url=redis_url)


def test_fifty_generates_at_once_on_a_balance_for_ten_accept_exactly_ten(app_client, pg_settings):
    client = app_client(pg_settings)
    runtime = client.app.state.runtime
    project_id = client.project()
    with connection(), write_transaction():  # leave 10 credits, through the ledger
        spare = credits.balance(runtime.user_id) - AFFORDABLE
        credits._append(runtime.user_id, "grant", -spare, "test: leave 10 credits")
    start = threading.Barrier(CALLERS)
    accepted: list[str] = []
    refused: list[str] = []
    unexpected: list[BaseException] = []
    lock = threading.Lock()

    def call() -> None:
        start.wait()
        try:
            with connection():
                generation, _ = generations.submit(
                    runtime, project_id, generations.GenerateRequest(prompt="a race", count=1)
                )
            with lock:
                accepted.append(generation.id)
        except InsufficientCredits as exc:
            with lock:
                refused.append(str(exc))
        except BaseException as exc:  # noqa: BLE001 - the test reports every other outcome
            with lock:
                unexpected.append(exc)

    threads = [threading.Thread(target=call) for _ in range(CALLERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not unexpected, unexpected
    assert len(accepted) == AFFORDABLE
    assert len(refused) == CALLERS - AFFORDABLE
    for generation_id in accepted:
        client.wait_generation(generation_id)
    with connection():
        balance = User.get_by_id(runtime.user_id).credit_balance
        entries = sum(entry.amount for entry in CreditLedger.select())
        debits = CreditLedger.select().where(CreditLedger.kind == "debit").count()
        assert doctor.ledger_problems() == []
    assert balance == 0 == entries  # the ledger sums to the balance
    assert debits == AFFORDABLE  # one debit per accepted generation, none for the 402s
    refused_over_http = client.post(
        f"{API}/projects/{project_id}/avatars/generate", json={"prompt": "one more"}
    )
    assert refused_over_http.status_code == 402, refused_over_http.text


def test_a_worker_of_every_model_takes_the_models_in_turn(redis_url):
    """BRPOP takes from the first non-empty list: without turns, a stream of one model's jobs
    would starve every other model's."""
    import redis

    from lumiku_local.queue import ModelRedisStorage

    redis.Redis.from_url(redis_url).flushall()
    storage = ModelRedisStorage("turns", url=redis_url, read_timeout=1)
    storage.serve(["a:instant", "b:flux"])
    for n in range(3):
        storage.push("a:instant", f"instant-{n}".encode())
    storage.push("b:flux", b"flux-0")
    assert storage.enqueued_items() == [b"instant-0", b"flux-0", b"instant-1", b"instant-2"]
    taken = [storage.dequeue() for _ in range(4)]
    assert taken.index(b"flux-0") < 2, taken  # not behind every Instant job
    assert [item for item in taken if item != b"flux-0"] == [
        b"instant-0",
        b"instant-1",
        b"instant-2",
    ]
    storage.close()


def test_a_keyed_transaction_leaves_no_keys_behind(app_client, pg_settings):
    """A write nested in a plain transaction after a keyed one is not taken for a part of that
    (finished) keyed one: it would be refused as unkeyed, or take only keys."""
    from lumiku_local.db import database

    client = app_client(pg_settings)
    user_id = client.app.state.runtime.user_id
    with connection():
        with write_transaction(f"user:{user_id}"):
            before = credits.balance(user_id)
        with database.atomic(), write_transaction():  # unkeyed, nested in a plain one
            User.update(credit_balance=User.credit_balance - 1).where(User.id == user_id).execute()
        assert credits.balance(user_id) == before - 1
