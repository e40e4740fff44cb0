"""The policy chain every ``/v1`` call passes, in order, before its handler runs:

    authenticate (401) -> scope (403) -> rate limit (429 / 503) -> query parameters (400) -> transfer coding (501)
    -> content type and coding (415) -> body size (413) -> JSON shape and repeated member names (400 / 413)
    -> idempotency (400 / 409 / 422, or replay)

It is one ASGI middleware rather than guards because idempotency has to capture the response and
guards cannot, and because the order matters: the client id must be known before the rate-limit and
idempotency keys can be built. Every call, allowed or refused, leaves an audit record: queued after
the answer, or, for a call that stores work, stored with that work (``audit_with_work``).
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, cast

import msgspec
from litestar.types import ASGIApp, HTTPScope
from litestar.utils.scope.state import ScopeState

from gateway.deadlines import within
from gateway.governance_state import Governance
from gateway.head import allowed_methods
from gateway.problems import (
    PROBLEM_JSON,
    FieldError,
    Problem,
    ProblemError,
    body_field_names,
    problem_type,
    route_template,
)
from gateway.query_params import undeclared_query
from gateway.tracing import current_trace_id
from policies.audit import AuditEntry, AuditPush, InTransaction
from policies.config import RoutePolicy
from policies.engine import AuthFailure, AuthUnavailable, Caller, CompiledPolicy
from policies.idempotency import (
    Begin,
    IdempotencyStore,
    IdempotencyUnavailable,
    InFlight,
    LimitAndClaimUnavailable,
    Mismatch,
    Replay,
    Started,
    StoredResponse,
    fingerprint,
)
from policies.limits import ShapeViolation, check_json_shape, find_duplicate_member
from policies.ratelimit import RateDecision, RateLimiterUnavailable, RateLimitRule, rate_limit_headers, state_key
from policies.redaction import PhiHasher

__all__ = [
    "IDEMPOTENT_REQUEST",
    "IdempotentRequest",
    "audit_with_work",
    "audited_with_work",
    "governance_middleware",
    "stored_response",
    "takes_idempotency_key",
]

# ASGI messages and scopes are plain dicts here; Litestar's TypedDict unions add nothing but casts.
Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

log = logging.getLogger("billing_hub.governance")

_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})
_IDEMPOTENT_METHODS = frozenset({"POST"})
_WWW_AUTHENTICATE = 'ApiKey header="X-API-Key", Bearer realm="billing-hub"'
# Keys whose values are client-chosen business identifiers are audited as hashes, not as themselves.
_HASHED_PATH_PARAMS = frozenset({"account_number", "claim_id"})
# The hub's own ids (gateway.ids: a prefix and 26 base32 characters) are audited as they are. Any other
# value of another parameter is whatever the client put in the path, refused by the route's pattern
# afterwards (a member id or a patient's name where a transaction id belongs): a keyed tag, like the
# business identifiers.
_HUB_ID = re.compile(r"[a-z]{3}_[0-9a-z]{26}")


# Where the middleware leaves the IdempotentRequest in the scope's state for the route handler.
IDEMPOTENT_REQUEST = "idempotent_request"
# Where it leaves the call it governs, whose audit record a write handler may store with its work.
_AUDITED_CALL = "audited_call"


@dataclass(slots=True)
class IdempotentRequest:
    """The record ``begin`` claimed for this request. A write handler whose store can write the
    finished record together with its work (``store.final_write``) does, and notes the answer it
    wrote in ``written``: when that is the response sent, the middleware has nothing to complete."""

    key: str
    fingerprint: str
    ttl_s: float
    store: IdempotencyStore
    written: StoredResponse | None = None


class Refusal(Exception):
    def __init__(
        self,
        status: int,
        kind: str,
        detail: str,
        headers: dict[str, str] | None = None,
        errors: list[FieldError] | None = None,
    ) -> None:
        super().__init__(detail)
        self.status, self.kind, self.detail, self.headers = status, kind, detail, headers or {}
        self.errors = errors or []

    @classmethod
    def of(cls, problem: ProblemError) -> Refusal:
        return cls(problem.status, problem.kind, problem.detail, problem.headers, problem.errors)


@dataclass(slots=True)
class _Call:
    operation: str
    caller: Caller | None = None
    status: int = 0
    extra_headers: list[tuple[bytes, bytes]] | None = None
    location: str | None = None
    stored_with_work: int | None = None  # the status whose audit record was stored with the work
    headers: Headers = field(default_factory=dict)  # the request's, those the chain reads


# The request header fields the chain reads, each with all its lines: read in one pass over the
# request's headers (every request passes here; a pass per field was three times the work).
_GOVERNED_HEADERS = frozenset(
    {b"x-api-key", b"authorization", b"idempotency-key", b"content-type", b"content-length",
     b"transfer-encoding", b"content-encoding"}
)  # fmt: skip
Headers = dict[bytes, list[str]]


def _governed_headers(scope: Scope) -> Headers:
    found: Headers = {}
    for key, value in scope["headers"]:
        if key in _GOVERNED_HEADERS:
            found.setdefault(key, []).append(value.decode("latin-1"))
    return found


def _first(headers: Headers, name: bytes) -> str | None:
    lines = headers.get(name)
    return lines[0] if lines else None


def _list_header(headers: Headers, name: bytes) -> list[str]:
    """The members of a comma-separated list header, over all its field lines, lower-cased."""
    lines = headers.get(name, ())
    return [member.strip().lower() for line in lines for member in line.split(",") if member.strip()]


async def _send_problem(send: Send, scope: Scope, refusal: Refusal, extra: list[tuple[bytes, bytes]]) -> None:
    body = msgspec.json.encode(
        Problem(
            type=problem_type(refusal.kind),
            title=refusal.kind.replace("-", " ").capitalize(),
            status=refusal.status,
            detail=refusal.detail,
            instance=route_template(scope),
            trace_id=current_trace_id(),
            errors=refusal.errors,
        )
    )
    headers = [
        (b"content-type", PROBLEM_JSON.encode()),
        (b"content-length", str(len(body)).encode()),
        *((k.lower().encode(), v.encode()) for k, v in refusal.headers.items()),
        *extra,
    ]
    await send({"type": "http.response.start", "status": refusal.status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def _read_body(receive: Receive, limit: int, timeout_s: float) -> bytes:
    chunks, size = [], 0
    try:
        # Not asyncio.timeout, whose timer per request cost 1.85 % of an accepted POST: the price is
        # that a body withheld is noticed up to one tick (gateway/deadlines.py) after timeout_s.
        with within(timeout_s):
            while True:
                message = await receive()
                if message["type"] == "http.disconnect":
                    raise Refusal(400, "malformed-request", "the client disconnected before sending the body")
                chunk = message.get("body", b"")
                size += len(chunk)
                if size > limit:
                    raise Refusal(413, "payload-too-large", f"the request body exceeds {limit} bytes")
                chunks.append(chunk)
                if not message.get("more_body", False):
                    return b"".join(chunks)
    except TimeoutError:
        # The rest of the body may still come: the connection cannot carry another request.
        detail = f"the request body did not arrive within {timeout_s:g} s"
        raise Refusal(408, "request-timeout", detail, {"Connection": "close"}) from None


def _replaying(body: bytes) -> Receive:
    sent = False

    async def receive() -> Message:
        nonlocal sent
        if sent:
            return {"type": "http.disconnect"}
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return receive


def governance_middleware(app: ASGIApp) -> ASGIApp:
    async def middleware(scope: Any, receive: Any, send: Any) -> None:
        governance: Governance = scope["app"].state.governance
        options = _is_litestars_options(scope)
        call = _Call(operation="OPTIONS" if options else str(getattr(scope["route_handler"], "operation_id", "")))
        policy = governance.holder.current
        try:
            if options:
                await _answer_options(scope, _with_headers(send, call))
            else:
                await _govern(app, governance, policy, call, scope, receive, send)
        except Refusal as refusal:
            call.status = refusal.status
            await _send_problem(send, scope, refusal, call.extra_headers or [])
        finally:
            if call.stored_with_work is not None and call.stored_with_work == call.status:
                await governance.audit_writer.nudge()  # chain it now; it is safe already
            else:
                await governance.audit(_audit_entry(call, scope, governance.phi_hasher, call.status, call.location))

    wrapped: ASGIApp = middleware
    return wrapped


def _is_litestars_options(scope: Scope) -> bool:
    """Litestar routes OPTIONS on every path (as its 405s advertise) to a handler of its own that has
    no operationId, so no policy: governed, it was a 403 to every client. The answer reveals nothing
    but the path's methods, as a 405's Allow does, and HTTP clients and CORS preflights ask without
    credentials, so it is answered without the chain (and audited, as every call). Any other
    handler without an operationId still meets the chain, and its 403."""
    handler = scope["route_handler"]
    return scope["method"] == "OPTIONS" and handler.operation_id is None and handler.http_methods == {"OPTIONS"}


async def _answer_options(scope: Scope, send: Send) -> None:
    """204 with every method of the path. Not Litestar's own answer: its Allow is the methods of the
    path when the handler was made, and misses those registered after it (PUT on /v1/accounts/{n})."""
    routes = scope["app"].routes
    methods: set[str] = next((r.methods for r in routes if r.path_format == scope["path_template"]), set())
    allow = allowed_methods({*methods, "OPTIONS"})
    await send({"type": "http.response.start", "status": 204, "headers": [(b"allow", allow.encode())]})
    await send({"type": "http.response.body", "body": b""})


async def _govern(
    app: ASGIApp,
    governance: Governance,
    policy: CompiledPolicy,
    call: _Call,
    scope: Scope,
    receive: Receive,
    send: Send,
) -> None:
    route = policy.route(call.operation)
    if route is None:  # start-up and reload both refuse a policy without every operation
        raise Refusal(403, "forbidden", "this operation has no policy")
    call.headers = _governed_headers(scope)
    call.caller = await _authorize(policy, route, call.headers)
    handler = scope["route_handler"]
    # A keyed POST on Redis is limited and claimed in one round trip, once its body is read and checked
    # (the claim needs its fingerprint). Limited separately otherwise, first, as always.
    together = _limits_with_claim(governance, scope["method"], handler, route, call.headers)
    if not together:
        await _rate_limit(governance, policy, route, call)
    state = scope.setdefault("state", {})
    state["client_id"], state[_AUDITED_CALL] = call.caller.client_id, call
    downstream: Any = app
    if scope["method"] not in _BODY_METHODS or not _reads_body(handler):
        _check_query(scope, handler)
        await downstream(scope, receive, _with_headers(send, call))
        return
    try:
        _check_query(scope, handler)
        decodes_json = getattr(handler, "parsed_data_field", None) is not None
        body = await _checked_body(policy, route, scope, call.headers, receive, decodes_json)
        key = _idempotency_key(scope["method"], call.headers, route)
    except Refusal:
        if together:  # as on the other path: the request counts, and a limited client hears 429
            await _rate_limit(governance, policy, route, call)
        raise
    # Where Litestar keeps a body it has read: the handler's data is decoded from it directly instead
    # of streamed again through the replaying receive (about 5 % of an accepted write's CPU).
    ScopeState.from_scope(cast("HTTPScope", scope)).body = body
    if key is None:
        await downstream(scope, _replaying(body), _with_headers(send, call))
        return
    limited_with = route if together else None
    await _idempotent(downstream, governance, policy, call, scope, body, key, send, limited_with=limited_with)


def _check_query(scope: Scope, handler: Any) -> None:
    """400 for a query the operation does not take (gateway/query_params.py), before any work."""
    problem = undeclared_query(scope.get("query_string", b""), handler)
    if problem is not None:
        raise Refusal.of(problem)


def _limits_with_claim(governance: Governance, method: str, handler: Any, route: RoutePolicy, headers: Headers) -> bool:
    """Whether this request's rate limit goes in one round trip with its idempotency claim: Redis
    holds both, and the request will be claimed (a POST with one Idempotency-Key where it counts)."""
    return (
        governance.limit_and_claim is not None
        and method in _IDEMPOTENT_METHODS
        and route.idempotency != "off"
        and len(headers.get(b"idempotency-key", ())) == 1
        and _reads_body(handler)
    )


def _idempotency_key(method: str, headers: Headers, route: RoutePolicy) -> str | None:
    """The key this request is made idempotent under, if the operation honours one."""
    if method not in _IDEMPOTENT_METHODS or route.idempotency == "off":
        return None
    keys = headers.get(b"idempotency-key", [])
    if len(keys) > 1:  # honouring one would let a retry carrying the other store the work again
        raise Refusal(400, "malformed-request", "the Idempotency-Key header appears more than once: send one key")
    if not keys and route.idempotency == "required":
        raise Refusal(400, "malformed-request", "this operation requires an Idempotency-Key header")
    if not keys:
        return None
    key = keys[0].strip().strip('"')
    if not 1 <= len(key) <= 255 or not key.isprintable():
        raise Refusal(400, "malformed-request", "Idempotency-Key must be 1-255 printable characters")
    return key


def _reads_body(handler: Any) -> bool:
    # A handler reading its body itself (several media types) says so with opt={"body": <its JSON type>}.
    return getattr(handler, "parsed_data_field", None) is not None or bool(handler.opt.get("body"))


def takes_idempotency_key(method: str, handler: Any) -> bool:
    """Whether an Idempotency-Key on this method and route is honoured (and can be required)."""
    return method in _IDEMPOTENT_METHODS and _reads_body(handler)


def _credential(headers: Headers, name: bytes, display: str) -> str | None:
    """Which of two credentials the client meant is not for the hub to guess: taking the first let a
    second line (added by a proxy, say) ride along unchecked."""
    lines = headers.get(name, [])
    if len(lines) > 1:
        detail = f"the {display} header appears more than once: send one credential"
        raise Refusal(401, "unauthorized", detail, {"WWW-Authenticate": _WWW_AUTHENTICATE})
    return lines[0] if lines else None


async def _authorize(policy: CompiledPolicy, route: RoutePolicy, headers: Headers) -> Caller:
    api_key = _credential(headers, b"x-api-key", "X-API-Key")
    authorization = _credential(headers, b"authorization", "Authorization")
    try:
        caller = await policy.authenticate(api_key, authorization)
    except AuthFailure as failure:
        raise Refusal(401, "unauthorized", failure.reason, {"WWW-Authenticate": _WWW_AUTHENTICATE}) from None
    except AuthUnavailable:
        raise Refusal(
            503,
            "upstream-unavailable",
            "the token issuer's keys cannot be fetched; retry shortly",
            {"Retry-After": "5"},
        ) from None
    if route.scope not in caller.scopes:
        raise Refusal(403, "forbidden", f"this operation needs the {route.scope} scope")
    return caller


async def _rate_limit(governance: Governance, policy: CompiledPolicy, route: RoutePolicy, call: _Call) -> None:
    assert call.caller is not None
    rule = policy.rule(route)
    try:
        decision = await governance.limiter.hit(f"{call.caller.client_id}:{state_key(rule)}", rule)
    except RateLimiterUnavailable:
        if _fails_closed(policy, rule):
            raise _limits_unavailable() from None
        return  # fail open: this policy prefers serving to limiting when the shared store is down
    _apply_decision(call, rule, decision)


async def _limit_and_claim(
    governance: Governance, policy: CompiledPolicy, route: RoutePolicy, call: _Call, request: IdempotentRequest
) -> Begin:
    """``_rate_limit`` and ``begin`` in one round trip (``_limits_with_claim``), refusing as they do."""
    assert call.caller is not None
    assert governance.limit_and_claim is not None
    rule = policy.rule(route)
    rate_key = f"{call.caller.client_id}:{state_key(rule)}"
    try:
        decision, begun = await governance.limit_and_claim.hit_and_begin(
            rate_key, rule, request.key, request.fingerprint, request.ttl_s
        )
    except LimitAndClaimUnavailable:
        # Failing open on the limit would still leave the claim unanswered: 503 either way.
        raise _limits_unavailable() if _fails_closed(policy, rule) else _idempotency_unavailable() from None
    _apply_decision(call, rule, decision)
    assert begun is not None  # refused by the limit: _apply_decision raised
    return begun


def _fails_closed(policy: CompiledPolicy, rule: RateLimitRule) -> bool:
    return policy.file.rate_limits[rule.name].on_backend_error == "closed"


def _apply_decision(call: _Call, rule: RateLimitRule, decision: RateDecision) -> None:
    call.extra_headers = rate_limit_headers(rule, decision)
    if not decision.allowed:
        raise Refusal(429, "too-many-requests", f"rate limit {rule.name!r} exceeded")


def _limits_unavailable() -> Refusal:
    return Refusal(503, "upstream-unavailable", "rate limiting is unavailable; try again shortly", {"Retry-After": "1"})


def _idempotency_unavailable() -> Refusal:
    detail = "idempotency records are unavailable; retry shortly"
    return Refusal(503, "upstream-unavailable", detail, {"Retry-After": "1"})


async def _checked_body(
    policy: CompiledPolicy, route: RoutePolicy, scope: Scope, headers: Headers, receive: Receive, decodes_json: bool
) -> bytes:
    """The body, read within the route's limits. Its JSON shape is checked whenever it will be
    decoded as JSON: by its media type, or because the handler decodes JSON whatever the policy
    lets a client call the body (a route allowed ``text/plain`` still gets the depth limits)."""
    limits = policy.file.limits
    _check_codings(headers)
    accepted = route.content_types or limits.content_types
    media_type = (_first(headers, b"content-type") or "").split(";", 1)[0].strip().lower()
    if media_type not in accepted:
        raise Refusal(415, "unsupported-media-type", f"send the body as one of: {', '.join(accepted)}")
    max_bytes = route.max_body_bytes or limits.max_body_bytes
    declared = _first(headers, b"content-length")
    if declared and declared.isdigit() and int(declared) > max_bytes:
        raise Refusal(413, "payload-too-large", f"the request body exceeds {max_bytes} bytes")
    body = await _read_body(receive, max_bytes, limits.body_timeout_s)
    if decodes_json or media_type.endswith("json"):
        try:
            check_json_shape(body, max_depth=limits.max_json_depth, max_array_length=limits.max_array_length)
            repeated = find_duplicate_member(body)
        except ShapeViolation as violation:
            if violation.kind == "array_too_long":
                raise Refusal(413, "payload-too-large", str(violation)) from None
            raise Refusal(400, "malformed-request", str(violation)) from None
        if repeated is not None:
            raise Refusal(400, "malformed-request", repeated.describe(body_field_names(scope["route_handler"])))
    return body


def _check_codings(headers: Headers) -> None:
    """The hub decodes no coding: a body it would read as plain JSON while it is gzip (say) must be
    refused, not stored as whatever the bytes happen to parse as. A transfer coding is the message's
    framing (RFC 9112 section 6.1: 501); a content coding is the representation's (RFC 9110 section
    15.5.16: 415, saying with Accept-Encoding which coding would do). The values are not echoed."""
    transfer = _list_header(headers, b"transfer-encoding")
    if transfer and transfer != ["chunked"]:
        detail = "the only Transfer-Encoding this hub implements is chunked (alone)"
        raise Refusal(501, "not-implemented", detail, {"Connection": "close"})
    if any(coding != "identity" for coding in _list_header(headers, b"content-encoding")):
        detail = "the hub does not decode a Content-Encoding: send the body unencoded (identity)"
        raise Refusal(415, "unsupported-media-type", detail, {"Accept-Encoding": "identity"})


async def _idempotent(
    app: ASGIApp,
    governance: Governance,
    policy: CompiledPolicy,
    call: _Call,
    scope: Scope,
    body: bytes,
    key: str,
    send: Send,
    *,
    limited_with: RoutePolicy | None = None,
) -> None:
    assert call.caller is not None
    store_key = f"{call.caller.client_id}:{call.operation}:{key}"
    ttl = policy.file.idempotency.ttl_s
    # The path alone: a query no POST takes is refused before this (gateway/query_params.py).
    signed = fingerprint(scope["method"], scope["path"], body)
    request = IdempotentRequest(store_key, signed, ttl, governance.idempotency)
    match await _begin(governance, policy, call, request, limited_with):
        case Replay(response=stored):
            await _replay(send, call, stored)
            return
        case InFlight():
            raise Refusal(409, "conflict", "a request with this Idempotency-Key is still being processed")
        case Mismatch():
            raise Refusal(422, "unprocessable-content", "this Idempotency-Key was used with a different request")
        case Started():
            pass
    scope["state"][IDEMPOTENT_REQUEST] = request
    captured = _Capture()
    downstream: Any = app
    try:
        await downstream(scope, _replaying(body), _with_headers(captured.wrap(send), call))
    except BaseException:
        await governance.idempotency.release(store_key)
        raise
    try:
        if captured.status is not None and captured.status < 500:
            stored = captured.stored()
            if stored != request.written:  # else the store wrote this very answer with the transaction
                await governance.idempotency.complete(store_key, stored, ttl)
        else:
            await governance.idempotency.release(store_key)
    except IdempotencyUnavailable:
        if captured.status is None:
            raise
        # The answer is sent; nothing can be answered now. The record stays as it is: in flight until
        # its lease runs out, then gone (a retry runs again) or, provisional, replaying its 202.
        log.warning("idempotency record of %s left unfinished: the store is unavailable", call.operation)


async def _begin(
    governance: Governance,
    policy: CompiledPolicy,
    call: _Call,
    request: IdempotentRequest,
    limited_with: RoutePolicy | None,
) -> Begin:
    if limited_with is not None:  # its rate limit is taken with the claim
        return await _limit_and_claim(governance, policy, limited_with, call, request)
    try:
        return await governance.idempotency.begin(request.key, request.fingerprint, request.ttl_s)
    except IdempotencyUnavailable:
        raise _idempotency_unavailable() from None


# Rate-limit and trace fields belong to the original call, not to a replay.
_NOT_REPLAYED = frozenset({b"ratelimit", b"ratelimit-policy", b"x-trace-id"})


def stored_response(status: int, headers: list[tuple[bytes, bytes]], body: bytes) -> StoredResponse:
    """A response as an idempotency record keeps it. The one conversion both the middleware (after the
    answer) and a write handler (storing the answer with its transaction) use, so the two compare equal."""
    keep = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in headers if k.lower() not in _NOT_REPLAYED]
    return StoredResponse(status=status, headers=keep, body=body)


class _Capture:
    """Tees the response so it can be stored for replay."""

    def __init__(self) -> None:
        self.status: int | None = None
        self.headers: list[tuple[bytes, bytes]] = []
        self.chunks: list[bytes] = []

    def wrap(self, send: Send) -> Send:
        async def capture(message: Message) -> None:
            if message["type"] == "http.response.start":
                self.status = message["status"]
                self.headers = list(message.get("headers", []))
            elif message["type"] == "http.response.body":
                self.chunks.append(message.get("body", b""))
            await send(message)

        return capture

    def stored(self) -> StoredResponse:
        return stored_response(self.status or 500, self.headers, b"".join(self.chunks))


async def _replay(send: Send, call: _Call, stored: StoredResponse) -> None:
    call.status = stored.status
    # The replay's audit record names the transaction the first answer created, as that one's does.
    call.location = next((v for k, v in stored.headers if k.lower() == "location"), None)
    headers = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in stored.headers]
    headers.append((b"idempotent-replayed", b"true"))
    headers.extend(call.extra_headers or [])
    await send({"type": "http.response.start", "status": stored.status, "headers": headers})
    await send({"type": "http.response.body", "body": stored.body})


def _with_headers(send: Send, call: _Call) -> Send:
    async def sender(message: Message) -> None:
        if message["type"] == "http.response.start":
            call.status = message["status"]
            headers = list(message.get("headers", []))
            for name, value in headers:
                if name.lower() == b"location":
                    call.location = value.decode("latin-1")
            if call.extra_headers:
                headers.extend(call.extra_headers)
                message["headers"] = headers
        await send(message)

    return sender


def audit_with_work(scope: Mapping[str, Any], status: int, location: str) -> AuditPush | InTransaction | None:
    """The audit record this call will have when it answers ``status`` with ``location``, in the form
    the hub's store writes together with the work (``None`` for a call the middleware does not
    govern). After the work is stored, say so with ``audited_with_work``."""
    call: _Call | None = scope.get("state", {}).get(_AUDITED_CALL)
    if call is None:
        return None
    governance: Governance = scope["app"].state.governance
    return governance.audit_log.with_work(_audit_entry(call, scope, governance.phi_hasher, status, location))


def audited_with_work(scope: Mapping[str, Any], status: int) -> None:
    """The record from ``audit_with_work`` is stored: if the call answers ``status`` as planned, the
    middleware writes no second one."""
    scope["state"][_AUDITED_CALL].stored_with_work = status


def _audit_entry(
    call: _Call, scope: Mapping[str, Any], phi_hash: PhiHasher, status: int, location: str | None
) -> AuditEntry:
    params: dict[str, Any] = scope.get("path_params") or {}
    resource_id: str | None = None
    for name, value in params.items():
        text = str(value)
        resource_id = text if name not in _HASHED_PATH_PARAMS and _HUB_ID.fullmatch(text) else phi_hash(text)
    transaction_id = location.rsplit("/", 1)[-1] if location else None
    status = status or 500
    return AuditEntry(
        client_id=call.caller.client_id if call.caller else "anonymous",
        operation=call.operation,
        resource_id=resource_id,
        outcome="ok" if status < 400 else "rejected" if status < 500 else "error",
        status=status,
        trace_id=current_trace_id(),
        at=time.time(),
        transaction_id=transaction_id,
    )
