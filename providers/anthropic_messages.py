"""``anthropic``: Claude models on the Messages API through the official anthropic SDK (``AsyncAnthropic``).

A request is one user message: the images as base64 image blocks, in order, then the prompt text; the
task's system prompt goes in ``system``; ``max_tokens`` is the request's ``max_output_tokens``.
Model params: ``max_output_tokens``, ``thinking_budget`` (-> ``thinking: {type: enabled, budget_tokens}``)
and ``effort`` (-> ``output_config.effort``). anthropic 2.x has no temperature/top_p/top_k (API version
2026-10-21 rejects them), so those are refused with an explanation, at validate/plan time
(``validate_params``), before anything is sent.
A response schema is sent natively as ``output_config.format`` (json_schema, made strict-compatible by
``anthropic.transform_schema``) or, with ``structured_output: prompt``, as an instruction in the prompt.

The SDK never retries (``max_retries=0``); the framework does. Usage is normalised to the framework's
meaning: ``input_tokens`` = input + cache reads + cache writes (the API's ``input_tokens`` excludes
both), ``cached_tokens`` = cache reads; thinking tokens are ``output_tokens_details.thinking_tokens`` when
the API reports them (then taken out of ``output_tokens``), else ``None``; image tokens are never reported.

Streaming (``stream: true``, a model param or the provider option) uses the SDK's ``messages.stream`` helper
(SSE message_start ... message_stop); the usage is the final message's (message_delta's output tokens). A stream
that ends without message_stop is a transient error (retried), never a half answer.
"""

from __future__ import annotations

import base64
import json
import re
from typing import Any, Literal

from pydantic import BaseModel, Field

from visionbench.errors import BadRequest, ConfigError, Fatal, ProviderError, Transient
from visionbench.hookspecs import hookimpl
from visionbench.provider import Endpoint, Provider, RemoteOptions
from visionbench.secrets import redact
from visionbench.services.limits import capabilities_for, limits_for, thinking_problem
from visionbench.services.tokens import anthropic_image_tokens
from visionbench.toolkit import (
    StreamTimer,
    api_key,
    check_params,
    error_for_status,
    header,
    is_simulated,
    retry_after,
)
from visionbench.types import BatchStatus, Capabilities, Request, Response, Usage

from ._sdk_common import check_images, html_page, html_reply, is_transport_error, mapped, sdk_version, unknown_params

#: The statuses this service means "overloaded" by (``max_concurrency: auto`` backs off): 529 overloaded_error, and
#: 503 from what stands in front of it.
#: What the API is called in errors (an HTML page answering instead of it).
API = "Anthropic"
OVERLOAD = frozenset({529, 503})

PARAMS = ("max_output_tokens", "thinking_budget", "effort", "stream")
NO_SAMPLING = ("temperature", "top_p", "top_k")
MEDIA_TYPES = ("image/jpeg", "image/png", "image/gif", "image/webp")
#: anthropic 2.x refuses non-streaming calls whose max_tokens would take longer than its time limit.
MAX_NON_STREAMING_TOKENS = 21_333


class AnthropicParams(BaseModel):
    """What ``model_params`` may hold for a Claude model (checked at validate/plan time)."""

    max_output_tokens: int | None = Field(None, ge=1, le=MAX_NON_STREAMING_TOKENS)
    #: 0 = off; else at least 1,024 (the API's minimum) and below max_output_tokens.
    thinking_budget: int | None = Field(None, ge=0)
    effort: Literal["low", "medium", "high", "max"] | None = None
    #: Stream the reply (SSE): records get time to first token and output tokens/s.
    stream: bool | None = None


CUSTOM_ID = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
#: Error ``type`` in a batch result -> the HTTP status the same error has on a direct call.
ERROR_TYPE_STATUS = {
    "invalid_request_error": 400,
    "authentication_error": 401,
    "billing_error": 402,
    "permission_error": 403,
    "not_found_error": 404,
    "request_too_large": 413,
    "rate_limit_error": 429,
    "api_error": 500,
    "timeout_error": 504,
    "overloaded_error": 529,
}


def _usage(u: Any) -> Usage | None:
    if u is None:
        return None
    read, write = u.cache_read_input_tokens, u.cache_creation_input_tokens
    details = getattr(u, "output_tokens_details", None)
    thinking = getattr(details, "thinking_tokens", None)
    output = u.output_tokens
    return Usage(
        input_tokens=None if u.input_tokens is None else u.input_tokens + (read or 0) + (write or 0),
        output_tokens=output - thinking if output is not None and thinking is not None else output,
        thinking_tokens=thinking,
        cached_tokens=read,
        image_tokens=None,
    )


def _response(message: Any, headers: Any) -> Response:
    from anthropic.types import Message

    if not isinstance(message, Message) or not isinstance(message.content, list):
        raise Transient(f"anthropic: malformed response body (got {type(message).__name__} without content)")
    return Response(
        text="".join(block.text for block in message.content if block.type == "text"),
        usage=_usage(message.usage),
        model_version=message.model,
        request_id=header(headers, "request-id") or message.id,
        cost_usd=None,
        simulated=is_simulated(headers),
    )


class AnthropicOptions(RemoteOptions):
    """The ``anthropic`` provider's options (the config's ``providers: {anthropic: ...}``)."""

    api_key_env: str = "ANTHROPIC_API_KEY"
    #: The API takes up to 100 images per request (200k-context models).
    max_images_per_request: int = Field(100, ge=1, le=600)
    #: ``native``: output_config.format json_schema; ``prompt``: ask for the JSON in the prompt.
    structured_output: Literal["native", "prompt"] = "native"
    #: Stream every request of this provider (``model_params: {stream: ...}`` wins per cell).
    stream: bool = False


class AnthropicMessages(Provider[AnthropicOptions]):
    """Claude models on the Anthropic Messages API (or any endpoint speaking it, e.g. the local emulator)."""

    name = "anthropic"
    protocols = {"anthropic": ""}

    Options = AnthropicOptions

    def __init__(self, options: AnthropicOptions | None = None, *, endpoint: Endpoint | None = None) -> None:
        super().__init__(options, endpoint=endpoint)
        self._client: Any = None
        self._key: str | None = None

    def validate_params(self, model: str, params: dict[str, Any]) -> None:
        where = f"provider {self.name!r}, model {model!r}"
        sampling = sorted(set(params) & set(NO_SAMPLING))
        if sampling:
            raise ConfigError(
                f"{where}: {', '.join(sampling)} cannot be set: anthropic SDK 2.x (API version 2026-10-21) has no "
                f"temperature/top_p/top_k; remove them from model_params"
            )
        check_params(params, AnthropicParams, self.name, model)
        # The documented thinking rules (at least 1,024, below max_tokens) live in limits.yaml.
        why = thinking_problem("anthropic", model, params.get("thinking_budget"), params.get("max_output_tokens"))
        if why:
            raise ConfigError(f"{where}: {why}")

    def capabilities(self, model: str) -> Capabilities:
        return capabilities_for(
            "anthropic",
            model,
            max_images=self.options.max_images_per_request,
            structured_output=True,
            batch=True,
            thinks_unasked=False,
        )

    async def start(self) -> None:
        self._get_client(at_start=True)

    def estimate_image_tokens(self, model: str, width: int, height: int) -> int | None:
        return anthropic_image_tokens(width, height)

    async def count_tokens(self, request: Request) -> int | None:
        params = self._params(request)
        kwargs = {k: params[k] for k in ("model", "messages", "system", "thinking") if k in params}
        result = await self._call(self._get_client().messages.count_tokens(**kwargs))
        return result.input_tokens

    def _get_client(self, *, at_start: bool = False) -> Any:
        if self._client is None:
            import anthropic

            self._key = (self.endpoint and self.endpoint.api_key) or api_key(
                self.options.api_key_env, self.name, at_start=at_start
            )
            self._client = anthropic.AsyncAnthropic(
                api_key=self._key, base_url=self.base_url(), max_retries=0, timeout=self.options.timeout_s
            )
        return self._client

    def _params(self, request: Request) -> dict[str, Any]:
        import anthropic

        p = dict(request.params)
        sampling = sorted(set(p) & set(NO_SAMPLING))
        if sampling:
            raise BadRequest(
                f"provider {self.name!r}: {', '.join(sampling)} cannot be set: anthropic SDK 2.x (API version "
                f"2026-10-21) has no temperature/top_p/top_k; remove them from model_params"
            )
        unknown_params(p, PARAMS, self.name)
        check_images(request, self.options.max_images_per_request, self.name)
        content: list[dict[str, Any]] = []
        for image in request.images:
            if image.mime_type not in MEDIA_TYPES:
                raise BadRequest(f"image {image.item_id!r}: {image.mime_type} is not one of {', '.join(MEDIA_TYPES)}")
            data = base64.standard_b64encode(image.data).decode("ascii")
            content.append({"type": "image", "source": {"type": "base64", "media_type": image.mime_type, "data": data}})
        prompt = request.prompt
        schema = request.response_schema
        if schema is not None and self.options.structured_output == "prompt":
            prompt += f"\n\nReply with only JSON that matches this JSON Schema, and nothing else:\n{json.dumps(schema)}"
        content.append({"type": "text", "text": prompt})
        try:
            max_tokens = int(p.get("max_output_tokens", request.max_output_tokens))
            budget = int(p.get("thinking_budget") or 0)
        except (TypeError, ValueError) as exc:
            raise BadRequest(
                f"provider {self.name!r}: max_output_tokens and thinking_budget must be integers: {exc}"
            ) from None
        params: dict[str, Any] = {
            "model": request.model,
            "max_tokens": max_tokens,
            "messages": [{"role": "user", "content": content}],
        }
        if request.task.system:
            params["system"] = request.task.system
        if budget:
            params["thinking"] = {"type": "enabled", "budget_tokens": budget}
        output_config: dict[str, Any] = {}
        if "effort" in p:
            output_config["effort"] = p["effort"]
        if schema is not None and self.options.structured_output == "native":
            try:
                output_config["format"] = {"type": "json_schema", "schema": anthropic.transform_schema(schema)}
            except (ValueError, TypeError) as exc:
                raise BadRequest(f"provider {self.name!r}: response schema not usable: {exc}") from None
        if output_config:
            params["output_config"] = output_config
        return params

    async def generate(self, request: Request) -> Response:
        client = self._get_client()
        params = self._params(request)
        stream = request.params.get("stream")
        if self.options.stream if stream is None else stream:
            return await self._call(self._generate_stream(client, params))
        raw = await self._call(client.messages.with_raw_response.create(**params))
        page = await html_page(raw.http_response, API, self.options.base_url)
        if page is not None:
            raise page
        message = await self._call(raw.parse())
        return _response(message, raw.headers)

    async def _generate_stream(self, client: Any, params: dict[str, Any]) -> Response:
        timer = StreamTimer()
        stopped = False
        async with client.messages.stream(**params) as stream:
            page = await html_page(stream.response, API, self.options.base_url)
            if page is not None:
                raise page
            async for event in stream:
                if event.type == "text" and event.text:
                    timer.token()
                elif event.type == "message_stop":
                    stopped = True
            message = await stream.get_final_message() if stopped else None
            headers = stream.response.headers
        timer.done()
        if message is None or message.stop_reason is None:
            raise Transient("anthropic: the stream ended before message_stop (broken midway); nothing kept")
        return timer.stamp(_response(message, headers))

    async def _call(self, awaitable: Any) -> Any:
        return await mapped(awaitable, self._error)

    def _error(self, exc: Exception) -> ProviderError:
        import anthropic

        if isinstance(exc, anthropic.APIStatusError):
            page = html_reply(exc.response, API, self.options.base_url)
            if page is not None:
                return page
            body = exc.body if isinstance(exc.body, dict) else {}
            request_id = exc.request_id or body.get("request_id")
            text = f"anthropic HTTP {exc.status_code} {exc.type or ''}: {exc.api_message or exc.message}"
            text = redact(text + (f" (request-id {request_id})" if request_id else ""))
            return error_for_status(
                exc.status_code, text, retry_after_s=retry_after(exc.response.headers), overload_statuses=OVERLOAD
            )
        text = redact(f"{type(exc).__name__}: {exc}")
        if isinstance(exc, (anthropic.APIResponseValidationError, json.JSONDecodeError)):
            return Transient(f"anthropic: malformed response body ({text})")
        if isinstance(exc, (anthropic.APIConnectionError, ConnectionError, TimeoutError)) or is_transport_error(exc):
            return Transient(f"anthropic: connection failed or timed out ({text})")
        if isinstance(exc, ProviderError):
            return exc
        if isinstance(exc, ValueError):  # the SDK refusing a request before sending it
            return BadRequest(f"anthropic: request refused by the SDK ({text})")
        return Fatal(f"anthropic: unexpected SDK error ({text})")

    # Message Batches: results come back in any order and are matched by custom_id.

    def batch_limits(self, model: str) -> tuple[int | None, int | None]:
        lim = limits_for("anthropic", model)
        return lim.batch_max_requests, lim.batch_max_bytes

    def _batch_entry(self, model: str, key: str, request: Request) -> dict[str, Any]:
        if not CUSTOM_ID.match(key):
            raise BadRequest(f"batch key {key!r} is not a valid custom_id (1-64 of a-z A-Z 0-9 _ -)")
        return {"custom_id": key, "params": {**self._params(request), "model": model}}

    def batch_entry_bytes(self, model: str, custom_id: str, request: Request) -> int:
        return len(json.dumps(self._batch_entry(model, custom_id, request))) + 2  # and the ", " before the next

    async def submit_batch(self, model: str, requests: dict[str, Request]) -> str:
        client = self._get_client()
        entries = [self._batch_entry(model, key, request) for key, request in requests.items()]
        batch = await self._call(client.messages.batches.create(requests=entries))
        return batch.id

    async def poll_batch(self, job_id: str) -> BatchStatus:
        batch = await self._call(self._get_client().messages.batches.retrieve(job_id))
        c = batch.request_counts
        return BatchStatus(
            job_id=job_id,
            state=batch.processing_status,
            done=batch.processing_status == "ended",
            succeeded=c.succeeded,
            failed=c.errored + c.canceled + c.expired,
            total=c.processing + c.succeeded + c.errored + c.canceled + c.expired,
        )

    async def collect_batch(self, job_id: str) -> dict[str, Response | ProviderError]:
        decoder = await self._call(self._get_client().messages.batches.results(job_id))
        headers = decoder.http_response.headers
        out: dict[str, Response | ProviderError] = {}
        try:
            async for entry in decoder:
                result = entry.result
                if result.type == "succeeded":
                    try:
                        out[entry.custom_id] = _response(result.message, headers)
                    except ProviderError as exc:
                        out[entry.custom_id] = exc
                elif result.type == "errored":
                    error = result.error.error
                    status = ERROR_TYPE_STATUS.get(error.type, 500)
                    out[entry.custom_id] = error_for_status(
                        status, f"anthropic batch item {error.type}: {error.message}", overload_statuses=OVERLOAD
                    )
                else:  # canceled, expired: never processed; a later run may send it again
                    out[entry.custom_id] = Transient(f"anthropic batch item {result.type} before processing")
        except Exception as exc:  # noqa: BLE001 - a body cut short or not JSONL
            raise self._error(exc) from None
        return out

    async def cancel_batch(self, job_id: str) -> None:
        await self._call(self._get_client().messages.batches.cancel(job_id))

    def environment(self) -> dict[str, str]:
        return {"sdk": sdk_version("anthropic"), "base_url": self.base_url() or "(SDK default)"}

    async def aclose(self) -> None:
        if self._client is not None:
            client, self._client = self._client, None
            await client.close()


@hookimpl
def register_providers(register):  # noqa: ANN001 - signature fixed by the hookspec
    register(AnthropicMessages)
