"""The Anthropic Messages wire protocol: messages (plain and streamed), count_tokens and Message Batches.

A streamed reply (``stream: true``) is the service's SSE sequence: message_start, content_block_start, ping,
content_block_delta..., content_block_stop (a thinking block first when the request enables thinking),
message_delta (stop reason and the output usage), message_stop.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

from aiohttp import web

from visionbench.emulator.batches import BatchJob, BatchStore, rfc3339
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
from visionbench.services.limits import limits_for

ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    503: "api_error",
    529: "overloaded_error",
}


#: The API version (sent by anthropic 2.x) that rejects temperature, top_p and top_k.
STRICT_VERSION = "2026-10-21"


def error_object(status: int, message: str) -> dict[str, str]:
    return {"type": ERROR_TYPES.get(status, "api_error"), "message": message}


def parse_request(body: Any, raw: bytes, version: str = "") -> CountRequest:
    """A messages body -> CountRequest; raises Rejected(400) for what cannot be served.

    ``version`` is the anthropic-version header: from 2026-10-21 on, sampling parameters are rejected.
    """
    strict = version >= STRICT_VERSION
    if not isinstance(body, dict):
        raise Rejected("invalid", 400, "request body must be a JSON object")
    for name in ("model", "max_tokens", "messages"):
        if name not in body:
            raise Rejected("invalid", 400, f"{name}: Field required")
    messages = body["messages"]
    if not isinstance(messages, list) or not messages:
        raise Rejected("invalid", 400, "messages: at least one message is required")
    texts: list[str] = []
    images: list[ImagePart] = []
    for m, message in enumerate(messages):
        content = message.get("content") if isinstance(message, dict) else None
        blocks = [{"type": "text", "text": content}] if isinstance(content, str) else content or []
        for b, block in enumerate(blocks):
            if not isinstance(block, dict):
                continue
            if block.get("type") == "text":
                texts.append(str(block.get("text", "")))
            elif block.get("type") == "image":
                source = block.get("source") or {}
                if source.get("type") != "base64":
                    raise Rejected(
                        "invalid",
                        400,
                        f"image source type {source.get('type')!r} is not supported by the emulator; send base64",
                    )
                text = str(source.get("data", ""))
                where = f"messages.{m}.content.{b}.image.source.base64"
                try:
                    mime = str(source.get("media_type", ""))
                    images.append(ImagePart(decode_base64(text), mime, b64_bytes=len(text), where=where))
                except ImageError as exc:
                    raise Rejected("invalid", 400, f"messages: {exc}") from None
    system = body.get("system") or ""
    if isinstance(system, list):
        system = " ".join(str(b.get("text", "")) for b in system if isinstance(b, dict))
    fmt = (body.get("output_config") or {}).get("format") or body.get("output_format") or {}
    schema = fmt.get("schema") if isinstance(fmt, dict) else None
    tool = _forced_tool(body)
    if tool is not None:
        tool, schema = tool
    thinking = body.get("thinking") or {}
    # Claude thinks only when asked: no thinking block (or "disabled") is a budget of 0; "adaptive" lets the
    # profile decide.
    budget: int | None = 0
    if thinking.get("type") == "enabled" and thinking.get("budget_tokens") is not None:
        budget = int(thinking["budget_tokens"])
    elif thinking.get("type") == "adaptive":
        budget = None
    prompt = "\n".join(texts)
    effort = (body.get("output_config") or {}).get("effort")
    return CountRequest(
        protocol="anthropic",
        model=str(body["model"]),
        images=images,
        prompt=prompt,
        system=str(system),
        want_json=bool(schema) or tool is not None or "json" in prompt.lower(),
        schema=schema if isinstance(schema, dict) else None,
        tool=tool,
        max_output_tokens=int(body["max_tokens"]),
        thinking_budget=budget,
        thinking_level=str(effort).lower() if effort else None,
        digest=body_digest(raw),
        body_bytes=len(raw),
        params=frozenset(k for k in ("temperature", "top_p", "top_k") if k in body) if strict else frozenset(),
    )


def _forced_tool(body: dict[str, Any]) -> tuple[str, dict[str, Any]] | None:
    """(name, input_schema) of the tool ``tool_choice`` forces (``{"type": "tool", "name"}``, or ``{"type": "any"}``:
    the first tool); None for ``auto``, ``none`` or no choice (answered as text)."""
    choice = body.get("tool_choice")
    kind = choice.get("type") if isinstance(choice, dict) else None
    if kind not in ("tool", "any"):
        if choice is not None and kind not in ("auto", "none"):
            raise Rejected("invalid", 400, "tool_choice: Input tag does not match any of the expected tags")
        return None
    if (body.get("thinking") or {}).get("type") in ("enabled", "adaptive"):
        raise Rejected("invalid", 400, "Thinking may not be enabled when tool_choice forces tool use.")
    tools = {
        str(t["name"]): t.get("input_schema") for t in body.get("tools") or [] if isinstance(t, dict) and "name" in t
    }
    try:
        return forced_tool(tools, str(choice.get("name", "")) if kind == "tool" else None)
    except ValueError as exc:
        raise Rejected("invalid", 400, f"tool_choice: {exc}") from None


def _tool_input(text: str) -> dict[str, Any]:
    """A tool call's input object from the reply's JSON ({} when truncated out of shape)."""
    try:
        value = json.loads(text)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def message_body(out: Outcome, model: str, *, with_thinking: bool = False) -> dict[str, Any]:
    """A Message like the recorded cassettes: a text block, or a ``tool_use`` block calling the request's forced
    tool with the reply as its input (stop_reason ``tool_use``)."""
    content: list[dict[str, Any]] = []
    if with_thinking and out.thinking_tokens:
        content.append({"type": "thinking", "thinking": "Looking at the image.", "signature": "emulated"})
    if out.tool is not None:
        call = {"type": "tool_use", "id": new_id("toolu_emu_"), "name": out.tool, "input": _tool_input(out.text)}
        content.append(call)
    else:
        content.append({"type": "text", "text": out.text})
    return {
        "id": new_id("msg_emu_"),
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": "max_tokens" if out.truncated else "tool_use" if out.tool is not None else "end_turn",
        "stop_sequence": None,
        "usage": {
            "input_tokens": out.input_tokens,
            "output_tokens": out.output_tokens + out.thinking_tokens,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 0,
            "service_tier": "standard",
        },
    }


class AnthropicRoutes:
    """Route handlers bound to an engine and a batch store."""

    def __init__(self, engine: Engine, store: BatchStore) -> None:
        self.engine, self.store = engine, store

    def register(self, app: web.Application) -> None:
        app.router.add_post("/v1/messages", self.messages)
        app.router.add_post("/v1/messages/count_tokens", self.count_tokens)
        app.router.add_post("/v1/messages/batches", self.batch_create)
        app.router.add_get("/v1/messages/batches", self.batch_list)
        app.router.add_get("/v1/messages/batches/{id}", self.batch_get)
        app.router.add_post("/v1/messages/batches/{id}/cancel", self.batch_cancel)
        app.router.add_get("/v1/messages/batches/{id}/results", self.batch_results)

    def _headers(self, model: str | None = None, request_id: str | None = None) -> dict[str, str]:
        headers = {"request-id": request_id or new_id("req_emu_")}
        if model is not None and model in self.engine.models:
            st = self.engine.models[model]
            for kind, (limit, remaining, reset) in {"requests": st.rate_headers(), **st.token_headers()}.items():
                reset_at = datetime.now(UTC) + timedelta(seconds=reset)
                headers[f"anthropic-ratelimit-{kind}-limit"] = str(limit)
                headers[f"anthropic-ratelimit-{kind}-remaining"] = str(remaining)
                headers[f"anthropic-ratelimit-{kind}-reset"] = rfc3339(reset_at.replace(microsecond=0)) or ""
        return headers

    def error(
        self, status: int, message: str, *, model: str | None = None, retry_after: float | None = None
    ) -> web.Response:
        headers = self._headers(model)
        if retry_after is not None:
            headers.update(retry_after_headers(retry_after))
        body = {"type": "error", "error": error_object(status, message), "request_id": headers["request-id"]}
        return json_response(body, status=status, headers=headers)

    @staticmethod
    def _authorised(request: web.Request) -> bool:
        auth = request.headers.get("authorization", "")
        return bool(request.headers.get("x-api-key") or (auth.lower().startswith("bearer ") and auth[7:].strip()))

    async def _guard(self, request: web.Request) -> tuple[Any, bytes] | web.Response:
        if not self._authorised(request):
            return self.error(401, "x-api-key header is required")
        try:
            return await read_json(request)
        except ValueError as exc:
            return self.error(400, str(exc))

    async def messages(self, request: web.Request) -> web.StreamResponse:
        got = await self._guard(request)
        if isinstance(got, web.Response):
            return got
        body, raw = got
        model = str(body.get("model", "")) if isinstance(body, dict) else ""
        stream = isinstance(body, dict) and body.get("stream") is True
        try:
            req = parse_request(body, raw, request.headers.get("anthropic-version", ""))
            out = await self.engine.serve(req, stream=stream)
        except Rejected as exc:
            return self.error(exc.status, exc.message, model=model, retry_after=exc.retry_after)
        with_thinking = (body.get("thinking") or {}).get("type") in ("enabled", "adaptive")
        if stream:
            try:
                return await self._stream(request, out, model, with_thinking)
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
        return json_response(message_body(out, model, with_thinking=with_thinking), headers=headers)

    async def _stream(self, request: web.Request, out: Outcome, model: str, with_thinking: bool) -> web.StreamResponse:
        """The reply as the service streams it; a fault breaks it midway (no message_stop)."""
        headers = self._headers(model)
        if out.notes:
            headers[NOTE_HEADER] = "; ".join(out.notes)
        message = message_body(out, model, with_thinking=with_thinking)
        final_usage = dict(message["usage"])
        start = {**message, "content": [], "stop_reason": None, "usage": {**final_usage, "output_tokens": 1}}
        sse = EventStream(request, headers, out.fault)
        try:
            await sse.open()
            await sse.send({"type": "message_start", "message": start}, "message_start")
            index = 0
            for block in message["content"]:
                if block["type"] == "thinking":
                    empty = {"type": "thinking", "thinking": "", "signature": ""}
                    await sse.send(
                        {"type": "content_block_start", "index": index, "content_block": empty}, "content_block_start"
                    )
                    delta = {"type": "thinking_delta", "thinking": block["thinking"]}
                    await sse.send(
                        {"type": "content_block_delta", "index": index, "delta": delta}, "content_block_delta"
                    )
                    delta = {"type": "signature_delta", "signature": block["signature"]}
                    await sse.send(
                        {"type": "content_block_delta", "index": index, "delta": delta}, "content_block_delta"
                    )
                    await sse.send({"type": "content_block_stop", "index": index}, "content_block_stop")
                    index += 1
                    continue
                tool = block["type"] == "tool_use"
                empty = {**block, "input": {}} if tool else {"type": "text", "text": ""}
                await sse.send(
                    {"type": "content_block_start", "index": index, "content_block": empty}, "content_block_start"
                )
                await sse.send({"type": "ping"}, "ping")
                pieces = text_pieces(out.text if tool else block["text"])
                async for i, piece in paced(pieces, out.stream_s, self.engine.clock):
                    if i == len(pieces) // 2 and await sse.maybe_break():
                        return sse.response
                    delta = (
                        {"type": "input_json_delta", "partial_json": piece}
                        if tool
                        else {"type": "text_delta", "text": piece}
                    )
                    await sse.send(
                        {"type": "content_block_delta", "index": index, "delta": delta}, "content_block_delta"
                    )
                await sse.send({"type": "content_block_stop", "index": index}, "content_block_stop")
                index += 1
            stop = {"stop_reason": message["stop_reason"], "stop_sequence": None}
            usage = {
                k: final_usage[k]
                for k in ("input_tokens", "cache_creation_input_tokens", "cache_read_input_tokens", "output_tokens")
            }
            await sse.send({"type": "message_delta", "delta": stop, "usage": usage}, "message_delta")
            await sse.send({"type": "message_stop"}, "message_stop")
        except (ConnectionResetError, ConnectionError):
            return sse.response
        return await sse.close()

    async def count_tokens(self, request: web.Request) -> web.StreamResponse:
        got = await self._guard(request)
        if isinstance(got, web.Response):
            return got
        body, raw = got
        try:
            image, text = await self.engine.count_tokens(parse_request({"max_tokens": 1, **body}, raw))
        except Rejected as exc:
            return self.error(exc.status, exc.message)
        return json_response({"input_tokens": image + text}, headers=self._headers())

    async def batch_create(self, request: web.Request) -> web.StreamResponse:
        lim = limits_for("anthropic", "")
        got = await self._guard(request)
        if isinstance(got, web.Response):
            return got
        body, raw = got
        entries = body.get("requests") if isinstance(body, dict) else None
        if not isinstance(entries, list) or not entries:
            return self.error(400, "requests: a non-empty list is required")
        if lim.batch_max_bytes is not None and len(raw) > lim.batch_max_bytes:
            return self.error(
                413, f"Message batch of {len(raw)} bytes exceeds the maximum of {lim.batch_max_bytes} bytes."
            )
        if lim.batch_max_requests is not None and len(entries) > lim.batch_max_requests:
            message = f"requests: a Message Batch holds at most {lim.batch_max_requests} requests, not {len(entries)}"
            return self.error(400, message)
        items: list[tuple[str, CountRequest | Rejected]] = []
        for i, entry in enumerate(entries):
            params = entry.get("params") if isinstance(entry, dict) else None
            custom_id = str(entry.get("custom_id", i)) if isinstance(entry, dict) else str(i)
            try:
                version = request.headers.get("anthropic-version", "")
                items.append((custom_id, parse_request(params, json.dumps(params, sort_keys=True).encode(), version)))
            except Rejected as exc:
                items.append((custom_id, exc))
        model = next((it.model for _, it in items if isinstance(it, CountRequest)), "")
        try:
            job = self.store.submit("anthropic", model, items, prefix="msgbatch_emu_", submitted_bytes=len(raw))
        except Rejected as exc:
            return self.error(exc.status, exc.message)
        return json_response(self.batch_object(job, request), headers=self._headers())

    def _find(self, request: web.Request) -> BatchJob | None:
        job = self.store.get(request.match_info["id"])
        return job if job is not None and job.protocol == "anthropic" else None

    async def batch_list(self, request: web.Request) -> web.StreamResponse:
        if not self._authorised(request):
            return self.error(401, "x-api-key header is required")
        data = [self.batch_object(j, request) for j in self.store.jobs.values() if j.protocol == "anthropic"]
        data.reverse()
        return json_response(
            {
                "data": data,
                "has_more": False,
                "first_id": data[0]["id"] if data else None,
                "last_id": data[-1]["id"] if data else None,
            },
            headers=self._headers(),
        )

    async def batch_get(self, request: web.Request) -> web.StreamResponse:
        if not self._authorised(request):
            return self.error(401, "x-api-key header is required")
        job = self._find(request)
        if job is None:
            return self.error(404, f"message batch {request.match_info['id']!r} not found")
        return json_response(self.batch_object(job, request), headers=self._headers())

    async def batch_cancel(self, request: web.Request) -> web.StreamResponse:
        if not self._authorised(request):
            return self.error(401, "x-api-key header is required")
        job = self._find(request)
        if job is None:
            return self.error(404, f"message batch {request.match_info['id']!r} not found")
        cancelled_now = job.cancel()
        return json_response(self.batch_object(job, request, canceling=cancelled_now), headers=self._headers())

    async def batch_results(self, request: web.Request) -> web.StreamResponse:
        if not self._authorised(request):
            return self.error(401, "x-api-key header is required")
        job = self._find(request)
        if job is None or job.phase not in ("succeeded", "cancelled"):
            return self.error(404, "message batch results are not available until processing has ended")
        lines = []
        for i, (key, _) in enumerate(job.items):
            lines.append(json.dumps({"custom_id": key, "result": self._result(job, i)}))
        body = ("\n".join(reversed(lines)) + "\n").encode()  # any order is allowed; do not promise input order
        return web.Response(body=body, content_type="application/binary", headers=self._headers())

    def _result(self, job: BatchJob, i: int) -> dict[str, Any]:
        if job.phase != "succeeded" or job.results is None:
            return {"type": "canceled"}
        result = job.results[i]
        if result.outcome is not None:
            item = job.items[i][1]
            model = item.model if isinstance(item, CountRequest) else job.model
            return {"type": "succeeded", "message": message_body(result.outcome, model)}
        err = result.error
        status = err.status if err is not None else 500
        return {
            "type": "errored",
            "error": {
                "type": "error",
                "error": error_object(status, err.message if err is not None else "internal error"),
            },
        }

    def batch_object(self, job: BatchJob, request: web.Request, *, canceling: bool = False) -> dict[str, Any]:
        """The MessageBatch JSON; results_url is absolute, pointing at this server."""
        phase, counts = job.phase, job.counts()
        ended = phase in ("succeeded", "cancelled") and not canceling
        return {
            "id": job.id,
            "type": "message_batch",
            "processing_status": "canceling" if canceling else ("ended" if ended else "in_progress"),
            "request_counts": {**counts, "expired": 0}
            if not canceling
            else {"processing": len(job.items), "succeeded": 0, "errored": 0, "canceled": 0, "expired": 0},
            "created_at": rfc3339(job.created),
            "ended_at": rfc3339(job.ended) if ended else None,
            "expires_at": rfc3339(job.expires),
            "archived_at": None,
            "cancel_initiated_at": rfc3339(job.cancelled),
            "results_url": f"{request.scheme}://{request.host}/v1/messages/batches/{job.id}/results" if ended else None,
        }
