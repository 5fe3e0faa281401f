"""The Gemini Developer API wire protocol: generateContent, streamGenerateContent, countTokens, batches.

``:streamGenerateContent?alt=sse`` answers ``data: {GenerateContentResponse}`` events, one per piece of the reply
(as the service does), the last with the finishReason and the whole usageMetadata.
"""

from __future__ import annotations

import json
import secrets
from typing import Any

from aiohttp import web

from visionbench.emulator.batches import BatchJob, BatchStore, rfc3339
from visionbench.emulator.engine import CountRequest, Engine, ImagePart, Outcome, Rejected, body_digest
from visionbench.emulator.gemini_errors import error_body, error_response
from visionbench.emulator.gemini_files import GeminiFiles
from visionbench.emulator.httputil import (
    NOTE_HEADER,
    EventStream,
    drop_connection,
    json_response,
    malformed_response,
    paced,
    pick,
    read_json,
    text_pieces,
)
from visionbench.emulator.matching import ImageError, decode_base64
from visionbench.emulator.request import forced_tool
from visionbench.provider import SIMULATED_HEADER
from visionbench.services.limits import limits_for

VERSIONS = ("v1", "v1beta", "v1alpha")
BATCH_STATES = {
    "pending": "BATCH_STATE_PENDING",
    "running": "BATCH_STATE_RUNNING",
    "succeeded": "BATCH_STATE_SUCCEEDED",
    "cancelled": "BATCH_STATE_CANCELLED",
}
BATCH_TYPE = "type.googleapis.com/google.ai.generativelanguage.v1main.GenerateContentBatch"
BATCH_OUTPUT_TYPE = "type.googleapis.com/google.ai.generativelanguage.v1main.GenerateContentBatchOutput"


def parse_request(body: Any, model: str, raw: bytes, size: int | None = None) -> CountRequest:
    """A generateContent body (``size`` bytes; default: ``raw``'s) -> CountRequest; Rejected(400) if unservable."""
    if not isinstance(body, dict):
        raise Rejected("invalid", 400, "Invalid JSON payload: expected an object")
    contents = body.get("contents")
    if not isinstance(contents, list) or not contents:
        raise Rejected("invalid", 400, "* GenerateContentRequest.contents: contents is not specified")
    texts: list[str] = []
    images: list[ImagePart] = []
    for content in contents:
        for part in pick(content, "parts", default=[]) or []:
            if not isinstance(part, dict):
                continue
            if isinstance(part.get("text"), str) and not part.get("thought"):
                texts.append(part["text"])
            blob = pick(part, "inlineData", "inline_data")
            if blob is not None:
                text = str(pick(blob, "data", default=""))
                try:
                    data = decode_base64(text)
                except ImageError as exc:
                    raise Rejected("invalid", 400, str(exc)) from None
                level = pick(pick(part, "mediaResolution", "media_resolution", default={}), "level")
                mime = str(pick(blob, "mimeType", "mime_type", default=""))
                images.append(ImagePart(data, mime, level, b64_bytes=len(text), where=f"image {len(images) + 1}"))
            elif pick(part, "fileData", "file_data") is not None:
                raise Rejected("invalid", 400, "fileData parts are not supported by the emulator; send inlineData")
    system = pick(body, "systemInstruction", "system_instruction", default={})
    system_text = " ".join(p.get("text", "") for p in pick(system, "parts", default=[]) or [] if isinstance(p, dict))
    config = pick(body, "generationConfig", "generation_config", default={}) or {}
    schema = pick(config, "responseJsonSchema", "response_json_schema", "responseSchema", "response_schema")
    mime = str(pick(config, "responseMimeType", "response_mime_type", default=""))
    thinking = pick(config, "thinkingConfig", "thinking_config", default={})
    budget = pick(thinking, "thinkingBudget", "thinking_budget")
    level = str(pick(thinking, "thinkingLevel", "thinking_level", default="") or "").lower()
    max_out = pick(config, "maxOutputTokens", "max_output_tokens")
    prompt = "\n".join(texts)
    tool = _forced_tool(body)
    if tool is not None:
        tool, schema = tool
    return CountRequest(
        protocol="gemini",
        model=model,
        images=images,
        prompt=prompt,
        system=system_text,
        want_json=bool(schema) or tool is not None or mime == "application/json" or "json" in prompt.lower(),
        schema=schema if isinstance(schema, dict) else None,
        tool=tool,
        max_output_tokens=int(max_out) if max_out is not None else None,
        thinking_budget=int(budget) if budget is not None and int(budget) >= 0 else None,
        thinking_level=None if level in ("", "thinking_level_unspecified") else level,
        media_resolution=pick(config, "mediaResolution", "media_resolution"),
        digest=body_digest(raw),
        body_bytes=len(raw) if size is None else size,
    )


def _forced_tool(body: dict[str, Any]) -> tuple[str, dict[str, Any]] | None:
    """(name, parameters) of the function ``toolConfig.functionCallingConfig`` forces (mode ``ANY``: the first of
    ``allowedFunctionNames``, else the first declaration); None for ``AUTO``, ``NONE``, ``VALIDATED`` or no config
    (answered as text)."""
    config = pick(pick(body, "toolConfig", "tool_config", default={}) or {}, "functionCallingConfig",
                  "function_calling_config", default={}) or {}  # fmt: skip
    if str(pick(config, "mode", default="") or "").upper() != "ANY":
        return None
    tools: dict[str, dict[str, Any] | None] = {}
    for tool in pick(body, "tools", default=[]) or []:
        for fn in pick(tool, "functionDeclarations", "function_declarations", default=[]) or []:
            if isinstance(fn, dict) and "name" in fn:
                tools[str(fn["name"])] = pick(fn, "parametersJsonSchema", "parameters_json_schema", "parameters")
    allowed = pick(config, "allowedFunctionNames", "allowed_function_names", default=[]) or []
    try:
        return forced_tool(tools, str(allowed[0]) if allowed else None)
    except ValueError as exc:
        raise Rejected("invalid", 400, f"* GenerateContentRequest.tool_config: {exc}") from None


def _call_part(out: Outcome, text: str) -> dict[str, Any]:
    """A reply part: the text, or a ``functionCall`` of the forced tool with the reply as its args."""
    if out.tool is None:
        return {"text": text}
    try:
        args = json.loads(text)
    except ValueError:  # truncated out of shape
        args = {}
    return {"functionCall": {"name": out.tool, "args": args if isinstance(args, dict) else {}}}


def response_body(out: Outcome) -> dict[str, Any]:
    """A GenerateContentResponse like the recorded cassettes: a text part, or a ``functionCall`` part calling the
    request's forced tool with the reply as its args."""
    content: dict[str, Any] = {"role": "model"}
    if out.text:
        content["parts"] = [_call_part(out, out.text)]
    details = [{"modality": "TEXT", "tokenCount": out.text_tokens}]
    if out.image_tokens:
        details.append({"modality": "IMAGE", "tokenCount": out.image_tokens})
    usage: dict[str, Any] = {
        "promptTokenCount": out.input_tokens,
        "candidatesTokenCount": out.output_tokens,
        "totalTokenCount": out.input_tokens + out.output_tokens + out.thinking_tokens,
        "promptTokensDetails": details,
        "candidatesTokensDetails": [{"modality": "TEXT", "tokenCount": out.output_tokens}],
    }
    if out.thinking_tokens:
        usage["thoughtsTokenCount"] = out.thinking_tokens
    return {
        "candidates": [{"content": content, "finishReason": "MAX_TOKENS" if out.truncated else "STOP", "index": 0}],
        "usageMetadata": usage,
        "modelVersion": out.model_version,
        "responseId": secrets.token_urlsafe(16).replace("-", "").replace("_", "")[:22],
    }


class GeminiRoutes:
    """Route handlers bound to an engine and a batch store."""

    def __init__(self, engine: Engine, store: BatchStore) -> None:
        self.engine, self.store = engine, store
        self.files = GeminiFiles()
        #: The responses file of each finished job whose requests came as a file (made when first seen finished).
        self.responses_files: dict[str, str] = {}

    def register(self, app: web.Application) -> None:
        self.files.register(app)
        app.router.add_post("/{ver}/models/{tail}", self.models_post)
        app.router.add_get("/{ver}/batches/{tail}", self.batch_get)
        app.router.add_post("/{ver}/batches/{tail}", self.batch_post)

    @staticmethod
    def _check(request: web.Request) -> web.Response | None:
        if request.match_info["ver"] not in VERSIONS:
            return error_response(404, f"API version {request.match_info['ver']!r} not found")
        if not (request.headers.get("x-goog-api-key") or request.query.get("key")):
            return error_response(
                403,
                "Method doesn't allow unregistered callers (callers without established "
                "identity). Please use API Key or other form of API consumer identity.",
            )
        return None

    async def models_post(self, request: web.Request) -> web.StreamResponse:
        if (bad := self._check(request)) is not None:
            return bad
        model, _, action = request.match_info["tail"].partition(":")
        handler = {
            "generateContent": self.generate,
            "streamGenerateContent": self.stream,
            "countTokens": self.count_tokens,
            "batchGenerateContent": self.batch_create,
        }.get(action)
        if handler is None:
            return error_response(404, f"method {action!r} is not supported by the emulator")
        try:
            body, raw = await read_json(request)
            return await handler(request, model, body, raw)
        except ValueError as exc:
            return error_response(400, str(exc))
        except Rejected as exc:
            return error_response(503 if exc.status == 529 else exc.status, exc.message, exc.retry_after, exc.quota)

    async def generate(self, request: web.Request, model: str, body: Any, raw: bytes) -> web.StreamResponse:
        self.engine.state(model, "gemini")  # 404 before parsing
        out = await self.engine.serve(parse_request(body, model, raw))
        if out.fault == "drop_connection":
            return drop_connection(request)
        headers = {NOTE_HEADER: "; ".join(out.notes)} if out.notes else None
        if out.fault == "malformed_body":
            return malformed_response(headers)
        return json_response(response_body(out), headers=headers)

    async def stream(self, request: web.Request, model: str, body: Any, raw: bytes) -> web.StreamResponse:
        """streamGenerateContent (``alt=sse``); a fault breaks the stream midway (no last chunk)."""
        self.engine.state(model, "gemini")
        if request.query.get("alt") != "sse":
            raise Rejected("invalid", 400, "the emulator streams only with alt=sse")
        out = await self.engine.serve(parse_request(body, model, raw), stream=True)
        try:
            full = response_body(out)
            headers = {NOTE_HEADER: "; ".join(out.notes)} if out.notes else None
            sse = EventStream(request, headers, out.fault)
            await sse.open()
            pieces = [out.text] if out.tool is not None else text_pieces(out.text)  # a call comes whole
            prompt_only = {
                "promptTokenCount": out.input_tokens,
                "promptTokensDetails": full["usageMetadata"]["promptTokensDetails"],
            }
            try:
                async for i, piece in paced(pieces, out.stream_s, self.engine.clock):
                    if i == len(pieces) // 2 and await sse.maybe_break():
                        return sse.response
                    last = i == len(pieces) - 1
                    parts = [_call_part(out, piece)]
                    candidate: dict[str, Any] = {"content": {"role": "model", "parts": parts}, "index": 0}
                    if last:
                        candidate["finishReason"] = full["candidates"][0]["finishReason"]
                    chunk = {
                        "candidates": [candidate],
                        "usageMetadata": full["usageMetadata"] if last else prompt_only,
                        "modelVersion": full["modelVersion"],
                        "responseId": full["responseId"],
                    }
                    await sse.send(chunk)
            except ConnectionError:
                return sse.response
            return await sse.close()
        finally:
            if out.release is not None:
                out.release()

    async def count_tokens(self, request: web.Request, model: str, body: Any, raw: bytes) -> web.StreamResponse:
        inner = pick(body, "generateContentRequest", "generate_content_request", default=body)
        req = parse_request(inner, model, raw)
        image, text = await self.engine.count_tokens(req)
        details = [{"modality": "TEXT", "tokenCount": text}] + (
            [{"modality": "IMAGE", "tokenCount": image}] if image else []
        )
        return json_response({"totalTokens": image + text, "promptTokensDetails": details})

    async def batch_create(self, request: web.Request, model: str, body: Any, raw: bytes) -> web.StreamResponse:
        self.engine.state(model, "gemini")
        batch = pick(body, "batch", default={})
        source = pick(batch, "inputConfig", "input_config", default={})
        file_name = pick(source, "fileName", "file_name")
        entries = pick(pick(source, "requests", default={}), "requests")
        if file_name is not None:
            entries = self._file_entries(str(file_name))
        elif not isinstance(entries, list) or not entries:
            raise Rejected(
                "invalid", 400, "batch.inputConfig must have requests.requests (a non-empty list) or a fileName"
            )
        lim = limits_for("gemini", model)
        if file_name is None and lim.batch_inline_max_bytes is not None and len(raw) > lim.batch_inline_max_bytes:
            # An inline batch is at most 20 MB; larger ones go as an uploaded file.
            raise Rejected(
                "invalid", 400, f"Request payload size exceeds the limit: {lim.batch_inline_max_bytes} bytes."
            )
        if lim.batch_max_requests is not None and len(entries) > lim.batch_max_requests:
            raise Rejected(
                "invalid", 400, f"a batch holds at most {lim.batch_max_requests} requests, not {len(entries)}"
            )
        items: list[tuple[str, CountRequest | Rejected]] = []
        for i, entry in enumerate(entries):
            meta = pick(entry, "metadata", default={})
            key = str(pick(entry, "key", default=None) or pick(meta, "key", default=i))
            try:
                inner = pick(entry, "request", default={})
                size = len(json.dumps(inner))
                items.append((key, parse_request(inner, model, raw + str(i).encode(), size)))
            except Rejected as exc:
                items.append((key, exc))
        job = self.store.submit(
            "gemini",
            model,
            items,
            str(pick(batch, "displayName", "display_name", default="")),
            submitted_bytes=len(raw) if file_name is None else len(self.files.data(str(file_name)) or b""),
            item_meta=[
                pick(e, "metadata") if file_name is None else {"key": key} for e, (key, _) in zip(entries, items)
            ],
        )
        if file_name is not None:
            self.responses_files[job.id] = ""  # made when the job has finished
        return json_response(self.operation(job))

    def _file_entries(self, file_name: str) -> list[Any]:
        """The ``{"key", "request"}`` lines of an uploaded JSONL input file."""
        data = self.files.data(file_name)
        if data is None:
            raise Rejected("invalid", 400, f"batch.inputConfig.fileName: {file_name} was not found")
        entries = []
        for n, line in enumerate(data.splitlines()):
            if not line.strip():
                continue
            try:
                entry = json.loads(line)
            except ValueError:
                entry = None
            if not isinstance(entry, dict) or not isinstance(entry.get("request"), dict):
                raise Rejected("invalid", 400, f"{file_name}: line {n + 1} is not a {{key, request}} JSON object")
            entries.append(entry)
        if not entries:
            raise Rejected("invalid", 400, f"{file_name}: the input file has no requests")
        return entries

    def _job(self, request: web.Request) -> tuple[BatchJob | None, str]:
        job_id, _, action = request.match_info["tail"].partition(":")
        return self.store.get(job_id), action

    async def batch_get(self, request: web.Request) -> web.StreamResponse:
        if (bad := self._check(request)) is not None:
            return bad
        job, action = self._job(request)
        if job is None or job.protocol != "gemini" or action:
            return error_response(404, "Requested entity was not found.")
        return json_response(self.operation(job))

    async def batch_post(self, request: web.Request) -> web.StreamResponse:
        if (bad := self._check(request)) is not None:
            return bad
        job, action = self._job(request)
        if job is None or job.protocol != "gemini":
            return error_response(404, "Requested entity was not found.")
        if action != "cancel":
            return error_response(404, f"method {action!r} is not supported on batches")
        job.cancel()
        return json_response({})

    def operation(self, job: BatchJob) -> dict[str, Any]:
        """The long-running operation the API returns for a batch."""
        phase, counts, n = job.phase, job.counts(), len(job.items)
        meta: dict[str, Any] = {
            "@type": BATCH_TYPE,
            "model": f"models/{job.model}",
            "displayName": job.display_name,
            "name": f"batches/{job.id}",
            "createTime": rfc3339(job.created),
            "updateTime": rfc3339(job.ended or job.created),
            "batchStats": {
                "requestCount": str(n),
                "pendingRequestCount": str(counts["processing"]),
                "successfulRequestCount": str(counts["succeeded"]),
                "failedRequestCount": str(counts["errored"]),
            },
            "state": BATCH_STATES[phase],
        }
        op: dict[str, Any] = {"name": f"batches/{job.id}", "metadata": meta}
        if phase in ("succeeded", "cancelled"):
            meta["endTime"] = rfc3339(job.ended)
            op["done"] = True
        if phase == "succeeded" and job.results is not None:
            output: dict[str, Any]
            if job.id in self.responses_files:
                output = {"responsesFile": self._responses_file(job)}
            else:
                inlined = [self._inlined(job, i, r) for i, r in enumerate(job.results)]
                output = {"inlinedResponses": {"inlinedResponses": inlined}}
            meta["output"] = output
            op["response"] = {"@type": BATCH_OUTPUT_TYPE, **output}
        return op

    def _responses_file(self, job: BatchJob) -> str:
        """The name of a finished file job's responses file: a JSONL line per request, ``{key, response|error}``."""
        if not self.responses_files.get(job.id):
            assert job.results is not None
            lines = []
            for i, result in enumerate(job.results):
                entry = self._inlined(job, i, result)
                lines.append(json.dumps({"key": (entry.pop("metadata", None) or {}).get("key"), **entry}))
            data = ("\n".join(lines) + "\n").encode()
            name = self.files.add(data, "application/jsonl", f"batch-{job.id}-responses", generated=True)["name"]
            self.responses_files[job.id] = name
        return self.responses_files[job.id]

    def _inlined(self, job: BatchJob, i: int, result: Any) -> dict[str, Any]:
        entry: dict[str, Any] = {}
        if result.outcome is not None:
            entry["response"] = response_body(result.outcome)
            # Batch items have no HTTP headers of their own; the SDK reads this object into sdk_http_response.
            entry["response"]["sdkHttpResponse"] = {"headers": {SIMULATED_HEADER: "1"}}
        else:
            err = result.error
            entry["error"] = error_body(503 if err.status == 529 else err.status, err.message)["error"]
        meta = job.item_meta[i] if i < len(job.item_meta) else None
        if meta is not None:
            entry["metadata"] = meta
        return entry
