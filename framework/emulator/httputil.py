"""Small HTTP helpers shared by the protocol routes."""

from __future__ import annotations

import json
import math
import secrets
from typing import Any

from aiohttp import web

from visionbench.clock import REAL_CLOCK, Clock

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


def text_pieces(text: str, size: int = 4) -> list[str]:
    """``text`` in pieces of about one token (``size`` characters), as a model streams it; at least one piece."""
    return [text[i : i + size] for i in range(0, len(text), size)] or [""]


class EventStream:
    """A ``text/event-stream`` reply written event by event (the services' SSE framing).

    ``fault`` (from the engine's draw) breaks the stream midway, as a real connection or service can: after
    half the events, ``drop_connection`` closes the connection and ``malformed_body`` writes a line that is not
    JSON and ends. Either way the client never sees the stream's proper end.
    """

    def __init__(self, request: web.Request, headers: dict[str, str] | None = None, fault: str | None = None) -> None:
        self.request, self.fault = request, fault
        self.response = web.StreamResponse(status=200, headers=headers)
        self.response.content_type = "text/event-stream"
        self.response.headers["cache-control"] = "no-cache"
        self.sent = 0
        self.broken = False

    async def open(self) -> None:
        await self.response.prepare(self.request)

    async def send(self, data: Any, event: str | None = None) -> None:
        """One event: ``event: NAME`` (when named) and ``data: JSON`` (a str is sent as it is)."""
        if self.broken:
            return
        text = data if isinstance(data, str) else json.dumps(data, separators=(",", ":"))
        frame = (f"event: {event}\n" if event else "") + f"data: {text}\n\n"
        await self.response.write(frame.encode())
        self.sent += 1

    async def maybe_break(self) -> bool:
        """Break the stream here if a fault says so; True when broken (send nothing more)."""
        if self.fault not in ("drop_connection", "malformed_body") or self.broken:
            return self.broken
        self.broken = True
        if self.fault == "malformed_body":
            await self.response.write(b'data: {"choices": [{"delta": {"content": "4\n\n')
            await self.response.write_eof()
        elif self.request.transport is not None:
            self.request.transport.close()
        return True

    async def close(self) -> web.StreamResponse:
        if not self.broken:
            await self.response.write_eof()
        return self.response


async def paced(pieces: list[str], total_s: float, clock: Clock = REAL_CLOCK) -> Any:
    """Yield (index, piece): the first at once (the first token), one every ``total_s / len(pieces)`` seconds of
    ``clock`` after it, and return ``total_s`` after the first: the model's output rate."""
    gap = total_s / len(pieces) if pieces else 0.0
    for i, piece in enumerate(pieces):
        yield i, piece
        if gap > 0:
            await clock.sleep(gap)
