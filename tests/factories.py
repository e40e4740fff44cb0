"""Valid canonical payloads as plain JSON-ready dicts, for API and integration tests."""

from __future__ import annotations

import itertools
import re
import secrets
from typing import Any

_counter = itertools.count(1)

NPI = "1234567893"  # the CMS documentation's example NPI; its Luhn digit is valid
RENDERING_NPI = "1245319599"


def journal(reference: str | None = None, amount: str = "125.00", account: str = "1100") -> dict[str, Any]:
    return {
        "ledger": "HOSPITAL-GL",
        "accounting_date": "2026-11-15",
        "currency": "USD",
        "description": "Patient payment batch",
        "external_reference": reference or f"batch-{next(_counter)}",
        "lines": [
            {"account": "1000", "cost_center": "CC-100", "debit": amount, "memo": "cash"},
            {"account": account, "cost_center": "CC-100", "credit": amount},
        ],
    }


def account_details(family: str = "Rivera", given: str = "Ana", member_id: str = "MBR123456") -> dict[str, Any]:
    return {
        "facility": "MAIN",
        "patient": {
            "name": {"family": family, "given": given},
            "birth_date": "1980-04-12",
            "sex": "F",
            "address": {"line1": "12 Elm St", "city": "Springfield", "state": "IL", "postal_code": "62701"},
        },
        "guarantor": {"name": {"family": family, "given": given}, "relationship": "self"},
        "coverages": [
            {
                "payer_id": "87726",
                "payer_name": "Acme Health",
                "member_id": member_id,
                "group_number": "GRP-1",
                "priority": "primary",
            }
        ],
        "status": "active",
    }


def claim(claim_id: str | None = None, member_id: str = "MBR123456", family: str = "Rivera") -> dict[str, Any]:
    return {
        "claim_id": claim_id or f"PCN{next(_counter):06d}",
        "account_number": "ACC-1001",
        "billing_provider": {
            "npi": NPI,
            "name": "Springfield Clinic",
            "tax_id": "123456789",
            "address": {
                "line1": "1 Main St",
                "city": "Springfield",
                "state": "IL",
                "postal_code": "627010001",
            },
        },
        "rendering_provider": {"npi": RENDERING_NPI, "name": "Dr Smith"},
        "payer": {"payer_id": "87726", "name": "Acme Health"},
        "subscriber": {
            "name": {"family": family, "given": "Ana"},
            "birth_date": "1980-04-12",
            "sex": "F",
            "address": {"line1": "12 Elm St", "city": "Springfield", "state": "IL", "postal_code": "62701"},
            "member_id": member_id,
            "relationship_to_patient": "self",
        },
        "diagnoses": ["J02.9", "R50.9"],
        "service_lines": [
            {
                "procedure": "99213",
                "modifiers": ["25"],
                "units": 1,
                "charge": "100.00",
                "service_date": "2026-11-01",
                "diagnosis_pointers": [1, 2],
            },
            {
                "procedure": "87880",
                "units": 1,
                "charge": "25.50",
                "service_date": "2026-11-01",
                "diagnosis_pointers": [1],
            },
        ],
        "place_of_service": "11",
        "frequency_code": "1",
        "total_charge": "125.50",
    }


def remittance(
    claim_ids: tuple[str, ...] = ("PCN000001",), paid: str = "80.00", trace_number: str | None = None
) -> dict[str, Any]:
    """A remittance whose payment is new (the hub takes each payment once), unless ``trace_number``."""
    claims = [
        {
            "claim_id": cid,
            "status_code": "1",
            "billed": "125.50",
            "paid": paid,
            "patient_responsibility": "20.00",
            "payer_claim_number": f"PAYER-{cid}",
            "adjustments": [
                {"group": "CO", "reason": "45", "amount": "25.50"},
                {"group": "PR", "reason": "1", "amount": "20.00"},
            ],
        }
        for cid in claim_ids
    ]
    total = sum(int(paid.replace(".", "")) for _ in claim_ids)
    return {
        "payer": {"name": "Acme Health", "identifier": "87726", "identifier_qualifier": "XV"},
        "payee": {"name": "Springfield Clinic", "identifier": NPI, "identifier_qualifier": "XX"},
        "payment": {
            "method": "ACH",
            "amount": f"{total // 100}.{total % 100:02d}",
            "date": "2026-11-20",
            "trace_number": trace_number or f"TRC-{next(_counter)}",
        },
        "claims": claims,
    }


def unique_835(raw: bytes) -> bytes:
    """An 835 fixture as a new payment in a new interchange (the hub takes each only once): a fresh
    ISA13 (and IEA02) and every TRN02 made unique. Fixtures are written with * and ~."""
    control = f"{secrets.randbelow(900_000_000) + 100_000_000}"
    text = raw.decode("latin-1")
    isa = text.split("~", 1)[0].split("*")
    old = isa[13]
    text = text.replace(f"*{old}*", f"*{control}*", 1)
    text = re.sub(rf"IEA\*(\d+)\*{old}", lambda m: f"IEA*{m[1]}*{control}", text)
    tag = secrets.token_hex(4)
    text = re.sub(r"TRN\*1\*([^*~]+)", lambda m: f"TRN*1*{m[1]}-{tag}", text)
    return text.encode("latin-1")
