"""Streaming on all three protocols: the emulator's event sequences read by the official SDKs' own streaming helpers,
the adapters' time to first token and output rate, streams broken midway, and the recorded Anthropic SSE cassette
replayed through the adapter."""

from __future__ import annotations

import base64
import json
import time
from pathlib import Path

import aiohttp
import anthropic
import openai
import pytest
from google import genai
from google.genai import types
from replay_server import Reply, image_bytes, make_request

from visionbench.emulator import Emulator
from visionbench.emulator.profile_schema import profiles_from_dict
from visionbench.errors import Transient
from visionbench.providers.anthropic_messages import AnthropicMessages
from visionbench.providers.gemini import Gemini
from visionbench.providers.openai_chat import OpenAIChat
from visionbench.types import PreparedImage, Request, Task, Usage

CASSETTE = (
    Path(__file__).resolve().parents[1].parent
    / "shared"
    / "reference"
    / "cassettes"
    / "anthropic_sonnet-4-5_image-base64-png-166x282_stream.sse"
)
MODELS = {"gemini": "gemini-3.5-flash", "anthropic": "claude-haiku-5-5", "openai": "gpt-6.1-terra"}
#: Simulated seconds: ttft = 0.4 + 0.0002 per input token; output at 50 tokens/s; reply "12" padded by the prompt.
LATENCY = {"base_s": 0.4, "per_input_token_s": 0.0002, "output_tokens_per_s": 50, "jitter": 0.0, "thinking_tokens": 0}
QUIET = {
    "latency": LATENCY,
    "faults": {"http_500": 0, "http_503": 0, "drop_connection": 0, "slow": {"probability": 0}},
    "answers": {"relative_sd": 0, "absolute_sd": 0, "multi_image_undercount": 0, "low_res_undercount": 0},
    "rate_limit": {"requests_per_minute": None},
}
PROMPT = "How many people? Answer in words, at length."


def profiles(**model):
    return profiles_from_dict({"time_scale": 0.25, "defaults": QUIET, "models": {m: model for m in MODELS.values()}})


def request(provider: str, side: int = 64, *, params: dict | None = None) -> Request:
    data = image_bytes("PNG", (side, side))
    images = (PreparedImage("a.png", data, "image/png", side, side),)
    return Request(MODELS[provider], Task("count-people", PROMPT, "integer"), PROMPT, images, dict(params or {}), 512)


def provider_for(name: str, emu: Emulator, **options):
    cls = {"gemini": Gemini, "anthropic": AnthropicMessages, "openai": OpenAIChat}[name]
    base = emu.openai_base_url if name == "openai" else emu.base_url
    return cls(cls.Options(base_url=base, api_key_env="EMU_KEY", **options))


@pytest.fixture(autouse=True)
def _key(monkeypatch):
    monkeypatch.setenv("EMU_KEY", "emulator-key")


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


async def test_the_official_sdk_helpers_read_the_emulators_streams():
    png = image_bytes("PNG", (80, 60))
    async with Emulator(profiles(), time_scale=0) as emu:
        # Gemini: client.aio.models.generate_content_stream (streamGenerateContent?alt=sse)
        client = genai.Client(
            api_key="k",
            http_options=types.HttpOptions(base_url=emu.base_url, retry_options=types.HttpRetryOptions(attempts=1)),
        )
        chunks = [
            c
            async for c in await client.aio.models.generate_content_stream(
                model=MODELS["gemini"], contents=[types.Part.from_bytes(data=png, mime_type="image/png"), PROMPT]
            )
        ]
        assert "".join(c.text or "" for c in chunks).strip().isdigit()
        assert chunks[-1].candidates[0].finish_reason == types.FinishReason.STOP
        assert chunks[-1].usage_metadata.candidates_token_count >= 1
        assert chunks[-1].usage_metadata.prompt_token_count == chunks[0].usage_metadata.prompt_token_count
        await client.aio.aclose()

        # Anthropic: messages.stream, and the raw event sequence
        claude = anthropic.AsyncAnthropic(api_key="k", base_url=emu.base_url, max_retries=0)
        content = [
            {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": b64(png)}},
            {"type": "text", "text": PROMPT},
        ]
        params = {"model": MODELS["anthropic"], "max_tokens": 200, "messages": [{"role": "user", "content": content}]}
        async with claude.messages.stream(**params) as stream:
            text = "".join([t async for t in stream.text_stream])
            final = await stream.get_final_message()
        assert text.strip().isdigit() and final.content[0].text == text and final.stop_reason == "end_turn"
        assert final.usage.input_tokens > 0 and final.usage.output_tokens >= 1
        async with aiohttp.ClientSession() as http:
            async with http.post(
                emu.base_url + "/v1/messages",
                json={**params, "stream": True},
                headers={"x-api-key": "k", "anthropic-version": "2023-06-01"},
            ) as r:
                assert r.headers["content-type"].startswith("text/event-stream")
                raw = (await r.read()).decode()
        events = [line.removeprefix("event: ") for line in raw.splitlines() if line.startswith("event: ")]
        assert events[:3] == ["message_start", "content_block_start", "ping"]
        assert events[-3:] == ["content_block_stop", "message_delta", "message_stop"]
        assert set(events[3:-3]) == {"content_block_delta"}
        await claude.close()

        # OpenAI: chat.completions.create(stream=True) with include_usage
        oa = openai.AsyncOpenAI(api_key="k", base_url=emu.openai_base_url, max_retries=0)
        url = {"url": f"data:image/png;base64,{b64(png)}"}
        messages = [
            {"role": "user", "content": [{"type": "image_url", "image_url": url}, {"type": "text", "text": PROMPT}]}
        ]
        stream = await oa.chat.completions.create(
            model=MODELS["openai"], messages=messages, stream=True, stream_options={"include_usage": True}
        )
        got = [c async for c in stream]
        assert got[0].choices[0].delta.role == "assistant"
        assert "".join(c.choices[0].delta.content or "" for c in got if c.choices).strip().isdigit()
        assert [c.choices[0].finish_reason for c in got if c.choices][-1] == "stop"
        assert got[-1].choices == [] and got[-1].usage.prompt_tokens > 0
        async with aiohttp.ClientSession() as http:
            async with http.post(
                emu.openai_base_url + "/chat/completions",
                json={"model": MODELS["openai"], "messages": messages, "stream": True},
                headers={"authorization": "Bearer k"},
            ) as r:
                lines = [line for line in (await r.read()).decode().splitlines() if line]
        assert lines[-1] == "data: [DONE]" and all(line.startswith("data: ") for line in lines)
        assert all(json.loads(line[6:]).get("usage") is None for line in lines[:-1])  # no usage unless asked
        await oa.close()


@pytest.mark.parametrize("name", sorted(MODELS))
async def test_adapters_record_time_to_first_token_and_the_output_rate(name):
    async with Emulator(profiles(), time_scale=0.25) as emu:
        provider = provider_for(name, emu)
        await provider.start()
        try:
            plain = await provider.generate(request(name))  # first: the client's connection and warm-up
            started = time.monotonic()
            streamed = await provider.generate(request(name, params={"stream": True}))
            total = time.monotonic() - started
        finally:
            await provider.aclose()
    assert plain.ttft_s is None and plain.generation_s is None
    assert streamed.text.strip().isdigit() and streamed.simulated
    assert streamed.usage.input_tokens == plain.usage.input_tokens and streamed.usage.output_tokens >= 1
    # ttft = (0.4 + 0.0002 x input tokens) x 0.25 real seconds, then the output at 50 tokens/s x 4
    expected = (0.4 + 0.0002 * streamed.usage.input_tokens) * 0.25
    assert streamed.ttft_s >= expected * 0.9, (streamed.ttft_s, expected)
    assert streamed.generation_s >= 0, streamed.generation_s
    assert streamed.ttft_s + streamed.generation_s <= total + 1e-3, (streamed.ttft_s, streamed.generation_s, total)


@pytest.mark.parametrize("name", sorted(MODELS))
async def test_ttft_grows_with_the_images_resolution(name):
    # 2 ms of reading per input token: ~1,500 more image tokens are ~0.75 real seconds more, well above the noise
    async with Emulator(profiles(latency={"per_input_token_s": 0.002}), time_scale=0.25) as emu:
        provider = provider_for(name, emu, stream=True)  # the provider option: every request streams
        await provider.start()
        try:
            await provider.generate(request(name, 64, params={"stream": False}))  # warm-up: connection, detector
            # the quickest of three: a stall of the loaded machine adds to one time, but not to all three
            smalls = [await provider.generate(request(name, 64)) for _ in range(3)]
            big = await provider.generate(request(name, 1536, params={"detail": "high"} if name == "openai" else {}))
        finally:
            await provider.aclose()
    small = min(smalls, key=lambda r: r.ttft_s)
    if small.usage.input_tokens == big.usage.input_tokens:  # Gemini 3: tokens per image do not follow its size
        assert name == "gemini"
        return
    assert big.usage.input_tokens > small.usage.input_tokens
    # the emulator holds the first token at least this long (a lower bound: no machine makes it come sooner)
    assert big.ttft_s >= 0.9 * (0.4 + 0.002 * big.usage.input_tokens) * 0.25
    assert big.ttft_s > small.ttft_s


@pytest.mark.parametrize("fault", ["drop_connection", "malformed_body"])
@pytest.mark.parametrize("name", sorted(MODELS))
async def test_a_stream_broken_midway_is_transient_and_keeps_nothing(name, fault):
    async with Emulator(profiles(faults={fault: 1.0}), time_scale=0) as emu:
        provider = provider_for(name, emu)
        await provider.start()
        try:
            with pytest.raises(Transient):
                await provider.generate(request(name, params={"stream": True}))
        finally:
            await provider.aclose()


@pytest.mark.skipif(not CASSETTE.is_file(), reason=f"no cassette at {CASSETTE}")
async def test_the_recorded_anthropic_stream_through_the_adapter(replay, monkeypatch):
    """llm-anthropic's recording of a real claude-sonnet-4-5 stream (166x282 PNG), replayed over HTTP."""
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-test")
    replay.add(
        "POST",
        "/v1/messages",
        Reply(200, CASSETTE.read_bytes(), headers={"request-id": "req_cassette"}, content_type="text/event-stream"),
    )
    provider = AnthropicMessages(AnthropicMessages.Options(base_url=replay.url, stream=True))
    await provider.start()
    try:
        response = await provider.generate(make_request("claude-haiku-5-5", prompt="Describe the colours"))
    finally:
        await provider.aclose()
    assert response.text == "Red square, green square."
    assert response.usage == Usage(83, 9, None, 0, None)  # message_start's input, message_delta's output
    assert response.model_version == "claude-sonnet-4-5-20250929" and response.request_id == "req_cassette"
    assert response.ttft_s is not None and response.ttft_s >= 0 and response.generation_s >= 0
    assert replay.requests[0].json["stream"] is True


async def test_a_recorded_stream_cut_before_message_stop_is_transient(replay, monkeypatch):
    if not CASSETTE.is_file():
        pytest.skip(f"no cassette at {CASSETTE}")
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-test")
    cut = CASSETTE.read_bytes().split(b"event: content_block_stop")[0]
    replay.add("POST", "/v1/messages", Reply(200, cut, content_type="text/event-stream"))
    provider = AnthropicMessages(AnthropicMessages.Options(base_url=replay.url))
    await provider.start()
    try:
        with pytest.raises(Transient, match="message_stop"):
            await provider.generate(make_request("claude-haiku-5-5", params={"stream": True}))
    finally:
        await provider.aclose()


async def test_a_streamed_claude_reply_with_thinking_has_its_thinking_block_first():
    async with Emulator(profiles(latency={"thinking_tokens": 40}), time_scale=0) as emu:
        claude = anthropic.AsyncAnthropic(api_key="k", base_url=emu.base_url, max_retries=0)
        png = image_bytes("PNG", (80, 60))
        content = [
            {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": b64(png)}},
            {"type": "text", "text": PROMPT},
        ]
        async with claude.messages.stream(
            model=MODELS["anthropic"],
            max_tokens=2048,
            thinking={"type": "enabled", "budget_tokens": 1024},
            messages=[{"role": "user", "content": content}],
        ) as stream:
            final = await stream.get_final_message()
        await claude.close()
        assert [b.type for b in final.content] == ["thinking", "text"] and final.content[1].text.strip().isdigit()
        assert final.usage.output_tokens >= 41  # thinking is billed as output
        provider = provider_for("anthropic", emu)
        await provider.start()
        try:
            response = await provider.generate(
                request("anthropic", params={"stream": True, "thinking_budget": 1024, "max_output_tokens": 2048})
            )
        finally:
            await provider.aclose()
        assert response.text.strip().isdigit() and response.ttft_s is not None


async def test_a_run_streams_per_cell_or_per_provider_and_records_ttft(tmp_path, image_dir):
    import yaml

    from visionbench.results import bundle as bundle_mod
    from visionbench.run.plan import load_plan
    from visionbench.run.plugins import default_registry
    from visionbench.run.runner import run

    profile_file = tmp_path / "profiles.yaml"
    profile_file.write_text(yaml.safe_dump({"time_scale": 0.01, "defaults": QUIET, "models": {"*": {}}}))
    config = {
        "name": "streamed",
        "dataset": {"path": str(image_dir), "labels": "labels.json", "label_field": "person_count"},
        "task": {"id": "count-people", "prompt": "How many people?", "answer": "integer"},
        "preprocessing": {"max_side": 64, "format": "png"},
        "emulator": {"profiles": str(profile_file)},
        "retry": {"max_attempts": 2, "base_delay_s": 0, "max_delay_s": 0, "timeout_s": 10},
        "providers": {"anthropic": {"stream": True}},  # every anthropic cell streams
        "matrix": [
            {"provider": "gemini", "models": [MODELS["gemini"]], "model_params": {"stream": [True, False]}},
            {"provider": "anthropic", "models": [MODELS["anthropic"]]},
        ],
    }
    for entry in config["matrix"]:
        entry["strategies"] = [{"name": "concurrent", "max_concurrency": 3}]
    path = tmp_path / "exp.yaml"
    path.write_text(yaml.safe_dump(config))
    data = bundle_mod.load(
        await run(load_plan(path, default_registry()), results_dir=tmp_path / "r", cache_dir=tmp_path / "c")
    )
    bundle_mod.validate(data)
    assert data["status"] == "complete"
    by_cell: dict[str, list[dict]] = {}
    for r in data["records"]:
        by_cell.setdefault(r["cell"], []).append(r)
    streamed = {cell for cell, rs in by_cell.items() if all(r["ttft_s"] is not None for r in rs)}
    plain = {cell for cell, rs in by_cell.items() if all(r["ttft_s"] is None for r in rs)}
    assert len(streamed) == 2 and len(plain) == 1 and "gemini" in next(iter(plain))
    assert all(r["ttft_s"] <= r["latency_s"] and r["output_tokens_per_s"] > 0 for c in streamed for r in by_cell[c])
