"""API keys. By default any non-empty key is accepted, so offline runs need none; told the valid keys, the
emulator rejects any other as each service does (Gemini 400 API_KEY_INVALID, Anthropic 401
authentication_error, OpenAI 401 invalid_api_key). No message names or echoes the key."""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable, Collection

from aiohttp import web

from visionbench.emulator.httputil import json_response, new_id

GEMINI_KEY_MESSAGE = "API key not valid. Please pass a valid API key."


def presented_key(request: web.Request) -> str:
    """The key a client sent, in any of the places the three services read it from ('' if none)."""
    auth = request.headers.get("authorization", "")
    bearer = auth[7:].strip() if auth.lower().startswith("bearer ") else ""
    return (
        request.headers.get("x-api-key")
        or request.headers.get("x-goog-api-key")
        or request.query.get("key")
        or bearer
        or ""
    )


def protocol_of(path: str) -> str:
    """Which service a path belongs to: Anthropic's /v1/messages, OpenAI's other /v1/ routes, else Gemini."""
    if path.startswith("/v1/messages"):
        return "anthropic"
    if path.startswith(("/v1/chat/", "/v1/files", "/v1/batches", "/v1/models")) and ":" not in path:
        return "openai"
    return "gemini"


def invalid_key_response(protocol: str, key: str) -> web.Response:
    """The answer each service gives to a key it does not know."""
    if protocol == "anthropic":
        request_id = new_id("req_emu_")
        body = {
            "type": "error",
            "error": {"type": "authentication_error", "message": "invalid x-api-key"},
            "request_id": request_id,
        }
        return json_response(body, status=401, headers={"request-id": request_id})
    if protocol == "openai":
        from visionbench.emulator.openai_api import invalid_api_key

        status, body = invalid_api_key(key)
        return json_response(body, status=status)
    details = [
        {
            "@type": "type.googleapis.com/google.rpc.ErrorInfo",
            "reason": "API_KEY_INVALID",
            "domain": "googleapis.com",
            "metadata": {"service": "generativelanguage.googleapis.com"},
        },
        {"@type": "type.googleapis.com/google.rpc.LocalizedMessage", "locale": "en-US", "message": GEMINI_KEY_MESSAGE},
    ]
    body = {"error": {"code": 400, "message": GEMINI_KEY_MESSAGE, "status": "INVALID_ARGUMENT", "details": details}}
    return json_response(body, status=400)


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def key_check(valid: Collection[str]) -> Callable[[web.Request, Handler], Awaitable[web.StreamResponse]]:
    """Middleware rejecting a present key that is not one of ``valid`` (a missing key is each route's business)."""
    keys = frozenset(valid)

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        key = presented_key(request)
        if key and not any(hmac.compare_digest(key.encode(), k.encode()) for k in keys):
            return invalid_key_response(protocol_of(request.path), key)
        return await handler(request)

    return middleware
