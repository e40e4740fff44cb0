"""A FHIR R4 stub server standing in for the EHR in integration tests and the demo.

Why: the EHR connector relies on FHIR behaviour a mock would not reproduce — server-assigned ids,
version ids and weak ETags, ``If-Match`` optimistic locking, conditional update by identifier (the
basis of idempotent delivery) and OperationOutcome errors. This stub implements exactly that subset
for Patient, Account and Coverage, in memory, with the shared fault injection from ``_stubkit``.
OperationOutcome diagnostics are fixed texts: they never echo resource content (PHI).
"""

from __future__ import annotations

import re
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from email.utils import format_datetime
from http import HTTPStatus
from typing import Any

import msgspec
from litestar import Litestar, Request, Response, Router, get, post, put
from litestar.di import NamedDependency, Provide
from litestar.exceptions import HTTPException
from litestar.params import FromPath
from litestar.types import ExceptionHandlersMap

from connectors._stubkit import create_stub_app

__all__ = ["FHIR_JSON", "SUPPORTED_TYPES", "create_app"]

Resource = dict[str, Any]

FHIR_JSON = "application/fhir+json"
ACCEPTED_MEDIA = frozenset({FHIR_JSON, "application/json"})
SUPPORTED_TYPES = ("Account", "Coverage", "Patient")
SEARCH_PARAMS = frozenset({"identifier"})
ACCOUNT_STATUSES = frozenset({"active", "inactive", "entered-in-error", "on-hold", "unknown"})
COVERAGE_STATUSES = frozenset({"active", "cancelled", "draft", "entered-in-error"})
ID_PATTERN = re.compile(r"^[A-Za-z0-9\-.]{1,64}$")
IF_MATCH_PATTERN = re.compile(r'^(?:W/)?"(\d+)"$')

#: HTTP status -> OperationOutcome issue code, for statuses not raised with a specific code.
STATUS_ISSUE_CODES: dict[int, str] = {
    400: "invalid",
    404: "not-found",
    405: "not-supported",
    408: "timeout",
    409: "conflict",
    412: "conflict",
    415: "not-supported",
    429: "throttled",
    500: "exception",
    502: "transient",
    503: "transient",
    504: "timeout",
}

#: Failure kind -> (status, issue code, fixed diagnostics).
FAILURES: dict[str, tuple[int, str, str]] = {
    "unsupported-type": (404, "not-supported", "Resource type is not supported by this server"),
    "not-found": (404, "not-found", "Resource is not known"),
    "version-conflict": (412, "conflict", "If-Match does not match the current version"),
    "multiple-matches": (412, "multiple-matches", "More than one resource matches the criteria"),
    "id-exists": (409, "conflict", "No resource matches the criteria but the body id is already in use"),
    "bad-search": (400, "not-supported", "Only the identifier search parameter is supported"),
    "missing-criteria": (400, "required", "Conditional update needs exactly one identifier parameter"),
    "bad-if-match": (400, "invalid", 'If-Match must be a version ETag such as W/"1"'),
    "bad-id": (400, "invalid", "Resource id must match [A-Za-z0-9-.]{1,64}"),
    "id-mismatch": (400, "invalid", "Resource id in the body does not match the target resource"),
    "identifier-mismatch": (400, "invalid", "Resource identifier does not contain the searched identifier"),
    "not-json": (400, "invalid", "Request body must be a JSON object"),
    "media-type": (415, "not-supported", "Content-Type must be application/fhir+json or application/json"),
}


class Issue(msgspec.Struct, omit_defaults=True):
    severity: str
    code: str
    diagnostics: str
    expression: list[str] = []


class FhirError(Exception):
    """Answered as an OperationOutcome with ``status``."""

    def __init__(self, status: int, issues: list[Issue]) -> None:
        super().__init__(status)
        self.status = status
        self.issues = issues


def fail(kind: str, *expression: str) -> FhirError:
    status, code, diagnostics = FAILURES[kind]
    return FhirError(status, [Issue("error", code, diagnostics, list(expression))])


def operation_outcome(issues: list[Issue]) -> bytes:
    return msgspec.json.encode({"resourceType": "OperationOutcome", "issue": issues})


def render_fault(status: int) -> tuple[bytes, str]:
    """Injected-fault body in FHIR's dialect (used by the fault-injection middleware)."""
    issue = Issue("error", STATUS_ISSUE_CODES.get(status, "exception"), "Injected fault")
    return operation_outcome([issue]), FHIR_JSON


# --- validation --------------------------------------------------------------------------------

Predicate = Callable[[Any], bool]


def _one_of(allowed: frozenset[str]) -> Predicate:
    return lambda value: isinstance(value, str) and value in allowed


def _objects(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(item, dict) for item in value)


def _text(value: Any) -> bool:
    return isinstance(value, str)


# FHIR R4 date (datatypes.html#date): YYYY, YYYY-MM or YYYY-MM-DD, and a day the month has.
_DATE = re.compile(
    r"([0-9]([0-9]([0-9][1-9]|[1-9]0)|[1-9]00)|[1-9]000)(-(0[1-9]|1[0-2])(-(0[1-9]|[1-2][0-9]|3[0-1]))?)?"
)


def _date(value: Any) -> bool:
    if not isinstance(value, str) or not _DATE.fullmatch(value):
        return False
    if len(value) < len("YYYY-MM-DD"):
        return True
    try:
        date.fromisoformat(value)
    except ValueError:
        return False
    return True


def _positive_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


def _codeable(value: Any) -> bool:
    return isinstance(value, dict) and _objects(value.get("coding", []))


def _classes(value: Any) -> bool:
    """Coverage.class: type (CodeableConcept) and value (string) are both 1..1."""
    return _objects(value) and all(isinstance(c.get("type"), dict) and _text(c.get("value")) for c in value)


#: Resource type -> (dotted field path, validity check); an absent or empty field is "required".
RULES: dict[str, tuple[tuple[str, Predicate], ...]] = {
    "Patient": (("identifier", _objects),),
    "Account": (("identifier", _objects), ("status", _one_of(ACCOUNT_STATUSES))),
    "Coverage": (
        ("status", _one_of(COVERAGE_STATUSES)),
        ("beneficiary.reference", _text),
        ("payor", _objects),
    ),
}


#: Optional elements: absent is fine, but what is there must be what R4 allows (a real server's
#: parser refuses a code outside a required binding, a malformed date, an object where a list goes).
OPTIONAL_RULES: dict[str, tuple[tuple[str, Predicate], ...]] = {
    "Patient": (
        ("gender", _one_of(frozenset({"male", "female", "other", "unknown"}))),
        ("birthDate", _date),
        ("name", _objects),
        ("address", _objects),
    ),
    "Account": (("subject", _objects), ("guarantor", _objects)),
    "Coverage": (("order", _positive_int), ("relationship", _codeable), ("class", _classes)),
}


def _lookup(resource: Resource, dotted: str) -> Any:
    value: Any = resource
    for part in dotted.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return value


def _field_issues(resource: Resource, rtype: str) -> list[Issue]:
    issues = []
    for path, valid in RULES[rtype]:
        value, expression = _lookup(resource, path), f"{rtype}.{path}"
        if value in (None, "", [], {}):
            issues.append(Issue("error", "required", f"{expression} is required", [expression]))
        elif not valid(value):
            issues.append(Issue("error", "invalid", f"{expression} has an invalid value", [expression]))
    for path, valid in OPTIONAL_RULES[rtype]:
        value, expression = _lookup(resource, path), f"{rtype}.{path}"
        if value is not None and not valid(value):
            issues.append(Issue("error", "invalid", f"{expression} has an invalid value", [expression]))
    return issues


def _resource_type_issues(resource: Resource, rtype: str) -> list[Issue]:
    declared = resource.get("resourceType")
    if declared is None:
        return [Issue("error", "required", "resourceType is required", ["resourceType"])]
    if declared != rtype:
        return [Issue("error", "invalid", "resourceType does not match the request URL", ["resourceType"])]
    return []


def parse_resource(raw: bytes, rtype: str) -> Resource:
    """Decode and validate a request body, collecting every issue."""
    try:
        resource = msgspec.json.decode(raw)
    except msgspec.DecodeError:
        raise fail("not-json", rtype) from None
    if not isinstance(resource, dict):
        raise fail("not-json", rtype)
    issues = _resource_type_issues(resource, rtype) + _field_issues(resource, rtype)
    if issues:
        raise FhirError(400, issues)
    return resource


# --- identifiers and store -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Token:
    """A FHIR token search value: ``system|value``, ``|value`` (no system), ``value`` (any system)."""

    system: str | None
    value: str

    @classmethod
    def parse(cls, raw: str) -> Token:
        if "|" not in raw:
            return cls(None, raw)
        system, value = raw.split("|", 1)
        return cls(system, value)

    def matches(self, identifier: Any) -> bool:
        if not isinstance(identifier, dict):
            return False
        if self.value and identifier.get("value") != self.value:
            return False
        if self.system is None:
            return True
        return bool(identifier.get("system", "") == self.system)

    def found_in(self, resource: Resource) -> bool:
        identifiers = resource.get("identifier")
        return isinstance(identifiers, list) and any(self.matches(item) for item in identifiers)


def _now_instant() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _stamp(body: Resource, rtype: str, rid: str, version: int) -> Resource:
    meta = body["meta"] if isinstance(body.get("meta"), dict) else {}
    stamped: Resource = {"resourceType": rtype, "id": rid}
    stamped["meta"] = {**meta, "versionId": str(version), "lastUpdated": _now_instant()}
    stamped.update((k, v) for k, v in body.items() if k not in stamped)
    return stamped


class FhirStore:
    """Every version of every resource (index = versionId - 1); read-modify-writes hold one lock."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._data: dict[str, dict[str, list[Resource]]] = {rtype: {} for rtype in SUPPORTED_TYPES}

    def read(self, rtype: str, rid: str, version: int | None = None) -> Resource:
        with self._lock:
            history = self._data[rtype].get(rid, [])
            version = len(history) if version is None else version
            if not 1 <= version <= len(history):
                raise fail("not-found", f"{rtype}.id")
            return history[version - 1]

    def search(self, rtype: str, token: Token | None) -> list[Resource]:
        with self._lock:
            return self._search(rtype, token)

    def put(self, rtype: str, rid: str, body: Resource, expected: int | None) -> tuple[Resource, bool]:
        with self._lock:
            return self._put(rtype, rid, body, expected)

    def conditional_put(self, rtype: str, token: Token, body: Resource, expected: int | None) -> tuple[Resource, bool]:
        with self._lock:
            found = self._search(rtype, token)
            if len(found) > 1:
                raise fail("multiple-matches", f"{rtype}.identifier")
            body_id = body.get("id")
            if found:
                if body_id is not None and body_id != found[0]["id"]:
                    raise fail("id-mismatch", f"{rtype}.id")
                return self._put(rtype, found[0]["id"], body, expected)
            if body_id is None:
                return self._put(rtype, uuid.uuid4().hex, body, expected)
            if body_id in self._data[rtype]:
                raise fail("id-exists", f"{rtype}.id")
            return self._put(rtype, _checked_id(body_id, rtype), body, expected)

    def _search(self, rtype: str, token: Token | None) -> list[Resource]:
        current = (history[-1] for history in self._data[rtype].values())
        return [res for res in current if token is None or token.found_in(res)]

    def _put(self, rtype: str, rid: str, body: Resource, expected: int | None) -> tuple[Resource, bool]:
        history = self._data[rtype].get(rid, [])
        if expected is not None and len(history) != expected:
            raise fail("version-conflict", f"{rtype}.meta.versionId")
        history.append(_stamp(body, rtype, rid, len(history) + 1))
        self._data[rtype][rid] = history
        return history[-1], len(history) == 1


Store = NamedDependency[FhirStore]


# --- request helpers -------------------------------------------------------------------------

AnyRequest = Request[Any, Any, Any]


def _checked_type(rtype: str) -> str:
    if rtype not in SUPPORTED_TYPES:
        raise fail("unsupported-type")
    return rtype


def _checked_id(rid: Any, rtype: str) -> str:
    if not isinstance(rid, str) or not ID_PATTERN.fullmatch(rid):
        raise fail("bad-id", f"{rtype}.id")
    return rid


def _expected_version(request: AnyRequest) -> int | None:
    raw = request.headers.get("if-match")
    if raw is None:
        return None
    match = IF_MATCH_PATTERN.fullmatch(raw.strip())
    if match is None:
        raise fail("bad-if-match")
    return int(match.group(1))


def _identifier_params(request: AnyRequest) -> list[str]:
    if set(request.query_params.keys()) - SEARCH_PARAMS:
        raise fail("bad-search")
    return request.query_params.getall("identifier", [])


def _search_token(request: AnyRequest) -> Token | None:
    values = _identifier_params(request)
    if len(values) > 1 or values[:1] in (["|"], [""]):
        raise fail("bad-search", "identifier")
    return Token.parse(values[0]) if values else None


def _criteria(request: AnyRequest) -> Token:
    values = _identifier_params(request)
    if len(values) != 1 or values[0] in ("|", ""):
        raise fail("missing-criteria", "identifier")
    return Token.parse(values[0])


async def _body(request: AnyRequest, rtype: str) -> Resource:
    content_type = request.headers.get("content-type")
    if content_type is not None and content_type.split(";")[0].strip().lower() not in ACCEPTED_MEDIA:
        raise fail("media-type")
    return parse_resource(await request.body(), rtype)


def _media_type(request: AnyRequest) -> str:
    accept = request.headers.get("accept", "")
    return "application/json" if "application/json" in accept and FHIR_JSON not in accept else FHIR_JSON


def _resource_response(request: AnyRequest, resource: Resource, status: int = 200) -> Response[bytes]:
    meta = resource["meta"]
    modified = datetime.fromisoformat(meta["lastUpdated"])
    headers = {"ETag": f'W/"{meta["versionId"]}"', "Last-Modified": format_datetime(modified, usegmt=True)}
    if status == 201:
        path = f"/fhir/{resource['resourceType']}/{resource['id']}"
        headers["Location"] = f"{path}/_history/{meta['versionId']}"
    body = msgspec.json.encode(resource)
    return Response(body, status_code=status, headers=headers, media_type=_media_type(request))


# --- route handlers ----------------------------------------------------------------------------


_RESOURCE_CAPABILITY = {
    "versioning": "versioned-update",
    "updateCreate": True,
    "conditionalUpdate": True,
    "interaction": [{"code": code} for code in ("read", "vread", "create", "update", "search-type")],
    "searchParam": [{"name": "identifier", "type": "token"}],
}
CAPABILITY_STATEMENT = {
    "resourceType": "CapabilityStatement",
    "status": "active",
    "kind": "instance",
    "fhirVersion": "4.0.1",
    "format": sorted(ACCEPTED_MEDIA),
    "rest": [{"mode": "server", "resource": [{"type": t, **_RESOURCE_CAPABILITY} for t in SUPPORTED_TYPES]}],
}


@get("/metadata", sync_to_thread=False)
def capability_statement(request: AnyRequest) -> Response[bytes]:
    return Response(msgspec.json.encode(CAPABILITY_STATEMENT), media_type=_media_type(request))


@post("/{resource_type:str}")
async def create_resource(request: AnyRequest, store: Store, resource_type: FromPath[str]) -> Response[bytes]:
    rtype = _checked_type(resource_type)
    body = await _body(request, rtype)
    resource, _ = store.put(rtype, uuid.uuid4().hex, body, expected=None)
    return _resource_response(request, resource, 201)


@get("/{resource_type:str}", sync_to_thread=False)
def search_resources(request: AnyRequest, store: Store, resource_type: FromPath[str]) -> Response[bytes]:
    rtype = _checked_type(resource_type)
    found = store.search(rtype, _search_token(request))
    base = str(request.base_url).rstrip("/")
    bundle = {
        "resourceType": "Bundle",
        "type": "searchset",
        "total": len(found),
        "link": [{"relation": "self", "url": str(request.url)}],
        "entry": [
            {"fullUrl": f"{base}/fhir/{rtype}/{res['id']}", "resource": res, "search": {"mode": "match"}}
            for res in found
        ],
    }
    return Response(msgspec.json.encode(bundle), media_type=_media_type(request))


@put("/{resource_type:str}")
async def conditional_update(request: AnyRequest, store: Store, resource_type: FromPath[str]) -> Response[bytes]:
    rtype = _checked_type(resource_type)
    token = _criteria(request)
    expected = _expected_version(request)
    body = await _body(request, rtype)
    if not token.found_in(body):
        raise fail("identifier-mismatch", f"{rtype}.identifier")
    resource, created = store.conditional_put(rtype, token, body, expected)
    return _resource_response(request, resource, 201 if created else 200)


@get(["/{resource_type:str}/{resource_id:str}", "/{resource_type:str}/{resource_id:str}/_history/{vid:str}"])
async def read_resource(
    request: AnyRequest,
    store: Store,
    resource_type: FromPath[str],
    resource_id: FromPath[str],
    vid: FromPath[str | None] = None,
) -> Response[bytes]:
    """read, or vread when a version id is in the path."""
    rtype = _checked_type(resource_type)
    if vid is not None and not vid.isdigit():
        raise fail("not-found", f"{rtype}.meta.versionId")
    return _resource_response(request, store.read(rtype, resource_id, None if vid is None else int(vid)))


@put("/{resource_type:str}/{resource_id:str}")
async def update_resource(
    request: AnyRequest, store: Store, resource_type: FromPath[str], resource_id: FromPath[str]
) -> Response[bytes]:
    rtype = _checked_type(resource_type)
    rid = _checked_id(resource_id, rtype)
    expected = _expected_version(request)
    body = await _body(request, rtype)
    if body.get("id", rid) != rid:
        raise fail("id-mismatch", f"{rtype}.id")
    resource, created = store.put(rtype, rid, body, expected)
    return _resource_response(request, resource, 201 if created else 200)


# --- app ---------------------------------------------------------------------------------------


def _fhir_error_response(_: AnyRequest, exc: FhirError) -> Response[bytes]:
    return Response(operation_outcome(exc.issues), status_code=exc.status, media_type=FHIR_JSON)


def _http_error_response(_: AnyRequest, exc: HTTPException) -> Response[bytes]:
    status = exc.status_code
    issue = Issue("error", STATUS_ISSUE_CODES.get(status, "exception"), HTTPStatus(status).phrase)
    return Response(operation_outcome([issue]), status_code=status, media_type=FHIR_JSON, headers=exc.headers)


def create_app() -> Litestar:
    """The FHIR R4 stub: ``/fhir/*`` plus ``/_control/*``, with an empty in-memory store."""
    store = FhirStore()

    def provide_store() -> FhirStore:
        return store

    fhir = Router(
        path="/fhir",
        route_handlers=[
            capability_statement,
            create_resource,
            search_resources,
            conditional_update,
            read_resource,
            update_resource,
        ],
        dependencies={"store": Provide(provide_store, sync_to_thread=False)},
    )
    handlers: ExceptionHandlersMap = {FhirError: _fhir_error_response, HTTPException: _http_error_response}
    return create_stub_app([fhir], render_fault, handlers)
