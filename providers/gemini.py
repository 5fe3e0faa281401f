"""``gemini``: Google's Gemini API through the official google-genai SDK (async client).

A request is one user turn: the images as inline-data parts, in order, then the prompt text; the task's
system prompt goes in ``system_instruction``. Model params (``model_params`` in an experiment):
``temperature``, ``top_p``, ``top_k``, ``seed``, ``max_output_tokens`` (default: the request's),
``thinking_budget`` (int), ``thinking_level`` (minimal|low|medium|high), ``media_resolution`` (whole
request: low|medium|high) and ``part_media_resolution`` (per image, Gemini 3: low|medium|high|ultra_high).
They are checked by ``validate_params`` at validate/plan time (``GeminiParams``), before anything is sent.
A response schema is sent as ``responseMimeType: application/json`` + ``responseJsonSchema``.

The SDK never retries (the framework does): ``HttpRetryOptions(attempts=1)`` is set on purpose. Without
any retry_options, google-genai 3.3 on aiohttp silently retries a dropped connection once after sleeping
1-10 s. Automatic function calling and automatic continuation are off: one call, one HTTP request.
Usage is what ``usageMetadata`` reports; fields it leaves out stay ``None``.
Streaming (``stream: true``, a model param or the provider option) uses ``generate_content_stream``
(``:streamGenerateContent?alt=sse``): the text is the chunks' text, the usage the last chunk's usageMetadata; a
stream that ends without a finish reason is a transient error (retried), never a half answer.
"""

from __future__ import annotations

import io
import json
import os
import re
import ssl
from typing import Any, Literal

import pydantic
from pydantic import BaseModel, Field

from visionbench.errors import BadRequest, ConfigError, Fatal, ProviderError, Transient
from visionbench.hookspecs import hookimpl
from visionbench.provider import Endpoint, Provider, RemoteOptions
from visionbench.secrets import redact
from visionbench.services.limits import ENVELOPE_BYTES, capabilities_for, limits_for, thinking_problem
from visionbench.services.tokens import gemini_image_tokens
from visionbench.toolkit import (
    StreamTimer,
    api_key,
    check_params,
    error_for_status,
    header,
    html_title,
    is_simulated,
    not_the_api,
    retry_after,
)
from visionbench.types import BatchStatus, Capabilities, Request, Response, Usage

from ._sdk_common import check_images, duration_s, is_transport_error, mapped, sdk_version, unknown_params

#: The statuses this service means "overloaded" by (``max_concurrency: auto`` backs off): 503 UNAVAILABLE ("the
#: model is overloaded"), and 529 from gateways in front of it.
OVERLOAD = frozenset({503, 529})
#: What the API is called in errors (an HTML page answering instead of it).
API = "Gemini"

PARAMS = (
    "temperature",
    "top_p",
    "top_k",
    "seed",
    "max_output_tokens",
    "thinking_budget",
    "thinking_level",
    "media_resolution",
    "part_media_resolution",
    "stream",
)


class GeminiParams(BaseModel):
    """What ``model_params`` may hold for a Gemini model (checked at validate/plan time)."""

    temperature: float | None = Field(None, ge=0, le=2)
    top_p: float | None = Field(None, ge=0, le=1)
    top_k: int | None = Field(None, ge=1)
    seed: int | None = None
    max_output_tokens: int | None = Field(None, ge=1)
    #: -1 = dynamic, 0 = off (where the model allows it).
    thinking_budget: int | None = Field(None, ge=-1)
    thinking_level: Literal["minimal", "low", "medium", "high"] | None = None
    media_resolution: Literal["low", "medium", "high"] | None = None
    part_media_resolution: Literal["low", "medium", "high", "ultra_high"] | None = None
    #: Stream the reply (``streamGenerateContent``): records get time to first token and output tokens/s.
    stream: bool | None = None


def _generation(model: str) -> int | None:
    match = re.match(r"(?:models/)?gemini-(\d+)", model.lower())
    return int(match.group(1)) if match else None


DONE_STATES = ("SUCCEEDED", "FAILED", "CANCELLED", "EXPIRED")
#: Batch items fail with a google.rpc.Status, whose code is a gRPC code: its HTTP equivalent.
GRPC_TO_HTTP = {
    1: 499,
    2: 500,
    3: 400,
    4: 504,
    5: 404,
    6: 409,
    7: 403,
    8: 429,
    9: 412,
    10: 409,
    11: 400,
    12: 501,
    13: 500,
    14: 503,
    15: 500,
    16: 401,
}


def _resolution(value: Any) -> str:
    text = str(value).strip().upper()
    return text if text.startswith("MEDIA_RESOLUTION_") else f"MEDIA_RESOLUTION_{text}"


def _usage(meta: Any) -> Usage | None:
    if meta is None:
        return None
    details = meta.prompt_tokens_details or ()
    image = [d.token_count for d in details if str(getattr(d.modality, "value", d.modality)) == "IMAGE"]
    return Usage(
        input_tokens=meta.prompt_token_count,
        output_tokens=meta.candidates_token_count,
        thinking_tokens=meta.thoughts_token_count,
        cached_tokens=meta.cached_content_token_count,
        image_tokens=sum(n or 0 for n in image) if image else None,
    )


def _response(resp: Any) -> Response:
    if not resp.candidates:
        feedback = resp.prompt_feedback
        if feedback is not None and feedback.block_reason is not None:
            reason = getattr(feedback.block_reason, "value", feedback.block_reason)
            raise BadRequest(f"gemini: prompt blocked ({reason}) {feedback.block_reason_message or ''}".strip())
        raise Transient("gemini: malformed response: no candidates and no prompt feedback")
    http = getattr(resp, "sdk_http_response", None)
    return Response(
        text=resp.text or "",  # the SDK leaves out parts with thought=true
        usage=_usage(resp.usage_metadata),
        model_version=resp.model_version,
        request_id=resp.response_id,
        cost_usd=None,
        simulated=is_simulated(getattr(http, "headers", None)),
    )


def _tls_context() -> ssl.SSLContext:
    """The TLS context google-genai 3.3 makes for its aiohttp transport: certifi's CAs, or the environment's."""
    import certifi

    return ssl.create_default_context(
        cafile=os.environ.get("SSL_CERT_FILE", certifi.where()), capath=os.environ.get("SSL_CERT_DIR")
    )


def _retry_delay(details: Any) -> float | None:
    """``retryDelay`` of a google.rpc.RetryInfo in an error body, in seconds."""
    error = details.get("error", details) if isinstance(details, dict) else {}
    for item in error.get("details") or () if isinstance(error, dict) else ():
        if isinstance(item, dict) and "retryDelay" in item:
            return duration_s(item["retryDelay"])
    return None


class GeminiOptions(RemoteOptions):
    """The ``gemini`` provider's options (the config's ``providers: {gemini: ...}``)."""

    api_key_env: str = "GEMINI_API_KEY"
    #: ``v1`` (the SDK's default when unset) or ``v1beta``.
    api_version: str | None = None
    #: The API accepts up to 3,600 images per request, but inline data is capped at 20 MB per request.
    max_images_per_request: int = Field(100, ge=1, le=3600)
    #: Stream every request of this provider (``model_params: {stream: ...}`` wins per cell).
    stream: bool = False


class Gemini(Provider[GeminiOptions]):
    """Gemini models on the Gemini API (or any endpoint speaking it, e.g. the local emulator)."""

    name = "gemini"
    protocols = {"gemini": ""}

    Options = GeminiOptions

    def __init__(self, options: GeminiOptions | None = None, *, endpoint: Endpoint | None = None) -> None:
        super().__init__(options, endpoint=endpoint)
        self._client: Any = None
        self._key: str | None = None
        self._batch_sizes: dict[str, int] = {}
        self._configs: dict[str, tuple[Any, str | None]] = {}

    def capabilities(self, model: str) -> Capabilities:
        return capabilities_for(
            "gemini", model, max_images=self.options.max_images_per_request, structured_output=True, batch=True
        )

    async def start(self) -> None:
        self._get_client(at_start=True)

    def validate_params(self, model: str, params: dict[str, Any]) -> None:
        lowered = {
            k: v.lower().removeprefix("media_resolution_")
            if isinstance(v, str) and k.endswith(("_level", "_resolution"))
            else v
            for k, v in params.items()
        }
        check_params(lowered, GeminiParams, self.name, model)
        where = f"provider {self.name!r}, model {model!r}"
        if "thinking_budget" in params and "thinking_level" in params:
            raise ConfigError(f"{where}: thinking_budget and thinking_level cannot both be set; choose one")
        generation = _generation(model)
        for name in ("thinking_level", "part_media_resolution"):
            if name in params and generation is not None and generation < 3:
                raise ConfigError(f"{where}: {name} is accepted by Gemini 3 models and later only")
        why = thinking_problem("gemini", model, params.get("thinking_budget"), params.get("max_output_tokens"))
        if why:
            raise ConfigError(f"{where}: {why}")

    def estimate_image_tokens(self, model: str, width: int, height: int) -> int | None:
        return gemini_image_tokens(width, height, model=model)

    async def count_tokens(self, request: Request) -> int | None:
        contents = self._contents(request, None)
        result = await self._call(self._get_client().aio.models.count_tokens(model=request.model, contents=contents))
        return result.total_tokens

    def _get_client(self, *, at_start: bool = False) -> Any:
        if self._client is None:
            from google import genai
            from google.genai import types

            self._key = (self.endpoint and self.endpoint.api_key) or api_key(
                self.options.api_key_env, self.name, at_start=at_start
            )
            tls = _tls_context()
            http = types.HttpOptions(
                base_url=self.base_url(),
                api_version=self.options.api_version,
                timeout=int(self.options.timeout_s * 1000),  # milliseconds
                retry_options=types.HttpRetryOptions(attempts=1),
                # One TLS context for every transport the client builds: aiohttp (which sends every request of
                # this provider: aiohttp is a dependency), websockets, and the httpx clients it makes but this
                # provider never sends through; left to itself the SDK loads a CA bundle for each (~0.1 s of CPU
                # per client), the OS's trust store for httpx, certifi's (as here) for the others.
                client_args={"verify": tls},
                async_client_args={"ssl": tls, "verify": tls},
            )
            self._client = genai.Client(api_key=self._key, vertexai=False, http_options=http)
        return self._client

    def _config(self, request: Request, *, batch: bool = False) -> tuple[Any, str | None]:
        from google.genai import types

        p = dict(request.params)
        unknown_params(p, PARAMS, self.name)
        kw: dict[str, Any] = {"max_output_tokens": p.get("max_output_tokens", request.max_output_tokens)}
        kw.update({k: p[k] for k in ("temperature", "top_p", "top_k", "seed") if k in p})
        thinking: dict[str, Any] = {}
        if "thinking_budget" in p:
            thinking["thinking_budget"] = p["thinking_budget"]
        if "thinking_level" in p:
            thinking["thinking_level"] = str(p["thinking_level"]).upper()
        if "media_resolution" in p:
            kw["media_resolution"] = _resolution(p["media_resolution"])
        if request.task.system:
            kw["system_instruction"] = request.task.system
        if request.response_schema is not None:
            kw["response_mime_type"] = "application/json"
            kw["response_json_schema"] = request.response_schema
        if not batch:
            kw["automatic_function_calling"] = types.AutomaticFunctionCallingConfig(disable=True)
            kw["automatic_continuation"] = False
        part_res = _resolution(p["part_media_resolution"]) if "part_media_resolution" in p else None
        # The SDK's enums accept unknown values (with a warning): check them here, for a clear error.
        for value, enum in (
            (thinking.get("thinking_level"), types.ThinkingLevel),
            (kw.get("media_resolution"), types.MediaResolution),
            (part_res, types.PartMediaResolutionLevel),
        ):
            if value is not None and value not in {m.value for m in enum}:
                raise BadRequest(
                    f"provider {self.name!r}: invalid model parameter: {value!r} is not one of "
                    f"{', '.join(m.value for m in enum)}"
                )
        try:
            if thinking:
                kw["thinking_config"] = types.ThinkingConfig(**thinking)
            return types.GenerateContentConfig(**kw), part_res
        except pydantic.ValidationError as exc:
            raise BadRequest(f"provider {self.name!r}: invalid model parameter: {exc}") from None

    def _contents(self, request: Request, part_res: str | None) -> list[Any]:
        from google.genai import types

        check_images(request, self.options.max_images_per_request, self.name)
        parts = [
            types.Part.from_bytes(data=i.data, mime_type=i.mime_type, media_resolution=part_res) for i in request.images
        ]
        parts.append(types.Part.from_text(text=request.prompt))
        return [types.Content(role="user", parts=parts)]

    def _config_cached(self, request: Request) -> tuple[Any, str | None]:
        """The config of a cell's requests is the same every time: build (and validate) it once."""
        # repr, not a sorted json.dumps: cheaper per request, and two spellings of one config only cost a rebuild.
        key = repr((request.params, request.response_schema, request.task.system, request.max_output_tokens))
        if key not in self._configs:
            self._configs[key] = self._config(request)
        return self._configs[key]

    async def generate(self, request: Request) -> Response:
        client = self._get_client()
        config, part_res = self._config_cached(request)
        contents = self._contents(request, part_res)
        stream = request.params.get("stream")
        if self.options.stream if stream is None else stream:
            return await self._call(self._generate_stream(client, request.model, contents, config))
        resp = await self._call(
            client.aio.models.generate_content(model=request.model, contents=contents, config=config)
        )
        try:
            return _response(resp)
        except ProviderError:
            raise
        except Exception as exc:  # noqa: BLE001 - a body the SDK accepted but that makes no sense
            raise Transient(f"gemini: malformed response: {type(exc).__name__}: {exc}") from None

    async def _generate_stream(self, client: Any, model: str, contents: Any, config: Any) -> Response:
        timer = StreamTimer()
        text: list[str] = []
        last = usage = None
        async for chunk in await client.aio.models.generate_content_stream(
            model=model, contents=contents, config=config
        ):
            last = chunk
            usage = chunk.usage_metadata or usage
            for candidate in chunk.candidates or ():
                for part in (candidate.content.parts if candidate.content else None) or ():
                    if part.text and not part.thought:
                        timer.token()
                        text.append(part.text)
        timer.done()
        if last is None:
            raise Transient("gemini: the stream ended before any chunk (broken); nothing kept")
        if not last.candidates and last.prompt_feedback is not None:
            return _response(last)  # a blocked prompt: raises BadRequest
        if not last.candidates or last.candidates[0].finish_reason is None:
            raise Transient("gemini: the stream ended before its finish reason (broken midway); nothing kept")
        http = getattr(last, "sdk_http_response", None)
        return Response(
            text="".join(text),
            usage=_usage(usage),
            model_version=last.model_version,
            request_id=last.response_id,
            cost_usd=None,
            simulated=is_simulated(getattr(http, "headers", None)),
            ttft_s=timer.ttft_s,
            generation_s=timer.generation_s,
        )

    async def _call(self, awaitable: Any) -> Any:
        return await mapped(awaitable, self._error)

    def _error(self, exc: Exception) -> ProviderError:
        import aiohttp
        from google.genai import errors

        page = self._page(exc)
        if page is not None:
            return page
        if isinstance(exc, errors.APIError):
            code, status = exc.code, exc.status or ""
            text = redact(f"gemini HTTP {code} {status}: {exc.message or exc.details}")
            wait = retry_after(getattr(exc.response, "headers", None))
            wait = wait if wait is not None else _retry_delay(exc.details)
            if status == "RESOURCE_EXHAUSTED":
                code = 429
            if code == 400 and (status == "FAILED_PRECONDITION" or "API_KEY_INVALID" in str(exc.details)):
                return Fatal(text, status=code)
            return error_for_status(code, text, retry_after_s=wait, overload_statuses=OVERLOAD)
        text = redact(f"{type(exc).__name__}: {exc}")
        if isinstance(exc, (json.JSONDecodeError, errors.UnknownApiResponseError, pydantic.ValidationError)):
            return Transient(f"gemini: malformed response body ({text})")
        if isinstance(exc, (aiohttp.ClientError, ConnectionError, TimeoutError)) or is_transport_error(exc):
            return Transient(f"gemini: connection failed or timed out ({text})")
        if isinstance(exc, ProviderError):
            return exc
        return Fatal(f"gemini: unexpected SDK error ({text})")

    def _page(self, exc: Exception) -> ProviderError | None:
        """An HTML page where the API's JSON was due (a wrong ``base_url``), from whichever error the SDK made of it;
        None if it was not one."""
        from google.genai import errors

        content_type: str | None = None
        if isinstance(exc, errors.APIError):
            status, body = exc.code, exc.message
            content_type = header(getattr(exc.response, "headers", None), "content-type")
        elif isinstance(exc, json.JSONDecodeError):  # the SDK raises APIError for any other status than 200
            status, body = 200, exc.doc
        elif isinstance(exc, errors.UnknownApiResponseError):  # a stream's: its first line is in the message
            status, body = 200, str(exc).partition("Raw response: ")[2]
        else:
            return None
        title = html_title(content_type, body if isinstance(body, str) else None)
        base_url = redact(self.options.base_url) if self.options.base_url else None
        return None if title is None else not_the_api(API, base_url, status, title)

    # Batch mode: requests inlined (up to the inline limit) or as an uploaded JSONL file, matched back by key.

    def batch_limits(self, model: str) -> tuple[int | None, int | None]:
        lim = limits_for("gemini", model)
        return lim.batch_max_requests, lim.batch_max_bytes

    def _input_line(self, key: str, request: Request) -> bytes:
        """The request as a line of a batch input file (``{"key", "request"}``, with its newline), converted by the
        SDK's own converter: the same JSON as the request inlined."""
        from google.genai import _common, types
        from google.genai import batches as sdk_batches

        config, part_res = self._config(request, batch=True)
        inlined = types.InlinedRequest(contents=self._contents(request, part_res), config=config)
        wire = sdk_batches._InlinedRequest_to_mldev(self._get_client()._api_client, inlined)
        wire = _common.encode_unserializable_types(_common.convert_to_dict(wire))
        return json.dumps({"key": key, "request": wire["request"]}).encode() + b"\n"

    def batch_entry_bytes(self, model: str, custom_id: str, request: Request) -> int:
        return len(self._input_line(custom_id, request))

    async def submit_batch(self, model: str, requests: dict[str, Request]) -> str:
        from google.genai import types

        client = self._get_client()
        lines = [self._input_line(key, request) for key, request in requests.items()]
        inline_max = limits_for("gemini", model).batch_inline_max_bytes
        src: Any
        # Inlined, a request is its line's JSON in ``{"request", "metadata": {"key"}}`` and a ", ": about 15 bytes
        # more than the line; 32 each keeps the body within the limit.
        if inline_max is None or sum(len(line) + 32 for line in lines) + ENVELOPE_BYTES <= inline_max:
            src = []
            for key, request in requests.items():
                config, part_res = self._config(request, batch=True)
                contents = self._contents(request, part_res)
                src.append(types.InlinedRequest(contents=contents, config=config, metadata={"key": key}))
        else:  # above the inline limit the service takes the requests only as a file
            data = io.BytesIO(b"".join(lines))
            del lines
            upload = {"mime_type": "application/jsonl", "display_name": "visionbench-batch"}
            uploaded = await self._call(client.aio.files.upload(file=data, config=upload))
            if not uploaded.name:
                raise Transient("gemini: file upload returned no file name")
            src = uploaded.name
        job = await self._call(client.aio.batches.create(model=model, src=src, config={"display_name": "visionbench"}))
        if not job.name:
            raise Transient("gemini: batch create returned no job name")
        self._batch_sizes[job.name] = len(requests)
        return job.name

    async def _job(self, job_id: str) -> Any:
        return await self._call(self._get_client().aio.batches.get(name=job_id))

    async def poll_batch(self, job_id: str) -> BatchStatus:
        job = await self._job(job_id)
        state = str(getattr(job.state, "value", job.state) or "UNKNOWN").replace("JOB_STATE_", "BATCH_STATE_", 1)
        inlined = (job.dest.inlined_responses if job.dest else None) or []
        failed = sum(1 for r in inlined if r.error is not None)
        return BatchStatus(
            job_id=job_id,
            state=state,
            done=state.endswith(DONE_STATES),
            succeeded=sum(1 for r in inlined if r.error is None and r.response is not None),
            failed=failed,
            total=self._batch_sizes.get(job_id, len(inlined)),
        )

    async def _file_responses(self, file_name: str) -> list[Any]:
        """A finished file job's results: its responses file, downloaded, one ``InlinedResponse`` a line."""
        from google.genai import batches as sdk_batches
        from google.genai import types

        data = await self._call(self._get_client().aio.files.download(file=file_name))
        out = []
        for n, line in enumerate(data.splitlines()):
            if not line.strip():
                continue
            try:
                entry = json.loads(line)
                wire = sdk_batches._InlinedResponse_from_mldev(entry)
                wire["metadata"] = {"key": entry.get("key")}
                out.append(types.InlinedResponse._from_response(response=wire, kwargs={}))
            except (ValueError, AttributeError, pydantic.ValidationError) as exc:
                raise Transient(f"gemini: line {n + 1} of batch results {file_name} is not valid: {exc}") from None
        return out

    async def collect_batch(self, job_id: str) -> dict[str, Response | ProviderError]:
        job = await self._job(job_id)
        out: dict[str, Response | ProviderError] = {}
        if job.dest is not None and job.dest.file_name:
            items = await self._file_responses(job.dest.file_name)
        else:
            items = (job.dest.inlined_responses if job.dest else None) or []
        for item in items:
            key = (item.metadata or {}).get("key")
            if key is None:
                continue
            if item.error is not None:
                code = GRPC_TO_HTTP.get(item.error.code, item.error.code) if item.error.code is not None else None
                message = f"gemini batch item failed ({item.error.code}): {item.error.message}"
                out[key] = error_for_status(code, message, overload_statuses=OVERLOAD)
            elif item.response is not None:
                try:
                    out[key] = _response(item.response)
                except ProviderError as exc:
                    out[key] = exc
                except Exception as exc:  # noqa: BLE001
                    out[key] = Transient(f"gemini: malformed batch response: {type(exc).__name__}: {exc}")
        return out

    async def cancel_batch(self, job_id: str) -> None:
        await self._call(self._get_client().aio.batches.cancel(name=job_id))

    def environment(self) -> dict[str, str]:
        return {
            "sdk": sdk_version("google-genai"),
            "base_url": self.base_url() or "(SDK default)",
            "api_version": self.options.api_version or "(SDK default)",
        }

    async def aclose(self) -> None:
        if self._client is not None:
            client, self._client = self._client, None
            await client.aio.aclose()
            client.close()  # the SDK also builds a sync HTTP client


@hookimpl
def register_providers(register):  # noqa: ANN001 - signature fixed by the hookspec
    register(Gemini)
