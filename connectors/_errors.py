"""What went wrong talking to a target system, grouped by what the caller should do.

    ConnectorError                 root: every connector failure is one of these
    ├── RetriableError             try again later (transport failure, 5xx, 408, 425, 429)
    ├── RejectedError              the target understood and said no; retrying will not help
    └── MisconfiguredError         our side is wrong (bad URL, credentials, unknown operation)

Messages are written by us from codes and statuses; a target's free text is never copied in,
because an EHR's error can quote the patient it choked on.
"""

from __future__ import annotations

__all__ = ["ConnectorError", "MisconfiguredError", "RejectedError", "RetriableError"]


class ConnectorError(Exception):
    kind = "connector_error"

    def __init__(self, message: str, *, status: int | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.code = code


class RetriableError(ConnectorError):
    kind = "retriable"

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        code: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message, status=status, code=code)
        self.retry_after = retry_after


class RejectedError(ConnectorError):
    kind = "rejected"


class MisconfiguredError(ConnectorError):
    kind = "misconfigured"
