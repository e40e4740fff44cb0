"""Status codes and transport errors mapped to outcomes: a table, not an if-chain."""

from __future__ import annotations

import email.utils
import enum
import time
from collections.abc import Mapping

import httpx

from connectors._errors import ConnectorError, MisconfiguredError, RejectedError, RetriableError

__all__ = ["Outcome", "error_for_response", "error_for_transport", "outcome_for_status", "parse_retry_after"]


class Outcome(enum.Enum):
    SUCCESS = "success"
    RETRY = "retry"
    REJECT = "reject"
    MISCONFIGURED = "misconfigured"


STATUS_OUTCOMES: Mapping[int, Outcome] = {
    400: Outcome.REJECT,
    401: Outcome.MISCONFIGURED,
    403: Outcome.MISCONFIGURED,
    404: Outcome.MISCONFIGURED,
    405: Outcome.MISCONFIGURED,
    408: Outcome.RETRY,
    409: Outcome.REJECT,
    412: Outcome.RETRY,  # an ETag race: read again and retry
    413: Outcome.REJECT,
    415: Outcome.MISCONFIGURED,
    422: Outcome.REJECT,
    425: Outcome.RETRY,
    429: Outcome.RETRY,
    500: Outcome.RETRY,
    501: Outcome.MISCONFIGURED,
    502: Outcome.RETRY,
    503: Outcome.RETRY,
    504: Outcome.RETRY,
}

# Classes of status not listed above: 2xx succeed, other 4xx reject, other 5xx retry.
_CLASS_OUTCOMES: Mapping[int, Outcome] = {
    2: Outcome.SUCCESS,
    3: Outcome.MISCONFIGURED,
    4: Outcome.REJECT,
    5: Outcome.RETRY,
}

_ERROR_TYPES: Mapping[Outcome, type[ConnectorError]] = {
    Outcome.RETRY: RetriableError,
    Outcome.REJECT: RejectedError,
    Outcome.MISCONFIGURED: MisconfiguredError,
}

# Transport failures, most specific first; all are worth another attempt except a bad URL.
_TRANSPORT_ERRORS: tuple[tuple[type[Exception], type[ConnectorError], str], ...] = (
    (httpx.UnsupportedProtocol, MisconfiguredError, "unsupported URL scheme"),
    (httpx.InvalidURL, MisconfiguredError, "invalid URL"),
    (httpx.TimeoutException, RetriableError, "timed out"),
    (httpx.ConnectError, RetriableError, "connection refused or unreachable"),
    (httpx.RemoteProtocolError, RetriableError, "connection dropped by the target"),
    (httpx.TransportError, RetriableError, "transport error"),
)


def outcome_for_status(status: int) -> Outcome:
    return STATUS_OUTCOMES.get(status) or _CLASS_OUTCOMES.get(status // 100, Outcome.REJECT)


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or HTTP-date)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def error_for_response(target: str, response: httpx.Response, code: str | None = None) -> ConnectorError:
    outcome = outcome_for_status(response.status_code)
    error_type = _ERROR_TYPES.get(outcome, RejectedError)
    message = f"{target} answered HTTP {response.status_code}" + (f" ({code})" if code else "")
    if error_type is RetriableError:
        return RetriableError(
            message,
            status=response.status_code,
            code=code,
            retry_after=parse_retry_after(response.headers.get("retry-after")),
        )
    return error_type(message, status=response.status_code, code=code)


def error_for_transport(target: str, exc: Exception) -> ConnectorError:
    for exc_type, error_type, what in _TRANSPORT_ERRORS:
        if isinstance(exc, exc_type):
            return error_type(f"{target}: {what}", code=type(exc).__name__)
    return RetriableError(f"{target}: transport error", code=type(exc).__name__)
