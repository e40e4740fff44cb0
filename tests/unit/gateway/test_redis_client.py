"""The pipelined Redis client against the real server (``REDIS_URL``), on asyncio's loop and on
uvloop's (the hub runs on uvloop; their transports differ: ``conftest.py`` gives this module both
loops), plus fake servers on loopback for the failures Redis won't stage.

Never skipped: when Redis does not answer, these fail (the policies conftest's ``require_redis``).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
import redis.exceptions
from redis.asyncio import Redis

from gateway.redis_client import PipelinedRedis, pack, pipelined_redis
from tests.unit.policies.conftest import REDIS_URL, require_redis

pytestmark = pytest.mark.redis

# A Lua loop that keeps Redis busy for a few tens of milliseconds: a reply that is surely still due.
_BUSY_LUA = "local i = 0 while i < tonumber(ARGV[1]) do i = i + 1 end return ARGV[2]"


@pytest.fixture
async def client() -> AsyncIterator[PipelinedRedis]:
    require_redis()
    made = pipelined_redis(REDIS_URL, timeout_s=2.0)
    yield made
    await made.aclose()


@pytest.fixture
def prefix() -> str:
    return f"test:mux:{uuid.uuid4().hex}:"


@pytest.fixture
async def cleanup(prefix: str) -> AsyncIterator[None]:
    yield
    plain = Redis.from_url(REDIS_URL)
    keys = [k async for k in plain.scan_iter(match=f"{prefix}*")]
    if keys:
        await plain.delete(*keys)
    await plain.aclose()


def test_pack_is_resp_and_splits_a_spaced_command_name() -> None:
    assert pack(("SET", "k", b"v\r\n", 7)) == b"*4\r\n$3\r\nSET\r\n$1\r\nk\r\n$3\r\nv\r\n\r\n$1\r\n7\r\n"
    assert pack(("SCRIPT LOAD", "return 1")) == b"*3\r\n$6\r\nSCRIPT\r\n$4\r\nLOAD\r\n$8\r\nreturn 1\r\n"
    with pytest.raises(TypeError):
        pack(("SET", "k", True))


async def test_concurrent_callers_each_get_their_own_reply(client: PipelinedRedis, prefix: str, cleanup: None) -> None:
    n = 500
    await asyncio.gather(*(client.set(f"{prefix}{i}", f"value-{i}") for i in range(n)))
    values = await asyncio.gather(*(client.get(f"{prefix}{i}") for i in range(n)))
    assert values == [f"value-{i}".encode() for i in range(n)]
    # response callbacks still apply: HGETALL is a dict, INCR an int, EXISTS a count
    await client.hset(f"{prefix}h", mapping={"a": "1", "b": "2"})
    assert await client.hgetall(f"{prefix}h") == {b"a": b"1", b"b": b"2"}
    assert await client.incr(f"{prefix}n") == 1
    assert await client.exists(f"{prefix}0", f"{prefix}missing") == 1


async def test_one_connection_serves_concurrent_commands(client: PipelinedRedis) -> None:
    ids = await asyncio.gather(*(client.multiplexer.call(("CLIENT", "ID")) for _ in range(100)))
    assert len(set(ids)) == 1
    # CLIENT itself goes through the pool (it can change a connection's state): another connection
    assert await client.execute_command("CLIENT ID") != ids[0]


async def test_an_error_reply_fails_only_its_caller(client: PipelinedRedis, prefix: str, cleanup: None) -> None:
    await client.set(f"{prefix}s", "text")
    results = await asyncio.gather(
        client.incr(f"{prefix}s"), client.get(f"{prefix}s"), client.incr(f"{prefix}n"), return_exceptions=True
    )
    assert isinstance(results[0], redis.exceptions.ResponseError)
    assert results[1:] == [b"text", 1]


async def test_scripts_are_loaded_again_after_a_script_flush(client: PipelinedRedis) -> None:
    script = client.register_script("return ARGV[1] .. '!'")
    assert await script(args=["a"]) == b"a!"
    await client.script_flush()
    assert await script(args=["b"]) == b"b!"  # NOSCRIPT -> SCRIPT LOAD -> EVALSHA again


async def test_a_cancelled_caller_leaves_the_replies_in_step(
    client: PipelinedRedis, prefix: str, cleanup: None
) -> None:
    busy = client.register_script(_BUSY_LUA)
    await client.set(f"{prefix}k", "after")
    slow = asyncio.ensure_future(busy(args=[2_000_000, "slow"]))
    await asyncio.sleep(0.005)
    slow.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await slow
    # the slow script's reply still arrives first and must not be handed to this caller
    assert await client.get(f"{prefix}k") == b"after"
    assert await busy(args=[10, "x"]) == b"x"


async def test_own_connection_commands_and_pipelines_bypass_the_multiplexer(
    client: PipelinedRedis, prefix: str, cleanup: None
) -> None:
    async with client.pipeline(transaction=True) as pipe:
        await pipe.watch(f"{prefix}w")
        pipe.multi()  # type: ignore[no-untyped-call]
        pipe.set(f"{prefix}w", "1")
        pipe.incr(f"{prefix}w")
        assert await pipe.execute() == [True, 2]
    assert await client.get(f"{prefix}w") == b"2"


async def test_the_database_in_the_url_is_selected(prefix: str) -> None:
    require_redis()
    url = REDIS_URL.rsplit("/", 1)[0] + "/3"
    mux, plain = pipelined_redis(url), Redis.from_url(url)
    try:
        await mux.set(f"{prefix}db", "three")
        assert await plain.get(f"{prefix}db") == b"three"
    finally:
        await plain.delete(f"{prefix}db")
        await mux.aclose()
        await plain.aclose()


def test_decode_responses_is_refused() -> None:
    with pytest.raises(ValueError, match="decode_responses"):
        PipelinedRedis.from_url(REDIS_URL, decode_responses=True, protocol=2)
    with pytest.raises(ValueError, match="RESP2"):
        PipelinedRedis.from_url(REDIS_URL)


async def test_a_new_event_loop_gets_a_new_connection(prefix: str) -> None:
    require_redis()
    made = pipelined_redis(REDIS_URL)
    try:
        await made.set(f"{prefix}loop", "1")

        async def read() -> object:
            return await made.get(f"{prefix}loop")

        def in_another_loop() -> object:
            return asyncio.run(read())

        assert await asyncio.to_thread(in_another_loop) == b"1"
        assert await made.get(f"{prefix}loop") == b"1"  # and back on this loop
    finally:
        await made.delete(f"{prefix}loop")
        await made.aclose()


# --- failures, staged by fake servers on loopback ----------------------------------------------------


@contextlib.asynccontextmanager
async def fake_server(
    on_data: Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]],
) -> AsyncIterator[str]:
    server = await asyncio.start_server(on_data, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        server.close()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(server.wait_closed(), 1)


async def test_a_silent_server_fails_every_waiting_caller_after_the_timeout() -> None:
    async def never_answers(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(1 << 16)
        await asyncio.sleep(5)

    async with fake_server(never_answers) as url:
        made = pipelined_redis(url, timeout_s=0.3)
        started = time.monotonic()
        results = await asyncio.gather(*(made.get(f"k{i}") for i in range(5)), return_exceptions=True)
        elapsed = time.monotonic() - started
        await made.aclose()
    assert all(isinstance(r, redis.exceptions.TimeoutError) for r in results), results
    assert 0.25 <= elapsed < 2.0


async def test_a_dropped_connection_fails_the_callers_and_the_next_call_reconnects() -> None:
    connections = 0

    async def drops_first_then_answers(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        await reader.read(1 << 16)
        if connections == 1:
            writer.close()
            return
        writer.write(b"+PONG\r\n")
        await writer.drain()
        await asyncio.sleep(1)

    async with fake_server(drops_first_then_answers) as url:
        made = pipelined_redis(url, timeout_s=1.0)
        with pytest.raises(redis.exceptions.ConnectionError):
            await made.ping()
        assert await made.ping() is True
        await made.aclose()
    assert connections == 2


async def test_nothing_listening_is_a_connection_error() -> None:
    async with fake_server(lambda r, w: asyncio.sleep(0)) as url:
        pass  # closed again: the port is free and nothing listens on it
    made = pipelined_redis(url, timeout_s=0.5)
    with pytest.raises(redis.exceptions.ConnectionError):
        await made.get("k")
    await made.aclose()
