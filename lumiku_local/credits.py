"""The credit ledger: append-only entries; the user's balance is their running sum."""

from __future__ import annotations

from peewee import fn

from .errors import InsufficientCredits
from .models import AvatarGeneration, CreditLedger, User


def balance(user_id: int) -> int:
    return User.get_by_id(user_id).credit_balance


def _append(
    user_id: int,
    kind: str,
    amount: int,
    description: str,
    generation: AvatarGeneration | None = None,
) -> CreditLedger:
    """Add one entry and move the cached balance with it. Call inside a write transaction."""
    User.update(credit_balance=User.credit_balance + amount).where(User.id == user_id).execute()
    balance_after = balance(user_id)
    return CreditLedger.create(
        user=user_id,
        kind=kind,
        amount=amount,
        balance_after=balance_after,
        description=description,
        generation=generation,
    )


def debit(user_id: int, generation: AvatarGeneration, amount: int, description: str) -> int:
    """Charge a generation; raises InsufficientCredits (nothing written) when short."""
    available = balance(user_id)
    if available < amount:
        raise InsufficientCredits(
            f"This needs {amount} credits and you have {available}. "
            "Lower the image count or pick a cheaper model."
        )
    return _append(user_id, "debit", -amount, description, generation).balance_after


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
