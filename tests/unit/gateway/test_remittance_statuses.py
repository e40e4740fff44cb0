"""A remittance gives each paid claim of the caller a claim status: CLP02 decides its 277 category."""

from __future__ import annotations

from datetime import date
from pathlib import Path

from canonical import Amount, Money, decode
from canonical.v1 import ClaimPayment, ClaimStatus, Party, Payment, Remittance
from gateway.api._resources import new_resource
from gateway.api.remittances import remittance_statuses
from gateway.hub import Hub
from gateway.settings import Settings
from gateway.store import HUB_DATABASE, SqliteStore
from tests.conftest import TEST_POLICY

# CLP02 -> STC01-1 (code lists 1029 and 507).
EXPECTED = {
    "1": "F1",  # processed as primary
    "4": "F2",  # denied
    "19": "F1",  # processed as primary, forwarded
    "22": "F3",  # reversal of previous payment: finalized/revised
    "23": "A0",  # not our claim, forwarded to additional payer(s): not adjudicated here, forwarded
    "25": "F4",  # predetermination pricing only: adjudication complete, no payment forthcoming
}


def _remittance() -> Remittance:
    claims = [
        ClaimPayment(claim_id=f"CLM-{code}", status_code=code, billed=Money("100.00"), paid=Money("0.00"))
        for code in EXPECTED
    ]
    return Remittance(
        payer=Party(name="ACME HEALTH PLAN"),
        payee=Party(name="RIVERSIDE FAMILY PRACTICE"),
        payment=Payment(method="NON", amount=Amount("0.00"), date=date(2024, 3, 29), trace_number="T1"),
        claims=claims,
    )


async def test_each_clp02_becomes_the_status_category_it_means(tmp_path: Path) -> None:
    settings = Settings(data_dir=str(tmp_path), dispatcher_enabled=False, policy_file=str(TEST_POLICY))
    hub = Hub.open(settings, SqliteStore(tmp_path / HUB_DATABASE, durability="normal"))
    try:
        remittance = _remittance()
        known = [new_resource("claim", c.claim_id, "alpha", c, "txn_claims") for c in remittance.claims]
        await hub.store.put_resources(known)
        records, updated = await remittance_statuses(hub, remittance, "alpha", "txn_remit")
    finally:
        await hub.close()
    assert updated == [f"CLM-{code}" for code in EXPECTED]
    statuses = [decode(record.body, ClaimStatus) for record in records]
    assert {s.status_code: s.category_code for s in statuses} == EXPECTED
