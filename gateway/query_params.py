"""Every ``/v1`` operation takes only the query parameters it declares, each given once.

Litestar binds only the parameters a handler declares and keeps the last value of a repeated one, so
``?clientid=beta`` (a typo) answered every client's audit records, ``?limit=1&limit=2`` a page of 2,
a bulk replay given its filter as a query replayed every dead letter, and
``GET /v1/transactions/{id}?wait=5`` answered at once as if the wait were heard: answers to questions
the caller did not ask. The policy chain checks the raw query before anything is parsed or stored (a
Litestar guard would do, but a synchronous one runs in a worker thread: +22 % of a read's instructions).
"""

from __future__ import annotations

import difflib
from collections import Counter
from typing import Any
from urllib.parse import parse_qsl

from litestar.params import QueryParameter

from gateway.problems import FieldError, ProblemError

__all__ = ["undeclared_query"]

def undeclared_query(query_string: bytes, handler: Any) -> ProblemError | None:
    """The 400 for a query parameter ``handler`` does not declare (with ``QueryParameter``), or for
    one given twice; ``None`` when the query is one the operation takes."""
    if not query_string:  # nearly every call
        return None
    declared = _declared(handler)
    names = Counter(name for name, _ in parse_qsl(query_string.decode("latin-1"), keep_blank_values=True))
    for name, times in names.items():
        if name not in declared:
            return _undeclared(name, declared)
        if times > 1:
            return ProblemError(
                400,
                "validation-error",
                f"query parameter `{name}` is given {times} times; give it once",
                errors=[FieldError(path=f"$.{name}", message="given more than once")],
            )
    return None


def _declared(handler: Any) -> frozenset[str]:
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
