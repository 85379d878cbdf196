"""The Redis client: one node (or the embedded server), or a Redis Cluster.

Every key the service writes carries a hash tag, and every script call touches one slot
(the informant's, or one board's), so the same adapters run on both; on a cluster they
send one informant or one board per script call.

Commands are queued on pipelines through `queued(...)`: the cluster pipeline queues a
multi-key command (UNLINK) through a coroutine that must be awaited, while awaiting the
pipeline itself would execute it early.
"""

import contextlib
import inspect
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster
from redis.exceptions import RedisError
from redis.maint_notifications import MaintNotificationsConfig

RedisClient = Redis | RedisCluster


def connect(url: str, *, cluster: bool = False) -> Any:
    """A client for `url`; `cluster` starts from one node and discovers the rest."""
    if cluster:
        return RedisCluster.from_url(
            url, max_connections=256, socket_timeout=5, socket_connect_timeout=2
        )
    # Maintenance notifications (a Redis Cloud feature, "auto" by default) make the pool
    # skip its check of a connection it hands out: after Redis went away and came back,
    # each idle pooled connection failed its next command (a 503) instead of reconnecting.
    return Redis.from_url(
        url,
        max_connections=256,
        socket_timeout=5,
        socket_connect_timeout=2,
        maint_notifications_config=MaintNotificationsConfig(enabled=False),
    )


async def map_cluster(client: RedisCluster) -> None:
    """Learn a cluster's slots now, before requests share the client. redis-py marks
    every connection for reconnect when it maps the slots, and a request connecting at
    that moment had its connection closed under it (a 500 on a service's first batch,
    about one start in five in the tests). A cluster that does not answer yet is mapped
    on first use, as before."""
    with contextlib.suppress(RedisError, OSError):
        await client.initialize()


async def queued(command: Any) -> None:
    """Queue a command on a pipeline, one node's or a cluster's."""
    if inspect.iscoroutine(command):
        await command
