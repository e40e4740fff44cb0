"""An ERP stub server (general ledger + AR customers) for integration tests and the demo.

Why: the ERP connector must prove that a journal is posted exactly once however often the hub
redelivers it, and that the ERP's own validation (open periods, chart of accounts, balance, amount
format) comes back as a rejection rather than a retry. This stub validates journals like an Oracle
GL journal import (error codes modelled on its EP01/EU02/EF04... codes, all errors collected at
once), de-duplicates on ``external_reference``, and upserts customers by external reference. Amounts
are decimal strings parsed with ``Decimal``; floats never touch money. State is in memory.
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Mapping
from datetime import UTC, date, datetime
from decimal import Decimal
from http import HTTPStatus
from typing import Annotated, Any, TypeVar

import msgspec
from litestar import Litestar, Request, Response, Router, get, post, put
from litestar.di import NamedDependency, Provide
from litestar.exceptions import HTTPException
from litestar.params import FromPath, FromQuery
from litestar.types import ExceptionHandlersMap

from connectors._stubkit import create_stub_app

__all__ = ["DEFAULT_CHART_OF_ACCOUNTS", "ErpStubConfig", "create_app", "default_open_periods"]

#: A small hospital chart of accounts: code -> name.
DEFAULT_CHART_OF_ACCOUNTS: dict[str, str] = {
    "1000": "Cash - operating",
    "1010": "Cash - lockbox",
    "1100": "Accounts receivable - patient",
    "1150": "Accounts receivable - insurance",
    "1190": "Allowance for uncollectible accounts",
    "2100": "Unapplied cash",
    "2200": "Patient refunds payable",
    "4000": "Patient service revenue",
    "4100": "Contractual allowances",
    "4200": "Bad debt",
    "4300": "Charity care",
    "4400": "Administrative adjustments",
    "5000": "Salaries and wages",
    "5100": "Medical supplies",
}
OPEN_MONTHS_BEFORE, OPEN_MONTHS_AFTER = 24, 2
PERIOD_PATTERN = re.compile(r"^\d{4}-(0[1-9]|1[0-2])$")
CURRENCY_PATTERN = re.compile(r"^[A-Z]{3}$")
AMOUNT_PATTERN = re.compile(r"^-?\d+(?:\.(\d+))?$")
CENT = Decimal("0.01")
NonEmpty = Annotated[str, msgspec.Meta(min_length=1)]
T = TypeVar("T")


def default_open_periods(today: date | None = None) -> list[str]:
    """Every month from 24 months before ``today`` through 2 months after it, as "YYYY-MM"."""
    today = today or datetime.now(UTC).date()
    current = today.year * 12 + today.month - 1
    months = range(current - OPEN_MONTHS_BEFORE, current + OPEN_MONTHS_AFTER + 1)
    return [f"{month // 12:04d}-{month % 12 + 1:02d}" for month in months]


def _env_list(environ: Mapping[str, str], name: str) -> list[str] | None:
    items = [item.strip() for item in environ.get(name, "").split(",") if item.strip()]
    return items or None


class ErpStubConfig(msgspec.Struct, kw_only=True):
    """Which accounting periods are open and which accounts exist."""

    open_periods: list[str] = msgspec.field(default_factory=default_open_periods)
    chart_of_accounts: list[str] = msgspec.field(default_factory=lambda: list(DEFAULT_CHART_OF_ACCOUNTS))

    def __post_init__(self) -> None:
        if not all(PERIOD_PATTERN.fullmatch(period) for period in self.open_periods):
            raise ValueError("open periods must be YYYY-MM")

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> ErpStubConfig:
        """Read ``ERP_STUB_OPEN_PERIODS`` and ``ERP_STUB_ACCOUNTS`` (comma lists); unset means default."""
        env = os.environ if environ is None else environ
        overrides = {
            "open_periods": _env_list(env, "ERP_STUB_OPEN_PERIODS"),
            "chart_of_accounts": _env_list(env, "ERP_STUB_ACCOUNTS"),
        }
        return cls(**{key: value for key, value in overrides.items() if value is not None})


# --- wire shapes -------------------------------------------------------------------------------


class ErpError(msgspec.Struct):
    code: str
    message: str
    line: int | None = None


class ErpRequestError(Exception):
    """Answered as ``{"errors": [...]}`` with ``status``."""

    def __init__(self, status: int, errors: list[ErpError]) -> None:
        super().__init__(status)
        self.status = status
        self.errors = errors


class CustomerIn(msgspec.Struct):
    name: NonEmpty
    account_number: NonEmpty
    currency: str = "USD"
    address: dict[str, Any] | None = None


class Customer(msgspec.Struct, kw_only=True):
    customer_number: str
    external_ref: str
    name: str
    account_number: str
    currency: str
    address: dict[str, Any] | None
    created_at: str
    updated_at: str


class LineIn(msgspec.Struct):
    account: str
    cost_center: str | None = None
    debit: str | None = None
    credit: str | None = None
    memo: str | None = None


class JournalIn(msgspec.Struct):
    external_reference: NonEmpty
    ledger: NonEmpty
    accounting_date: date
    currency: str
    description: str
    lines: list[LineIn]


class _ReferenceOnly(msgspec.Struct):
    external_reference: str


class Journal(msgspec.Struct, kw_only=True):
    document_number: str
    external_reference: str
    ledger: str
    accounting_date: date
    currency: str
    description: str
    lines: list[LineIn]
    total_debit: str
    total_credit: str
    status: str = "posted"
    posted_at: str


class PostResult(msgspec.Struct):
    document_number: str
    external_reference: str
    status: str
    posted_at: str
    duplicate: bool


def _now_instant() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _rejection(status: int, code: str, message: str) -> ErpRequestError:
    return ErpRequestError(status, [ErpError(code, message)])


def render_fault(status: int) -> tuple[bytes, str]:
    """Injected-fault body in the ERP's dialect (used by the fault-injection middleware)."""
    return msgspec.json.encode({"errors": [ErpError("SYS01", "injected fault")]}), "application/json"


# --- journal validation ------------------------------------------------------------------------


def _amount(raw: str) -> tuple[Decimal, str | None]:
    """Parse an amount string; the second item names what is wrong with it, if anything."""
    match = AMOUNT_PATTERN.fullmatch(raw)
    if match is None:
        return Decimal(0), "is not a decimal string"
    value = Decimal(raw)
    if value < 0:
        return value, "is negative"
    if len(match.group(1) or "") > 2:
        return value, "has more than two decimal places"
    return value, None


def _line_errors(index: int, line: LineIn, chart: frozenset[str]) -> list[ErpError]:
    errors = []
    if line.account not in chart:
        errors.append(ErpError("EF04", "account is not in the chart of accounts", index))
    sides = {name: raw for name, raw in (("debit", line.debit), ("credit", line.credit)) if raw is not None}
    if len(sides) != 1:
        errors.append(ErpError("EL01", "line needs exactly one of debit or credit", index))
    for name, raw in sides.items():
        problem = _amount(raw)[1]
        if problem:
            errors.append(ErpError("EL01", f"{name} amount {problem}", index))
    return errors


def _total(values: list[str | None]) -> Decimal:
    return sum((_amount(raw)[0] for raw in values if raw is not None), Decimal(0))


def _money(value: Decimal) -> str:
    return str(value.quantize(CENT))


def journal_errors(journal: JournalIn, config: ErpStubConfig) -> list[ErpError]:
    """Every reason the journal cannot be posted (empty when it can)."""
    errors: list[ErpError] = []
    if journal.accounting_date.strftime("%Y-%m") not in config.open_periods:
        errors.append(ErpError("EP01", "accounting date is not in an open period"))
    if not CURRENCY_PATTERN.fullmatch(journal.currency):
        errors.append(ErpError("EC01", "currency must be a 3-letter upper-case ISO 4217 code"))
    if len(journal.lines) < 2:
        errors.append(ErpError("EJ01", "a journal needs at least 2 lines"))
    chart = frozenset(config.chart_of_accounts)
    for index, line in enumerate(journal.lines):
        errors.extend(_line_errors(index, line, chart))
    debit = _total([line.debit for line in journal.lines])
    credit = _total([line.credit for line in journal.lines])
    if debit != credit:
        errors.append(ErpError("EU02", f"journal is unbalanced: debits {debit} != credits {credit}"))
    return errors


def _normalised(line: LineIn) -> LineIn:
    def money(raw: str | None) -> str | None:
        return None if raw is None else _money(_amount(raw)[0])

    return msgspec.structs.replace(line, debit=money(line.debit), credit=money(line.credit))


# --- in-memory ledger ----------------------------------------------------------------------------


class Ledger:
    """Customers and posted journals; every check-then-write happens under one lock."""

    def __init__(self, config: ErpStubConfig) -> None:
        self.config = config
        self._lock = threading.Lock()
        self._customers: dict[str, Customer] = {}
        self._journals: dict[str, Journal] = {}
        self._by_reference: dict[str, Journal] = {}

    def upsert_customer(self, external_ref: str, body: CustomerIn) -> tuple[Customer, bool]:
        now = _now_instant()
        with self._lock:
            existing = self._customers.get(external_ref)
            number = existing.customer_number if existing else f"C{len(self._customers) + 1:06d}"
            customer = Customer(
                customer_number=number,
                external_ref=external_ref,
                name=body.name,
                account_number=body.account_number,
                currency=body.currency,
                address=body.address,
                created_at=existing.created_at if existing else now,
                updated_at=now,
            )
            self._customers[external_ref] = customer
            return customer, existing is None

    def customer(self, external_ref: str) -> Customer | None:
        with self._lock:
            return self._customers.get(external_ref)

    def by_reference(self, external_reference: str) -> Journal | None:
        with self._lock:
            return self._by_reference.get(external_reference)

    def post(self, body: JournalIn) -> tuple[Journal, bool]:
        """Post once per external reference; a repeat returns the original and ``True``."""
        with self._lock:
            original = self._by_reference.get(body.external_reference)
            if original is not None:
                return original, True
            journal = Journal(
                document_number=f"JE-{len(self._journals) + 1:06d}",
                lines=[_normalised(line) for line in body.lines],
                total_debit=_money(_total([line.debit for line in body.lines])),
                total_credit=_money(_total([line.credit for line in body.lines])),
                posted_at=_now_instant(),
                external_reference=body.external_reference,
                ledger=body.ledger,
                accounting_date=body.accounting_date,
                currency=body.currency,
                description=body.description,
            )
            self._journals[journal.document_number] = journal
            self._by_reference[journal.external_reference] = journal
            return journal, False

    def journal(self, document_number: str) -> Journal | None:
        with self._lock:
            return self._journals.get(document_number)

    def journals(self, external_reference: str | None) -> list[Journal]:
        with self._lock:
            journals = list(self._journals.values())
        return [j for j in journals if external_reference in (None, j.external_reference)]


LedgerDep = NamedDependency[Ledger]


# --- route handlers ----------------------------------------------------------------------------

AnyRequest = Request[Any, Any, Any]


def _decode(raw: bytes, type_: type[T]) -> T:
    try:
        return msgspec.json.decode(raw, type=type_)
    except msgspec.DecodeError as exc:
        raise _rejection(400, "EX00", f"malformed request: {exc}") from None


def _posted(journal: Journal, *, duplicate: bool) -> Response[PostResult]:
    result = PostResult(
        journal.document_number, journal.external_reference, journal.status, journal.posted_at, duplicate
    )
    return Response(result, status_code=200 if duplicate else 201)


@get("/health", sync_to_thread=False)
def health() -> dict[str, str]:
    return {"status": "ok"}


@put("/customers/{external_ref:str}")
async def upsert_customer(
    request: AnyRequest, ledger: LedgerDep, external_ref: FromPath[str]
) -> Response[dict[str, Any]]:
    body = _decode(await request.body(), CustomerIn)
    if not CURRENCY_PATTERN.fullmatch(body.currency):
        raise _rejection(422, "EC01", "currency must be a 3-letter upper-case ISO 4217 code")
    customer, created = ledger.upsert_customer(external_ref, body)
    result = {"customer_number": customer.customer_number, "external_ref": external_ref, "created": created}
    return Response(result, status_code=201 if created else 200)


@get("/customers/{external_ref:str}", sync_to_thread=False)
def read_customer(ledger: LedgerDep, external_ref: FromPath[str]) -> Customer:
    customer = ledger.customer(external_ref)
    if customer is None:
        raise _rejection(404, "NF01", "customer not found")
    return customer


@post("/journals")
async def post_journal(request: AnyRequest, ledger: LedgerDep) -> Response[PostResult]:
    raw = await request.body()
    try:
        original = ledger.by_reference(msgspec.json.decode(raw, type=_ReferenceOnly).external_reference)
    except msgspec.DecodeError:
        original = None
    if original is not None:
        return _posted(original, duplicate=True)
    body = _decode(raw, JournalIn)
    errors = journal_errors(body, ledger.config)
    if errors:
        raise ErpRequestError(422, errors)
    journal, duplicate = ledger.post(body)
    return _posted(journal, duplicate=duplicate)


@get("/journals/{document_number:str}", sync_to_thread=False)
def read_journal(ledger: LedgerDep, document_number: FromPath[str]) -> Journal:
    journal = ledger.journal(document_number)
    if journal is None:
        raise _rejection(404, "NF02", "journal not found")
    return journal


@get("/journals", sync_to_thread=False)
def list_journals(ledger: LedgerDep, external_reference: FromQuery[str | None] = None) -> dict[str, Any]:
    items = ledger.journals(external_reference)
    return {"items": items, "count": len(items)}


# --- app ---------------------------------------------------------------------------------------


def _rejection_response(_: AnyRequest, exc: ErpRequestError) -> Response[bytes]:
    body = msgspec.json.encode({"errors": exc.errors})
    return Response(body, status_code=exc.status, media_type="application/json")


def _http_error_response(_: AnyRequest, exc: HTTPException) -> Response[bytes]:
    error = ErpError(f"HTTP{exc.status_code}", HTTPStatus(exc.status_code).phrase)
    body = msgspec.json.encode({"errors": [error]})
    return Response(body, status_code=exc.status_code, media_type="application/json", headers=exc.headers)


def create_app(config: ErpStubConfig | None = None) -> Litestar:
    """The ERP stub: ``/erp/*`` plus ``/_control/*``; without ``config``, read it from the environment."""
    ledger = Ledger(config or ErpStubConfig.from_env())

    def provide_ledger() -> Ledger:
        return ledger

    erp = Router(
        path="/erp",
        route_handlers=[health, upsert_customer, read_customer, post_journal, read_journal, list_journals],
        dependencies={"ledger": Provide(provide_ledger, sync_to_thread=False)},
    )
    handlers: ExceptionHandlersMap = {
        ErpRequestError: _rejection_response,
        HTTPException: _http_error_response,
    }
    return create_stub_app([erp], render_fault, handlers)
