"""Canonical model, API version 1."""

from canonical.v1._parties import Address, Payer, Person, PersonName, Provider, Sex
from canonical.v1.accounts import COVERAGE_PRIORITIES, AccountDetails, Coverage, Guarantor, PatientAccount
from canonical.v1.balancing import BalancingFinding, balancing_finding, check_balancing
from canonical.v1.claims import Claim, ServiceLine, Subscriber
from canonical.v1.journals import JournalEntry, JournalLine
from canonical.v1.remittances import (
    Adjustment,
    ClaimPayment,
    Party,
    Payment,
    ProviderAdjustment,
    Remittance,
    ServicePayment,
)
from canonical.v1.status import ClaimStatus

__all__ = [
    "COVERAGE_PRIORITIES",
    "AccountDetails",
    "Address",
    "Adjustment",
    "BalancingFinding",
    "Claim",
    "ClaimPayment",
    "ClaimStatus",
    "Coverage",
    "Guarantor",
    "JournalEntry",
    "JournalLine",
    "Party",
    "PatientAccount",
    "Payer",
    "Payment",
    "Person",
    "PersonName",
    "Provider",
    "ProviderAdjustment",
    "Remittance",
    "ServiceLine",
    "ServicePayment",
    "Sex",
    "Subscriber",
    "balancing_finding",
    "check_balancing",
]
