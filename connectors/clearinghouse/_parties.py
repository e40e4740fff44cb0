"""The trading-partner identities the hub and the clearinghouse (stub) agree on."""

from __future__ import annotations

from connectors.clearinghouse.x12 import Envelope, Party, Submitter

__all__ = ["CLEARINGHOUSE", "HUB", "HUB_SUBMITTER", "HUB_TO_CLEARINGHOUSE"]

HUB = Party(name="BILLING INTEGRATION HUB", identifier="BILLINGHUB")
HUB_SUBMITTER = Submitter(
    name="BILLING INTEGRATION HUB", identifier="BILLINGHUB", contact_name="HUB OPERATIONS", phone="5555550100"
)
CLEARINGHOUSE = Party(name="CLEARINGHOUSE STUB", identifier="CLEARINGHOUS")
HUB_TO_CLEARINGHOUSE = Envelope(sender_id="BILLINGHUB", receiver_id="CLEARINGHOUS")
