"""A claim status inquiry: what a 276 (005010X212) asks a payer about one claim.

Canonical v1 has no inquiry object (``ClaimStatus`` is the answer), so the X12 codec defines the
question here, built from canonical value types and marked for PHI the way canonical marks it. The
276 writer turns a list of these into an interchange; a 276 reader can return the same Struct.
"""

from __future__ import annotations

from datetime import date
from typing import Annotated

import msgspec

from canonical import PHI, Amount, Canonical, check_npi
from canonical._codes import ClaimId, Npi, ShortText
from canonical.v1 import Payer, PersonName

__all__ = ["StatusInquiry"]

MemberId = Annotated[str, PHI, msgspec.Meta(pattern=r"^[A-Za-z0-9-]{2,80}$(?!\n)")]
TraceNumber = Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9][A-Za-z0-9.-]{0,49}$(?!\n)")]


class StatusInquiry(Canonical, kw_only=True, frozen=True):
    """One claim whose status the provider asks about.

    The patient fields are set only when the patient is a dependent (not the subscriber): the 276
    then carries loop 2000E (HL 23) for the patient.
    """

    claim_id: ClaimId  # the patient control number (837P CLM01); 276 REF*EJ
    payer: Payer
    provider_npi: Npi
    provider_name: ShortText
    subscriber_member_id: MemberId
    subscriber_name: Annotated[PersonName, PHI]
    subscriber_birth_date: Annotated[date, PHI] | None = None  # required when the patient is the subscriber
    patient_name: Annotated[PersonName, PHI] | None = None
    patient_birth_date: Annotated[date, PHI] | None = None
    service_date_from: date
    service_date_to: date
    billed_amount: Amount
    payer_claim_number: Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9-]{1,50}$(?!\n)")] | None = None
    trace_number: TraceNumber  # 276 TRN02, echoed in the 277 answer

    def __post_init__(self) -> None:
        check_npi(self.provider_npi, "provider_npi")
        if self.service_date_to < self.service_date_from:
            raise ValueError("service_date_to is before service_date_from")
        if (self.patient_name is None) != (self.patient_birth_date is None):
            raise ValueError("patient_name and patient_birth_date go together (a dependent patient)")
        if self.patient_name is None and self.subscriber_birth_date is None:
            raise ValueError("subscriber_birth_date is required when the subscriber is the patient")

    @property
    def patient_is_subscriber(self) -> bool:
        return self.patient_name is None
