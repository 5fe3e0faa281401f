"""The OpenAI wire protocol: Chat Completions (plain and streamed); Files and Batches are in ``openai_batches``.

Routes (under ``/v1``, as ``https://api.openai.com/v1``; clients take ``base_url=<emulator>/v1``):
``POST /v1/chat/completions``, ``POST /v1/files`` (multipart, purpose=batch), ``GET /v1/files/{id}``,
``GET /v1/files/{id}/content``, ``POST /v1/batches``, ``GET /v1/batches/{id}``, ``POST /v1/batches/{id}/cancel``.

Images are ``image_url`` content parts holding base64 data URLs (``detail`` low/high/auto sets their tokens by
OpenAI's rules, ``visionbench.services.tokens.openai_image_tokens``). A streamed reply (``stream: true``) is ``data:``
chunks (``chat.completion.chunk``), a last chunk with empty ``choices`` and the usage when
``stream_options.include_usage`` is set, then ``data: [DONE]``. Errors are ``{"error": {"message", "type",
"param", "code"}}``; replies carry ``x-request-id`` and the ``x-ratelimit-*`` headers.
"""

from __future__ import annotations

import math
import time
from typing import Any

from aiohttp import web

from visionbench.emulator.engine import CountRequest, Engine, ImagePart, Outcome, Rejected, body_digest
from visionbench.emulator.httputil import (
    NOTE_HEADER,
    EventStream,
    drop_connection,
    json_response,
    malformed_response,
    new_id,
    paced,
    read_json,
    retry_after_headers,
    text_pieces,
)
from visionbench.emulator.matching import ImageError, decode_base64
from visionbench.emulator.request import forced_tool

#: HTTP status -> the error ``type`` OpenAI sends with it.
ERROR_TYPES = {
    400: "invalid_request_error",
    401: "invalid_request_error",
    403: "invalid_request_error",
    404: "invalid_request_error",
    413: "invalid_request_error",
    429: "requests",
    500: "server_error",
    503: "server_error",
    529: "server_error",
}
SERVER_MESSAGES = {
    500: "The server had an error while processing your request. Sorry about that!",
    503: "The engine is currently overloaded, please try again later.",
}


def error_body(message: str, type_: str, *, param: str | None = None, code: str | None = None) -> dict[str, Any]:
    """The OpenAI error envelope."""
    return {"error": {"message": message, "type": type_, "param": param, "code": code}}


def model_not_found(model: str) -> tuple[int, dict[str, Any]]:
    """(404, body) for a model the service does not serve, word for word as OpenAI answers it."""
    message = f"The model `{model}` does not exist or you do not have access to it."
    return 404, error_body(message, "invalid_request_error", code="model_not_found")


def invalid_api_key(key: str | None) -> tuple[int, dict[str, Any]]:
    """(401, body) for a missing or wrong API key. The service echoes a wrong key's ends; we echo none of it."""
    if not key:
        message = (
            "You didn't provide an API key. You need to provide your API key in an Authorization header using "
            "Bearer auth (i.e. Authorization: Bearer YOUR_KEY)."
        )
        return 401, error_body(message, "invalid_request_error")
    message = "Incorrect API key provided. You can find your API key at https://platform.openai.com/account/api-keys."
    return 401, error_body(message, "invalid_request_error", code="invalid_api_key")


def rate_limited(model: str, quota: str, limit: int, retry_after: float) -> dict[str, Any]:
    """The 429 body for the requests or tokens per minute limit."""
    unit = "requests per min (RPM)" if quota == "requests" else "tokens per min (TPM)"
    wait = f"{math.ceil(retry_after * 1000)}ms" if retry_after < 1 else f"{retry_after:.3g}s"
    message = (
        f"Rate limit reached for {model} in organization org-emulated on {unit}: Limit {limit}. "
        f"Please try again in {wait}. (emulated)"
    )
    return error_body(message, "requests" if quota == "requests" else "tokens", code="rate_limit_exceeded")


def reset_text(seconds: float) -> str:
    """A reset time as OpenAI writes it in x-ratelimit-reset-*: ``120ms``, ``1.5s``, ``6m0s``."""
    if seconds < 1:
        return f"{max(0, math.ceil(seconds * 1000))}ms"
    if seconds < 60:
        return f"{seconds:.3g}s"
    return f"{int(seconds // 60)}m{int(seconds % 60)}s"


def _data_url(url: str, where: str) -> ImagePart:
    if not url.startswith("data:"):
        raise Rejected("invalid", 400, f"{where}: only base64 data URLs are supported by the emulator; send data:...")
    head, _, data = url.partition(",")
    if not head.endswith(";base64"):
        raise Rejected("invalid", 400, f"Invalid image_url in {where}: expected a base64 data URL.")
    mime = head.removeprefix("data:").removesuffix(";base64")
    try:
        return ImagePart(decode_base64(data), mime, b64_bytes=len(data), where=where)
    except ImageError as exc:
        raise Rejected("invalid", 400, f"Invalid image in {where}: {exc}") from None


def parse_request(body: Any, raw: bytes, size: int | None = None) -> CountRequest:
    """A chat.completions body -> CountRequest; raises Rejected(400) for what cannot be served."""
    if not isinstance(body, dict):
        raise Rejected("invalid", 400, "We could not parse the JSON body of your request.")
    for name in ("model", "messages"):
        if name not in body:
            raise Rejected("invalid", 400, f"Missing required parameter: '{name}'.")
    messages = body["messages"]
    if not isinstance(messages, list) or not messages:
        raise Rejected("invalid", 400, "Invalid 'messages': empty array. Expected an array with minimum length 1.")
    texts: list[str] = []
    system: list[str] = []
    images: list[ImagePart] = []
    for m, message in enumerate(messages):
        if not isinstance(message, dict):
            continue
        content = message.get("content")
        parts = [{"type": "text", "text": content}] if isinstance(content, str) else content or []
        into = system if message.get("role") in ("system", "developer") else texts
        for p, part in enumerate(parts):
            if not isinstance(part, dict):
                continue
            if part.get("type") == "text":
                into.append(str(part.get("text", "")))
            elif part.get("type") == "image_url":
                image_url = part.get("image_url") or {}
                url = image_url if isinstance(image_url, str) else str(image_url.get("url", ""))
                image = _data_url(url, f"messages[{m}].content[{p}].image_url")
                if isinstance(image_url, dict):
                    image.media_resolution = image_url.get("detail")
                images.append(image)
    fmt = body.get("response_format") or {}
    schema = (fmt.get("json_schema") or {}).get("schema") if isinstance(fmt, dict) else None
    tool = _forced_tool(body)
    if tool is not None:
        tool, schema = tool
    max_out = body.get("max_completion_tokens", body.get("max_tokens"))
    prompt = "\n".join(texts)
    effort = body.get("reasoning_effort")
    return CountRequest(
        protocol="openai",
        model=str(body["model"]),
        images=images,
        prompt=prompt,
        system=" ".join(system),
        want_json=bool(schema) or tool is not None or fmt.get("type") == "json_object" or "json" in prompt.lower(),
        schema=schema if isinstance(schema, dict) else None,
        max_output_tokens=int(max_out) if max_out is not None else None,
        thinking_budget=0 if effort == "none" else None,
        thinking_level=str(effort).lower() if effort and effort != "none" else None,
        digest=body_digest(raw),
        body_bytes=len(raw) if size is None else size,
        tool=tool,
    )


def _forced_tool(body: dict[str, Any]) -> tuple[str, dict[str, Any]] | None:
    """(name, parameters) of the function ``tool_choice`` forces (``{"type": "function", "function": {"name"}}`` or
    ``"required"``: the first tool); None for ``auto``, ``none`` or no choice (answered as text)."""
    choice = body.get("tool_choice")
    if choice is None or choice in ("auto", "none"):
        return None
    tools: dict[str, dict[str, Any] | None] = {}
    for t in body.get("tools") or []:
        function = t.get("function") if isinstance(t, dict) else None
        if isinstance(function, dict) and "name" in function:
            tools[str(function["name"])] = function.get("parameters")
    name = None
    if isinstance(choice, dict):
        name = str((choice.get("function") or {}).get("name", ""))
    elif choice != "required":
        raise Rejected("invalid", 400, f"Invalid value for 'tool_choice': {choice!r}.")
    try:
        return forced_tool(tools, name)
    except ValueError as exc:
        raise Rejected("invalid", 400, f"Invalid 'tool_choice': {exc}.") from None


def usage_body(out: Outcome) -> dict[str, Any]:
    """Chat Completions usage: completion_tokens include the reasoning tokens."""
    completion = out.output_tokens + out.thinking_tokens
    return {
        "prompt_tokens": out.input_tokens,
        "completion_tokens": completion,
        "total_tokens": out.input_tokens + completion,
        "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": out.thinking_tokens,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    }


def tool_call_id() -> str:
    return new_id("call_emu")


def completion_body(out: Outcome, model: str) -> dict[str, Any]:
    """A chat.completion object: a text reply, or a call of the request's forced tool with the reply as its
    arguments (content null, finish_reason ``tool_calls``)."""
    message: dict[str, Any] = {"role": "assistant", "content": out.text, "refusal": None, "annotations": []}
    finish = "length" if out.truncated else "stop"
    if out.tool is not None:
        function = {"name": out.tool, "arguments": out.text}
        message |= {"content": None, "tool_calls": [{"id": tool_call_id(), "type": "function", "function": function}]}
        finish = "length" if out.truncated else "tool_calls"
    return {
        "id": new_id("chatcmpl-emu"),
        "object": "chat.completion",
        "created": int(time.time()),
        "model": out.model_version or model,
        "choices": [
            {
                "index": 0,
                "message": message,
                "logprobs": None,
                "finish_reason": finish,
            }
        ],
        "usage": usage_body(out),
        "service_tier": "default",
        "system_fingerprint": "fp_emulated",
    }


class OpenAIBase:
    """What every OpenAI route shares: the engine, its headers, authentication and the error envelope."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    # -- headers and errors -------------------------------------------------------------------------------------
    def _headers(self, model: str | None = None) -> dict[str, str]:
        headers = {"x-request-id": new_id("req_emu_"), "openai-processing-ms": "1"}
        if model is not None and model in self.engine.models:
            st = self.engine.models[model]
            limit, remaining, reset = st.rate_headers()
            headers["x-ratelimit-limit-requests"] = str(limit)
            headers["x-ratelimit-remaining-requests"] = str(remaining)
            headers["x-ratelimit-reset-requests"] = reset_text(reset)
            tokens = st.token_headers().get("tokens") or st.token_headers().get("input-tokens")
            if tokens is not None:
                headers["x-ratelimit-limit-tokens"] = str(tokens[0])
                headers["x-ratelimit-remaining-tokens"] = str(tokens[1])
                headers["x-ratelimit-reset-tokens"] = reset_text(tokens[2])
        return headers

    def reply_error(self, status: int, body: dict[str, Any], *, model: str | None = None) -> web.Response:
        return json_response(body, status=status, headers=self._headers(model))

    def rejected(self, exc: Rejected, model: str = "") -> web.Response:
        """The OpenAI answer to an engine refusal."""
        if exc.kind == "not_found":
            status, body = model_not_found(model)
            return self.reply_error(status, body)
        headers = self._headers(model)
        if exc.status == 429:
            st = self.engine.models.get(model)
            rl = st.profile.rate_limit if st is not None else None
            limit = (rl.requests_per_minute if exc.quota == "requests" else rl.input_tokens_per_minute) if rl else None
            body = rate_limited(model, exc.quota, limit or 0, exc.retry_after or 1.0)
            headers.update(retry_after_headers(exc.retry_after or 1.0))
            return json_response(body, status=429, headers=headers)
        status = 503 if exc.status == 529 else exc.status
        message = SERVER_MESSAGES.get(status, exc.message)
        return json_response(
            error_body(message, ERROR_TYPES.get(status, "server_error")), status=status, headers=headers
        )

    @staticmethod
    def api_key(request: web.Request) -> str | None:
        auth = request.headers.get("authorization", "")
        return auth[7:].strip() or None if auth.lower().startswith("bearer ") else None

    def _unauthorised(self, request: web.Request) -> web.Response | None:
        if self.api_key(request) is None:
            status, body = invalid_api_key(None)
            return self.reply_error(status, body)
        return None


class OpenAIRoutes(OpenAIBase):
    """``POST /v1/chat/completions``, plain and streamed."""

    def register(self, app: web.Application) -> None:
        app.router.add_post("/v1/chat/completions", self.chat)

    # -- chat completions ---------------------------------------------------------------------------------------
    async def chat(self, request: web.Request) -> web.StreamResponse:
        if (bad := self._unauthorised(request)) is not None:
            return bad
        try:
            body, raw = await read_json(request)
        except ValueError:
            return self.reply_error(
                400, error_body("We could not parse the JSON body of your request.", "invalid_request_error")
            )
        model = str(body.get("model", "")) if isinstance(body, dict) else ""
        stream = isinstance(body, dict) and body.get("stream") is True
        try:
            if model:
                self.engine.state(model, "openai")  # 404 before parsing
            req = parse_request(body, raw)
            out = await self.engine.serve(req, stream=stream)
        except Rejected as exc:
            return self.rejected(exc, model)
        if stream:
            include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
            try:
                return await self._stream(request, out, model, include_usage)
            finally:
                if out.release is not None:
                    out.release()
        if out.fault == "drop_connection":
            return drop_connection(request)
        headers = self._headers(model)
        if out.notes:
            headers[NOTE_HEADER] = "; ".join(out.notes)
        if out.fault == "malformed_body":
            return malformed_response(headers)
        return json_response(completion_body(out, model), headers=headers)

    async def _stream(self, request: web.Request, out: Outcome, model: str, include_usage: bool) -> web.StreamResponse:
        headers = self._headers(model)
        if out.notes:
            headers[NOTE_HEADER] = "; ".join(out.notes)
        full = completion_body(out, model)
        base = {"id": full["id"], "object": "chat.completion.chunk", "created": full["created"], "model": full["model"]}
        base |= {"service_tier": "default", "system_fingerprint": "fp_emulated"}
        sse = EventStream(request, headers, out.fault)

        def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
            choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
            return {**base, "choices": [choice], **({"usage": None} if include_usage else {})}

        try:
            await sse.open()
            calls = full["choices"][0]["message"].get("tool_calls")
            if calls:  # the call's id, type and name first, then its arguments in pieces
                head = {**calls[0], "index": 0, "function": {"name": out.tool, "arguments": ""}}
                await sse.send(chunk({"role": "assistant", "content": None, "refusal": None, "tool_calls": [head]}))
            else:
                await sse.send(chunk({"role": "assistant", "content": "", "refusal": None}))
            pieces = text_pieces(out.text)
            async for i, piece in paced(pieces, out.stream_s, self.engine.clock):
                if i == len(pieces) // 2 and await sse.maybe_break():
                    return sse.response
                delta = (
                    {"tool_calls": [{"index": 0, "function": {"arguments": piece}}]} if calls else {"content": piece}
                )
                await sse.send(chunk(delta))
            await sse.send(chunk({}, full["choices"][0]["finish_reason"]))
            if include_usage:
                await sse.send({**base, "choices": [], "usage": full["usage"]})
            await sse.send("[DONE]")
        except ConnectionError:
            return sse.response
        return await sse.close()
