"""The lean pipelined Redis connection of the credit path, against the real Redis."""

import asyncio
import contextlib
from collections.abc import AsyncIterator
from urllib.parse import urlsplit

import pytest
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from points_service.adapters.redis_client import connect
from points_service.adapters.redis_pipe import RedisPipe
from points_service.adapters.script_pipeline import ScriptPipeline
from tests.conftest import REDIS_URL, unique
from tests.proxy import Proxy

_PARTS = urlsplit(REDIS_URL)
HOST, PORT = _PARTS.hostname or "127.0.0.1", _PARTS.port or 6379
DB = int(_PARTS.path.strip("/") or 0)


async def test_replies_come_back_to_their_callers_in_order() -> None:
    pipe = RedisPipe(host=HOST, port=PORT, db=DB)
    key = unique("pipe")
    try:
        # Many callers in flight on one socket: each gets its own replies.
        answers = await asyncio.gather(
            *(pipe.execute([("INCR", key), ("ECHO", f"caller-{n}")]) for n in range(200))
        )
        assert [echo for _, echo in answers] == [f"caller-{n}".encode() for n in range(200)]
        assert sorted(count for count, _ in answers) == list(range(1, 201))
        # An error reply is a value in its place; the other replies still arrive.
        ok, wrong, after = await pipe.execute([("GET", key), ("LPUSH", key, "x"), ("PING",)])
        assert (ok, after) == (b"200", b"PONG")
        assert isinstance(wrong, ResponseError) and "WRONGTYPE" in str(wrong)
        await pipe.execute([("DEL", key)])
    finally:
        await pipe.close()


async def test_an_empty_call_answers_at_once_and_the_next_call_is_not_disturbed() -> None:
    """An empty pipeline (a batch whose every item was refused) sends nothing, so it must
    not wait for a reply: it would take the next caller's."""
    client = connect(REDIS_URL)
    scripts = ScriptPipeline(client)
    pipe = RedisPipe(host=HOST, port=PORT, db=DB)
    try:
        script = scripts.register("return ARGV[1]")
        assert await asyncio.wait_for(scripts.call_many([]), 5) == []
        assert await asyncio.wait_for(scripts.call(script, [], ["after"]), 5) == b"after"
        assert await asyncio.wait_for(pipe.execute([]), 5) == []
        assert await asyncio.wait_for(pipe.execute([("ECHO", "next")]), 5) == [b"next"]
    finally:
        await pipe.close()
        await scripts.close()
        await client.aclose()


async def test_it_selects_the_database_of_the_url() -> None:
    client = connect(f"redis://{HOST}:{PORT}/7")
    scripts = ScriptPipeline(client)
    key = unique("db7")
    try:
        assert scripts.ordered
        script = scripts.register("redis.call('SET', KEYS[1], ARGV[1]); return 1")
        assert await scripts.call(script, [key], ["seven"]) == 1
        assert await client.get(key) == b"seven"
        await client.delete(key)
    finally:
        await scripts.close()
        await client.aclose()


async def test_a_lost_connection_fails_its_calls_and_the_next_call_reconnects() -> None:
    proxy = Proxy(HOST, PORT)
    proxy.start()
    pipe = RedisPipe(host="127.0.0.1", port=proxy.port, db=DB)
    try:
        assert await pipe.execute([("PING",)]) == [b"PONG"]
        # BLPOP keeps a call waiting on the wire when the connection goes.
        waiting = asyncio.ensure_future(pipe.execute([("BLPOP", unique("never"), 5)]))
        await asyncio.sleep(0.2)
        proxy.cut()
        with pytest.raises(RedisConnectionError):
            await waiting
        with pytest.raises(RedisConnectionError):
            await pipe.execute([("PING",)])  # nothing listens: refused at connect
        proxy.restore()
        assert await pipe.execute([("PING",)]) == [b"PONG"]
    finally:
        await pipe.close()
        proxy.close()


@contextlib.asynccontextmanager
async def _silent_server() -> AsyncIterator[int]:
    """Accepts connections and never answers."""
    held: list[asyncio.StreamWriter] = []

    async def accept(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)

    server = await asyncio.start_server(accept, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        for writer in held:
            writer.close()
        server.close()
        await server.wait_closed()


async def test_an_unanswered_call_times_out() -> None:
    async with _silent_server() as port:
        pipe = RedisPipe(host="127.0.0.1", port=port, timeout=0.3)
        try:
            started = asyncio.get_running_loop().time()
            with pytest.raises(RedisTimeoutError):
                await pipe.execute([("PING",)])
            assert asyncio.get_running_loop().time() - started < 3
            assert not pipe.connected
        finally:
            await pipe.close()


async def test_scripts_are_loaded_again_after_a_flush() -> None:
    client = connect(REDIS_URL)
    scripts = ScriptPipeline(client)
    key = unique("noscript")
    try:
        script = scripts.register(f"return {{KEYS[1], '{key}'}}")  # never loaded before
        first, second = await asyncio.gather(
            scripts.call(script, ["a"], []), scripts.call(script, ["b"], [])
        )
        assert (first, second) == ([b"a", key.encode()], [b"b", key.encode()])
    finally:
        await scripts.close()
        await client.aclose()


async def test_calls_made_later_wait_for_company_and_keep_their_order() -> None:
    """`call_later` (board increments): the calls go out with the next calls made, in
    one round trip, ahead of them; alone, after the deferral; at once on `flush`."""
    client = connect(REDIS_URL)
    trips: list[bool] = []
    scripts = ScriptPipeline(client, defer_seconds=3600)
    scripts.on_roundtrip = lambda seconds, ok: trips.append(ok)
    key = unique("later")
    try:
        add = scripts.register("return redis.call('INCRBY', KEYS[1], ARGV[1])")
        read = scripts.register("return redis.call('GET', KEYS[1])")
        later = scripts.call_later([(add, [key], [5])])
        await asyncio.sleep(0.05)  # an hour's deferral: nothing has gone out
        assert not later.done() and trips == []
        assert await client.get(key) is None
        # The next call takes it along, in the same write, and is answered after it.
        assert await asyncio.wait_for(scripts.call(read, [key], []), 5) == b"5"
        assert await asyncio.wait_for(later, 5) == [5]
        assert trips == [True]
        # flush sends at once what waits.
        later = scripts.call_later([(add, [key], [2])])
        scripts.flush()
        assert await asyncio.wait_for(later, 5) == [7]
        assert trips == [True, True]
    finally:
        await client.delete(key)
        await scripts.close()
        await client.aclose()
    # Alone, a call goes out when its deferral is up.
    client = connect(REDIS_URL)
    scripts = ScriptPipeline(client, defer_seconds=0.01)
    try:
        add = scripts.register("return redis.call('INCRBY', KEYS[1], ARGV[1])")
        assert await asyncio.wait_for(scripts.call_later([(add, [key], [3])]), 5) == [3]
        assert await client.get(key) == b"3"
    finally:
        await client.delete(key)
        await scripts.close()
        await client.aclose()


async def test_a_script_redis_has_not_loaded_keeps_its_place_in_the_pipeline() -> None:
    """One pipeline, a write by a script Redis does not know (new, or a restarted Redis)
    and then a read by one it knows: the read sees the write. (Refused with NOSCRIPT
    while the read ran, the write would have been sent again after it.)"""
    client = connect(REDIS_URL)
    scripts = ScriptPipeline(client, defer_seconds=3600)
    key = unique("unloaded")
    try:
        add = scripts.register(f"return redis.call('INCRBY', KEYS[1], ARGV[1]) -- {key}")
        read = scripts.register("return redis.call('GET', KEYS[1])")
        await client.script_load(read.text)
        assert await client.script_exists(add.sha, read.sha) == [False, True]
        later = scripts.call_later([(add, [key], [5])])
        assert await asyncio.wait_for(scripts.call(read, [key], []), 5) == b"5"
        assert await asyncio.wait_for(later, 5) == [5]
        assert await client.script_exists(add.sha) == [True]
        # Loaded once per connection: the next pipelines are EVALSHAs alone.
        loads = (await client.info("commandstats"))["cmdstat_script|load"]["calls"]
        assert await asyncio.wait_for(scripts.call(add, [key], [2]), 5) == 7
        assert (await client.info("commandstats"))["cmdstat_script|load"]["calls"] == loads
    finally:
        await client.delete(key)
        await scripts.close()
        await client.aclose()


async def test_a_full_pipeline_goes_out_before_the_turn_ends() -> None:
    """Calls made in one turn go out together at its end, unless `flush_at` requests'
    calls wait: those go out at once, mid-turn, so Redis works on them while the rest
    are made. Every caller still gets its own answer, in the order the calls were made."""
    key = unique("flushat")
    for flush_at, expected_trips in ((4, 3), (1000, 1)):
        client = connect(REDIS_URL)
        trips: list[bool] = []
        scripts = ScriptPipeline(client, flush_at=flush_at)
        try:
            incr = scripts.register("return redis.call('INCR', KEYS[1])")
            await scripts.call(incr, [key], [])  # connected; the first trip, not counted
            scripts.on_roundtrip = lambda seconds, ok, trips=trips: trips.append(ok)
            futures = [scripts.call_many([(incr, [key], [])]) for _ in range(10)]  # one turn
            answers = await asyncio.wait_for(asyncio.gather(*futures), 5)
            assert [a for [a] in answers] == list(range(2, 12))
            assert trips == [True] * expected_trips, f"flush_at={flush_at}: {trips}"
        finally:
            await client.delete(key)
            await scripts.close()
            await client.aclose()
