"""``/v1/transactions/{id}``: where an accepted piece of work stands, target by target."""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Controller, Request, get
from litestar.params import Parameter

from gateway.api._common import READ_PROBLEMS, caller_id, hub_of
from gateway.api._response import JsonView, documented
from gateway.problems import ProblemError
from gateway.views import TransactionView, transaction_view

__all__ = ["TransactionController"]

TransactionId = Annotated[str, Parameter(pattern=r"^txn_[0-9a-z]{26}$(?!\n)", description="Transaction id")]


class TransactionController(Controller):
    path = "/transactions"
    tags = ["transactions"]

    @get(
        "/{transaction_id:str}",
        operation_id="getTransaction",
        responses={**documented(TransactionView, 200, "Request fulfilled, document follows"), **READ_PROBLEMS},
        summary="State, attempts and outcome per target",
    )
    async def get_transaction(self, request: Request[Any, Any, Any], transaction_id: TransactionId) -> JsonView:
        hub = hub_of(request)
        snapshot = await hub.store.get_transaction(transaction_id)
        if snapshot is None or snapshot[0].client_id != caller_id(request):
            raise ProblemError(404, "not-found", "no transaction with this id")
        return JsonView(transaction_view(*snapshot))
