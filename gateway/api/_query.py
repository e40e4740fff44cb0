"""A guard holding a route to the query parameters it declares, each given once.

Litestar binds only the parameters a handler declares and keeps the last value of a repeated one, so
``?clientid=beta`` (a typo) answered every client's audit records, ``?limit=1&limit=2`` a page of 2,
and a bulk replay given its filter as a query replayed every dead letter: answers to questions the
caller did not ask. A guard runs before the parameters are parsed, so it sees the raw query.
"""

from __future__ import annotations

import difflib
from collections import Counter
from typing import Any

from litestar.connection import ASGIConnection
from litestar.handlers import BaseRouteHandler
from litestar.params import QueryParameter

from gateway.problems import FieldError, ProblemError

__all__ = ["declared_query_parameters_once"]


def declared_query_parameters_once(connection: ASGIConnection[Any, Any, Any, Any], handler: BaseRouteHandler) -> None:
    """400 for a query parameter ``handler`` does not declare (with ``QueryParameter``), or one given twice."""
    declared = _declared(handler)
    for name, times in Counter(name for name, _ in connection.query_params.multi_items()).items():
        if name not in declared:
            raise _undeclared(name, declared)
        if times > 1:
            raise ProblemError(
                400,
                "validation-error",
                f"query parameter `{name}` is given {times} times; give it once",
                errors=[FieldError(path=f"$.{name}", message="given more than once")],
            )


def _declared(handler: BaseRouteHandler) -> frozenset[str]:
    return frozenset(
        field.kwarg_definition.name or name
        for name, field in handler.parsed_fn_signature.parameters.items()
        if isinstance(field.kwarg_definition, QueryParameter)
    )


def _undeclared(name: str, declared: frozenset[str]) -> ProblemError:
    """The name is the client's and can be PHI (a patient's name sent as a key), so it is repeated
    only as the parameter it is close to, as problems.py does for a body's unknown field."""
    close = difflib.get_close_matches(name, declared, n=1, cutoff=0.8)
    hint = f" (did you mean `{close[0]}`?)" if close else ""
    takes = f"it takes {', '.join(sorted(declared))}" if declared else "it takes none"
    return ProblemError(
        400,
        "validation-error",
        f"a query parameter this operation does not take{hint}; {takes}",
        errors=[FieldError(path="$", message="query parameter this operation does not take")],
    )
