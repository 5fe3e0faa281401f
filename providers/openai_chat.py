"""``openai``: OpenAI Chat Completions through the official openai SDK (``AsyncOpenAI``), or any server speaking it.

vLLM, SGLang, Ollama, LM Studio, OpenRouter, Together and most gateways speak Chat Completions: point ``base_url`` at
them (``http://localhost:8000/v1``). A request is one user message: the images as ``image_url`` parts holding base64
data URLs (with the ``detail`` model param: low/high/auto), in order, then the prompt text; the task's system prompt
is a ``system`` message. Model params: ``max_output_tokens`` (-> ``max_completion_tokens``), ``temperature``,
``top_p``, ``seed``, ``detail``, ``reasoning_effort`` and ``stream``; checked by ``validate_params`` before
anything is sent. A response schema goes as ``response_format: {type: json_schema, json_schema: {...}}`` or, with
``structured_output: prompt`` (servers without JSON-schema output), as an instruction in the prompt.

The SDK never retries (``max_retries=0``); the framework does. Usage as reported: ``input_tokens`` =
``prompt_tokens`` (cached included), ``cached_tokens`` = ``prompt_tokens_details.cached_tokens``, ``thinking_tokens``
= ``completion_tokens_details.reasoning_tokens`` (taken out of ``completion_tokens``), image tokens when the server
reports ``prompt_tokens_details.image_tokens``; ``None`` where it says nothing.

Streaming (``stream: true``) asks for ``stream_options: {include_usage: true}``: the usage comes in the last chunk.
The reply counts only once the stream has ended properly (a finish reason, then the end): a stream that breaks
midway is a transient error, retried, and its half answer is never kept.

Batch API: the requests as a JSONL file (``files.create``, purpose ``batch``), one ``batches.create`` on
``/v1/chat/completions``, polled; the output and error files are read back and matched by ``custom_id``.
"""

from __future__ import annotations

import base64
import json
import re
from typing import Any, Literal

from pydantic import BaseModel, Field

from visionbench.errors import BadRequest, Fatal, ProviderError, Transient
from visionbench.hookspecs import hookimpl
from visionbench.provider import Endpoint, Provider, RemoteOptions
from visionbench.secrets import redact
from visionbench.services.limits import capabilities_for, limits_for
from visionbench.services.tokens import openai_image_tokens
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

#: The statuses this service means "overloaded" by (``max_concurrency: auto`` backs off): 503 ("the engine is
#: currently overloaded"), and 529 from compatible servers and gateways that say it Anthropic's way.
#: What the API is called in errors (an HTML page answering instead of it).
API = "OpenAI"
OVERLOAD = frozenset({503, 529})

PARAMS = ("max_output_tokens", "temperature", "top_p", "seed", "detail", "reasoning_effort", "stream")
MEDIA_TYPES = ("image/jpeg", "image/png", "image/webp", "image/gif")
#: Batch states after which nothing changes.
DONE_STATES = ("completed", "failed", "expired", "cancelled")
#: A key for a server that takes none (vLLM, Ollama...): the SDK refuses to start without some string.
NO_KEY = "none"


class OpenAIParams(BaseModel):
    """What ``model_params`` may hold for an OpenAI (or compatible) model (checked at validate/plan time)."""

    max_output_tokens: int | None = Field(None, ge=1)
    temperature: float | None = Field(None, ge=0, le=2)
    top_p: float | None = Field(None, ge=0, le=1)
    seed: int | None = None
    #: Image detail: tokens per image follow it (tile models: low = a fixed 85-ish tokens).
    detail: Literal["low", "high", "auto"] | None = None
    reasoning_effort: Literal["none", "minimal", "low", "medium", "high", "xhigh"] | None = None
    stream: bool | None = None


def _thinks(model: str) -> bool:
    """Reasoning models (o-series, gpt-5 and later) reason when not asked to; gpt-4o/4.1 do not."""
    return bool(re.match(r"(o\d|gpt-(5|6|7|8|9))", model.lower()))


def _usage(u: Any) -> Usage | None:
    if u is None:
        return None
    prompt_details = getattr(u, "prompt_tokens_details", None)
    completion_details = getattr(u, "completion_tokens_details", None)
    reasoning = getattr(completion_details, "reasoning_tokens", None)
    output = u.completion_tokens
    return Usage(
        input_tokens=u.prompt_tokens,
        output_tokens=output - reasoning if output is not None and reasoning is not None else output,
        thinking_tokens=reasoning,
        cached_tokens=getattr(prompt_details, "cached_tokens", None),
        image_tokens=getattr(prompt_details, "image_tokens", None),
    )


def _response(completion: Any, headers: Any) -> Response:
    from openai.types.chat import ChatCompletion

    if not isinstance(completion, ChatCompletion) or not completion.choices:
        raise Transient(f"openai: malformed response body (got {type(completion).__name__} without choices)")
    message = completion.choices[0].message
    if message.refusal and not message.content:
        raise BadRequest(f"openai: the model refused: {message.refusal}")
    return Response(
        text=message.content or "",
        usage=_usage(completion.usage),
        model_version=completion.model,
        request_id=header(headers, "x-request-id") or completion.id,
        cost_usd=None,
        simulated=is_simulated(headers),
    )


class OpenAIOptions(RemoteOptions):
    """The ``openai`` provider's options (the config's ``providers: {openai: ...}``)."""

    api_key_env: str = "OPENAI_API_KEY"
    #: The API takes up to 500 images per request.
    max_images_per_request: int = Field(100, ge=1, le=500)
    #: ``native``: response_format json_schema; ``prompt``: ask for the JSON in the prompt (servers without it).
    structured_output: Literal["native", "prompt"] = "native"
    #: Stream every request of this provider (``model_params: {stream: ...}`` wins per cell).
    stream: bool = False


class OpenAIChat(Provider[OpenAIOptions]):
    """OpenAI models on Chat Completions (or any server speaking it: vLLM, Ollama, a gateway, the emulator)."""

    name = "openai"
    #: Chat Completions, served under /v1 as on api.openai.com (base URLs here include it).
    protocols = {"openai": "/v1"}

    Options = OpenAIOptions

    def __init__(self, options: OpenAIOptions | None = None, *, endpoint: Endpoint | None = None) -> None:
        super().__init__(options, endpoint=endpoint)
        self._client: Any = None

    def validate_params(self, model: str, params: dict[str, Any]) -> None:
        check_params(params, OpenAIParams, self.name, model)

    def capabilities(self, model: str) -> Capabilities:
        return capabilities_for(
            "openai",
            model,
            max_images=self.options.max_images_per_request,
            structured_output=self.options.structured_output == "native",
            batch=True,
            thinks_unasked=_thinks(model),
        )

    async def start(self) -> None:
        self._get_client(at_start=True)

    def estimate_image_tokens(self, model: str, width: int, height: int) -> int | None:
        return openai_image_tokens(width, height, model=model)

    def _key(self, at_start: bool) -> str:
        if self.endpoint is not None and self.endpoint.api_key:
            return self.endpoint.api_key
        hint = "; a server that takes none needs only base_url"
        # A self-hosted server may take no key at all.
        key = api_key(self.options.api_key_env, self.name, at_start=at_start, required=not self.base_url(), hint=hint)
        return NO_KEY if key is None else key

    def _get_client(self, *, at_start: bool = False) -> Any:
        if self._client is None:
            import openai

            self._client = openai.AsyncOpenAI(
                api_key=self._key(at_start),
                base_url=self.base_url(),
                max_retries=0,
                timeout=self.options.timeout_s,
            )
        return self._client

    def _stream(self, request: Request) -> bool:
        value = request.params.get("stream")
        return self.options.stream if value is None else bool(value)

    def _params(self, request: Request) -> dict[str, Any]:
        p = dict(request.params)
        unknown_params(p, PARAMS, self.name)
        check_images(request, self.options.max_images_per_request, self.name)
        detail = p.get("detail")
        if detail is not None and detail not in ("low", "high", "auto"):
            raise BadRequest(f"provider {self.name!r}: detail must be low, high or auto, not {detail!r}")
        content: list[dict[str, Any]] = []
        for image in request.images:
            if image.mime_type not in MEDIA_TYPES:
                raise BadRequest(f"image {image.item_id!r}: {image.mime_type} is not one of {', '.join(MEDIA_TYPES)}")
            data = base64.standard_b64encode(image.data).decode("ascii")
            url: dict[str, Any] = {"url": f"data:{image.mime_type};base64,{data}"}
            if detail is not None:
                url["detail"] = detail
            content.append({"type": "image_url", "image_url": url})
        prompt = request.prompt
        schema = request.response_schema
        if schema is not None and self.options.structured_output == "prompt":
            prompt += f"\n\nReply with only JSON that matches this JSON Schema, and nothing else:\n{json.dumps(schema)}"
        content.append({"type": "text", "text": prompt})
        messages: list[dict[str, Any]] = []
        if request.task.system:
            messages.append({"role": "system", "content": request.task.system})
        messages.append({"role": "user", "content": content})
        params: dict[str, Any] = {
            "model": request.model,
            "messages": messages,
            "max_completion_tokens": int(p.get("max_output_tokens") or request.max_output_tokens),
        }
        params.update({k: p[k] for k in ("temperature", "top_p", "seed", "reasoning_effort") if k in p})
        if schema is not None and self.options.structured_output == "native":
            params["response_format"] = {
                "type": "json_schema",
                "json_schema": {"name": "answers", "schema": schema, "strict": False},
            }
        return params

    async def generate(self, request: Request) -> Response:
        client = self._get_client()
        params = self._params(request)
        if self._stream(request):
            return await self._call(self._generate_stream(client, params))
        raw = await self._call(client.chat.completions.with_raw_response.create(**params))
        page = await html_page(raw.http_response, API, self.options.base_url)
        if page is not None:
            raise page
        completion = await self._call(_parsed(raw))
        return _response(completion, raw.headers)

    async def _generate_stream(self, client: Any, params: dict[str, Any]) -> Response:
        timer = StreamTimer()
        stream = await client.chat.completions.create(**params, stream=True, stream_options={"include_usage": True})
        page = await html_page(stream.response, API, self.options.base_url)
        if page is not None:
            raise page
        headers = stream.response.headers
        text: list[str] = []
        finish = usage = model = chunk_id = None
        try:
            async for chunk in stream:
                model, chunk_id = chunk.model or model, chunk.id or chunk_id
                if chunk.usage is not None:
                    usage = chunk.usage
                for choice in chunk.choices:
                    if choice.delta is not None and choice.delta.content:
                        timer.token()
                        text.append(choice.delta.content)
                    if choice.finish_reason is not None:
                        finish = choice.finish_reason
        finally:
            await stream.close()
        timer.done()
        if finish is None:
            raise Transient("openai: the stream ended before its finish reason (broken midway); nothing kept")
        return Response(
            text="".join(text),
            usage=_usage(usage),
            model_version=model,
            request_id=header(headers, "x-request-id") or chunk_id,
            cost_usd=None,
            simulated=is_simulated(headers),
            ttft_s=timer.ttft_s,
            generation_s=timer.generation_s,
        )

    async def _call(self, awaitable: Any) -> Any:
        return await mapped(awaitable, self._error)

    def _error(self, exc: Exception) -> ProviderError:
        import openai

        if isinstance(exc, ProviderError):
            return exc
        if isinstance(exc, openai.APIStatusError):
            page = html_reply(exc.response, API, self.options.base_url)
            if page is not None:
                return page
            body = exc.body if isinstance(exc.body, dict) else {}
            body = body.get("error", body) if isinstance(body.get("error"), dict) else body
            code = exc.code or body.get("code")
            request_id = exc.request_id
            text = f"openai HTTP {exc.status_code} {code or exc.type or ''}: {body.get('message') or exc.message}"
            text = redact(text + (f" (request-id {request_id})" if request_id else ""))
            if exc.status_code == 429 and code == "insufficient_quota":
                return Fatal(text, status=429)  # out of credit: waiting will not help
            return error_for_status(
                exc.status_code, text, retry_after_s=retry_after(exc.response.headers), overload_statuses=OVERLOAD
            )
        text = redact(f"{type(exc).__name__}: {exc}")
        if isinstance(exc, (openai.APIResponseValidationError, json.JSONDecodeError)):
            return Transient(f"openai: malformed response body ({text})")
        if isinstance(exc, (openai.APIConnectionError, ConnectionError, TimeoutError)) or is_transport_error(exc):
            return Transient(f"openai: connection failed or timed out ({text})")
        if isinstance(exc, openai.APIError):  # an error event inside a stream
            return Transient(f"openai: error in the stream ({text})")
        if isinstance(exc, (ValueError, TypeError)):
            return BadRequest(f"openai: request refused by the SDK ({text})")
        return Fatal(f"openai: unexpected SDK error ({text})")

    # Batch API: a JSONL file of requests in, output and error files out, matched by custom_id.

    def batch_limits(self, model: str) -> tuple[int | None, int | None]:
        lim = limits_for("openai", model)
        return lim.batch_max_requests, lim.batch_max_bytes

    def _input_line(self, model: str, key: str, request: Request) -> bytes:
        """The request as a line of the batch's input file (with its newline)."""
        body = {**self._params(request), "model": model}
        line = {"custom_id": key, "method": "POST", "url": "/v1/chat/completions", "body": body}
        return json.dumps(line).encode() + b"\n"

    def batch_entry_bytes(self, model: str, custom_id: str, request: Request) -> int:
        return len(self._input_line(model, custom_id, request))

    async def submit_batch(self, model: str, requests: dict[str, Request]) -> str:
        client = self._get_client()
        data = b"".join(self._input_line(model, key, request) for key, request in requests.items())
        uploaded = await self._call(client.files.create(file=("visionbench.jsonl", data), purpose="batch"))
        batch = await self._call(
            client.batches.create(
                input_file_id=uploaded.id,
                endpoint="/v1/chat/completions",
                completion_window="24h",
                metadata={"source": "visionbench"},
            )
        )
        return batch.id

    async def poll_batch(self, job_id: str) -> BatchStatus:
        batch = await self._call(self._get_client().batches.retrieve(job_id))
        counts = batch.request_counts
        return BatchStatus(
            job_id=job_id,
            state=batch.status,
            done=batch.status in DONE_STATES,
            succeeded=counts.completed if counts else 0,
            failed=counts.failed if counts else 0,
            total=counts.total if counts else 0,
        )

    async def collect_batch(self, job_id: str) -> dict[str, Response | ProviderError]:
        client = self._get_client()
        batch = await self._call(client.batches.retrieve(job_id))
        if batch.status == "failed":
            errors = [e.message for e in (batch.errors.data if batch.errors and batch.errors.data else []) if e.message]
            raise BadRequest(f"openai batch {job_id} failed: {'; '.join(errors) or 'no reason given'}")
        out: dict[str, Response | ProviderError] = {}
        for file_id in (batch.output_file_id, batch.error_file_id):
            if not file_id:
                continue
            content = await self._call(client.files.content(file_id))
            try:
                for line in content.text.splitlines():
                    if line.strip():
                        key, result = self._batch_line(json.loads(line), content.response.headers)
                        out[key] = result
            except ProviderError:
                raise
            except Exception as exc:  # noqa: BLE001 - a file cut short or not JSONL
                raise Transient(
                    f"openai: batch file {file_id} is not valid JSONL ({type(exc).__name__}: {exc})"
                ) from None
        return out

    def _batch_line(self, line: dict[str, Any], headers: Any) -> tuple[str, Response | ProviderError]:
        from openai.types.chat import ChatCompletion

        key = str(line["custom_id"])
        error = line.get("error")
        response = line.get("response") or {}
        status = response.get("status_code")
        if error:  # the request never ran (e.g. batch_expired)
            return key, Transient(f"openai batch item {error.get('code')}: {error.get('message')}")
        body = response.get("body") or {}
        if status != 200:
            inner = body.get("error") or {}
            message = f"openai batch item HTTP {status}: {inner.get('message') or body}"
            return key, error_for_status(status, message, overload_statuses=OVERLOAD)
        try:
            return key, _response(ChatCompletion.model_validate(body), headers)
        except ProviderError as exc:
            return key, exc
        except Exception as exc:  # noqa: BLE001
            return key, Transient(f"openai: malformed batch response ({type(exc).__name__}: {exc})")

    async def cancel_batch(self, job_id: str) -> None:
        await self._call(self._get_client().batches.cancel(job_id))

    def environment(self) -> dict[str, str]:
        return {"sdk": sdk_version("openai"), "base_url": self.base_url() or "(SDK default)"}

    async def aclose(self) -> None:
        if self._client is not None:
            client, self._client = self._client, None
            await client.close()


async def _parsed(raw: Any) -> Any:
    """The parsed body of a raw response (the SDK parses synchronously; errors still become neutral ones)."""
    return raw.parse()


@hookimpl
def register_providers(register):  # noqa: ANN001 - signature fixed by the hookspec
    register(OpenAIChat)
