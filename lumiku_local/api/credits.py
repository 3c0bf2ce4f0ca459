"""The local user and their credit ledger."""

from __future__ import annotations

from typing import Annotated, Any

from litestar import get
from litestar.datastructures import State
from litestar.params import QueryParameter

from ..models import CreditLedger, User
from . import blocking, shapes
from .answers import errors


@get("/api/me", tags=["credits"])
@blocking
def me(state: State) -> dict[str, Any]:
    user = User.get_by_id(state.runtime.user_id)
    return {"id": user.id, "name": user.name, "creditBalance": user.credit_balance}


@get("/api/credits/history", tags=["credits"], responses=errors())
@blocking
def history(
    state: State,
    page: Annotated[int, QueryParameter(ge=1, le=1_000_000)] = 1,
    page_size: Annotated[int, QueryParameter(name="pageSize", ge=1, le=200)] = 50,
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
