"""Canonical PatientAccount -> FHIR R4 Patient, Account and Coverage resources.

Identifiers are namespaced by facility so two facilities' account numbers never collide in one EHR.
"""

from __future__ import annotations

from typing import Any

from canonical.v1 import COVERAGE_PRIORITIES, Address, PatientAccount, PersonName
from canonical.v1.accounts import Coverage

__all__ = [
    "PRIORITIES",
    "account_identifier",
    "account_resource",
    "cancelled_coverage",
    "coverage_identifier",
    "coverage_resource",
    "patient_resource",
    "priority_identifier",
]

_GENDER = {"F": "female", "M": "male", "U": "unknown"}
_ACCOUNT_STATUS = {"active": "active", "inactive": "inactive", "on-hold": "on-hold"}
PRIORITIES = COVERAGE_PRIORITIES
_ORDER = {priority: order for order, priority in enumerate(PRIORITIES, start=1)}  # Coverage.order
_RELATIONSHIP = {"self": "self", "spouse": "spouse", "child": "child", "other": "other"}
# A code means something only with its system: without one, the EHR (and a FHIR validator) cannot tell
# "group" of CoverageClassCodes from a local code of the same spelling.
RELATIONSHIP_SYSTEM = "http://terminology.hl7.org/CodeSystem/subscriber-relationship"
CLASS_SYSTEM = "http://terminology.hl7.org/CodeSystem/coverage-class"


def _system(account: PatientAccount, what: str) -> str:
    return f"urn:billing-hub:{account.facility}:{what}"


def account_identifier(account: PatientAccount) -> tuple[str, str]:
    return _system(account, "account"), account.account_number


def coverage_identifier(account: PatientAccount, coverage: Coverage) -> tuple[str, str]:
    return priority_identifier(account, coverage.priority)


def priority_identifier(account: PatientAccount, priority: str) -> tuple[str, str]:
    """A Coverage is keyed by the account and the place it holds in it (primary, secondary, ...)."""
    return _system(account, "coverage"), f"{account.account_number}-{priority}"


def cancelled_coverage(stored: dict[str, Any]) -> dict[str, Any]:
    """A stored Coverage the account no longer lists, as its update to ``cancelled``: the rest is kept,
    as the record of what the patient had (FHIR R4 Coverage.status, Financial Resource Status Codes)."""
    return {**{k: v for k, v in stored.items() if k != "meta"}, "status": "cancelled"}


def _name(name: PersonName) -> dict[str, Any]:
    given = [name.given] + ([name.middle] if name.middle else [])
    result: dict[str, Any] = {"use": "official", "family": name.family, "given": given}
    if name.suffix:
        result["suffix"] = [name.suffix]
    return result


def _address(address: Address) -> dict[str, Any]:
    lines = [address.line1] + ([address.line2] if address.line2 else [])
    return {
        "line": lines,
        "city": address.city,
        "state": address.state,
        "postalCode": address.postal_code,
        "country": address.country,
    }


def patient_resource(account: PatientAccount) -> dict[str, Any]:
    system, value = _system(account, "patient-account"), account.account_number
    patient = account.patient
    resource: dict[str, Any] = {
        "resourceType": "Patient",
        "identifier": [{"system": system, "value": value}],
        "name": [_name(patient.name)],
        "gender": _GENDER[patient.sex],
        "birthDate": patient.birth_date.isoformat(),
    }
    if patient.address is not None:
        resource["address"] = [_address(patient.address)]
    return resource


def account_resource(account: PatientAccount, patient_id: str) -> dict[str, Any]:
    system, value = account_identifier(account)
    resource: dict[str, Any] = {
        "resourceType": "Account",
        "identifier": [{"system": system, "value": value}],
        "status": _ACCOUNT_STATUS[account.status],
        "subject": [{"reference": f"Patient/{patient_id}"}],
    }
    if account.guarantor is not None:
        resource["guarantor"] = [
            {"party": {"display": f"{account.guarantor.name.family}, {account.guarantor.name.given}"}}
        ]
    return resource


def coverage_resource(account: PatientAccount, coverage: Coverage, patient_id: str) -> dict[str, Any]:
    system, value = coverage_identifier(account, coverage)
    resource: dict[str, Any] = {
        "resourceType": "Coverage",
        "identifier": [{"system": system, "value": value}],
        "status": "active",
        "beneficiary": {"reference": f"Patient/{patient_id}"},
        "subscriberId": coverage.member_id,
        "relationship": {"coding": [{"system": RELATIONSHIP_SYSTEM, "code": _RELATIONSHIP[coverage.relationship]}]},
        "payor": [{"identifier": {"value": coverage.payer_id}, "display": coverage.payer_name}],
        "order": _ORDER[coverage.priority],
    }
    classes = [
        {"type": {"coding": [{"system": CLASS_SYSTEM, "code": kind}]}, "value": value}
        for kind, value in (("group", coverage.group_number), ("plan", coverage.plan_name))
        if value
    ]
    if classes:
        resource["class"] = classes
    return resource
