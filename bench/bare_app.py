"""The ceilings for `credit_load.py` (POST: decode an event and answer) and
`board_load.py` (GET: answer a small Struct): a bare Litestar app.

Run under the same server settings as the service, e.g.
`uvicorn bare_app:app --app-dir bench --loop uvloop --http httptools --no-access-log`.
"""

import msgspec
from litestar import Litestar, get, post

from points_service.domain.events import Event

event_decoder = msgspec.json.Decoder(Event)


class Ack(msgspec.Struct):
    event_id: str
    informant_id: str
    action: str
    points: int


@post("/bare", status_code=200)
async def bare(body: bytes) -> Ack:
    event = event_decoder.decode(body)
    return Ack(event.event_id, event.informant_id, event.action, 1)


class Hello(msgspec.Struct):
    metric: str
    members: int


@get("/bare")
async def bare_get() -> Hello:
    """The ceiling for `board_load.py`: a GET that answers a small Struct."""
    return Hello("points", 0)


app = Litestar(route_handlers=[bare, bare_get], logging_config=None)
