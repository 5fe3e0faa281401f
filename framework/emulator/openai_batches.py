"""The OpenAI Files and Batches endpoints: JSONL requests uploaded as a file, one batch, output and error files.

``POST /v1/files`` (multipart, purpose=batch), ``GET /v1/files/{id}``, ``GET /v1/files/{id}/content``,
``POST /v1/batches``, ``GET /v1/batches/{id}``, ``POST /v1/batches/{id}/cancel``. Jobs run on the
``BatchStore`` shared with the other protocols; uploaded and produced files are kept in memory.
"""

from __future__ import annotations

import json
import time
from typing import Any

from aiohttp import web

from visionbench.emulator.batches import BatchJob, BatchStore
from visionbench.emulator.engine import CountRequest, Engine, Rejected
from visionbench.emulator.httputil import json_response, new_id, read_json
from visionbench.emulator.openai_api import (
    ERROR_TYPES,
    SERVER_MESSAGES,
    OpenAIBase,
    completion_body,
    error_body,
    parse_request,
)
from visionbench.services.limits import limits_for

BATCH_STATUS = {"pending": "validating", "running": "in_progress", "succeeded": "completed", "cancelled": "cancelled"}


class OpenAIBatchRoutes(OpenAIBase):
    """Files and Batches, bound to the engine and the batch store."""

    def __init__(
        self, engine: Engine, store: BatchStore, gemini_batch_get: Any = None, gemini_file_get: Any = None
    ) -> None:
        super().__init__(engine)
        self.store = store
        #: ``GET /v1/batches/{id}`` and ``GET /v1/files/{id}`` are also Gemini's (API version v1): its callers go there.
        self.gemini_batch_get = gemini_batch_get
        self.gemini_file_get = gemini_file_get
        self.files: dict[str, tuple[dict[str, Any], bytes]] = {}
        #: Output and error file ids of each finished batch (made the first time the batch is seen finished).
        self.batch_files: dict[str, tuple[str | None, str | None]] = {}

    def register(self, app: web.Application) -> None:
        app.router.add_post("/v1/files", self.file_create)
        app.router.add_get("/v1/files/{id}", self.file_get)
        app.router.add_get("/v1/files/{id}/content", self.file_content)
        app.router.add_post("/v1/batches", self.batch_create)
        app.router.add_get("/v1/batches/{id}", self.batch_get)
        app.router.add_post("/v1/batches/{id}/cancel", self.batch_cancel)

    # -- files ----------------------------------------------------------------------------------------------------
    def _file(self, data: bytes, filename: str, purpose: str) -> dict[str, Any]:
        file_id = new_id("file-emu", 10)
        obj = {
            "id": file_id,
            "object": "file",
            "bytes": len(data),
            "created_at": int(time.time()),
            "filename": filename,
            "purpose": purpose,
            "status": "processed",
            "expires_at": None,
            "status_details": None,
        }
        self.files[file_id] = (obj, data)
        return obj

    async def file_create(self, request: web.Request) -> web.StreamResponse:
        if (bad := self._unauthorised(request)) is not None:
            return bad
        try:
            form = await request.post()
        except ValueError:
            return self.reply_error(400, error_body("Expected a multipart/form-data body.", "invalid_request_error"))
        upload, purpose = form.get("file"), str(form.get("purpose", ""))
        if not isinstance(upload, web.FileField):
            return self.reply_error(
                400, error_body("Missing required parameter: 'file'.", "invalid_request_error", param="file")
            )
        if purpose not in ("batch", "assistants", "vision", "user_data", "fine-tune", "evals"):
            return self.reply_error(
                400, error_body(f"Invalid value for 'purpose': {purpose!r}.", "invalid_request_error", param="purpose")
            )
        return json_response(
            self._file(upload.file.read(), upload.filename or "upload", purpose), headers=self._headers()
        )

    def _not_found_file(self, file_id: str) -> web.Response:
        return self.reply_error(404, error_body(f"No such File object: {file_id}", "invalid_request_error", param="id"))

    async def file_get(self, request: web.Request) -> web.StreamResponse:
        if self.gemini_file_get is not None and (request.headers.get("x-goog-api-key") or request.query.get("key")):
            request.match_info["ver"], request.match_info["tail"] = "v1", request.match_info["id"]
            return await self.gemini_file_get(request)
        if (bad := self._unauthorised(request)) is not None:
            return bad
        found = self.files.get(request.match_info["id"])
        return (
            json_response(found[0], headers=self._headers())
            if found
            else self._not_found_file(request.match_info["id"])
        )

    async def file_content(self, request: web.Request) -> web.StreamResponse:
        if (bad := self._unauthorised(request)) is not None:
            return bad
        found = self.files.get(request.match_info["id"])
        if found is None:
            return self._not_found_file(request.match_info["id"])
        return web.Response(body=found[1], content_type="application/octet-stream", headers=self._headers())

    # -- batches --------------------------------------------------------------------------------------------------
    async def batch_create(self, request: web.Request) -> web.StreamResponse:
        if (bad := self._unauthorised(request)) is not None:
            return bad
        try:
            body, _ = await read_json(request)
        except ValueError:
            return self.reply_error(
                400, error_body("We could not parse the JSON body of your request.", "invalid_request_error")
            )
        body = body if isinstance(body, dict) else {}
        if body.get("endpoint") != "/v1/chat/completions":
            message = "The emulator batches only the /v1/chat/completions endpoint."
            return self.reply_error(400, error_body(message, "invalid_request_error", param="endpoint"))
        file_id = str(body.get("input_file_id", ""))
        found = self.files.get(file_id)
        if found is None:
            return self._not_found_file(file_id)
        lim = limits_for("openai", "")
        lines = [line for line in found[1].decode("utf-8", "replace").splitlines() if line.strip()]
        if lim.batch_max_bytes is not None and len(found[1]) > lim.batch_max_bytes:
            message = (
                f"The input file is {len(found[1])} bytes; a batch's input file may be at most {lim.batch_max_bytes}."
            )
            return self.reply_error(400, error_body(message, "invalid_request_error", param="input_file_id"))
        if lim.batch_max_requests is not None and len(lines) > lim.batch_max_requests:
            message = f"The input file has {len(lines)} requests; a batch may have at most {lim.batch_max_requests}."
            return self.reply_error(400, error_body(message, "invalid_request_error", param="input_file_id"))
        items: list[tuple[str, CountRequest | Rejected]] = []
        for n, line in enumerate(lines):
            try:
                entry = json.loads(line)
                custom_id = str(entry["custom_id"])
                params = entry["body"]
            except (json.JSONDecodeError, KeyError, TypeError):
                message = f"Line {n + 1} of the input file is not a valid batch request."
                return self.reply_error(400, error_body(message, "invalid_request_error", param="input_file_id"))
            try:
                items.append((custom_id, parse_request(params, line.encode(), len(json.dumps(params)))))
            except Rejected as exc:
                items.append((custom_id, exc))
        if not items:
            return self.reply_error(400, error_body("The input file has no requests.", "invalid_request_error"))
        model = next((it.model for _, it in items if isinstance(it, CountRequest)), "")
        try:
            job = self.store.submit("openai", model, items, prefix="batch_emu", submitted_bytes=len(found[1]))
        except Rejected as exc:
            return self.rejected(exc, model)
        job.item_meta = [{"input_file_id": file_id, "metadata": body.get("metadata")}]
        return json_response(self.batch_object(job), headers=self._headers())

    def _find(self, request: web.Request) -> BatchJob | None:
        job = self.store.get(request.match_info["id"])
        return job if job is not None and job.protocol == "openai" else None

    def _not_found_batch(self, batch_id: str) -> web.Response:
        return self.reply_error(
            404, error_body(f"No batch found with id '{batch_id}'.", "invalid_request_error", param="batch_id")
        )

    async def batch_get(self, request: web.Request) -> web.StreamResponse:
        job = self.store.get(request.match_info["id"])
        gemini = (job is not None and job.protocol == "gemini") or (
            job is None and (request.headers.get("x-goog-api-key") or request.query.get("key"))
        )
        if gemini and self.gemini_batch_get is not None:
            request.match_info["ver"], request.match_info["tail"] = "v1", request.match_info["id"]
            return await self.gemini_batch_get(request)
        if (bad := self._unauthorised(request)) is not None:
            return bad
        job = self._find(request)
        if job is None:
            return self._not_found_batch(request.match_info["id"])
        return json_response(self.batch_object(job), headers=self._headers())

    async def batch_cancel(self, request: web.Request) -> web.StreamResponse:
        if (bad := self._unauthorised(request)) is not None:
            return bad
        job = self._find(request)
        if job is None:
            return self._not_found_batch(request.match_info["id"])
        job.cancel()
        return json_response(self.batch_object(job), headers=self._headers())

    def _outputs(self, job: BatchJob) -> tuple[str | None, str | None]:
        """The job's output and error files, made once when it has finished."""
        if job.id in self.batch_files:
            return self.batch_files[job.id]
        assert job.results is not None
        ok, failed = [], []
        for (key, item), result in zip(job.items, job.results):
            model = item.model if isinstance(item, CountRequest) else job.model
            line: dict[str, Any] = {"id": new_id("batch_req_emu"), "custom_id": key, "error": None}
            if result.outcome is not None:
                body = completion_body(result.outcome, model)
                line["response"] = {"status_code": 200, "request_id": new_id("req_emu_"), "body": body}
                ok.append(json.dumps(line))
            else:
                err = result.error
                status = 503 if err is None or err.status == 529 else err.status
                message = SERVER_MESSAGES.get(status, err.message if err is not None else "internal error")
                body = error_body(message, ERROR_TYPES.get(status, "server_error"))
                line["response"] = {"status_code": status, "request_id": new_id("req_emu_"), "body": body}
                failed.append(json.dumps(line))
        out_id = (
            self._file(("\n".join(ok) + "\n").encode(), f"{job.id}_output.jsonl", "batch_output")["id"] if ok else None
        )
        err_id = (
            self._file(("\n".join(failed) + "\n").encode(), f"{job.id}_error.jsonl", "batch_output")["id"]
            if failed
            else None
        )
        self.batch_files[job.id] = (out_id, err_id)
        return out_id, err_id

    def batch_object(self, job: BatchJob) -> dict[str, Any]:
        """The Batch JSON."""
        phase, counts, n = job.phase, job.counts(), len(job.items)
        created = int(job.created.timestamp())
        ended = int(job.ended.timestamp()) if job.ended else None
        out_id = err_id = None
        if phase == "succeeded":
            out_id, err_id = self._outputs(job)
        meta = job.item_meta[0] if job.item_meta else {}
        return {
            "id": job.id,
            "object": "batch",
            "endpoint": "/v1/chat/completions",
            "model": job.model,
            "errors": None,
            "input_file_id": meta.get("input_file_id") if isinstance(meta, dict) else None,
            "completion_window": "24h",
            "status": BATCH_STATUS[phase],
            "output_file_id": out_id,
            "error_file_id": err_id,
            "created_at": created,
            "in_progress_at": created if phase != "pending" else None,
            "expires_at": int(job.expires.timestamp()),
            "finalizing_at": ended if phase == "succeeded" else None,
            "completed_at": ended if phase == "succeeded" else None,
            "failed_at": None,
            "expired_at": None,
            "cancelling_at": ended if phase == "cancelled" else None,
            "cancelled_at": ended if phase == "cancelled" else None,
            "request_counts": {"total": n, "completed": counts["succeeded"], "failed": counts["errored"]},
            "metadata": meta.get("metadata") if isinstance(meta, dict) else None,
        }
