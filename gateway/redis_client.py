"""A redis-py client whose plain commands share one connection and are pipelined automatically.

Why: under load every request of the hub makes one to four Redis calls (rate limit, idempotency,
store). redis-py sends each on a pooled connection and waits for its answer alone: pool checkout,
a timeout context, one write and one read per command — about 0.1 ms of CPU each, half of the
Redis-backed read path (measured with ``bench/profile_hub.py``). redis-py has no automatic
pipelining, so this module adds it under redis-py's own API: :class:`PipelinedRedis` is a
``redis.asyncio.Redis`` whose ``execute_command`` hands the command to :class:`Multiplexer`, which
writes every command issued during one event-loop turn in one ``write`` on one connection and
matches the replies, which Redis sends in order, to the waiting callers (one batch in flight at a time,
so that under load the batches grow instead of the writes). Parsing is hiredis's;
errors are redis-py's exception classes, so ``register_script`` (EVALSHA, then SCRIPT LOAD on
NOSCRIPT), response callbacks and every caller's ``except RedisError`` work unchanged.

Commands that need a connection of their own — blocking pops, WATCH/MULTI/EXEC, pub/sub, SELECT —
and every ``pipeline()`` still go through redis-py's pool. A reply that does not come within
``socket_timeout`` fails every command waiting on that connection with ``TimeoutError`` and drops
the connection (the next command reconnects): a hung Redis costs the callers one timeout, and the
rate limiter's fail-open/fail-closed policy then decides, as before.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
from collections.abc import Iterable, Sequence
from typing import Any, cast

import hiredis
from redis._parsers.base import BaseParser
from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.retry import Retry
from redis.commands.core import AsyncScript
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import InvalidResponse, NoScriptError
from redis.exceptions import TimeoutError as RedisTimeoutError

__all__ = ["Multiplexer", "PipelinedRedis", "pipelined_redis"]

# First words of commands that change or block their connection: never multiplexed.
_OWN_CONNECTION = frozenset(
    {
        "AUTH", "BLMOVE", "BLMPOP", "BLPOP", "BRPOP", "BRPOPLPUSH", "BZMPOP", "BZPOPMAX", "BZPOPMIN",
        "CLIENT", "DISCARD", "EXEC", "HELLO", "MONITOR", "MULTI", "PSUBSCRIBE", "PUNSUBSCRIBE", "QUIT",
        "RESET", "SELECT", "SSUBSCRIBE", "SUBSCRIBE", "SUNSUBSCRIBE", "UNSUBSCRIBE", "UNWATCH", "WAIT",
        "WAITAOF", "WATCH", "XREAD", "XREADGROUP",
    }
)  # fmt: skip
# Whether a command name (as callers spell it) needs its own connection: decided once per spelling.
_NEEDS_OWN: dict[str | bytes, bool] = {}
_NEVER_DECODE = "NEVER_DECODE"
_EMPTY_RESPONSE = "EMPTY_RESPONSE"


def pack(args: tuple[Any, ...]) -> bytes:
    """One command in RESP, packed by hiredis (4x faster than in Python: 9 vs 34 µs for a store
    write's ~50 arguments). As in redis-py, a first argument with spaces is several words
    (``"SCRIPT LOAD"``). Arguments are bytes, str, int or float; anything else is a TypeError."""
    first = args[0]
    if isinstance(first, str) and " " in first:
        args = (*first.split(), *args[1:])
    packed: bytes = hiredis.pack_command(args)
    return packed


class _Wire(asyncio.Protocol):
    """One connection's events, passed on only while it is its multiplexer's current connection: a
    dropped connection's late ``connection_lost`` must not reset the connection that replaced it."""

    def __init__(self, owner: Multiplexer) -> None:
        self.owner = owner
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast("asyncio.Transport", transport)  # uvloop's transports are not asyncio.Transport
        self.owner._attach(self)

    def data_received(self, data: bytes) -> None:
        if self.owner._current is self:
            self.owner._received(data)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.owner._current is self:
            self.owner._lost()


class Multiplexer:
    """One connection, many concurrent callers: commands are written in batches, replies are matched
    in order. Used from one event loop at a time: a call from another loop (a test's next loop)
    drops the old connection and opens a new one."""

    def __init__(self, connection_kwargs: dict[str, Any], timeout_s: float) -> None:
        self._kwargs = connection_kwargs
        self._timeout_s = timeout_s
        self._connect_timeout_s = connection_kwargs.get("socket_connect_timeout") or timeout_s
        self._current: _Wire | None = None  # set as soon as connected (the handshake's way out)
        self._ready = False  # connected and handshaken: callers may send
        self._loop: asyncio.AbstractEventLoop | None = None
        self._connecting: asyncio.Future[None] | None = None
        self._reader = self._new_reader()
        self._waiting: collections.deque[tuple[asyncio.Future[Any], float]] = collections.deque()
        self._unsent: list[bytes] = []  # the tail of _waiting not written yet
        self._flush_scheduled = False
        self._watchdog: asyncio.TimerHandle | None = None

    @staticmethod
    def _new_reader() -> Any:
        return hiredis.Reader(protocolError=InvalidResponse, replyError=BaseParser.parse_error)

    async def call(self, args: tuple[Any, ...]) -> Any:
        loop = asyncio.get_running_loop()
        if not self._ready or self._loop is not loop:
            await self._connect(loop)
        future: asyncio.Future[Any] = loop.create_future()
        self._enqueue(pack(args), future, loop)
        return await future

    def _enqueue(self, packed: bytes, future: asyncio.Future[Any], loop: asyncio.AbstractEventLoop) -> None:
        self._unsent.append(packed)
        self._waiting.append((future, loop.time()))
        # One batch in flight at a time: while one is out, what callers add waits for its replies and
        # then goes out together (data_received). Redis answers a batch in microseconds, and under
        # load this turns many small writes into few large ones: each write on loopback costs a
        # syscall and a wake-up, and at 2-3 commands per write they were 12% of a POST's CPU.
        if not self._flush_scheduled and len(self._waiting) == len(self._unsent):
            self._flush_scheduled = True
            loop.call_soon(self._flush)
        if self._watchdog is None:
            self._watchdog = loop.call_later(self._timeout_s, self._check_overdue)

    def _flush(self) -> None:
        self._flush_scheduled = False
        if self._current is None or self._current.transport is None:  # lost meanwhile: callers already failed
            self._unsent.clear()
            return
        self._current.transport.write(b"".join(self._unsent))
        self._unsent.clear()

    async def _connect(self, loop: asyncio.AbstractEventLoop) -> None:
        if self._loop is not loop:  # a test's new event loop: the old connection belongs to another loop
            self._drop(RedisConnectionError("Redis connection belonged to another event loop"), self._loop)
            if self._watchdog is not None:  # it would fire on the old loop
                self._watchdog.cancel()
                self._watchdog = None
            self._loop, self._connecting = loop, None
        if self._connecting is None or (self._connecting.done() and not self._ready):
            self._connecting = asyncio.ensure_future(self._open(loop))
        await asyncio.shield(self._connecting)

    async def _open(self, loop: asyncio.AbstractEventLoop) -> None:
        kw = self._kwargs
        try:
            async with asyncio.timeout(self._connect_timeout_s):
                if kw.get("path"):
                    await loop.create_unix_connection(lambda: _Wire(self), kw["path"])
                else:
                    await loop.create_connection(lambda: _Wire(self), kw.get("host", "localhost"), kw.get("port", 6379))
        except (OSError, TimeoutError) as exc:
            raise RedisConnectionError(f"cannot connect to Redis: {type(exc).__name__}") from exc
        handshake = []
        if kw.get("password"):
            handshake.append(("AUTH", *((kw["username"],) if kw.get("username") else ()), kw["password"]))
        if kw.get("db"):
            handshake.append(("SELECT", kw["db"]))
        try:
            for command in handshake:
                future: asyncio.Future[Any] = loop.create_future()
                self._enqueue(pack(command), future, loop)
                await future
        except BaseException:
            self._drop(RedisConnectionError("Redis refused the connection's handshake"))
            raise
        if self._current is None:
            raise RedisConnectionError("Redis connection lost during its handshake")
        self._ready = True

    # --- the current connection's events (from _Wire) --------------------------------------------

    def _attach(self, wire: _Wire) -> None:
        self._current = wire
        self._reader = self._new_reader()

    def _received(self, data: bytes) -> None:
        self._reader.feed(data)
        try:
            reply = self._reader.gets()
            while reply is not False:
                future, _ = self._waiting.popleft()
                if not future.done():  # a cancelled caller's reply is read and dropped
                    if isinstance(reply, Exception):
                        future.set_exception(reply)
                    else:
                        future.set_result(reply)
                reply = self._reader.gets()
        except (InvalidResponse, IndexError) as exc:  # garbage or an unasked reply: trust nothing after it
            self._drop(RedisConnectionError(f"Redis protocol error: {type(exc).__name__}"))
            return
        if self._unsent and not self._flush_scheduled and len(self._waiting) == len(self._unsent):
            self._flush()  # the batch in flight is answered: send what queued up behind it

    def _lost(self) -> None:
        self._ready, self._current = False, None
        self._fail_waiting(RedisConnectionError("Redis connection lost"))

    # --- failure ---------------------------------------------------------------------------------

    def _check_overdue(self) -> None:
        self._watchdog = None
        if not self._waiting or self._loop is None:
            return
        overdue_at = self._waiting[0][1] + self._timeout_s
        now = self._loop.time()
        if now >= overdue_at:
            self._drop(RedisTimeoutError("Redis did not answer in time"))
        else:
            self._watchdog = self._loop.call_later(overdue_at - now, self._check_overdue)

    def _drop(self, error: Exception, old_loop: asyncio.AbstractEventLoop | None = None) -> None:
        wire, self._current, self._ready = self._current, None, False
        self._fail_waiting(error)
        if wire is None or wire.transport is None:
            return
        with contextlib.suppress(RuntimeError):  # its event loop is already closed
            if old_loop is None:
                wire.transport.abort()
            else:  # a transport is only touched from its own loop's thread
                old_loop.call_soon_threadsafe(wire.transport.abort)

    def _fail_waiting(self, error: Exception) -> None:
        waiting, self._waiting = self._waiting, collections.deque()
        self._unsent.clear()
        for future, _ in waiting:
            if not future.done():
                future.set_exception(error)

    def close(self) -> None:
        if self._watchdog is not None:
            self._watchdog.cancel()
            self._watchdog = None
        self._drop(RedisConnectionError("Redis client closed"))


class PipelinedRedis(Redis):
    """``redis.asyncio.Redis`` with plain commands multiplexed on one connection (module docstring)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        kw = self.connection_pool.connection_kwargs
        if kw.get("decode_responses"):
            raise ValueError("PipelinedRedis answers bytes: decode_responses is not supported")
        if str(kw.get("protocol")) != "2":  # redis-py 8 would otherwise pick RESP3 replies' callbacks
            raise ValueError("PipelinedRedis speaks RESP2: build its pool with protocol=2")
        timeout = kw.get("socket_timeout") or 5.0
        self.multiplexer = Multiplexer(kw, timeout)

    async def execute_command(self, *args: Any, **options: Any) -> Any:
        name = args[0]
        own = _NEEDS_OWN.get(name)
        if own is None:
            first = (name.decode() if isinstance(name, bytes) else str(name)).split(" ", 1)[0].upper()
            own = _NEEDS_OWN[name] = first in _OWN_CONNECTION
        if own or self.single_connection_client:
            return await super().execute_command(*args, **options)  # type: ignore[no-untyped-call]
        try:
            response = await self.multiplexer.call(args)
        except Exception:
            if _EMPTY_RESPONSE in options:
                return options[_EMPTY_RESPONSE]
            raise
        options.pop(_NEVER_DECODE, None)
        options.pop(_EMPTY_RESPONSE, None)
        options.pop("keys", None)
        callback = self.response_callbacks.get(name)
        if callback is None:
            return response
        result = callback(response, **options)
        return await result if asyncio.iscoroutine(result) else result

    # redis-py's own supertypes disagree on the return type (Script vs AsyncScript): ours is an AsyncScript.
    def register_script(self, script: str | bytes | memoryview) -> MultiplexedScript:  # type: ignore[override]
        return MultiplexedScript(self, bytes(script) if isinstance(script, memoryview) else script)

    async def aclose(self, close_connection_pool: bool | None = None) -> None:
        self.multiplexer.close()
        await super().aclose(close_connection_pool)


class MultiplexedScript(AsyncScript):
    """EVALSHA straight onto the multiplexer (SCRIPT LOAD and again on NOSCRIPT), as redis-py's
    script object does, without its per-call client checks: 4% of a read request's CPU (py-spy)."""

    def __init__(self, client: PipelinedRedis, script: str | bytes) -> None:
        super().__init__(client, script)
        self._multiplexer = client.multiplexer
        self._source = script

    async def __call__(
        self, keys: Sequence[Any] | None = None, args: Iterable[Any] | None = None, client: Any = None
    ) -> Any:
        if client is not None and client is not self.registered_client:
            return await super().__call__(keys, args, client)
        keys = keys or ()
        command = ("EVALSHA", self.sha, len(keys), *keys, *(args or ()))
        try:
            return await self._multiplexer.call(command)
        except NoScriptError:
            await self._multiplexer.call(("SCRIPT", "LOAD", self._source))
            return await self._multiplexer.call(command)


def pipelined_redis(
    url: str, *, timeout_s: float = 1.0, max_connections: int = 50, retry: Retry | None = None
) -> PipelinedRedis:
    """A client for ``url`` (``redis://`` or ``unix://``) with bytes replies; its pool (for the
    commands that need their own connection, retried per ``retry``, redis-py's default when None)
    blocks when full instead of failing. Multiplexed commands are never retried: a caller decides."""
    extra = {} if retry is None else {"retry": retry}
    pool = BlockingConnectionPool.from_url(
        url,
        max_connections=max_connections,
        timeout=10,
        socket_timeout=timeout_s,
        socket_connect_timeout=timeout_s,
        protocol=2,
        **extra,
    )
    return PipelinedRedis(connection_pool=pool)
