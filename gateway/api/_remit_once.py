"""A remittance posts its money once.

Posting the same payment twice counts it twice in the back office. So the intake writes, with each
remittance and under the store's "absent" condition, a resource naming its payment (the payer and
its check or EFT trace number, TRN02) and, for a raw 835, one naming its interchange (sender,
receiver and ISA13): a second one of either is refused inside the atomic write (409), also when two
requests race. Both are per client; neither id holds PHI.

An id is a hash of its parts, encoded so that no two different part lists meet (joined with ":",
payer "A" with trace "B:C" was payer "A:B" with trace "C"). TRN02 is unique per payer (005010X221:
"unique within the sender/receiver relationship"), so a payment is its payer and its trace: the payer
by its identifier when it has one (two payers may share a name: "MEDICARE"), else by its name, case
and white space folded; the trace stripped and upper-cased. A client that names one payer both ways
gets past it; a test interchange (ISA15 T) posts no money and reserves no payment.
"""

from __future__ import annotations

import hashlib

import msgspec

from canonical.v1 import Remittance
from connectors.clearinghouse.x12 import InterchangeHeader
from gateway.api._resources import new_resource
from gateway.problems import ProblemError
from gateway.store import ResourceRecord, WriteCondition

__all__ = ["interchange_once", "new_only", "payment_once"]


def payment_once(remittance: Remittance, client_id: str, remittance_id: str, transaction_id: str) -> ResourceRecord:
    payer = remittance.payer.identifier or " ".join(remittance.payer.name.casefold().split())
    trace = remittance.payment.trace_number.strip().upper()
    return new_resource("payment", _id(client_id, payer, trace), client_id, remittance_id, transaction_id)


def interchange_once(isa: InterchangeHeader, client_id: str, ack_id: str, transaction_id: str) -> ResourceRecord:
    # ISA15 too: a payer's test run (T) of a file must not block the production one (P).
    parts = (isa.sender_qualifier, isa.sender_id, isa.receiver_qualifier, isa.receiver_id, isa.usage)
    return new_resource("interchange", _id(client_id, *parts, isa.control_number), client_id, ack_id, transaction_id)


def _id(*parts: str) -> str:
    return hashlib.sha256(msgspec.json.encode(parts)).hexdigest()


def new_only(records: list[ResourceRecord]) -> dict[tuple[str, str], WriteCondition]:
    """The store condition that each of ``records`` is new. Two of them alike (one request holding
    the same payment twice) would be one write the store cannot refuse, so that is a 409 here."""
    keys = [(r.kind, r.id) for r in records]
    if len(set(keys)) != len(keys):
        kind = next(k for k in keys if keys.count(k) > 1)[0]
        raise ProblemError(409, "conflict", f"this request holds the same {kind} more than once")
    absent: WriteCondition = "absent"
    return dict.fromkeys(keys, absent)
