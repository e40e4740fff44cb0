"""Patient accounts (v1): the hub's copy of what patient accounting knows about a visit's payer."""

from __future__ import annotations

from typing import Annotated, Literal, get_args

import msgspec

from canonical._base import Canonical
from canonical._codes import TEXT_PATTERN, AccountNumber, PayerId, ShortText
from canonical._phi import PHI
from canonical.v1._parties import Address, Person, PersonName

__all__ = ["COVERAGE_PRIORITIES", "AccountDetails", "Coverage", "CoveragePriority", "Guarantor", "PatientAccount"]

CoveragePriority = Literal["primary", "secondary", "tertiary"]
# In the order payers pay (coordination of benefits): the primary first.
COVERAGE_PRIORITIES: tuple[CoveragePriority, ...] = get_args(CoveragePriority)
MemberId = Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9-]{1,80}$(?!\n)")]


class Coverage(Canonical, kw_only=True, frozen=True):
    payer_id: PayerId
    payer_name: ShortText
    member_id: Annotated[MemberId, PHI]
    # FHIR Coverage.class.value: a FHIR string holds no control characters, and a blank one says nothing.
    group_number: Annotated[str, msgspec.Meta(min_length=1, max_length=50, pattern=TEXT_PATTERN)] | None = None
    plan_name: ShortText | None = None
    priority: CoveragePriority = "primary"
    relationship: Literal["self", "spouse", "child", "other"] = "self"


class Guarantor(Canonical, kw_only=True, frozen=True):
    name: Annotated[PersonName, PHI]
    relationship: Literal["self", "spouse", "parent", "other"] = "self"
    address: Annotated[Address, PHI] | None = None


class AccountDetails(Canonical, kw_only=True, frozen=True):
    """The body of ``PUT /v1/accounts/{account_number}``: the account number comes from the path."""

    facility: Annotated[
        str,
        msgspec.Meta(
            pattern=r"^[A-Za-z0-9_-]{1,20}$(?!\n)",
            description="The facility holding the account; it names the account in the EHR, so it cannot change",
        ),
    ]
    patient: Person
    guarantor: Guarantor | None = None
    coverages: Annotated[list[Coverage], msgspec.Meta(max_length=3)] = []
    status: Literal["active", "inactive", "on-hold"] = "active"

    def __post_init__(self) -> None:
        priorities = [c.priority for c in self.coverages]
        if len(set(priorities)) != len(priorities):
            raise ValueError("coverages must have distinct priorities")


class PatientAccount(AccountDetails, kw_only=True, frozen=True):
    account_number: AccountNumber
