"""The Gemini File API as batch jobs use it: resumable uploads of a JSONL input file, file metadata, and downloads
of the responses file a finished job writes.

``POST /upload/{ver}/files`` (``X-Goog-Upload-Command: start``) answers an ``x-goog-upload-url``; the client then
POSTs the bytes there in chunks (``upload``, the last ``upload, finalize``, each at its ``X-Goog-Upload-Offset``),
as google-genai's ``files.upload`` does. ``GET /{ver}/files/{id}`` is the file's metadata and
``GET /{ver}/files/{id}:download?alt=media`` (also under ``/download/``) its bytes: only files the service made
(responses files) can be downloaded, as on the real service. Files are kept in memory.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from visionbench.emulator.batches import rfc3339
from visionbench.emulator.gemini_errors import error_response
from visionbench.emulator.httputil import json_response, new_id, pick
from visionbench.services.limits import limits_for


@dataclass
class Upload:
    """A resumable upload under way."""

    size: int
    mime_type: str
    display_name: str
    data: bytearray = field(default_factory=bytearray)


class GeminiFiles:
    """Uploaded and generated files by name (``files/{id}``)."""

    def __init__(self) -> None:
        self.files: dict[str, tuple[dict[str, Any], bytes]] = {}
        self.uploads: dict[str, Upload] = {}

    def register(self, app: web.Application) -> None:
        app.router.add_post("/upload/{ver}/files", self.upload)
        app.router.add_get("/{ver}/files/{tail}", self.file_get)
        app.router.add_get("/download/{ver}/files/{tail}", self.file_get)

    def add(self, data: bytes, mime_type: str, display_name: str, *, generated: bool) -> dict[str, Any]:
        """Keep ``data`` as a new file; its metadata as the API shows it."""
        name = "files/" + new_id("", 8)
        now = rfc3339(datetime.now(UTC))
        meta = {
            "name": name,
            "displayName": display_name,
            "mimeType": mime_type,
            "sizeBytes": str(len(data)),
            "createTime": now,
            "updateTime": now,
            "state": "ACTIVE",
            "source": "GENERATED" if generated else "UPLOADED",
        }
        if generated:
            meta["downloadUri"] = f"{name}:download?alt=media"
        self.files[name] = (meta, data)
        return meta

    def data(self, name: str) -> bytes | None:
        found = self.files.get(name if name.startswith("files/") else f"files/{name}")
        return found[1] if found else None

    @staticmethod
    def _status(response: web.Response, status: str) -> web.Response:
        response.headers["x-goog-upload-status"] = status
        return response

    async def upload(self, request: web.Request) -> web.StreamResponse:
        upload_id = request.query.get("upload_id")
        command = request.headers.get("x-goog-upload-command", "")
        if upload_id is None:  # the upload URL it answers stands for the key from then on
            if not (request.headers.get("x-goog-api-key") or request.query.get("key")):
                return error_response(403, "Method doesn't allow unregistered callers. Please use API Key.")
            return await self._start(request, command)
        up = self.uploads.get(upload_id)
        if up is None:
            return self._status(error_response(404, f"upload {upload_id!r} not found"), "final")
        offset = request.headers.get("x-goog-upload-offset", "")
        if offset != str(len(up.data)):
            message = f"X-Goog-Upload-Offset {offset!r} is not where the upload stands ({len(up.data)})"
            return self._status(error_response(400, message), "final")
        up.data += await request.read()
        if len(up.data) > up.size:
            del self.uploads[upload_id]
            message = f"upload sent {len(up.data)} bytes, more than the {up.size} declared"
            return self._status(error_response(400, message), "final")
        if "finalize" not in command:
            return self._status(json_response({}), "active")
        del self.uploads[upload_id]
        if len(up.data) != up.size:
            message = f"upload finalized at {len(up.data)} bytes, not the {up.size} declared"
            return self._status(error_response(400, message), "final")
        meta = self.add(bytes(up.data), up.mime_type, up.display_name, generated=False)
        return self._status(json_response({"file": meta}), "final")

    async def _start(self, request: web.Request, command: str) -> web.StreamResponse:
        if command != "start" or request.headers.get("x-goog-upload-protocol") != "resumable":
            return error_response(400, "the emulator takes files only by the resumable upload protocol")
        try:
            size = int(request.headers.get("x-goog-upload-header-content-length", ""))
        except ValueError:
            return error_response(400, "X-Goog-Upload-Header-Content-Length is required")
        cap = limits_for("gemini", "").batch_max_bytes
        if cap is not None and size > cap:
            return error_response(400, f"File of {size} bytes exceeds the maximum file size of {cap} bytes.")
        body = await request.json() if request.can_read_body else {}
        meta = pick(body, "file", default={}) or {}
        mime = str(request.headers.get("x-goog-upload-header-content-type") or pick(meta, "mimeType", default=""))
        upload_id = new_id("emu", 12)
        self.uploads[upload_id] = Upload(size, mime, str(pick(meta, "displayName", "display_name", default="")))
        url = f"{request.scheme}://{request.host}{request.path}?upload_id={upload_id}&upload_protocol=resumable"
        response = json_response({})
        response.headers["x-goog-upload-url"] = url
        return self._status(response, "active")

    async def file_get(self, request: web.Request) -> web.StreamResponse:
        if not (request.headers.get("x-goog-api-key") or request.query.get("key")):
            return error_response(403, "Method doesn't allow unregistered callers. Please use API Key.")
        file_id, _, action = request.match_info["tail"].partition(":")
        found = self.files.get(f"files/{file_id}")
        if found is None:
            return error_response(404, f"File files/{file_id} was not found.")
        meta, data = found
        if not action:
            return json_response(meta)
        if action != "download":
            return error_response(404, f"method {action!r} is not supported on files")
        if meta["source"] != "GENERATED":
            return error_response(400, "Only generated files can be downloaded; uploaded files cannot.")
        return web.Response(body=data, content_type="application/octet-stream")
