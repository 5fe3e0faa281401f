"""Small HTTP helpers shared by the protocol routes."""

from __future__ import annotations

import json
import math
import secrets
from typing import Any

from aiohttp import web

NOTE_HEADER = "x-visionbench-note"
#: A 200 body that claims to be JSON but is not (the malformed_body fault).
MALFORMED_BODY = b'{"candidates": [{"content": {"parts": [{"text": "4'


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    """A JSON response (content-type application/json; charset=UTF-8, like the real services)."""
    return web.Response(
        body=json.dumps(body).encode(), status=status, headers=headers, content_type="application/json", charset="UTF-8"
    )


def malformed_response(headers: dict[str, str] | None = None) -> web.Response:
    """HTTP 200, content-type application/json, body that is not JSON."""
    return web.Response(body=MALFORMED_BODY, status=200, headers=headers, content_type="application/json")


def drop_connection(request: web.Request) -> web.Response:
    """Close the connection without answering (the client sees a disconnect)."""
    if request.transport is not None:
        request.transport.close()
    return web.Response(status=204)


def retry_after_headers(seconds: float) -> dict[str, str]:
    """``retry-after`` in whole seconds (as HTTP requires) plus a precise ``retry-after-ms``."""
    return {"retry-after": str(max(1, math.ceil(seconds))), "retry-after-ms": str(max(1, math.ceil(seconds * 1000)))}


def new_id(prefix: str, nbytes: int = 12) -> str:
    return prefix + secrets.token_hex(nbytes)


async def read_json(request: web.Request) -> tuple[Any, bytes]:
    """The parsed body and its raw bytes; raises ValueError when it is not JSON."""
    raw = await request.read()
    try:
        return json.loads(raw or b"{}"), raw
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"request body is not valid JSON: {exc}") from None


def pick(d: Any, *names: str, default: Any = None) -> Any:
    """The first present key among ``names`` (the SDKs mix camelCase and snake_case)."""
    if isinstance(d, dict):
        for name in names:
            if name in d and d[name] is not None:
                return d[name]
    return default
