"""The server's own answer to a request it cannot parse, as an RFC 9457 problem.

uvicorn answers bad HTTP framing (a malformed request line or header, a NUL in a header value, a bad
``Content-Length`` or chunk size) itself, before the app sees the request, with a ``text/plain`` 400.
Every other refusal of the hub is ``application/problem+json``; these protocol classes (uvicorn's
httptools and h11 ones, answering the same 400 and closing the connection as they do) make this one
the same. The detail is fixed text: what could not be parsed may be a patient's data.
"""

from __future__ import annotations

import msgspec
from uvicorn.protocols.http.h11_impl import H11Protocol
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from gateway.problems import PROBLEM_JSON, Problem, problem_type

__all__ = ["ProblemH11Protocol", "ProblemHttpToolsProtocol", "unparsable_request_response"]

_BODY = msgspec.json.encode(
    Problem(
        type=problem_type("malformed-request"),
        title="Request could not be read",
        status=400,
        detail="the request is not valid HTTP/1.1 (request line, header syntax, Content-Length or chunk framing)",
    )
)


def unparsable_request_response(default_headers: list[tuple[bytes, bytes]]) -> bytes:
    """The whole 400 response: status line, the server's default headers (date, server), the problem."""
    head = [b"HTTP/1.1 400 Bad Request\r\n"]
    head += [name + b": " + value + b"\r\n" for name, value in default_headers]
    head += [
        b"content-type: " + PROBLEM_JSON.encode() + b"\r\n",
        b"content-length: " + str(len(_BODY)).encode() + b"\r\n",
        b"connection: close\r\n\r\n",
    ]
    return b"".join(head) + _BODY


class ProblemHttpToolsProtocol(HttpToolsProtocol):
    """httptools parses everything that arrived at once, so a malformed request can be found while a
    request pipelined before it is still being answered. uvicorn then wrote its 400 at once and closed
    the connection: the client, pairing responses with requests in order, read the 400 as the answer
    to the earlier request, which nevertheless ran (a journal refused on the wire but posted). Here the
    400 waits until the requests before it have been answered."""

    _unparsable = False

    def send_400_response(self, msg: str) -> None:
        if self._answering():
            self._unparsable = True  # sent by on_response_complete once they are answered
            return
        self._refuse()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if self._unparsable and not self._answering():
            self._refuse()

    def _answering(self) -> bool:
        """Whether whole requests before the unparsable data are still being answered. self.cycle is
        the last request parsed (the ones before it finish first); when the bad data is its own body
        (it has not finished arriving), the 400 is its answer and goes out at once, as uvicorn does."""
        cycle = self.cycle
        return (cycle is not None and not cycle.response_complete and not cycle.more_body) or bool(self.pipeline)

    def _refuse(self) -> None:
        self._unparsable = False
        if not self.transport.is_closing():
            self.transport.write(unparsable_request_response(self.server_state.default_headers))
            self.transport.close()


class ProblemH11Protocol(H11Protocol):
    def send_400_response(self, msg: str) -> None:
        # Written raw, as the httptools class does: h11's state machine has already failed on this
        # connection, which is closed right after.
        self.transport.write(unparsable_request_response(self.server_state.default_headers))
        self.transport.close()
