"""Both of uvicorn's parsers, as the hub configures them, answer an unparsable request with a problem."""

from __future__ import annotations

import asyncio
import itertools
import json
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
import uvicorn

from gateway.http_framing import MAX_HEAD_BYTES, ProblemH11Protocol, ProblemHttpToolsProtocol
from tests.processes import free_port, read_until_closed


async def _app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    while (await receive()).get("more_body"):  # the whole body, as the hub reads it
        pass
    await asyncio.sleep(0.2)  # still answering when a request pipelined after it is parsed
    await send({"type": "http.response.start", "status": 204, "headers": []})
    await send({"type": "http.response.body", "body": b""})


@contextmanager
def _serving(protocol: type[asyncio.Protocol]) -> Iterator[int]:
    """uvicorn with ``protocol`` in a thread; its port."""
    port = free_port()
    config = uvicorn.Config(_app, host="127.0.0.1", port=port, http=protocol, log_level="critical", lifespan="off")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.01)
    try:
        yield port
    finally:
        server.should_exit = True
        thread.join(10)


@pytest.fixture(params=[ProblemHttpToolsProtocol, ProblemH11Protocol], ids=["httptools", "h11"])
def port(request: pytest.FixtureRequest) -> Iterator[int]:
    with _serving(request.param) as port:
        yield port


def _exchange(port: int, raw: bytes, *, half_close: bool = False) -> bytes:
    """Send ``raw`` (then, with ``half_close``, end the sending side as ``nc -N`` does); read until the
    server closes."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(raw)
        if half_close:
            sock.shutdown(socket.SHUT_WR)
        return read_until_closed(sock)


def _statuses(answer: bytes) -> list[bytes]:
    return [line.split(b" ")[1] for line in answer.split(b"\r\n") if line.startswith(b"HTTP/1.1 ")]


def test_an_unparsable_request_gets_a_problem_and_the_connection_closes(port: int) -> None:
    answer = _exchange(port, b"GET / HTTP/1.1\r\nHost: a\r\nContent-Length: nope\r\n\r\n")
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400 ")
    assert b"\r\ncontent-type: application/problem+json\r\n" in head
    assert b"\r\nconnection: close\r\n" in head + b"\r\n"
    problem = json.loads(body)
    assert problem["type"] == "urn:billing-hub:problem:malformed-request"
    assert problem["status"] == 400


def test_a_well_formed_request_is_served_as_before(port: int) -> None:
    answer = _exchange(port, b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 204 ")


def test_requests_pipelined_before_an_unparsable_one_are_answered_first(port: int) -> None:
    """One write: two good requests, then a bad one. HTTP/1.1 pairs answers with requests in order, so
    the 400 must come after both 204s, or a client would take it for the refusal of the first."""
    good = b"GET / HTTP/1.1\r\nHost: a\r\n\r\n"
    answer = _exchange(port, good + good + b"GET / HTTP/1.1\r\nHost: a\r\nContent-Length: x\r\n\r\n")
    assert _statuses(answer) == [b"204", b"204", b"400"]
    assert answer.endswith(b"}")  # the problem body, and then the connection closed


def test_a_request_whose_own_body_cannot_be_parsed_gets_the_400_as_its_answer(port: int) -> None:
    raw = b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n{}\r\n0\r\n\r\n"
    answer = _exchange(port, raw)
    assert answer.startswith(b"HTTP/1.1 400 ")
    assert answer.count(b"\r\n\r\n") == 1  # one response head, then the connection closed


def test_a_head_over_the_limit_is_refused_before_it_is_all_read(port: int) -> None:
    header = b"X-Filler: " + b"a" * MAX_HEAD_BYTES + b"\r\n"
    answer = _exchange(port, b"GET / HTTP/1.1\r\nHost: a\r\n" + header * 4 + b"\r\n")
    head, _, body = answer.partition(b"\r\n\r\n")
    # httptools: our 431; h11: its own limit (16 KiB), answered with the 400 problem.
    assert head.split(b" ")[1] in (b"431", b"400"), head
    assert b"\r\ncontent-type: application/problem+json\r\n" in head
    problem = json.loads(body)
    assert problem["type"] in ("urn:billing-hub:problem:headers-too-large", "urn:billing-hub:problem:malformed-request")


def test_the_head_limit_leaves_large_bodies_and_ordinary_heads_alone(port: int) -> None:
    head = b"POST / HTTP/1.1\r\nHost: a\r\nX-Filler: " + b"a" * 8_000 + b"\r\nConnection: close\r\n"
    body = b"x" * 1_048_576
    answer = _exchange(port, head + b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
    assert answer.startswith(b"HTTP/1.1 204 ")


class _QuickHeadTimeout(ProblemHttpToolsProtocol):
    head_timeout_s = 0.5


def test_a_head_trickling_in_is_refused_after_the_head_timeout() -> None:
    with _serving(_QuickHeadTimeout) as port, socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: a\r\n")  # and the rest never comes
        started = time.monotonic()
        answer = read_until_closed(sock)
        waited = time.monotonic() - started
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 408 "), head
    assert json.loads(body)["type"] == "urn:billing-hub:problem:request-timeout"
    assert 0.4 < waited < 3.5  # the timeout, then the linger's end at the latest


def test_a_head_arriving_in_pieces_within_the_timeout_is_served() -> None:
    with _serving(_QuickHeadTimeout) as port, socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        for piece in (b"GET / HTTP/1.1\r\n", b"Host: a\r\n", b"Connection: close\r\n\r\n"):
            sock.sendall(piece)
            time.sleep(0.2)  # the first piece arms the timer, the last one (0.4 s later) stops it
        answer = read_until_closed(sock)
    assert answer.startswith(b"HTTP/1.1 204 ")


def _big_header(size: int) -> bytes:
    return b"GET / HTTP/1.1\r\nHost: a\r\nX-Big: " + b"a" * size + b"\r\n\r\n"


def _in_pieces(head: bytes, *cuts: int) -> list[bytes]:
    bounds = [0, *cuts, len(head)]
    return [head[start:end] for start, end in itertools.pairwise(bounds)]


_LONG_TARGET = b"GET /" + b"a" * 68_000 + b" HTTP/1.1\r\nHost: a\r\n\r\n"
_MANY_HEADERS = b"GET / HTTP/1.1\r\nHost: a\r\n" + b"".join(b"X-H%d: %s\r\n" % (i, b"b" * 90) for i in range(800))
_MANY_HEADERS += b"\r\n"


@pytest.mark.parametrize(
    "pieces",
    [
        [_big_header(66_000)],  # one write: the head completes in the read that crosses the limit
        [_big_header(100_000)],
        [_LONG_TARGET],  # a long request target, not a 400 from the URL parser
        [_MANY_HEADERS],  # many ordinary headers
        _in_pieces(_big_header(66_000), 60_000),  # under the limit, then the rest with the end
        _in_pieces(_big_header(70_000), 30_000, 60_000),
        _in_pieces(_big_header(200_000), 100),  # the end arrives long after the limit is passed
        _in_pieces(_big_header(66_000), *range(16_384, 66_000, 16_384)),
    ],
    ids=["66k-one", "100k-one", "target-68k", "800-headers", "60k+6k", "30k+30k+10k", "100+200k", "16k-reads"],
)
def test_any_head_over_the_limit_gets_the_431_however_it_is_split(pieces: list[bytes]) -> None:
    with _serving(ProblemHttpToolsProtocol) as port, socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        for piece in pieces:
            try:
                sock.sendall(piece)
            except ConnectionError:  # refused already, the rest unread
                break
            time.sleep(0.05)  # each piece its own read
        answer = read_until_closed(sock)
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 431 "), head
    assert json.loads(body)["type"] == "urn:billing-hub:problem:headers-too-large"


def test_a_head_just_under_the_limit_is_served_in_one_read_or_several() -> None:
    head = b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\nX-Big: " + b"a" * 60_000 + b"\r\n\r\n"
    for pieces in ([head], _in_pieces(head, 30_000)):
        with _serving(ProblemHttpToolsProtocol) as port, socket.create_connection(("127.0.0.1", port), timeout=5) as s:
            for piece in pieces:
                s.sendall(piece)
                time.sleep(0.05)
            answer = read_until_closed(s)
        assert answer.startswith(b"HTTP/1.1 204 "), answer[:100]


def test_a_client_that_half_closes_after_its_request_still_gets_the_answer(port: int) -> None:
    """uvicorn took the end of the client's side for a disconnect: a whole request ran unanswered.
    The answer now goes out (the app takes 0.2 s), then the server closes: nothing more can come."""
    assert _statuses(_exchange(port, b"GET / HTTP/1.1\r\nHost: a\r\n\r\n", half_close=True)) == [b"204"]


def test_every_whole_request_before_the_half_close_is_answered(port: int) -> None:
    good = b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n\r\n{}"
    assert _statuses(_exchange(port, good + good, half_close=True)) == [b"204", b"204"]


def test_a_half_close_in_the_middle_of_a_body_is_still_a_disconnect(port: int) -> None:
    cut = b'POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\n{"a"'
    assert _exchange(port, cut, half_close=True) == b""
