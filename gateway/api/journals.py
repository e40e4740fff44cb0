"""``/v1/journals``: general-ledger journals posted to the ERP."""

from __future__ import annotations

import hashlib
from typing import Annotated, Any

from litestar import Controller, Request, get, post
from litestar.params import JSONBody, Parameter

from canonical import encode
from canonical.v1 import JournalEntry
from gateway.api._body import CanonicalBody
from gateway.api._common import (
    ACCEPTED_RESPONSES,
    READ_PROBLEMS,
    WRITE_PROBLEMS,
    WaitingOperation,
    accept_work,
    caller_id,
    hub_of,
)
from gateway.api._resources import load_owned, new_resource, transaction_state
from gateway.api._response import JsonView
from gateway.hub import Delivery
from gateway.ids import new_id
from gateway.views import JournalView, timestamp

__all__ = ["JournalController"]


def _digest(content: bytes) -> str:
    """What a journal's reference keeps of it: enough to tell the same journal from another."""
    return hashlib.sha256(content).hexdigest()


JournalId = Annotated[str, Parameter(pattern=r"^jnl_[0-9a-z]{26}$(?!\n)", description="Journal id")]


class JournalController(Controller):
    path = "/journals"
    tags = ["journals"]

    @post(
        "/",
        operation_id="postJournal",
        responses={**WRITE_PROBLEMS, **ACCEPTED_RESPONSES},
        status_code=202,
        summary="Accept a journal for posting to the ERP",
        dto=CanonicalBody[JournalEntry],
        operation_class=WaitingOperation,
        return_dto=None,
    )
    async def post_journal(
        self,
        request: Request[Any, Any, Any],
        data: JSONBody[JournalEntry],
    ) -> JsonView:
        hub = hub_of(request)
        client_id = caller_id(request)
        journal_id, transaction_id = new_id("jnl"), new_id("txn")
        # The ERP keeps one journal per external reference, whatever its ledger: the reference is the
        # first client's, so another client's journal can neither be answered with that journal's
        # document number nor post in its stead (naming another ledger does not make it another).
        # The same client may send the same journal again (the ERP answers with the one it has), but
        # not other content under it: the ERP would keep the first and the hub say "completed".
        content = encode(data)
        reference = new_resource(
            "journal-reference", data.external_reference, client_id, _digest(content), transaction_id
        )
        return await accept_work(
            request,
            hub,
            kind="journal.post",
            resource=new_resource("journal", journal_id, client_id, data, transaction_id, encoded=content),
            deliveries=[Delivery("erp", "post_journal", content)],
            extra_resources=[reference],
            only_if={(reference.kind, reference.id): "unchanged"},
            written_once=True,  # journals are never updated: nothing can be delivered out of order
        )

    @get(
        "/{journal_id:str}",
        operation_id="getJournal",
        responses=READ_PROBLEMS,
        summary="A journal and its ERP document number",
    )
    async def get_journal(self, request: Request[Any, Any, Any], journal_id: JournalId) -> JournalView:
        hub = hub_of(request)
        record, journal = await load_owned(hub, "journal", journal_id, caller_id(request), JournalEntry)
        state, results = await transaction_state(hub, record.transaction_id)
        erp = results.get("erp", {})
        return JournalView(
            id=record.id,
            journal=journal,
            transaction_id=record.transaction_id,
            state=state,
            document_number=erp.get("document_number"),
            duplicate_in_erp=erp.get("duplicate") == "true",
            created_at=timestamp(record.created_at),
        )
