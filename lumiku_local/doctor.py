"""`lumiku doctor`: the data dir, database, catalog, queue and the ledger invariant (DESIGN §2)."""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from peewee import fn

from . import data_folder, file_deletions, hardware, orphans, storage, workers
from .config import Settings, redacted
from .db import connection, open_database, open_for, tuples, utcnow
from .generations import is_installed
from .migrations import MIGRATIONS, Migration
from .models import (
    TERMINAL_STATUSES,
    AIModel,
    Avatar,
    AvatarGeneration,
    CreditLedger,
    FileDeletion,
    User,
)


@dataclass
class Check:
    name: str
    ok: bool
    detail: str


def ledger_problems() -> list[str]:
    """Every way the books can be wrong; empty when balance, debits, refunds and rows agree."""
    problems = []
    for user in User.select():
        total = (
            CreditLedger.select(fn.COALESCE(fn.SUM(CreditLedger.amount), 0))
            .where(CreditLedger.user == user.id)
            .scalar()
        )
        if total != user.credit_balance:
            problems.append(f"user {user.id}: balance {user.credit_balance} != ledger sum {total}")
    sums: dict[tuple[str, str], int] = {
        (gid, kind): amount
        for gid, kind, amount in tuples(
            CreditLedger.select(
                CreditLedger.generation, CreditLedger.kind, fn.SUM(CreditLedger.amount)
            )
            .where(CreditLedger.generation.is_null(False))
            .group_by(CreditLedger.generation, CreditLedger.kind)
        )
    }
    delivered: dict[str, int] = dict(
        tuples(
            Avatar.select(Avatar.generation, fn.COUNT(fn.DISTINCT(Avatar.variation_key)))
            .where(Avatar.generation.is_null(False))
            .group_by(Avatar.generation)
        )
    )
    rows: dict[str, int] = dict(
        tuples(
            Avatar.select(Avatar.generation, fn.COUNT(Avatar.id))
            .where(Avatar.generation.is_null(False))
            .group_by(Avatar.generation)
        )
    )
    keys: dict[str, set[str]] = {}
    for generation_id, key in tuples(
        Avatar.select(Avatar.generation, Avatar.variation_key).where(
            Avatar.generation.is_null(False)
        )
    ):
        keys.setdefault(generation_id, set()).add(key)
    for gen in AvatarGeneration.select():
        if gen.plan:  # every image is one its plan asked for (both apps describe a plan)
            planned = {str(item["key"]) for item in gen.plan}
            if len(gen.plan) != gen.count:
                problems.append(f"generation {gen.id}: plan of {len(gen.plan)} for {gen.count}")
            if stray := sorted(keys.get(gen.id, set()) - planned):
                problems.append(f"generation {gen.id}: images not in its plan: {stray}")
        charged = gen.credit_cost * gen.count
        if -sums.get((gen.id, "debit"), 0) != charged:
            problems.append(
                f"generation {gen.id}: debit {-sums.get((gen.id, 'debit'), 0)} != {charged}"
            )
        made = delivered.get(gen.id, 0)
        if rows.get(gen.id, 0) != made:
            problems.append(f"generation {gen.id}: duplicate variation keys")
        if made > gen.count:
            problems.append(f"generation {gen.id}: {made} images for {gen.count} requested")
        if gen.status in TERMINAL_STATUSES:
            expected = gen.credit_cost * (gen.count - made)
            refunded = sums.get((gen.id, "refund"), 0)
            if refunded != expected:
                problems.append(
                    f"generation {gen.id} ({gen.status}): refund {refunded} != {expected}"
                )
            if gen.count_completed != made:
                problems.append(
                    f"generation {gen.id}: countCompleted {gen.count_completed} "
                    f"!= {made} avatar rows"
                )
        elif (gen.id, "refund") in sums:
            problems.append(f"generation {gen.id}: refunded while still {gen.status}")
    return problems


def missing_files(settings: Settings) -> list[str]:
    missing = []
    for avatar in Avatar.select().where(Avatar.purged_at.is_null()):  # the trash keeps files
        for name in (avatar.image_file, avatar.thumbnail_file):
            if not storage.resolve(settings.files_dir, name).is_file():
                missing.append(f"avatar {avatar.id}: {name} is missing")
    for image, _thumbnail in tuples(file_deletions.references_kept().distinct()):
        if not storage.resolve(settings.files_dir, image).is_file():
            missing.append(f"reference photo {image} of a generation is missing")
    return missing


def run_checks(settings: Settings) -> list[Check]:
    checks: list[Check] = []

    def check(name: str, probe: Callable[[], tuple[bool, str]]) -> bool:
        try:
            ok, detail = probe()
        except Exception as exc:  # a doctor reports, it does not crash
            ok, detail = False, f"{type(exc).__name__}: {exc}"
        checks.append(Check(name, ok, detail))
        return ok

    def data_dir() -> tuple[bool, str]:
        home = settings.home
        if not home.is_dir():
            return False, f"{home} does not exist; start Lumiku once to create it"
        return os.access(home, os.W_OK), str(home)

    def log_file() -> tuple[bool, str]:
        written = "" if settings.log_file.is_file() else " (not written yet)"
        return True, f"{settings.log_file}{written}"

    ok = check("data dir", data_dir)
    check("log", log_file)  # where to look when something went wrong, even without data
    if not ok:
        return checks

    def postgres() -> tuple[bool, str]:
        from .backends import postgres_problem

        problem = postgres_problem(settings)
        if problem:
            return False, problem
        open_for(settings)
        with connection():
            applied = {m.name for m in Migration.select()} if Migration.table_exists() else set()
        todo = [m.__name__ for m in MIGRATIONS if m.__name__ not in applied]
        if todo:
            return False, f"migrations not applied: {', '.join(todo)}; start Lumiku to apply"
        return True, f"PostgreSQL {redacted(settings.database_url)} ({len(applied)} migrations)"

    def database() -> tuple[bool, str]:
        if settings.uses_postgres:
            return postgres()
        state, detail = data_folder.database_state(settings.database_path)
        if state == "missing" and not data_folder.image_count(settings):
            return False, f"{settings.database_path} is missing; start Lumiku once"
        if state != "ok":
            return False, (
                f"{settings.database_path} is {state} ({detail}); restore it from a backup, "
                "or run `lumiku doctor --repair` to start a new one and re-import the images"
            )
        open_database(settings.database_path)
        with connection():
            from .db import database as db

            result = db.execute_sql("PRAGMA quick_check").fetchone()[0]
            applied = {m.name for m in Migration.select()}
        todo = [m.__name__ for m in MIGRATIONS if m.__name__ not in applied]
        if result != "ok":
            return False, f"SQLite integrity check: {result}"
        if todo:
            return False, f"migrations not applied: {', '.join(todo)}; start Lumiku to apply"
        return True, f"{settings.database_path} ({len(applied)} migrations)"

    if not check("database", database):
        return checks

    with connection():

        def catalog() -> tuple[bool, str]:
            models = list(AIModel.select().where(AIModel.enabled == True))  # noqa: E712
            installed = [m for m in models if is_installed(m)]
            if not installed:
                return False, (
                    f"{len(models)} enabled models, none installed; restart Lumiku "
                    "to restore the catalog or enable the Instant model"
                )
            return True, f"{len(models)} enabled models, {len(installed)} installed"

        def redis_queue() -> tuple[bool, str]:
            from .backends import redis_problem
            from .queue import JobQueue

            problem = redis_problem(settings)
            if problem:
                return False, problem
            job_queue = JobQueue(settings, run_task=lambda _: None, reconcile=lambda _: None)
            try:  # every model's list: the catalog's keys
                job_queue.storage.serve(key for (key,) in tuples(AIModel.select(AIModel.key)))
                tasks = job_queue.storage.queue_size()
            finally:
                job_queue.storage.close()
            live = workers.live(settings.lease_seconds)
            threads = sum(worker["threads"] for worker in live)
            return True, (
                f"Redis {redacted(settings.queue_url)}: {tasks} queued; {len(live)} live "
                f"process(es) with {threads} worker thread(s)"
            )

        def queue() -> tuple[bool, str]:
            if settings.uses_redis:
                return redis_queue()
            if not settings.queue_path.is_file():
                return False, f"{settings.queue_path} is missing; start Lumiku once"
            conn = sqlite3.connect(f"file:{settings.queue_path}?mode=ro", uri=True, timeout=5)
            try:
                tasks = conn.execute("select count(*) from task").fetchone()[0]
                scheduled = conn.execute("select count(*) from schedule").fetchone()[0]
            finally:
                conn.close()
            unfinished = (
                AvatarGeneration.select()
                .where(AvatarGeneration.status.in_(("pending", "processing")))
                .count()
            )
            return True, (
                f"{tasks} queued, {scheduled} scheduled; {unfinished} unfinished "
                "generations (resumed at start)"
            )

        def ledger() -> tuple[bool, str]:
            problems = ledger_problems()
            if problems:
                return False, "; ".join(problems[:10])
            return True, f"{CreditLedger.select().count()} entries balance"

        def files() -> tuple[bool, str]:
            missing = missing_files(settings)
            if missing:
                return False, "; ".join(missing[:10])
            return True, f"{Avatar.select().where(Avatar.deleted_at.is_null()).count()} avatars"

        def unnamed_files() -> tuple[bool, str]:
            named = orphans.live_names()
            pending = FileDeletion.select().count()
            loose = sum(1 for n in storage.stored_names(settings.files_dir) if n not in named)
            quarantined = orphans.quarantined_images(settings.files_dir)
            parts = []
            if quarantined:
                parts.append(
                    f"{len(quarantined)} image(s) no avatar names are kept in "
                    f"{orphans.quarantine_dir(settings.files_dir)}: `lumiku doctor --repair` "
                    "re-imports them, `lumiku doctor --remove-orphans` deletes them"
                )
            if loose:
                parts.append(f"{loose} file(s) no avatar names (quarantined at the next start)")
            if pending:
                parts.append(f"{pending} file deletion(s) to finish at the next start")
            return True, "; ".join(parts) or "none"

        def device() -> tuple[bool, str]:
            facts = hardware.report(settings.device, settings.hf_cache)
            if facts.get("problem"):
                return False, facts["problem"]
            if facts["device"] is None:
                return True, (
                    "diffusion components not installed: only the Instant model runs "
                    f"(RAM {facts['ramAvailableGb']}/{facts['ramTotalGb']} GB free)"
                )
            vram = (
                f", {facts['gpuName']} VRAM {facts['vramFreeGb']}/{facts['vramTotalGb']} GB free"
                if facts["vramTotalGb"]
                else ""
            )
            return True, (
                f"{facts['device']} ({facts['dtype']}), torch {facts['torch']}, "
                f"CUDA {facts['cuda'] or 'none'}{vram}; RAM {facts['ramAvailableGb']}/"
                f"{facts['ramTotalGb']} GB free; {facts['diskFreeGb']} GB free in "
                f"{facts['hfCache']}"
            )

        def installed_models() -> tuple[bool, str]:
            from .engines import engine_for
            from .engines.diffusers import DiffusersEngine

            if engine_for("diffusers") is None:
                from .engines import register

                register(DiffusersEngine(settings))
            names = [
                m.name for m in AIModel.select().order_by(AIModel.sort_order) if is_installed(m)
            ]
            return True, ", ".join(names) or "none"

        check("catalog", catalog)
        check("device", device)
        check("models", installed_models)
        check("queue", queue)
        check("ledger", ledger)
        check("files", files)
        check("orphans", unnamed_files)
    return checks


def repair_data_folder(settings: Settings, reimport: bool, remove: bool) -> list[str]:
    """`lumiku doctor --repair` / `--remove-orphans`: what the user asked for, and nothing more."""
    from .migrations import migrate

    lines: list[str] = []
    settings.files_dir.mkdir(parents=True, exist_ok=True)
    state, detail = data_folder.database_state(settings.database_path)
    if state != "ok" and not reimport:
        return [f"the database is {state} ({detail}); --repair starts a new one"]
    if state in ("damaged", "empty"):  # kept, not deleted: it may still be worth rescuing
        stamp = utcnow().strftime("%Y%m%d-%H%M%S")
        for suffix in ("", "-wal", "-shm"):
            source = Path(f"{settings.database_path}{suffix}")
            if source.exists() and source.stat().st_size:
                kept = source.with_name(f"{source.name}.{state}-{stamp}")
                os.replace(source, kept)
                lines.append(f"set the {state} {source.name} aside as {kept}")
            else:
                source.unlink(missing_ok=True)
    open_database(settings.database_path)
    with connection():
        applied = migrate()
        if applied and state != "ok":
            lines.append(f"started a new database {settings.database_path}")
        report = orphans.sweep(settings.files_dir)
        if report.quarantined:
            lines.append(f"moved {report.quarantined} unnamed file(s) to the quarantine")
        if reimport:
            user_id = User.select(User.id).order_by(User.id).scalar()
            count = orphans.reimport(settings.files_dir, user_id)
            lines.append(
                f"re-imported {count} image(s) into the project {orphans.RECOVERED_PROJECT!r}"
            )
        if remove:
            count = orphans.remove_quarantine(settings.files_dir)
            lines.append(f"deleted {count} quarantined file(s)")
    return lines
