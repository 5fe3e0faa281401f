"""A tiny HTTP server on 127.0.0.1 that replays scripted replies and records the requests it received.

Used to drive the real provider SDKs over real HTTP without the network::

    async with ReplayServer() as server:
        server.add("POST", "/v1/messages", Reply(200, {"id": "msg_1", ...}, headers={"request-id": "req_1"}))
        ...  # point an SDK at server.url
        assert server.requests[0].json["model"] == "..."

Each route holds a queue of replies: each request takes the next one and the last one repeats.
A reply may be a callable ``(Received) -> Reply`` (to echo the request or build URLs from ``server.url``).
``Reply(drop=True)`` closes the connection without answering (a dropped connection).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import web


@dataclass
class Reply:
    status: int = 200
    #: dict/list are sent as JSON; str/bytes as they are (e.g. a deliberately malformed body).
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    content_type: str = "application/json"
    drop: bool = False


@dataclass
class Received:
    method: str
    path: str
    query: dict[str, str]
    #: Header names lower-cased.
    headers: dict[str, str]
    body: bytes

    @property
    def json(self) -> Any:
        return json.loads(self.body)


ReplySpec = Reply | Callable[[Received], Reply]


class ReplayServer:
    def __init__(self) -> None:
        self.routes: dict[tuple[str, str], list[ReplySpec]] = {}
        self.requests: list[Received] = []
        #: The reply to any request no route names (None: a 599 saying so).
        self.fallback: ReplySpec | None = None
        self._runner: web.AppRunner | None = None
        self.url = ""

    def add(self, method: str, path: str, *replies: ReplySpec) -> None:
        """Queue ``replies`` for ``method path`` (the path without the query string)."""
        self.routes.setdefault((method.upper(), path), []).extend(replies)

    def received(self, path: str | None = None) -> list[Received]:
        return [r for r in self.requests if path is None or r.path == path]

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        got = Received(
            request.method,
            request.path,
            dict(request.query),
            {k.lower(): v for k, v in request.headers.items()},
            await request.read(),
        )
        self.requests.append(got)
        queue = self.routes.get((request.method, request.path)) or ([self.fallback] if self.fallback else None)
        if not queue:
            return web.json_response(
                {"error": f"replay server: no route for {request.method} {request.path}"}, status=599
            )
        spec = queue.pop(0) if len(queue) > 1 else queue[0]
        reply = spec(got) if callable(spec) else spec
        if reply.drop:
            assert request.transport is not None
            request.transport.abort()  # the client sees the connection close before any reply
            return web.Response()  # written nowhere: the transport is gone
        body = reply.body
        if isinstance(body, (dict, list)):
            body = json.dumps(body)
        if isinstance(body, str):
            body = body.encode()
        response = web.Response(status=reply.status, body=body or b"", headers=reply.headers)
        response.content_type = reply.content_type
        return response

    async def __aenter__(self) -> ReplayServer:
        app = web.Application(client_max_size=256 * 1024**2)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        self.url = f"http://127.0.0.1:{port}"
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._runner is not None:
            await self._runner.cleanup()


@pytest.fixture
async def replay():
    """A started ReplayServer (import this fixture into a test module to use it)."""
    async with ReplayServer() as server:
        yield server


# Small builders shared by the provider tests.


def image_bytes(fmt: str = "JPEG", size: tuple[int, int] = (40, 30)) -> bytes:
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", size, (200, 120, 40)).save(buf, format=fmt)
    return buf.getvalue()


def make_request(
    model: str,
    *,
    n_images: int = 1,
    prompt: str = "How many people?",
    system: str | None = None,
    params: dict | None = None,
    schema: dict | None = None,
    max_output_tokens: int = 256,
):
    from visionbench.types import PreparedImage, Request, Task

    images = tuple(
        PreparedImage(f"img{i}.jpg", image_bytes(size=(40 + i, 30)), "image/jpeg", 40 + i, 30) for i in range(n_images)
    )
    task = Task("count-people", "How many people?", "integer", system=system)
    return Request(model, task, prompt, images, dict(params or {}), max_output_tokens, schema)
