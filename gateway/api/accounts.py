"""``/v1/accounts``: patient accounts synced to the EHR (FHIR) and the ERP (AR customer)."""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
from litestar import Controller, Request, get, put
from litestar.params import JSONBody, Parameter

from canonical import encode
from canonical.v1 import COVERAGE_PRIORITIES, AccountDetails, PatientAccount, PersonName
from gateway.api._body import CanonicalBody
from gateway.api._common import (
    ACCEPTED_RESPONSES,
    READ_PROBLEMS,
    WRITE_PROBLEMS,
    WaitingOperation,
    accept_work,
    caller_id,
    hub_of,
    taken_problem,
)
from gateway.api._resources import load_owned, new_resource, transaction_state
from gateway.api._response import JsonView
from gateway.hub import Delivery, Hub
from gateway.ids import new_id
from gateway.problems import FieldError, ProblemError
from gateway.store import ResourceTaken
from gateway.views import AccountView, timestamp

__all__ = ["AccountController"]

AccountNumberParam = Annotated[
    str, Parameter(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,29}$(?!\n)", description="Patient account number")
]


class AccountController(Controller):
    path = "/accounts"
    tags = ["accounts"]

    @put(
        "/{account_number:str}",
        operation_id="putAccount",
        responses={**WRITE_PROBLEMS, **ACCEPTED_RESPONSES},
        status_code=202,
        summary="Create or update a patient account and sync it to the EHR and ERP",
        dto=CanonicalBody[AccountDetails],
        operation_class=WaitingOperation,
        return_dto=None,
    )
    async def put_account(
        self,
        request: Request[Any, Any, Any],
        account_number: AccountNumberParam,
        data: JSONBody[AccountDetails],
    ) -> JsonView:
        _check_consistent(data)
        hub = hub_of(request)
        client_id = caller_id(request)
        # Account numbers are global in the EHR: another client's account is not ours to change. The
        # store refuses it inside the write (409), where a concurrent writer cannot slip past.
        account = PatientAccount(account_number=account_number, **_fields(data))
        payload = encode(account)
        transaction_id = new_id("txn")
        # The EHR namespaces an account's identifiers by its facility: the same number under another
        # facility would make a second Patient, Account and Coverages there beside the first, still
        # active. So an account keeps the facility it was first stored with (409 otherwise): the
        # store holds it to its reservation inside the write; an account stored before reservations
        # has none, and is held to the facility in its stored body.
        await _check_facility_kept(hub, account_number, client_id, data.facility)
        facility = new_resource("account-facility", account_number, client_id, data.facility, transaction_id)
        return await accept_work(
            request,
            hub,
            kind="account.sync",
            resource=new_resource("account", account_number, client_id, account, transaction_id, encoded=payload),
            deliveries=[
                Delivery("ehr", "sync_account", payload),
                Delivery("erp", "upsert_customer", payload),
            ],
            extra_resources=[facility],
            only_if={(facility.kind, facility.id): "unchanged"},
        )

    @get(
        "/{account_number:str}",
        operation_id="getAccount",
        responses=READ_PROBLEMS,
        summary="A patient account as the hub holds it",
    )
    async def get_account(self, request: Request[Any, Any, Any], account_number: AccountNumberParam) -> AccountView:
        hub = hub_of(request)
        record, account = await load_owned(hub, "account", account_number, caller_id(request), PatientAccount)
        state, results = await transaction_state(hub, record.transaction_id)
        return AccountView(
            account=account,
            transaction_id=record.transaction_id,
            state=state,
            ehr_patient_id=results.get("ehr", {}).get("patient_id"),
            erp_customer_number=results.get("erp", {}).get("customer_number"),
            updated_at=timestamp(record.updated_at),
        )


class _StoredFacility(msgspec.Struct):
    facility: str | None = None


async def _check_facility_kept(hub: Hub, account_number: str, client_id: str, facility: str) -> None:
    stored = await hub.store.get_resource("account", account_number)
    if stored is None or stored.client_id != client_id:
        return  # a new account, or another client's, which the store refuses in the write
    try:
        kept = msgspec.json.decode(stored.body, type=_StoredFacility).facility
    except msgspec.DecodeError:
        return  # not ours to judge here: the reservation still holds the account's facility
    if kept is not None and kept != facility:
        raise taken_problem(ResourceTaken("account-facility", account_number, "exists with another body"))


def _check_consistent(details: AccountDetails) -> None:
    """Rules across fields, for what is sent from now on. They live here rather than in the Struct,
    which also decodes what an older hub stored: such an account must stay readable.

    A secondary payer pays after a primary one (coordination of benefits), so a secondary coverage
    without a primary, or a tertiary without a secondary, is not an order the EHR or a claim can
    use. A guarantor who is the patient (relationship ``self``) bears the patient's name: the ERP
    names the customer after the guarantor and gives it the patient's address."""
    held = {coverage.priority for coverage in details.coverages}
    for index, coverage in enumerate(details.coverages):
        before = COVERAGE_PRIORITIES[: COVERAGE_PRIORITIES.index(coverage.priority)]
        missing = [p for p in before if p not in held]
        if missing:
            message = f"a {coverage.priority} coverage needs a {missing[0]} one"
            raise ProblemError(
                400,
                "validation-error",
                f"{message}: list the account's coverages from its primary on",
                errors=[FieldError(path=f"$.coverages[{index}].priority", message=message)],
            )
    guarantor, patient = details.guarantor, details.patient.name
    if guarantor is not None and guarantor.relationship == "self" and _folded(guarantor.name) != _folded(patient):
        message = "a guarantor who is the patient (relationship self) bears the patient's name"
        raise ProblemError(
            400,
            "validation-error",
            f"{message}; name someone else with their relationship to the patient",
            errors=[FieldError(path="$.guarantor", message=message)],
        )


def _folded(name: PersonName) -> tuple[str, str]:
    return name.family.strip().casefold(), name.given.strip().casefold()


def _fields(details: AccountDetails) -> dict[str, Any]:
    return {name: getattr(details, name) for name in details.__struct_fields__}
