"""A remittance posts its money once.

Posting the same payment twice counts it twice in the back office. So the intake writes, with each
remittance and under the store's "absent" condition, a resource naming its payment (the payer and
its check or EFT trace number, TRN02) and, for a raw 835, one naming its interchange (sender,
receiver and ISA13): a second one of either is refused inside the atomic write (409), also when two
requests race. Both are per client; neither id holds PHI.
"""

from __future__ import annotations

from canonical.v1 import Remittance
from connectors.clearinghouse.x12 import InterchangeHeader
from gateway.api._resources import new_resource
from gateway.problems import ProblemError
from gateway.store import ResourceRecord, WriteCondition

__all__ = ["interchange_once", "new_only", "payment_once"]


def payment_once(remittance: Remittance, client_id: str, remittance_id: str, transaction_id: str) -> ResourceRecord:
    payer = remittance.payer.identifier or remittance.payer.name
    payment_id = f"{client_id}:{payer}:{remittance.payment.trace_number}"
    return new_resource("payment", payment_id, client_id, remittance_id, transaction_id)


def interchange_once(isa: InterchangeHeader, client_id: str, ack_id: str, transaction_id: str) -> ResourceRecord:
    parties = f"{isa.sender_qualifier}:{isa.sender_id}:{isa.receiver_qualifier}:{isa.receiver_id}"
    return new_resource("interchange", f"{client_id}:{parties}:{isa.control_number}", client_id, ack_id, transaction_id)


def new_only(records: list[ResourceRecord]) -> dict[tuple[str, str], WriteCondition]:
    """The store condition that each of ``records`` is new. Two of them alike (one request holding
    the same payment twice) would be one write the store cannot refuse, so that is a 409 here."""
    keys = [(r.kind, r.id) for r in records]
    for kind in {k for k, i in keys if keys.count((k, i)) > 1}:
        raise ProblemError(409, "conflict", f"this request holds the same {kind} more than once")
    absent: WriteCondition = "absent"
    return dict.fromkeys(keys, absent)
