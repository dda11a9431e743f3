"""``commands.payment.RefundPolicies`` over the program detail cache: the refund policy a buyer's
refund is judged by, and the start of the show it is for."""

from __future__ import annotations

from datetime import datetime

from events.program import RefundPolicy
from queries.cache.program_detail import ProgramDetailCache


class DetailRefundPolicies:
    def __init__(self, details: ProgramDetailCache) -> None:
        self._details = details

    async def policy(self, program_id: int, show_time_id: int) -> tuple[RefundPolicy, datetime] | None:
        cached = await self._details.get(program_id)
        if cached is None:
            return None
        detail = cached.detail
        show_time = next((s for s in detail.show_times if s.id == show_time_id), None)
        if show_time is None:
            return None
        return RefundPolicy.model_validate(detail.refund_policy), show_time.starts_at
