"""The server's own answers to a request it cannot take, as RFC 9457 problems.

uvicorn answers bad HTTP framing (a malformed request line or header, a NUL in a header value, a bad
``Content-Length`` or chunk size) itself, before the app sees the request, with a ``text/plain`` 400.
Every other refusal of the hub is ``application/problem+json``; these protocol classes (uvicorn's
httptools and h11 ones, answering and closing the connection as they do) make this one the same. The
details are fixed text: what could not be parsed may be a patient's data.

httptools also reads a request line and headers of any length (a helper's 1 MiB header was served),
for as long as they take: here a head longer than ``MAX_HEAD_BYTES`` is refused with a 431 before more
of it is read, and one still incomplete ``HEAD_TIMEOUT_S`` after it began with a 408. Two counts make
the limit hold however the head is split into reads: the bytes received while a head is incomplete
(what an endless head has cost so far), and the parsed target and headers of a head that completes
(a read can hold the end of a head that is too long, and a body that belongs to a head that is not). (h11 has its own
size limit, ``h11_max_incomplete_event_size``, and answers over it with the 400 below.)

A client that ends its side of the connection once its request is sent (a half-close) still gets the
answer to every whole request, then the connection closes; uvicorn took the end for a disconnect.
"""

from __future__ import annotations

import asyncio

import msgspec
from uvicorn.protocols.http.h11_impl import H11Protocol
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from gateway.problems import PROBLEM_JSON, Problem, problem_type

__all__ = [
    "MAX_HEAD_BYTES",
    "ProblemH11Protocol",
    "ProblemHttpToolsProtocol",
    "head_too_large_response",
    "head_too_slow_response",
    "unparsable_request_response",
]

# Request line plus headers, about: counted as received, so a head can run over by one read.
MAX_HEAD_BYTES = 65_536
# After a refusal the connection is half-closed and what still arrives is read and dropped for this
# long: closing with unread data makes the kernel reset the connection, and the client may then lose
# the answer it was sent.
LINGER_S = 2.0
# A request line and headers still incomplete this long after their first bytes are refused (408): a
# client trickling them a byte at a time would otherwise hold its connection for good. The timer is
# only armed when a head does not arrive whole in one read, so ordinary requests never pay for it.
HEAD_TIMEOUT_S = 30.0


def _response(status_line: bytes, problem: Problem, default_headers: list[tuple[bytes, bytes]]) -> bytes:
    """A whole response: status line, the server's default headers (date, server), the problem, close."""
    body = msgspec.json.encode(problem)
    head = [status_line]
    head += [name + b": " + value + b"\r\n" for name, value in default_headers]
    head += [
        b"content-type: " + PROBLEM_JSON.encode() + b"\r\n",
        b"content-length: " + str(len(body)).encode() + b"\r\n",
        b"connection: close\r\n\r\n",
    ]
    return b"".join(head) + body


_UNPARSABLE = Problem(
    type=problem_type("malformed-request"),
    title="Request could not be read",
    status=400,
    detail="the request is not valid HTTP/1.1 (request line, header syntax, Content-Length or chunk framing)",
)
_HEAD_TOO_SLOW = Problem(
    type=problem_type("request-timeout"),
    title="Request headers not received in time",
    status=408,
    detail=f"the request line and headers did not arrive within {HEAD_TIMEOUT_S:g} s",
)
_HEAD_TOO_LARGE = Problem(
    type=problem_type("headers-too-large"),
    title="Request header fields too large",
    status=431,
    detail=f"the request line and headers exceed {MAX_HEAD_BYTES} bytes",
)


def unparsable_request_response(default_headers: list[tuple[bytes, bytes]]) -> bytes:
    return _response(b"HTTP/1.1 400 Bad Request\r\n", _UNPARSABLE, default_headers)


def head_too_large_response(default_headers: list[tuple[bytes, bytes]]) -> bytes:
    return _response(b"HTTP/1.1 431 Request Header Fields Too Large\r\n", _HEAD_TOO_LARGE, default_headers)


def head_too_slow_response(default_headers: list[tuple[bytes, bytes]]) -> bytes:
    return _response(b"HTTP/1.1 408 Request Timeout\r\n", _HEAD_TOO_SLOW, default_headers)


class _HeadTooLarge(Exception):
    """Raised inside httptools' header callback to stop the parser (it reports a callback error)."""


class ProblemHttpToolsProtocol(HttpToolsProtocol):
    """httptools parses everything that arrived at once, so a malformed request can be found while a
    request pipelined before it is still being answered. uvicorn then wrote its 400 at once and closed
    the connection: the client, pairing responses with requests in order, read the 400 as the answer
    to the earlier request, which nevertheless ran (a journal refused on the wire but posted). Here the
    refusal waits, reading paused, until the requests before it have been answered."""

    _refusal: bytes | None = None  # the answer waiting for the requests before it
    _refused = False  # answered: what still arrives is dropped
    _in_head = True  # the bytes arriving belong to a request line or headers
    _head_bytes = 0  # received since the head began, while it is incomplete
    _parsed_head_bytes = 0  # the target and headers parsed so far, with their separators
    _head_too_large = False  # on_headers_complete found the head too long and stopped the parser
    _head_timer: asyncio.TimerHandle | None = None
    _peer_finished = False  # the client half-closed after whole requests: answer them, then close
    head_timeout_s = HEAD_TIMEOUT_S

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return
        if self._in_head:
            self._head_bytes += len(data)
        super().data_received(data)
        if self._refused or self._refusal is not None or not self._in_head or not self._head_bytes:
            return
        if self._head_bytes > MAX_HEAD_BYTES:
            self._refuse(head_too_large_response(self.server_state.default_headers))
        elif self._head_timer is None:  # a head arriving in pieces: it has head_timeout_s in all
            self._head_timer = self.loop.call_later(self.head_timeout_s, self._head_too_slow)

    def on_message_begin(self) -> None:
        self._parsed_head_bytes = 0
        super().on_message_begin()

    def on_url(self, url: bytes) -> None:
        self._parsed_head_bytes += len(url)  # the method and version, a few bytes, are not counted
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._parsed_head_bytes += len(name) + len(value) + 4  # ": " and CRLF
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        if self._parsed_head_bytes > MAX_HEAD_BYTES:
            # Raising stops the parser before the request reaches the app; uvicorn then calls
            # send_400_response, which answers this 431 instead.
            self._head_too_large = True
            raise _HeadTooLarge
        self._in_head, self._head_bytes = False, 0
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None
        super().on_headers_complete()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
        super().connection_lost(exc)

    def _head_too_slow(self) -> None:
        self._head_timer = None
        if self._in_head and self._refusal is None:
            self._refuse(head_too_slow_response(self.server_state.default_headers))

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._in_head = True  # what arrives next is the next request's head

    def send_400_response(self, msg: str) -> None:
        if self._head_too_large:
            self._refuse(head_too_large_response(self.server_state.default_headers))
        else:
            self._refuse(unparsable_request_response(self.server_state.default_headers))

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if self._refusal is not None and not self._answering():
            self._send(self._refusal)
        elif self._peer_finished and not self._answering():
            self.transport.close()  # the client sends nothing more: its answers are all out

    # asyncio.Protocol.eof_received may answer True (keep the transport open); uvicorn types it None.
    def eof_received(self) -> bool | None:  # type: ignore[override]
        """A client may end its side once its request is sent (``nc -N``, ``curl`` over a shell pipe,
        HTTP/1.0-style clients): uvicorn took that for a disconnect and closed, so a request that
        was whole got no answer (and a POST ran unanswered). The answers to whole requests still go
        out, then the connection closes; an end in the middle of a request is still a disconnect."""
        if self._refusal is None and self._answering():
            self._peer_finished = True
            return True  # keep the transport open for writing
        return None

    def _refuse(self, response: bytes) -> None:
        if self._answering():
            self._refusal = response  # sent by on_response_complete once they are answered
            self.flow.pause_reading()
        else:
            self._send(response)

    def _answering(self) -> bool:
        """Whether whole requests before the refused data are still being answered. self.cycle is the
        last request parsed (the ones before it finish first); when the bad data is its own body (it
        has not finished arriving), the refusal is its answer and goes out at once, as uvicorn does."""
        cycle = self.cycle
        return (cycle is not None and not cycle.response_complete and not cycle.more_body) or bool(self.pipeline)

    def _send(self, response: bytes) -> None:
        self._refusal = None
        if not self._refused and not self.transport.is_closing():  # one refusal per connection
            self._refused = True
            _answer_and_linger(self, response)


class ProblemH11Protocol(H11Protocol):
    _refused = False
    _peer_finished = False  # as in ProblemHttpToolsProtocol.eof_received

    def data_received(self, data: bytes) -> None:
        if not self._refused:
            super().data_received(data)

    def eof_received(self) -> bool | None:  # type: ignore[override]  # as in ProblemHttpToolsProtocol
        cycle = self.cycle
        if not self._refused and cycle is not None and not cycle.response_complete and not cycle.more_body:
            self._peer_finished = True
            return True
        return None

    def on_response_complete(self) -> None:
        super().on_response_complete()
        cycle = self.cycle
        if self._peer_finished and (cycle is None or cycle.response_complete) and not self.transport.is_closing():
            self.transport.close()

    def send_400_response(self, msg: str) -> None:
        # Written raw, as the httptools class does: h11's state machine has already failed on this
        # connection, which is closed after the linger.
        if not self.transport.is_closing():
            self._refused = True
            _answer_and_linger(self, unparsable_request_response(self.server_state.default_headers))


def _answer_and_linger(protocol: HttpToolsProtocol | H11Protocol, response: bytes) -> None:
    """Write the refusal, half-close, drain what the client is still sending, close after LINGER_S
    (the protocol's data_received drops what arrives once it has refused)."""
    transport = protocol.transport
    transport.write(response)
    if not transport.can_write_eof():
        transport.close()
        return
    transport.write_eof()  # the client reads the answer, then the end
    protocol.flow.resume_reading()
    protocol.loop.call_later(LINGER_S, transport.close)
