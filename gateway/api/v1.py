"""The v1 router: every canonical resource controller behind the policy chain."""

from __future__ import annotations

from litestar import Router

from gateway.api._common import SECURITY
from gateway.api.accounts import AccountController
from gateway.api.admin import AdminController
from gateway.api.claims import ClaimController
from gateway.api.journals import JournalController
from gateway.api.remittances import RemittanceController
from gateway.api.transactions import TransactionController
from gateway.governance import governance_middleware

__all__ = ["V1_CONTROLLERS", "v1_router"]

V1_CONTROLLERS = [
    AccountController,
    AdminController,
    ClaimController,
    JournalController,
    RemittanceController,
    TransactionController,
]


def v1_router() -> Router:
    return Router(path="/v1", route_handlers=V1_CONTROLLERS, middleware=[governance_middleware], security=SECURITY)
