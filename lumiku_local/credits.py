"""The credit ledger: append-only entries; the user's balance is their running sum."""

from __future__ import annotations

from typing import Any

from peewee import DoesNotExist, fn

from . import db
from .errors import InsufficientCredits
from .models import AvatarGeneration, CreditLedger, User


def _balance_of(user_id: int) -> Any:
    return User.select(User.credit_balance).where(User.id == user_id)


def balance(user_id: int) -> int:
    found = db.scalar("balance", _balance_of, user_id)
    if found is None:
        raise DoesNotExist(f"no user {user_id}")
    return int(found)


def _append(
    user_id: int,
    kind: str,
    amount: int,
    description: str,
    generation: AvatarGeneration | None = None,
    before: int | None = None,
) -> CreditLedger:
    """Add one entry and move the cached balance with it. Call inside a write transaction
    (which holds the write lock, so `before`, the balance the caller just read, still is)."""
    if before is None:
        before = balance(user_id)
    User.update(credit_balance=User.credit_balance + amount).where(User.id == user_id).execute()
    balance_after = before + amount
    return CreditLedger.create(
        user=user_id,
        kind=kind,
        amount=amount,
        balance_after=balance_after,
        description=description,
        generation=generation,
    )


def charge(
    user_id: int, generation: AvatarGeneration, amount: int, description: str, available: int
) -> int:
    """Debit a generation's cost, after check() gave `available`: the new balance."""
    entry = _append(user_id, "debit", -amount, description, generation, before=available)
    return int(entry.balance_after)


def check(user_id: int, amount: int) -> int:
    """The balance, when it covers `amount`; else InsufficientCredits. Inside the write
    transaction that then debits (it holds the write lock, so the balance stays)."""
    available = balance(user_id)
    if available < amount:
        raise InsufficientCredits(
            f"This needs {amount} credits and you have {available}. "
            "Lower the image count or pick a cheaper model."
        )
    return available


def total_refunded() -> int:
    """Every credit given back so far (the admin views)."""
    total = (
        CreditLedger.select(fn.COALESCE(fn.SUM(CreditLedger.amount), 0))
        .where(CreditLedger.kind == "refund")
        .scalar()
    )
    return int(total or 0)


def refund(generation: AvatarGeneration, amount: int, description: str) -> bool:
    """Refund part of a generation once; a second refund for it is refused by the unique index."""
    if amount <= 0:
        return False
    already = (
        CreditLedger.select()
        .where((CreditLedger.generation == generation.id) & (CreditLedger.kind == "refund"))
        .exists()
    )
    if already:
        return False
    _append(generation.user_id, "refund", amount, description, generation)
    return True
