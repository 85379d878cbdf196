"""An import string for ASGI servers: `points_service.http.asgi:app_factory` (factory)."""

import os

from litestar import Litestar

from points_service.http.app import create_app
from points_service.settings import load_settings


def app_factory() -> Litestar:
    return create_app(load_settings(os.environ))
