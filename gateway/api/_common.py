"""What every v1 route shares: the caller, the JSON guard, the accepted-response shape."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from litestar import Request
from litestar.enums import ParamType
from litestar.openapi import ResponseSpec
from litestar.openapi.spec import Components, OpenAPIType, Operation, Parameter, Schema, SecurityScheme

from gateway.api._response import JsonView, documented
from gateway.governance import (
    IDEMPOTENT_REQUEST,
    IdempotentRequest,
    audit_with_work,
    audited_with_work,
    stored_response,
)
from gateway.hub import Delivery, Hub, parse_prefer_wait
from gateway.problems import PROBLEM_JSON, STORE_UNAVAILABLE, Problem, ProblemError
from gateway.store import ResourceRecord, ResourceTaken, WriteCondition
from gateway.views import TransactionView, transaction_view
from policies.audit import AuditPush, InTransaction
from policies.idempotency import FinalStatement, FinalWrite, StoredResponse

__all__ = [
    "ACCEPTED_RESPONSES",
    "API_KEY_HEADER",
    "READ_PROBLEMS",
    "SECURITY",
    "SECURITY_COMPONENTS",
    "WRITE_PROBLEMS",
    "WaitingOperation",
    "WithWork",
    "accept_work",
    "caller_id",
    "hub_of",
    "problems",
    "taken_problem",
]

log = logging.getLogger("billing_hub.api")

API_KEY_HEADER = "X-API-Key"
_PREFER_DESCRIPTION = "wait=N: answer when done, N <= 30 s"
_PREFER = Parameter(
    name="Prefer",
    param_in=ParamType.HEADER,
    schema=Schema(
        one_of=[Schema(type=OpenAPIType.STRING), Schema(type=OpenAPIType.NULL)], description=_PREFER_DESCRIPTION
    ),
    description=_PREFER_DESCRIPTION,
    required=False,
    deprecated=False,
)


@dataclass
class WaitingOperation(Operation):
    """The operation of a write that honours ``Prefer: wait`` (``operation_class=``), documenting the
    header. accept_work reads every Prefer line itself (a header parameter holds only the first), so
    it is not a handler parameter: that made Litestar build its header mapping on every write, 3 % of
    an accepted journal's CPU (py-spy), for a value nothing used. A dataclass of its own: Litestar's
    Operation has no ``__post_init__``, so its generated ``__init__`` would never call this one."""

    def __post_init__(self) -> None:
        self.parameters = [*(self.parameters or []), _PREFER]


_PROBLEMS = {
    400: "Malformed or invalid request (each bad field listed by JSON path)",
    401: "Missing or invalid credentials (API key or bearer token)",
    403: "The caller lacks the scope this operation needs",
    404: "No such resource for this client",
    408: "The request body did not arrive within the policy's body_timeout_s",
    409: "Conflicts with the current state (or an Idempotency-Key still in flight)",
    413: "Request body too large, or an array in it too long",
    415: "Unsupported body media type",
    422: "Idempotency-Key reused with a different request, or an invalid policy file",
    429: "Rate limit exceeded (see Retry-After and RateLimit)",
    503: "A shared store (rate limits, idempotency) is unavailable and the policy fails closed",
}


def problems(*statuses: int) -> dict[int, ResponseSpec]:
    """OpenAPI entries for the RFC 9457 problems an operation can answer."""
    return {
        status: ResponseSpec(Problem, description=_PROBLEMS[status], media_type=PROBLEM_JSON, generate_examples=False)
        for status in statuses
    }


READ_PROBLEMS = problems(400, 401, 403, 404, 429, 503)
# A write handler answers with a JsonView, so its OpenAPI responses are stated here, not inferred.
ACCEPTED_RESPONSES = {
    **documented(TransactionView, 202, "Request accepted, processing continues off-line"),
    **documented(TransactionView, 200, "Prefer: wait was given and the work finished in time"),
}
WRITE_PROBLEMS = problems(400, 401, 403, 408, 409, 413, 415, 422, 429, 503)
SECURITY: list[dict[str, list[str]]] = [{"apiKey": []}]
SECURITY_COMPONENTS = Components(
    security_schemes={"apiKey": SecurityScheme(type="apiKey", name=API_KEY_HEADER, security_scheme_in="header")}
)


def hub_of(request: Request[Any, Any, Any]) -> Hub:
    """The hub this app serves. A plain attribute read, not Litestar dependency injection: resolving
    one dependency per request was 8% of a read request's CPU (py-spy, in-process)."""
    hub: Hub = request.app.state.hub
    return hub


def caller_id(request: Request[Any, Any, Any]) -> str:
    """The client the governance middleware authenticated. Read from the scope: ``request.state``
    builds a State object per access (3% of a read request's CPU under load)."""
    return str(request.scope["state"]["client_id"])


@dataclass(slots=True)
class WithWork:
    """What a write stores in the same atomic write as its work, once its answer is known: the
    finished idempotency record (for an idempotent request) and the call's audit record. A crash
    right after that write can then neither let the client's retry create the work a second time
    nor leave stored work without the record of the call that stored it."""

    idempotency_record: FinalWrite | FinalStatement | None = None
    audit_record: AuditPush | InTransaction | None = None
    _stored: StoredResponse | None = None
    _status: int = 0

    @classmethod
    def answering(
        cls, request: Request[Any, Any, Any], answer: JsonView, location: str, *, waiting: bool = False
    ) -> WithWork:
        """The records of ``answer``, to store with the work. A request ``waiting`` for its work
        before it answers stays in flight (a retry meanwhile meets 409) and its final records are
        written after the answer, so its idempotency record goes in as a provisional one: a retry
        after this process died mid-wait replays ``answer`` (the 202) instead of storing the work
        again, and the final answer replaces it. Its audit record goes in as it is: stored work
        always has the record of the call that stored it, and a call answering 200 after its wait
        gets a second one."""
        status = answer.status_code
        made = cls(audit_record=audit_with_work(request.scope, status, location), _status=status)
        idempotent: IdempotentRequest | None = request.scope["state"].get(IDEMPOTENT_REQUEST)
        if idempotent is not None:
            stored = stored_response(status, answer.encode_headers(), answer.body)
            made.idempotency_record = idempotent.store.final_write(
                idempotent.key, idempotent.fingerprint, stored, idempotent.ttl_s, provisional=waiting
            )
            made._stored = None if waiting else stored  # a provisional record is not the answer sent
        return made

    def written(self, request: Request[Any, Any, Any]) -> None:
        """The work and these records are stored: the middleware must not write them a second time
        (a provisional record excepted: the final answer replaces it)."""
        if self.idempotency_record is not None and self._stored is not None:
            request.scope["state"][IDEMPOTENT_REQUEST].written = self._stored
        if self.audit_record is not None:
            audited_with_work(request.scope, self._status)


def taken_problem(taken: ResourceTaken) -> ProblemError:
    """The 409 for a resource the store refused inside its atomic write."""
    detail = _TAKEN.get((taken.kind, taken.reason)) or _TAKEN.get(taken.kind)
    return ProblemError(409, "conflict", detail or f"this {taken.kind} belongs to another client")


# What a 409 says when the store refuses a resource (ResourceTaken): by the kind of resource, and
# where one kind can be refused for different reasons, by kind and reason.
_TAKEN: dict[str | tuple[str, str], str] = {
    "account": "this account number belongs to another client",
    "account-facility": "this account number belongs to another client",
    ("account-facility", "exists with another body"): (
        "this account is held at another facility; its facility names it in the EHR and cannot change, "
        "so open the account at the new facility under a number of its own"
    ),
    "claim": (
        "a claim with this claim_id was already submitted; send frequency_code 7 (replace) or 8 (void), "
        "with the payer's payer_claim_number"
    ),
    "journal-reference": "another client posted a journal with this external_reference",
    ("journal-reference", "exists with another body"): (
        "a journal with this external_reference was posted with other content; the ERP keeps the first, "
        "so send a change as a journal of its own, under a new external_reference"
    ),
    "payment": "this payment (the payer and its check or EFT trace number) was ingested already",
    "interchange": "this interchange (its sender, receiver and ISA13 control number) was received already",
}


async def accept_work(
    request: Request[Any, Any, Any],
    hub: Hub,
    *,
    kind: str,
    resource: ResourceRecord,
    deliveries: list[Delivery],
    extra_resources: list[ResourceRecord] | None = None,
    only_if: Mapping[tuple[str, str], WriteCondition] | None = None,
    written_once: bool = False,
) -> JsonView:
    """Store the work, then answer 202 with ``Location`` (or, with ``Prefer: wait``, 200 with the
    final state when it is reached in time).

    Without ``Prefer: wait`` the 202 is known before anything is written, so its records go into the
    write of the work (``WithWork``). A request that waits stays in flight until its answer (a retry
    meanwhile must meet 409): the 202's records go in with the work, its idempotency record as a
    provisional one, and the middleware writes what the final answer changes (``WithWork.answering``).
    ``only_if`` names resources that must be new ("absent") or stored as they are ("unchanged"): the
    store checks it inside the atomic write, and a resource that fails it is a 409.
    """
    transaction, outbox = hub.prepare(
        client_id=caller_id(request), kind=kind, resource=resource, deliveries=deliveries, written_once=written_once
    )
    # Every Prefer line counts (RFC 7240 section 2): a header parameter holds only the first, so
    # "Prefer: respond-async" then "Prefer: wait=3" lost the wait.
    prefer = ", ".join([v.decode("latin-1") for k, v in request.scope["headers"] if k == b"prefer"]) or None
    wait_s = parse_prefer_wait(prefer, hub.settings.max_wait_s)
    href = f"/v1/transactions/{transaction.id}"
    location = (b"location", href.encode())
    answer = JsonView(transaction_view(transaction, outbox, []), status=202, headers=[location])  # just built
    records = WithWork.answering(request, answer, href, waiting=wait_s is not None)
    try:
        await hub.commit(transaction, [resource, *(extra_resources or [])], outbox, records, only_if)
    except ResourceTaken as taken:  # decided inside the atomic write: a concurrent writer got there first
        raise taken_problem(taken) from None
    records.written(request)
    if wait_s is None:
        return answer
    try:
        view = transaction_view(*await hub.settle(transaction.id, wait_s))
    except STORE_UNAVAILABLE as exc:
        # The work and its records are stored: the answer is the 202 they hold (a retry with the same
        # Idempotency-Key replays it once the provisional record's in-flight lease has run out, as
        # the store cannot finish that record now), never a 503 that tells the client to send the
        # work again.
        log.warning("store failed (%s) while %s waited; answering its 202", type(exc).__name__, transaction.id)
        return answer
    final = view.state in ("completed", "failed")
    applied = (b"preference-applied", f"wait={wait_s:g}".encode())
    return JsonView(view, status=200 if final else 202, headers=[location, applied])
