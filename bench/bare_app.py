"""The ceiling for `credit_load.py`: a bare Litestar app that decodes an event and answers.

Run under the same server settings as the service, e.g.
`uvicorn bare_app:app --app-dir bench --loop uvloop --http httptools --no-access-log`.
"""

import msgspec
from litestar import Litestar, post

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


app = Litestar(route_handlers=[bare], logging_config=None)
