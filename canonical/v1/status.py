"""Claim status (v1), as read from a 277, a 277CA or an 835."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Literal

import msgspec

from canonical._base import Canonical
from canonical._codes import ClaimId, StatusCategory
from canonical._money import Money

__all__ = ["ClaimStatus"]


class ClaimStatus(Canonical, kw_only=True, frozen=True):
    claim_id: ClaimId
    category_code: StatusCategory
    status_code: Annotated[str, msgspec.Meta(pattern=r"^[0-9A-Z]{1,5}$(?!\n)")]
    entity_code: Annotated[str, msgspec.Meta(pattern=r"^[0-9A-Z]{2,3}$(?!\n)")] | None = None
    payer_claim_number: Annotated[str, msgspec.Meta(min_length=1, max_length=50)] | None = None
    billed_amount: Money | None = None
    paid_amount: Money | None = None
    effective_date: date
    source: Literal["277", "277CA", "835"]
