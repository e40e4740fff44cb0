"""RFC 9457 problem details for every error the hub answers.

Each kind of problem has a stable ``type`` URN. ``detail`` is written by us; exception text is never
echoed (it can carry PHI). Validation problems list each failing field by JSON path.
"""

from __future__ import annotations

import difflib
import logging
import re
import sqlite3
from typing import Any

import msgspec
from litestar import Request, Response
from litestar.exceptions import (
    HTTPException,
    MethodNotAllowedException,
    NotAuthorizedException,
    NotFoundException,
    PermissionDeniedException,
    ValidationException,
)
from litestar.status_codes import HTTP_500_INTERNAL_SERVER_ERROR
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from canonical._codes import TEXT_PATTERN
from gateway.head import allowed_methods
from gateway.tracing import current_trace_id

__all__ = [
    "PROBLEM_JSON",
    "STORE_UNAVAILABLE",
    "FieldError",
    "Problem",
    "ProblemError",
    "body_field_names",
    "exception_handlers",
    "problem_type",
    "route_template",
    "validation_problem",
]

PROBLEM_JSON = "application/problem+json"
log = logging.getLogger("billing_hub.problems")

_TITLES = {
    "validation-error": "Request failed validation",  # a body field, or a path or query parameter
    "malformed-request": "Request could not be read",
    "request-timeout": "Request body not received in time",
    "unsupported-media-type": "Unsupported media type",
    "unauthorized": "Authentication required",
    "forbidden": "Not allowed",
    "not-found": "Not found",
    "method-not-allowed": "Method not allowed",
    "conflict": "Conflict",
    "payload-too-large": "Payload too large",
    "malformed-x12": "X12 interchange could not be read",
    "rejected-x12": "Every transaction set was rejected",
    "invalid-policy": "Policy file is invalid",
    "too-many-requests": "Too many requests",
    "upstream-unavailable": "Upstream system unavailable",
    "internal-error": "Internal error",
    "http-error": "HTTP error",
}
_STATUS_KINDS = {
    400: "malformed-request",
    401: "unauthorized",
    403: "forbidden",
    404: "not-found",
    405: "method-not-allowed",
    408: "request-timeout",
    409: "conflict",
    413: "payload-too-large",
    415: "unsupported-media-type",
    429: "too-many-requests",
    503: "upstream-unavailable",
}


def route_template(scope: Any) -> str | None:
    """The matched route's template (``/v1/accounts/{account_number}``), never the concrete path:
    a path can carry a client's account number or member id."""
    template = scope.get("path_template")
    return str(template).replace(":str}", "}") if template else None


def problem_type(kind: str) -> str:
    return f"urn:billing-hub:problem:{kind}"


class FieldError(msgspec.Struct, kw_only=True, frozen=True):
    path: str
    message: str


class Problem(msgspec.Struct, kw_only=True, frozen=True, omit_defaults=True):
    type: str
    title: str
    status: int
    detail: str
    instance: str | None = None
    trace_id: str | None = None
    errors: list[FieldError] = []


class ProblemError(Exception):
    """Raised by hub code to answer a specific problem."""

    def __init__(
        self,
        status: int,
        kind: str,
        detail: str,
        *,
        errors: list[FieldError] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(detail)
        self.status, self.kind, self.detail = status, kind, detail
        self.errors = errors or []
        self.headers = headers or {}


def problem_body(
    request: Request[Any, Any, Any], status: int, kind: str, detail: str, errors: list[FieldError] | None = None
) -> Problem:
    return Problem(
        type=problem_type(kind),
        title=_TITLES.get(kind, "Error"),
        status=status,
        detail=detail,
        instance=route_template(request.scope),
        trace_id=current_trace_id(),  # set for every request by the outermost telemetry middleware
        errors=errors or [],
    )


def problem_response(
    request: Request[Any, Any, Any],
    status: int,
    kind: str,
    detail: str,
    errors: list[FieldError] | None = None,
    headers: dict[str, str] | None = None,
) -> Response[Problem]:
    body = problem_body(request, status, kind, detail, errors)
    return Response(body, status_code=status, media_type=PROBLEM_JSON, headers=headers)


# msgspec quotes the offending value for enum (Literal) mismatches, and the name of an unknown field;
# either can be PHI (a client that sends a patient's name as a key), so neither is echoed as such.
_QUOTED_VALUE = re.compile(r"(Invalid enum value) '.*?'")
_UNKNOWN_FIELD = re.compile(r"Object contains unknown field `(?P<name>[^`]*)`")
_AT_PATH = re.compile(r"^(?P<message>.*?)(?: - at `(?P<path>[^`]*)`)?$", re.DOTALL)


# The free-text pattern says little as a regex (msgspec quotes it as repr does): what it means, in words.
_TEXT_RULE = f"matching regex {TEXT_PATTERN!r}"


def _safe_message(message: str, known_fields: frozenset[str]) -> str:
    """Keep an unknown field's name only as a typo hint: when it is close to a field we do know."""
    message = message.replace(_TEXT_RULE, "that is not blank and holds no control characters")
    match = _UNKNOWN_FIELD.search(message)
    if match is None:
        return message
    close = difflib.get_close_matches(match.group("name"), known_fields, n=1, cutoff=0.8)
    hint = f" (did you mean `{close[0]}`?)" if close else ""
    return f"object contains a field this schema does not have{hint}"


def body_field_names(handler: Any) -> frozenset[str]:
    """The field names of the Struct a route handler decodes its body into (none if it decodes none):
    the names a problem may repeat back to the client, as no PHI can hide in them."""
    data_type = getattr(getattr(handler, "parsed_data_field", None), "annotation", None)
    if data_type is None:  # a handler reading its body itself names its JSON type in opt["body"]
        data_type = getattr(handler, "opt", {}).get("body")
    return _struct_field_names(data_type) if data_type is not None else frozenset()


def _struct_field_names(root: Any) -> frozenset[str]:
    names: set[str] = set()
    pending, seen = [root], set()
    while pending:
        current = pending.pop()
        pending.extend(getattr(current, "__args__", ()))  # Annotated[list[Line], ...] holds Line two deep
        if isinstance(current, type) and issubclass(current, msgspec.Struct) and current not in seen:
            seen.add(current)
            for field in msgspec.structs.fields(current):
                names.add(field.encode_name)
                pending.append(field.type)
    return frozenset(names)


def validation_problem(exc: msgspec.ValidationError, body_type: Any) -> ProblemError:
    """The same 400 problem as Litestar's body validation gives, for bodies we decode ourselves."""
    match = _AT_PATH.match(str(exc))
    message = (match.group("message") if match else str(exc)) or "invalid value"
    path = (match.group("path") if match else None) or "$"
    error = FieldError(
        path=path, message=_safe_message(_QUOTED_VALUE.sub(r"\1", message), _struct_field_names(body_type))
    )
    return ProblemError(400, "validation-error", "1 field(s) failed validation", errors=[error])


def _field_errors(exc: ValidationException, known_fields: frozenset[str]) -> list[FieldError]:
    errors = []
    for item in exc.extra if isinstance(exc.extra, list) else []:
        if not isinstance(item, dict):
            continue
        raw = str(item.get("message", "invalid value"))
        match = _AT_PATH.match(raw)
        message = (match.group("message") if match else raw) or "invalid value"
        key = match.group("path") if match and match.group("path") else str(item.get("key") or "$")
        # Litestar names the whole body "data"; a Struct-level check failing there is about the root.
        path = "$" if key == "data" else key if key.startswith("$") else f"$.{key}"
        errors.append(FieldError(path=path, message=_safe_message(_QUOTED_VALUE.sub(r"\1", message), known_fields)))
    return errors


def _on_validation(request: Request[Any, Any, Any], exc: ValidationException) -> Response[Problem]:
    errors = _field_errors(exc, body_field_names(request.scope.get("route_handler")))
    if not errors:
        return problem_response(request, 400, "malformed-request", "the request body is not valid JSON")
    return problem_response(request, 400, "validation-error", f"{len(errors)} field(s) failed validation", errors)


def _on_problem(request: Request[Any, Any, Any], exc: ProblemError) -> Response[Problem]:
    return problem_response(request, exc.status, exc.kind, exc.detail, exc.errors, exc.headers)


_GENERIC_DETAILS = {
    400: "the request could not be read (malformed JSON body or parameter)",
    401: "a valid API key is required",
    403: "the caller may not perform this operation",
    404: "no such resource",
    405: "this method is not allowed on this resource",
    413: "the request body is too large",
}


def _on_http(request: Request[Any, Any, Any], exc: HTTPException) -> Response[Problem]:
    status = exc.status_code
    kind = _STATUS_KINDS.get(status, "http-error")
    detail = _GENERIC_DETAILS.get(status, "the request could not be processed")
    headers = dict(exc.headers or {})
    for name in [name for name in headers if name.lower() == "allow"]:  # HEAD wherever GET is (gateway/head.py)
        headers[name] = allowed_methods(headers[name].split(","))
    return problem_response(request, status, kind, detail, headers=headers)


def _logged_route(request: Request[Any, Any, Any]) -> str:
    """What a log line names a request by: its route template, never the concrete path (it holds an
    account number or a claim id, and a client may put a member id there), as spans and metrics do."""
    return route_template(request.scope) or "(unmatched route)"


def _on_store_unavailable(request: Request[Any, Any, Any], exc: Exception) -> Response[Problem]:
    """The hub's own store (Redis, or the SQLite file) did not answer: the call may succeed shortly,
    so a 503 with Retry-After, not a 500 (the exception's text can name keys: it is not echoed)."""
    log.warning("store unavailable (%s) on %s %s", type(exc).__name__, request.method, _logged_route(request))
    return problem_response(
        request,
        503,
        "upstream-unavailable",
        "the hub's store is unavailable; retry shortly",
        headers={"Retry-After": "1"},
    )


def _on_bad_encoding(request: Request[Any, Any, Any], exc: UnicodeDecodeError) -> Response[Problem]:
    """Text the hub decodes comes from the request (what it stores is UTF-8 it wrote itself), and
    msgspec up to 0.19 raises this rather than a DecodeError for invalid UTF-8 inside a JSON string."""
    return problem_response(request, 400, "malformed-request", "the request is not valid UTF-8")


def _on_unexpected(request: Request[Any, Any, Any], exc: Exception) -> Response[Problem]:
    log.error("unhandled %s on %s %s", type(exc).__name__, request.method, _logged_route(request))
    return problem_response(
        request, HTTP_500_INTERNAL_SERVER_ERROR, "internal-error", "the hub failed to process the request"
    )


# The hub's own store not answering (Redis gone or slow; the SQLite file locked past its timeout, disk
# I/O): the call may succeed shortly.
STORE_UNAVAILABLE: tuple[type[Exception], ...] = (RedisConnectionError, RedisTimeoutError, sqlite3.OperationalError)

exception_handlers: dict[Any, Any] = {
    ProblemError: _on_problem,
    ValidationException: _on_validation,
    NotAuthorizedException: _on_http,
    PermissionDeniedException: _on_http,
    NotFoundException: _on_http,
    MethodNotAllowedException: _on_http,
    HTTPException: _on_http,
    **dict.fromkeys(STORE_UNAVAILABLE, _on_store_unavailable),
    UnicodeDecodeError: _on_bad_encoding,
    Exception: _on_unexpected,
}
