"""JSON responses shared by the Flask routes (the hot path builds its own bytes)."""

from __future__ import annotations

from typing import Any

import orjson
from flask import Response

JSON = "application/json"


def json_response(body: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(body), status=status, mimetype=JSON)
