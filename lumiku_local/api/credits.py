"""The local user and their credit ledger."""

from __future__ import annotations

from typing import Any

from litestar import get
from litestar.datastructures import State
from litestar.params import Parameter

from ..models import CreditLedger, User
from . import shapes


@get("/api/me", sync_to_thread=True, tags=["credits"])
def me(state: State) -> dict[str, Any]:
    user = User.get_by_id(state.runtime.user_id)
    return {"id": user.id, "name": user.name, "creditBalance": user.credit_balance}


@get("/api/credits/history", sync_to_thread=True, tags=["credits"])
def history(
    state: State,
    page: int = Parameter(default=1, ge=1),
    page_size: int = Parameter(query="pageSize", default=50, ge=1, le=200),
) -> dict[str, Any]:
    """Ledger entries, newest first."""
    query = CreditLedger.select().where(CreditLedger.user == state.runtime.user_id)
    total = query.count()
    entries = query.order_by(CreditLedger.id.desc()).paginate(page, page_size)
    return {
        "entries": [shapes.ledger_entry(entry) for entry in entries],
        "page": page,
        "pageSize": page_size,
        "total": total,
    }


routes = [me, history]
