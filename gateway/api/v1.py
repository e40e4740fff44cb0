"""The v1 router: every canonical resource controller behind the API-key guard."""

from __future__ import annotations

from litestar import Router

from gateway.api._common import SECURITY, require_api_key
from gateway.api.accounts import AccountController
from gateway.api.journals import JournalController
from gateway.api.remittances import RemittanceController
from gateway.api.transactions import TransactionController

__all__ = ["V1_CONTROLLERS", "v1_router"]

V1_CONTROLLERS = [AccountController, JournalController, RemittanceController, TransactionController]


def v1_router() -> Router:
    return Router(path="/v1", route_handlers=V1_CONTROLLERS, guards=[require_api_key], security=SECURITY)
