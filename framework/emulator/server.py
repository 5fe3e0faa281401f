"""The emulator server: an aiohttp app on loopback speaking the Gemini, Anthropic and OpenAI wire protocols."""

from __future__ import annotations

import asyncio
import ipaddress
import logging
from collections.abc import Collection, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

from aiohttp import web

from visionbench.clock import REAL_CLOCK, Clock
from visionbench.emulator.anthropic_api import AnthropicRoutes
from visionbench.emulator.batches import BatchStore
from visionbench.emulator.catalogue import Catalogue
from visionbench.emulator.engine import Engine
from visionbench.emulator.gemini_api import GeminiRoutes
from visionbench.emulator.httputil import json_response
from visionbench.emulator.keys import key_check
from visionbench.emulator.matching import DatasetIndex
from visionbench.emulator.openai_api import OpenAIRoutes, error_body
from visionbench.emulator.openai_batches import OpenAIBatchRoutes
from visionbench.emulator.profile_schema import EmulatorProfiles, load_profiles
from visionbench.emulator.state import ModelStats
from visionbench.provider import SIMULATED_HEADER

log = logging.getLogger(__name__)

#: Largest request body accepted (Anthropic batches may be large; real limits are enforced by no one here).
MAX_BODY_BYTES = 256 * 1024 * 1024


def check_loopback(host: str) -> None:
    """Refuse to bind anything but loopback (127.0.0.0/8, ::1, localhost): by default it accepts any key."""
    if host == "localhost":
        return
    try:
        ok = ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        ok = False
    if not ok:
        raise ValueError(f"the emulator binds only loopback addresses (127.x.x.x, ::1, localhost), not {host!r}")


async def _mark_simulated(request: web.Request, response: web.StreamResponse) -> None:
    response.headers[SIMULATED_HEADER] = "1"


@web.middleware
async def _errors(request: web.Request, handler: Any) -> web.StreamResponse:
    """Unknown routes and unexpected failures still answer JSON (never echoing headers or keys)."""
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        body = {
            "error": {
                "code": exc.status,
                "message": f"{exc.reason}: {request.method} {request.path}",
                "status": "NOT_FOUND" if exc.status == 404 else "INVALID_ARGUMENT",
            }
        }
        if request.path.startswith(("/v1/chat", "/v1/files", "/v1/batches")):
            body = error_body(body["error"]["message"], "invalid_request_error")
        if request.path.startswith("/v1/messages"):
            body = {
                "type": "error",
                "error": {
                    "type": {404: "not_found_error", 413: "request_too_large"}.get(exc.status, "invalid_request_error"),
                    "message": body["error"]["message"],
                },
            }
        return json_response(body, status=exc.status)
    except asyncio.CancelledError:
        raise
    except Exception:  # noqa: BLE001 - report as a 500 like a real service would
        log.exception("emulator: unexpected error on %s %s", request.method, request.path)
        return json_response(
            {"error": {"code": 500, "message": "emulator internal error", "status": "INTERNAL"}}, status=500
        )


class Emulator:
    """A local Gemini + Anthropic + OpenAI emulator; use as ``async with Emulator(...) as emu: emu.base_url``.

    OpenAI clients take ``base_url=emu.base_url + "/v1"`` (``emu.openai_base_url``), as for api.openai.com.
    """

    def __init__(
        self,
        profiles: EmulatorProfiles | str | Path | None = None,
        *,
        dataset: str | Path | None = None,
        images: Sequence[tuple[str, Path, Any]] | None = None,
        labels: str | None = "labels.json",
        label_field: str | None = "person_count",
        host: str = "127.0.0.1",
        port: int = 0,
        time_scale: float | None = None,
        valid_keys: Collection[str] | None = None,
        clock: Clock = REAL_CLOCK,
        session: int = 0,
    ) -> None:
        check_loopback(host)
        if valid_keys is not None and not all(valid_keys):
            raise ValueError("valid_keys: an empty key cannot be the valid one")
        if time_scale is not None and time_scale < 0:
            raise ValueError(f"time_scale must be >= 0, not {time_scale}")
        self.profiles = profiles if isinstance(profiles, EmulatorProfiles) else load_profiles(profiles)
        self.dataset = Path(dataset) if dataset is not None else None
        #: The dataset as (key, image path, label) instead of a folder: a rows manifest's items, each with its answer.
        self.images = images
        self.labels, self.label_field = labels, label_field
        self.host, self.port = host, port
        self.time_scale = self.profiles.time_scale if time_scale is None else time_scale
        #: None: any non-empty key is accepted; else only these (others answered as each service does).
        self.valid_keys = frozenset(valid_keys) if valid_keys is not None else None
        #: The clock the emulator waits on (service times, rate-limit windows, batch turnaround).
        self.clock = clock
        #: A resumed run's emulator is a new one: ``session`` (how many times the run was resumed) gives it draws
        #: of its own (faults, noise), so a request that failed by a fault draw is not failed again the same way.
        self.session = session
        self.catalogue = Catalogue.now(self.profiles)
        self.base_url = ""
        self.index: DatasetIndex | None = None
        self.engine: Engine | None = None
        self._store: BatchStore | None = None
        #: The Gemini routes (their files and which batch jobs came as a file), once the app is built.
        self.gemini_routes: GeminiRoutes | None = None
        self._runner: web.AppRunner | None = None

    @property
    def stats(self) -> dict[str, ModelStats]:
        """Counters per requested model name (requests, rate_limited, faults by kind, max_in_flight, ...)."""
        return {name: state.stats for name, state in self.engine.models.items()} if self.engine else {}

    def build_app(self) -> web.Application:
        """The aiohttp application (routes of both protocols, the simulated-header signal)."""
        assert self.engine is not None and self._store is not None
        middlewares = [_errors] + ([key_check(self.valid_keys)] if self.valid_keys is not None else [])
        app = web.Application(client_max_size=MAX_BODY_BYTES, middlewares=middlewares)
        app.on_response_prepare.append(_mark_simulated)
        AnthropicRoutes(self.engine, self._store).register(app)
        gemini = self.gemini_routes = GeminiRoutes(self.engine, self._store)
        gemini.register(app)
        OpenAIRoutes(self.engine).register(app)
        OpenAIBatchRoutes(
            self.engine, self._store, gemini_batch_get=gemini.batch_get, gemini_file_get=gemini.files.file_get
        ).register(app)
        return app

    async def __aenter__(self) -> Emulator:
        if self.images is not None:
            self.index = await asyncio.to_thread(DatasetIndex.from_images, self.images)
            log.info("emulator: indexed %d dataset images", len(self.index))
        elif self.dataset is not None:
            self.index = await asyncio.to_thread(DatasetIndex.build, self.dataset, self.labels, self.label_field)
            log.info("emulator: indexed %d dataset images from %s", len(self.index), self.dataset)
        self.engine = Engine(
            self.profiles, self.index, self.time_scale, self.catalogue, clock=self.clock, session=self.session
        )
        self._store = BatchStore(self.engine)
        # access_log=None: the default access log would print query strings, which may hold an API key.
        self._runner = web.AppRunner(self.build_app(), access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        try:
            await site.start()
        except BaseException:
            await self._runner.cleanup()
            raise
        host, port = self._runner.addresses[0][:2]
        self.port = port
        self.base_url = f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"
        return self

    @property
    def openai_base_url(self) -> str:
        return self.base_url + "/v1"

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._store is not None:
            await self._store.close()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None


async def serve_forever(
    profiles_path: str | Path | None = None,
    dataset: str | Path | None = None,
    *,
    labels: str | None = "labels.json",
    label_field: str | None = "person_count",
    host: str = "127.0.0.1",
    port: int = 0,
    time_scale: float | None = None,
    valid_keys: Collection[str] | None = None,
) -> None:
    """Run an emulator until cancelled (Ctrl+C); prints its URL on start. Used by ``visionbench emulate``."""
    async with Emulator(
        profiles_path,
        dataset=dataset,
        labels=labels,
        label_field=label_field,
        host=host,
        port=port,
        time_scale=time_scale,
        valid_keys=valid_keys,
    ) as emu:
        known = len(emu.index) if emu.index is not None else 0
        print(
            f"visionbench emulator listening on {emu.base_url} "
            f"(models: the {len(emu.catalogue.served('gemini'))} Gemini and {len(emu.catalogue.served('anthropic'))}"
            f" Claude models the services serve today, and profiles' names; dataset images: {known}; "
            f"time_scale: {emu.time_scale}; keys: {'only the valid one' if emu.valid_keys else 'any'})",
            flush=True,
        )
        print(
            f"  Gemini:    genai.Client(api_key='any', http_options=types.HttpOptions(base_url='{emu.base_url}'))",
            flush=True,
        )
        print(f"  Anthropic: AsyncAnthropic(api_key='any', base_url='{emu.base_url}')", flush=True)
        print(f"  OpenAI:    AsyncOpenAI(api_key='any', base_url='{emu.openai_base_url}')", flush=True)
        await asyncio.Event().wait()
