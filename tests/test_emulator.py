"""The emulator, driven over HTTP by the unmodified google-genai and anthropic SDKs."""

from __future__ import annotations

import asyncio
import base64
import io
import json
import time
from pathlib import Path
from typing import Any

import aiohttp
import anthropic
import numpy as np
import pytest
from conftest import EVAL_IMAGES, needs_eval_images
from google import genai
from google.genai import errors as genai_errors
from google.genai import types
from PIL import Image

from visionbench.emulator import SIMULATED_HEADER, Emulator, load_profiles, serve_forever
from visionbench.emulator import engine as engine_mod
from visionbench.emulator.matching import DatasetIndex, analyse
from visionbench.emulator.profile_schema import profiles_from_dict
from visionbench.emulator.request import CountRequest, ImagePart
from visionbench.services import tokens

LABELS = {"a.png": 0, "b.png": 3, "c.png": 12, "d.png": 120}
QUIET = {
    "latency": {"base_s": 0.0, "jitter": 0.0, "output_tokens_per_s": 1e6},
    "faults": {"http_500": 0, "http_503": 0, "drop_connection": 0},
    "answers": {"relative_sd": 0, "absolute_sd": 0, "multi_image_undercount": 0, "low_res_undercount": 0},
    "batch": {"turnaround_s": 0.3},
    "rate_limit": {"requests_per_minute": None},
}


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Four 480x360 images with distinct low-frequency structure (smooth random blobs) and labels."""
    folder = tmp_path_factory.mktemp("emu-data")
    rng = np.random.default_rng(7)
    for name in LABELS:
        small = rng.integers(0, 256, size=(6, 8, 3), dtype=np.uint8)
        Image.fromarray(small).resize((480, 360), Image.BICUBIC).save(folder / name)
    (folder / "labels.json").write_text(json.dumps({k: {"person_count": v} for k, v in LABELS.items()}))
    return folder


def make_profiles(**model: Any) -> Any:
    """Quiet profiles for every model name, with ``model`` deep-merged over them."""
    return profiles_from_dict({"defaults": QUIET, "models": {"*": model}})


def jpeg(path: Path, side: int = 300, quality: int = 70, size: tuple[int, int] | None = None) -> bytes:
    """``path`` downscaled to ``side`` px (or resized to ``size``) and re-encoded, as a client would send it."""
    with Image.open(path) as im:
        im = im.convert("RGB")
        if size:
            im = im.resize(size, Image.LANCZOS)
        else:
            im.thumbnail((side, side))
        out = io.BytesIO()
        im.save(out, "JPEG", quality=quality)
        return out.getvalue()


def gemini(emu: Emulator, version: str = "v1") -> genai.Client:
    # attempts=1: no retries, and no implicit 1-10 s reconnect sleep on a dropped connection.
    return genai.Client(
        api_key="test-key",
        http_options=types.HttpOptions(
            base_url=emu.base_url, api_version=version, retry_options=types.HttpRetryOptions(attempts=1)
        ),
    )


def claude(emu: Emulator) -> anthropic.AsyncAnthropic:
    return anthropic.AsyncAnthropic(api_key="test-key", base_url=emu.base_url, max_retries=0)


def g_parts(*images: bytes, prompt: str = "How many people are in the image?") -> list[Any]:
    return [*(types.Part.from_bytes(data=d, mime_type="image/jpeg") for d in images), prompt]


def a_messages(*images: bytes, prompt: str = "How many people are in the image?") -> list[dict[str, Any]]:
    blocks: list[dict[str, Any]] = [
        {
            "type": "image",
            "source": {"type": "base64", "media_type": "image/jpeg", "data": base64.b64encode(d).decode()},
        }
        for d in images
    ]
    return [{"role": "user", "content": [*blocks, {"type": "text", "text": prompt}]}]


# -- token formulas -----------------------------------------------------------------------------------------------
def test_token_formulas_match_recorded_usage() -> None:
    assert tokens.gemini_image_tokens(540, 360) == 1806  # cassette gemini_2.0-flash_image-jpeg-540x360
    assert tokens.gemini_image_tokens(3008, 2000) == 3354  # cassette gemini_2.0-flash_image-png-3008x2000
    assert tokens.gemini_image_tokens(384, 300) == 258
    assert tokens.gemini_image_tokens(1000, 1000, model="gemini-3-flash-preview") == 1120
    # Gemini 3 and later by media resolution level, whatever the size (gemini-4-argon took the 2.x tile fit: 1806)
    assert tokens.gemini_image_tokens(540, 360, model="gemini-4-argon") == 1120
    assert tokens.gemini_image_tokens(540, 360, model="models/gemini-4-argon", media_resolution="low") == (
        tokens.gemini_image_tokens(540, 360, model="gemini-3.5-flash", media_resolution="low")
    )
    assert tokens.gemini_image_tokens(540, 360, model="gemini-2.5-flash") == 1806
    assert tokens.anthropic_image_tokens(540, 360) == 260
    # haiku-4-5 cassette: 540x360 JPEG + "What is this vegetable?" -> 276 input tokens
    assert 260 + tokens.text_tokens("What is this vegetable?") + tokens.ANTHROPIC_OVERHEAD == 276
    assert tokens.anthropic_image_tokens(3000, 2000) == 1600  # downscaled to 1568 long edge, then capped


# -- Gemini -------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("version", ["v1", "v1beta"])
async def test_gemini_generate_content(dataset: Path, version: str) -> None:
    data = jpeg(dataset / "c.png", size=(540, 360))
    async with Emulator(make_profiles(latency={"thinking_tokens": 50}), dataset=dataset) as emu:
        client = gemini(emu, version)
        r = await client.aio.models.generate_content(model="gemini-3.5-flash", contents=g_parts(data))
        assert r.text == "12"
        assert r.sdk_http_response.headers[SIMULATED_HEADER] == "1"
        u = r.usage_metadata
        image = {d.modality.value: d.token_count for d in u.prompt_tokens_details}["IMAGE"]
        assert image == tokens.gemini_image_tokens(540, 360, model="gemini-3.5-flash") == 1120
        assert u.thoughts_token_count == 50
        assert u.total_token_count == u.prompt_token_count + u.candidates_token_count + 50
        assert r.model_version == "gemini-3.5-flash" and r.response_id
        assert r.candidates[0].finish_reason == types.FinishReason.STOP
        assert emu.stats["gemini-3.5-flash"].succeeded == 1


async def test_gemini_json_schema_thinking_off_and_count_tokens(dataset: Path) -> None:
    images = [jpeg(dataset / n, side=200) for n in ("b.png", "d.png", "a.png")]
    async with Emulator(make_profiles(latency={"thinking_tokens": 300}), dataset=dataset) as emu:
        client = gemini(emu)
        config = types.GenerateContentConfig(
            response_mime_type="application/json",
            response_schema={"type": "ARRAY", "items": {"type": "INTEGER"}},
            thinking_config=types.ThinkingConfig(thinking_budget=0),
        )
        r = await client.aio.models.generate_content(model="gemini-3.5-flash", contents=g_parts(*images), config=config)
        assert json.loads(r.text) == [3, 120, 0]
        assert not r.usage_metadata.thoughts_token_count
        assert {d.modality.value: d.token_count for d in r.usage_metadata.prompt_tokens_details}["IMAGE"] == 3 * 1120
        counted = await client.aio.models.count_tokens(model="gemini-3.5-flash", contents=g_parts(*images))
        assert counted.total_tokens == r.usage_metadata.prompt_token_count


async def test_gemini_max_output_tokens_consumed_by_thinking(dataset: Path) -> None:
    async with Emulator(make_profiles(latency={"thinking_tokens": 300}), dataset=dataset) as emu:
        client = gemini(emu)
        r = await client.aio.models.generate_content(
            model="gemini-3.1-pro-preview",
            contents=g_parts(jpeg(dataset / "b.png")),
            config=types.GenerateContentConfig(max_output_tokens=300),
        )
        assert r.candidates[0].finish_reason == types.FinishReason.MAX_TOKENS
        assert not r.text and r.usage_metadata.thoughts_token_count == 300


async def test_gemini_batch_create_get_cancel(dataset: Path) -> None:
    async with Emulator(make_profiles(), dataset=dataset) as emu:
        client = gemini(emu, "v1beta")
        src = [
            types.InlinedRequest(
                contents=[
                    types.Content(
                        role="user",
                        parts=[
                            types.Part.from_bytes(data=jpeg(dataset / n), mime_type="image/jpeg"),
                            types.Part(text="How many?"),
                        ],
                    )
                ],
                metadata={"key": n},
            )
            for n in ("b.png", "c.png")
        ]
        garbage = types.Part.from_bytes(data=b"not an image", mime_type="image/jpeg")
        src.append(types.InlinedRequest(contents=[garbage, "How many?"], metadata={"key": "bad"}))
        job = await client.aio.batches.create(model="gemini-3.5-flash", src=src, config={"display_name": "t"})
        assert job.name.startswith("batches/") and job.state == types.JobState.JOB_STATE_PENDING
        deadline = time.monotonic() + 30  # a hang guard, not a speed bound
        while not (job := await client.aio.batches.get(name=job.name)).done:
            assert time.monotonic() < deadline
            await asyncio.sleep(0.05)
        assert job.state == types.JobState.JOB_STATE_SUCCEEDED
        got = {r.metadata["key"]: r for r in job.dest.inlined_responses}
        assert got["b.png"].response.text == "3" and got["c.png"].response.text == "12"
        assert got["b.png"].response.usage_metadata.prompt_token_count > 258
        assert got["bad"].response is None and got["bad"].error.code == 400

        second = await client.aio.batches.create(model="gemini-3.5-flash", src=src[:1])
        await client.aio.batches.cancel(name=second.name)
        assert (await client.aio.batches.get(name=second.name)).state == types.JobState.JOB_STATE_CANCELLED


# -- Anthropic -----------------------------------------------------------------------------------------------------
async def test_anthropic_messages_and_count_tokens(dataset: Path) -> None:
    data = jpeg(dataset / "d.png", size=(540, 360))
    async with Emulator(make_profiles(rate_limit={"requests_per_minute": 100}), dataset=dataset) as emu:
        client = claude(emu)
        raw = await client.messages.with_raw_response.create(
            model="claude-haiku-4-5-20251001", max_tokens=64, messages=a_messages(data)
        )
        message = await raw.parse()
        assert message.content[0].text == "120" and message.stop_reason == "end_turn"
        assert message.id.startswith("msg_") and message.model == "claude-haiku-4-5-20251001"
        prompt_tokens = tokens.text_tokens("How many people are in the image?") + tokens.ANTHROPIC_OVERHEAD
        assert message.usage.input_tokens == 260 + prompt_tokens  # ceil(540 * 360 / 750)
        assert message.usage.cache_read_input_tokens == 0
        assert raw.headers[SIMULATED_HEADER] == "1" and raw.headers["request-id"]
        assert raw.headers["anthropic-ratelimit-requests-limit"] == "100"
        assert raw.headers["anthropic-ratelimit-requests-remaining"] == "99"
        counted = await client.messages.count_tokens(model="claude-haiku-4-5", messages=a_messages(data))
        assert counted.input_tokens == message.usage.input_tokens


async def test_anthropic_batches(dataset: Path) -> None:
    async with Emulator(make_profiles(), dataset=dataset) as emu:
        client = claude(emu)
        requests = [
            {
                "custom_id": n,
                "params": {"model": "claude-sonnet-4-6", "max_tokens": 32, "messages": a_messages(jpeg(dataset / n))},
            }
            for n in ("a.png", "c.png")
        ]
        requests.append(
            {
                "custom_id": "bad",
                "params": {
                    "model": "claude-sonnet-4-6",
                    "max_tokens": 32,
                    "messages": a_messages(b"not an image"),  # an image it cannot decode
                },
            }
        )
        batch = await client.messages.batches.create(requests=requests)
        assert batch.processing_status == "in_progress" and batch.request_counts.processing == 3
        deadline = time.monotonic() + 30  # a hang guard, not a speed bound
        while (batch := await client.messages.batches.retrieve(batch.id)).processing_status != "ended":
            assert time.monotonic() < deadline
            await asyncio.sleep(0.05)
        assert batch.results_url.startswith(emu.base_url)
        assert (batch.request_counts.succeeded, batch.request_counts.errored) == (2, 1)
        results = {r.custom_id: r.result async for r in await client.messages.batches.results(batch.id)}
        assert results["a.png"].type == "succeeded" and results["a.png"].message.content[0].text == "0"
        assert results["c.png"].message.content[0].text == "12"
        assert results["bad"].type == "errored" and results["bad"].error.error.type == "invalid_request_error"

        other = await client.messages.batches.create(requests=requests[:1])
        assert (await client.messages.batches.cancel(other.id)).processing_status == "canceling"
        other = await client.messages.batches.retrieve(other.id)
        assert other.processing_status == "ended" and other.request_counts.canceled == 1


# -- rate limits, faults, capacity ---------------------------------------------------------------------------------
async def test_rate_limit_429_with_retry_after(dataset: Path) -> None:
    data = jpeg(dataset / "b.png")
    async with Emulator(make_profiles(rate_limit={"requests_per_minute": 1}), dataset=dataset) as emu:
        g, a = gemini(emu), claude(emu)
        await g.aio.models.generate_content(model="gemini-3.5-flash", contents=g_parts(data))
        with pytest.raises(genai_errors.ClientError) as gerr:
            await g.aio.models.generate_content(model="gemini-3.5-flash", contents=g_parts(data))
        assert gerr.value.code == 429 and gerr.value.status == "RESOURCE_EXHAUSTED"
        assert int(gerr.value.response.headers["retry-after"]) >= 1
        # As the service does: a QuotaFailure naming the quota, then the RetryInfo.
        quota, retry = gerr.value.details["error"]["details"]
        assert retry["retryDelay"].endswith("s") and "requests" in quota["violations"][0]["quotaMetric"]
        await a.messages.create(model="claude-haiku-4-5", max_tokens=8, messages=a_messages(data))
        with pytest.raises(anthropic.RateLimitError) as aerr:
            await a.messages.create(model="claude-haiku-4-5", max_tokens=8, messages=a_messages(data))
        assert aerr.value.status_code == 429 and aerr.value.type == "rate_limit_error"
        assert int(aerr.value.response.headers["retry-after"]) >= 1
        assert aerr.value.response.headers["anthropic-ratelimit-requests-remaining"] == "0"
        assert emu.stats["gemini-3.5-flash"].rate_limited == 1 and emu.stats["claude-haiku-4-5"].rate_limited == 1


@pytest.mark.parametrize(
    "fault, gemini_exc, anthropic_exc",
    [
        ("http_500", genai_errors.ServerError, anthropic.InternalServerError),
        ("http_503", genai_errors.ServerError, anthropic.ServiceUnavailableError),
        ("http_529", genai_errors.ServerError, anthropic.OverloadedError),
        ("malformed_body", json.JSONDecodeError, json.JSONDecodeError),
        ("drop_connection", aiohttp.ServerDisconnectedError, anthropic.APIConnectionError),
    ],
)
async def test_faults_surface_as_sdk_errors(dataset: Path, fault: str, gemini_exc: type, anthropic_exc: type) -> None:
    data = jpeg(dataset / "b.png")
    async with Emulator(make_profiles(faults={fault: 1.0}), dataset=dataset) as emu:
        with pytest.raises(gemini_exc) as gerr:
            client = gemini(emu)
            await client.aio.models.generate_content(model="gemini-3.5-flash", contents=g_parts(data))
        with pytest.raises(anthropic_exc) as aerr:
            await claude(emu).messages.create(model="claude-haiku-4-5", max_tokens=8, messages=a_messages(data))
        if fault.startswith("http_"):
            assert gerr.value.code == (500 if fault == "http_500" else 503)
            assert aerr.value.status_code == int(fault[5:])
        assert emu.stats["gemini-3.5-flash"].faults[fault] == 1
        assert emu.stats["claude-haiku-4-5"].faults[fault] == 1


async def test_capacity_queueing_delays_requests(dataset: Path) -> None:
    data = jpeg(dataset / "b.png")
    profile = make_profiles(capacity=1, latency={"base_s": 0.2, "output_tokens_per_s": 1e9})
    async with Emulator(profile, dataset=dataset, time_scale=1.0) as emu:
        client = gemini(emu)
        start = time.monotonic()
        await asyncio.gather(
            *(client.aio.models.generate_content(model="gemini-3.5-flash", contents=g_parts(data)) for _ in range(3))
        )
        elapsed = time.monotonic() - start
        # Three 0.2 s services one after another; in parallel they would take 0.2 s. The margin is the event
        # loop's clock resolution, which may wake a sleep a few ms early.
        assert elapsed >= 0.55
        stats = emu.stats["gemini-3.5-flash"]
        assert stats.max_in_flight == 1 and stats.max_queued == 2 and stats.succeeded == 3


class SteppedClock:
    """A clock (``visionbench.clock.Clock``) that moves only when told to or slept on, recording each sleep."""

    def __init__(self) -> None:
        self.t = 0.0
        self.sleeps: list[float] = []

    def now(self) -> float:
        return self.t

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.t += seconds


def count_request(dataset: Path) -> CountRequest:
    return CountRequest("gemini", "gemini-3.5-flash", [ImagePart(jpeg(dataset / "b.png"))], prompt="How many?")


async def test_service_time_includes_the_emulators_own_work(dataset: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A fixed 0.5 s latency means 0.5 s from arrival: slow image analysis (0.3 s here) is part of it, not added."""
    clock = SteppedClock()
    slow_analyse = engine_mod.Engine.analyse_images

    async def analyse_slowly(self: Any, req: Any, st: Any) -> Any:
        clock.t += 0.3  # the analysis takes 0.3 s of the emulator's clock
        return await slow_analyse(self, req, st)

    monkeypatch.setattr(engine_mod.Engine, "analyse_images", analyse_slowly)
    index = DatasetIndex.build(dataset, "labels.json", "person_count")
    engine = engine_mod.Engine(
        make_profiles(latency={"base_s": 0.5, "output_tokens_per_s": 1e9}), index, 1.0, clock=clock
    )
    outcome = await engine.serve(count_request(dataset))
    assert outcome.text == "3"
    assert clock.sleeps == [pytest.approx(0.2)] and clock.t == pytest.approx(0.5)  # 0.3 of work + 0.2 of waiting


async def test_time_scale_zero_is_instant(dataset: Path) -> None:
    clock = SteppedClock()
    index = DatasetIndex.build(dataset, "labels.json", "person_count")
    engine = engine_mod.Engine(make_profiles(latency={"base_s": 30.0}), index, 0, clock=clock)
    assert (await engine.serve(count_request(dataset))).text == "3"
    assert clock.sleeps == [] and clock.t == 0  # the 30 s of service time are not waited for at all
    async with Emulator(make_profiles(latency={"base_s": 30.0}), dataset=dataset, time_scale=0, clock=clock) as emu:
        client = gemini(emu)  # kept: a client no longer referenced closes its connections
        r = await client.aio.models.generate_content(
            model="gemini-3.5-flash", contents=g_parts(jpeg(dataset / "b.png"))
        )
        assert r.text == "3" and clock.sleeps == []  # and through the HTTP front end


# -- auth, errors, hosts -------------------------------------------------------------------------------------------
async def test_missing_key_and_simulated_header(dataset: Path) -> None:
    async with Emulator(make_profiles(), dataset=dataset) as emu, aiohttp.ClientSession() as http:
        async with http.post(f"{emu.base_url}/v1beta/models/gemini-3.5-flash:generateContent", json={}) as resp:
            assert resp.status == 403 and resp.headers[SIMULATED_HEADER] == "1"
            assert (await resp.json())["error"]["status"] == "PERMISSION_DENIED"
        async with http.post(f"{emu.base_url}/v1/messages", json={}) as resp:
            assert resp.status == 401 and resp.headers[SIMULATED_HEADER] == "1"
            body = await resp.json()
            assert body["type"] == "error" and body["error"]["type"] == "authentication_error"
        async with http.get(f"{emu.base_url}/nowhere") as resp:
            assert resp.status == 404 and resp.headers[SIMULATED_HEADER] == "1"


async def test_unknown_model_and_undecodable_image(dataset: Path) -> None:
    """A request with no image is answered (tests/test_emulator_tasks.py); one with bytes that are no image is 400."""
    profiles = profiles_from_dict({"defaults": QUIET, "models": {"gemini-3.5-flash": {}, "claude-haiku-4-5": {}}})
    async with Emulator(profiles, dataset=dataset) as emu:
        g, a = gemini(emu), claude(emu)
        with pytest.raises(genai_errors.ClientError) as gerr:
            await g.aio.models.generate_content(model="gemini-9", contents=g_parts(jpeg(dataset / "b.png")))
        assert (gerr.value.code, gerr.value.status) == (404, "NOT_FOUND")
        with pytest.raises(genai_errors.ClientError) as gerr:
            await g.aio.models.generate_content(model="gemini-3.5-flash", contents=g_parts(b"not an image"))
        assert (gerr.value.code, gerr.value.status) == (400, "INVALID_ARGUMENT")
        with pytest.raises(anthropic.NotFoundError):
            await a.messages.create(model="claude-9", max_tokens=8, messages=a_messages(jpeg(dataset / "b.png")))
        with pytest.raises(anthropic.BadRequestError) as aerr:
            await a.messages.create(model="claude-haiku-4-5", max_tokens=8, messages=a_messages(b"not an image"))
        assert aerr.value.type == "invalid_request_error"


async def test_unknown_image_answers_zero_with_note(dataset: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(engine_mod.faces, "available", lambda: False)
    stripes = Image.fromarray((np.indices((300, 400)).sum(0) % 40 * 6).astype(np.uint8)).convert("RGB")
    out = io.BytesIO()
    stripes.save(out, "JPEG")
    async with Emulator(make_profiles(), dataset=dataset) as emu:
        client = gemini(emu)
        r = await client.aio.models.generate_content(model="gemini-3.5-flash", contents=g_parts(out.getvalue()))
        assert r.text == "0" and "unknown image" in r.sdk_http_response.headers["x-visionbench-note"]
        assert emu.stats["gemini-3.5-flash"].unknown_images == 1


def test_loopback_only_and_profile_validation(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="loopback"):
        Emulator(host="0.0.0.0")
    Emulator(host="::1")
    Emulator(host="localhost")
    default = load_profiles()
    for name in (
        "gemini-3.5-flash",
        "gemini-3.5-flash-lite",
        "gemini-3.1-pro-preview",
        "gemini-3-flash-preview",
        "claude-haiku-4-5",
        "claude-sonnet-4-6",
        "*",
    ):
        assert name in default.models
    assert default.resolve("claude-haiku-4-5-20251001")[0] == "claude-haiku-4-5"
    assert default.resolve("models/gemini-3.1-pro-preview")[0] == "gemini-3.1-pro-preview"
    assert default.resolve("something-else")[0] == "*"
    bad = tmp_path / "bad.yaml"
    bad.write_text("models:\n  m:\n    capacity: 0\n    faults: {http_500: 0.7, http_503: 0.7}\n")
    with pytest.raises(ValueError, match=r"models\.m\.capacity") as err:
        load_profiles(bad)
    assert "must not exceed 1" in str(err.value)
    bad.write_text("models:\n  m:\n    latncy: {}\n")
    with pytest.raises(ValueError, match="latncy"):
        load_profiles(bad)


async def test_error_model_is_deterministic_and_undercounts(dataset: Path) -> None:
    noisy = {"answers": {"relative_sd": 0.2, "multi_image_undercount": 0.5, "crowd_scale": 100}}
    data = [jpeg(dataset / "d.png", side=480) for _ in range(4)]

    async def run() -> list[int]:
        async with Emulator(make_profiles(**noisy), dataset=dataset) as emu:
            client = gemini(emu)
            r = await client.aio.models.generate_content(model="gemini-3.5-flash", contents=g_parts(*data))
            return json.loads(r.text)

    first, second = await run(), await run()
    assert first == second and len(first) == 4
    assert len(set(first)) > 1  # noise varies per occurrence
    assert np.mean(first) < 120 * 0.8  # 4 images share a request: crowd undercount


async def test_serve_forever_prints_url(dataset: Path, capsys: pytest.CaptureFixture[str]) -> None:
    task = asyncio.create_task(serve_forever(None, dataset, time_scale=0))
    deadline = time.monotonic() + 30  # a hang guard, not a speed bound
    while "listening on http://127.0.0.1:" not in capsys.readouterr().out:
        if time.monotonic() > deadline:
            pytest.fail("serve_forever did not print its URL")
        await asyncio.sleep(0.02)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


# -- the eval photos (outside the repository) --------------------------------------------------------------------------
@needs_eval_images
async def test_recognises_resized_recompressed_eval_images() -> None:
    index = await asyncio.to_thread(DatasetIndex.build, EVAL_IMAGES)
    assert len(index) >= 30
    for i, key in enumerate(index.keys):
        side, quality = ((256, 50), (768, 85))[i % 2]
        match = index.match(analyse(jpeg(EVAL_IMAGES / key, side, quality)).fingerprint, 40)
        assert match.key == key, (key, side, match)
    crowd = "ucf_cc_50_4.jpg"
    async with Emulator(profiles_from_dict({"defaults": QUIET, "models": {"*": {}}}), dataset=EVAL_IMAGES) as emu:
        client = gemini(emu)
        r = await client.aio.models.generate_content(
            model="gemini-3.5-flash", contents=g_parts(jpeg(EVAL_IMAGES / crowd, 512))
        )
        labels = json.loads((EVAL_IMAGES / "labels.json").read_text())
        assert r.text == str(labels[crowd]["person_count"])


def test_a_resumed_runs_emulator_draws_its_faults_afresh():
    """A new emulator replays its draws (reproducible), so a resumed run's emulator (session 1, 2...) must draw
    afresh: else the request that a fault failed in the run fails again, the same way, in every resume."""
    profiles = make_profiles(faults={"http_500": 0.5})

    def faulted(session: int) -> list[bool]:
        state = engine_mod.Engine(profiles, None, 0, session=session).state("gemini-3.5-flash", "gemini")
        return [state.draw_fault(f"digest-{i}")[0] == "http_500" for i in range(64)]

    first = faulted(0)
    assert faulted(0) == first  # the same emulator, started again for a new run: the same draws
    assert 16 < sum(first) < 48
    resumed, again = faulted(1), faulted(2)
    assert resumed != first and again not in (first, resumed)
    # what failed by a draw in the run mostly gets through in its resume
    assert sum(f and not r for f, r in zip(first, resumed)) >= sum(first) // 3
