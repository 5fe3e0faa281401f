"""The ``openai`` provider through the real openai SDK over HTTP: against the emulator, and a replay server for
exact request shapes and error bodies."""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import json
import time
from pathlib import Path

import openai
import pytest
from replay_server import Reply, make_request

from visionbench.emulator import Emulator
from visionbench.emulator.openai_api import invalid_api_key, model_not_found
from visionbench.emulator.profile_schema import profiles_from_dict
from visionbench.errors import BadRequest, ConfigError, Fatal, RateLimited, Transient
from visionbench.providers import openai_chat
from visionbench.providers.openai_chat import OpenAIChat
from visionbench.run.plugins import collect, make_manager
from visionbench.services import tokens
from visionbench.types import PreparedImage

KEY = "sk-proj-test-SECRET-4242"
MODEL = "gpt-6.1-terra"
PATH = "/v1/chat/completions"
QUIET = {
    "latency": {"base_s": 0.0, "jitter": 0.0, "output_tokens_per_s": 1e6, "thinking_tokens": 30},
    "faults": {"http_500": 0, "http_503": 0, "drop_connection": 0, "slow": {"probability": 0}},
    "answers": {"relative_sd": 0, "absolute_sd": 0, "multi_image_undercount": 0, "low_res_undercount": 0},
    "batch": {"turnaround_s": 0.2},
    "rate_limit": {"requests_per_minute": None},
}


def profiles(**model):
    """Quiet profiles serving only the two OpenAI models the shipped profiles name (no "*": others are 404)."""
    return profiles_from_dict({"defaults": QUIET, "models": {MODEL: model, "gpt-6-luna": {}}})


def completion(text: str = "3", **usage) -> dict:
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 1764633600,
        "model": "gpt-6.1-terra-2026-09-29",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
        "usage": {
            "prompt_tokens": 120,
            "completion_tokens": 40,
            "total_tokens": 160,
            "prompt_tokens_details": {"cached_tokens": 64},
            "completion_tokens_details": {"reasoning_tokens": 38},
            **usage,
        },
    }


@pytest.fixture
async def emulated(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    async with Emulator(profiles(), time_scale=0) as emu:
        p = OpenAIChat(OpenAIChat.Options(base_url=emu.openai_base_url))
        await p.start()
        yield p, emu
        await p.aclose()


@pytest.fixture
async def replayed(replay, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    p = OpenAIChat(OpenAIChat.Options(base_url=replay.url + "/v1"))
    await p.start()
    yield p
    await p.aclose()


def test_registers_as_a_plugin_and_describes_itself():
    registry = collect(make_manager([openai_chat], entry_points=False))
    assert registry.providers == {"openai": OpenAIChat}
    caps = OpenAIChat().capabilities(MODEL)
    assert (caps.max_images_per_request, caps.structured_output, caps.batch) == (100, True, True)
    assert caps.max_request_bytes == 50 * 1024 * 1024 and caps.thinks_unasked
    assert not OpenAIChat().capabilities("gpt-4o").thinks_unasked
    assert OpenAIChat(OpenAIChat.Options(structured_output="prompt")).capabilities(MODEL).structured_output is False
    assert OpenAIChat().environment()["sdk"] == "openai 3.57.0"


def test_params_are_checked_before_anything_is_sent():
    p = OpenAIChat()
    p.validate_params(MODEL, {"detail": "low", "stream": True, "reasoning_effort": "low", "max_output_tokens": 64})
    with pytest.raises(ConfigError, match="did you mean 'detail'"):
        p.validate_params(MODEL, {"detial": "low"})
    with pytest.raises(ConfigError, match="detail"):
        p.validate_params(MODEL, {"detail": "medium"})


def test_image_token_rules_reproduce_the_documented_examples():
    # https://platform.openai.com/docs/guides/images-vision#calculating-costs
    assert tokens.openai_image_tokens(1024, 1024, model="gpt-4o") == 765
    assert tokens.openai_image_tokens(2048, 4096, model="gpt-4o") == 1105
    assert tokens.openai_image_tokens(4096, 8192, model="gpt-4o", detail="low") == 85
    assert tokens.openai_patches(1024, 1024) == 1024 and tokens.openai_patches(1800, 2400) == 1452
    assert tokens.openai_image_tokens(1024, 1024, model="gpt-4.1-mini") == 1659  # 1024 patches x 1.62
    assert tokens.openai_image_rule("gpt-5") == ("tiles", 70, 140)
    assert tokens.openai_image_rule(MODEL)[0] == "guess"  # undocumented: patches x 1, for planning only
    assert OpenAIChat().estimate_image_tokens("gpt-4o", 1024, 1024) == 765


async def test_request_shape_data_urls_detail_schema_and_no_sdk_retries(replayed, replay):
    replay.add("POST", PATH, Reply(200, completion(), headers={"x-request-id": "req_9"}))
    schema = {"type": "array", "items": {"type": "integer"}}
    request = make_request(MODEL, n_images=2, system="Be terse.", params={"detail": "low", "seed": 3}, schema=schema)
    response = await replayed.generate(request)
    assert (response.text, response.request_id, response.model_version) == ("3", "req_9", "gpt-6.1-terra-2026-09-29")
    assert response.usage.input_tokens == 120 and response.usage.cached_tokens == 64
    assert (response.usage.output_tokens, response.usage.thinking_tokens) == (2, 38)
    assert response.ttft_s is None and not response.simulated
    sent = replay.requests[0]
    assert sent.headers["authorization"] == f"Bearer {KEY}" and sent.headers["x-stainless-retry-count"] == "0"
    body = sent.json
    assert body["messages"][0] == {"role": "system", "content": "Be terse."}
    parts = body["messages"][1]["content"]
    assert [p["type"] for p in parts] == ["image_url", "image_url", "text"]
    assert parts[0]["image_url"]["detail"] == "low"
    head, data = parts[0]["image_url"]["url"].split(",", 1)
    assert head == "data:image/jpeg;base64" and base64.b64decode(data) == request.images[0].data
    assert body["response_format"]["json_schema"]["schema"] == schema and body["seed"] == 3
    assert body["max_completion_tokens"] == 256 and "stream" not in body and "detail" not in body


async def test_errors_become_neutral_kinds(replayed, replay):
    def err(status, message, type_, code=None, headers=None):
        return Reply(status, {"error": {"message": message, "type": type_, "param": None, "code": code}}, headers or {})

    replay.add(
        "POST",
        PATH,
        err(429, "Rate limit reached", "requests", "rate_limit_exceeded", {"retry-after-ms": "1500"}),
        err(429, "You exceeded your current quota", "insufficient_quota", "insufficient_quota"),
        Reply(*invalid_api_key(KEY)),
        Reply(*model_not_found("gpt-nope")),
        err(400, "Invalid image", "invalid_request_error"),
        err(500, "The server had an error", "server_error"),
        Reply(200, '{"choices": [', content_type="application/json"),
        Reply(drop=True),
    )
    expected = [
        (RateLimited, "rate_limit_exceeded"),
        (Fatal, "insufficient_quota"),
        (Fatal, "invalid_api_key"),
        (Fatal, "does not exist"),
        (BadRequest, "Invalid image"),
        (Transient, "server had an error"),
        (Transient, "malformed"),
        (Transient, "connection"),
    ]
    for kind, text in expected:
        with pytest.raises(kind, match=text) as caught:
            await replayed.generate(make_request(MODEL))
        assert KEY not in str(caught.value)
        if kind is RateLimited:
            assert caught.value.retry_after == 1.5


async def test_keys_a_server_without_keys_and_a_missing_key(monkeypatch, replay):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with pytest.raises(ConfigError, match="OPENAI_API_KEY is not set"):
        await OpenAIChat().start()
    p = OpenAIChat(OpenAIChat.Options(base_url=replay.url + "/v1"))  # vLLM, Ollama...: no key needed
    replay.add("POST", PATH, Reply(200, completion()))
    await p.start()
    assert (await p.generate(make_request(MODEL))).text == "3"
    await p.aclose()
    monkeypatch.setenv("MY_GATEWAY_KEY", "gw-SECRET-1")
    p = OpenAIChat(OpenAIChat.Options(base_url=replay.url + "/v1", api_key_env="MY_GATEWAY_KEY"))
    await p.start()
    await p.generate(make_request(MODEL))
    assert replay.requests[-1].headers["authorization"] == "Bearer gw-SECRET-1"
    await p.aclose()


async def test_against_the_emulator_usage_and_image_tokens(emulated):
    provider, emu = emulated
    response = await provider.generate(make_request(MODEL, params={"detail": "high"}))
    assert response.simulated and response.text.strip().isdigit()
    assert response.usage.thinking_tokens == 30 and response.usage.cached_tokens == 0
    image = tokens.openai_image_tokens(40, 30, model=MODEL, detail="high")
    text = tokens.text_tokens("How many people?") + tokens.OPENAI_OVERHEAD
    assert response.usage.input_tokens == image + text
    assert response.request_id.startswith("req_emu_") and emu.stats[MODEL].succeeded == 1


async def test_the_emulator_refuses_unknown_models_and_missing_keys_as_openai_does(emulated):
    provider, emu = emulated
    with pytest.raises(Fatal, match="The model `gpt-4-nonexistent` does not exist") as caught:
        await provider.generate(make_request("gpt-4-nonexistent"))
    assert caught.value.status == 404
    client = openai.AsyncOpenAI(api_key="k", base_url=emu.openai_base_url, max_retries=0)
    with pytest.raises(openai.NotFoundError) as nf:
        await client.chat.completions.create(model="gpt-4-nonexistent", messages=[{"role": "user", "content": "x"}])
    assert nf.value.code == "model_not_found" and nf.value.body["param"] is None
    await client.close()
    status, body = invalid_api_key("sk-proj-abcdefghijklmnop")
    assert status == 401 and body["error"]["code"] == "invalid_api_key"
    assert "mnop" not in body["error"]["message"] and "sk-" not in body["error"]["message"]  # no part of the key


async def test_rate_limit_headers_and_429_with_retry_after(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    async with Emulator(profiles(rate_limit={"requests_per_minute": 1}), time_scale=0) as emu:
        client = openai.AsyncOpenAI(api_key=KEY, base_url=emu.openai_base_url, max_retries=0)
        url = "data:image/jpeg;base64," + base64.b64encode(make_request(MODEL).images[0].data).decode()
        content = [{"type": "image_url", "image_url": {"url": url}}, {"type": "text", "text": "How many people?"}]
        messages = [{"role": "user", "content": content}]
        raw = await client.chat.completions.with_raw_response.create(model=MODEL, messages=messages)
        assert raw.headers["x-ratelimit-limit-requests"] == "1"
        assert raw.headers["x-ratelimit-remaining-requests"] == "0"
        assert raw.headers["x-ratelimit-reset-requests"].endswith(("s", "ms"))
        with pytest.raises(openai.RateLimitError) as caught:
            await client.chat.completions.create(model=MODEL, messages=messages)
        assert caught.value.code == "rate_limit_exceeded" and float(caught.value.response.headers["retry-after"]) >= 1
        await client.close()


async def test_batch_api_upload_create_poll_download(emulated):
    provider, emu = emulated
    requests = {f"k{i}": make_request(MODEL) for i in range(3)}
    bad = make_request(MODEL)
    garbage = (PreparedImage("bad.jpg", b"not an image", "image/jpeg", 40, 30),)
    requests["bad"] = dataclasses.replace(bad, images=garbage)  # the emulator refuses an image it cannot decode
    job = await provider.submit_batch(MODEL, requests)
    assert job.startswith("batch_emu")
    status = await provider.poll_batch(job)
    assert status.state in ("validating", "in_progress") and not status.done and status.total == 4
    deadline = time.monotonic() + 30  # a hang guard, not a speed bound: the job takes ~0.3 s on a quiet machine
    while not status.done and time.monotonic() < deadline:
        await asyncio.sleep(0.02)
        status = await provider.poll_batch(job)
    assert (status.state, status.succeeded, status.failed) == ("completed", 3, 1)
    results = await provider.collect_batch(job)
    assert set(results) == {"k0", "k1", "k2", "bad"}
    assert all(results[f"k{i}"].text.strip().isdigit() and results[f"k{i}"].simulated for i in range(3))
    assert isinstance(results["bad"], BadRequest)
    with pytest.raises(Fatal, match="No batch found"):
        await provider.poll_batch("batch_unknown")


async def test_a_whole_run_against_the_emulator(tmp_path: Path, image_dir: Path, monkeypatch):
    import yaml

    from visionbench.results import bundle as bundle_mod
    from visionbench.run.plan import load_plan
    from visionbench.run.plugins import default_registry
    from visionbench.run.runner import run

    profile_file = tmp_path / "profiles.yaml"
    profile_file.write_text(yaml.safe_dump({"time_scale": 0, "defaults": QUIET, "models": {MODEL: {}}}))
    config = {
        "name": "openai-e2e",
        "dataset": {"path": str(image_dir), "labels": "labels.json", "label_field": "person_count"},
        "task": {"id": "count-people", "prompt": "How many people?", "answer": "integer"},
        "preprocessing": {"max_side": 64, "format": "png"},
        "emulator": {"profiles": str(profile_file)},
        "retry": {"max_attempts": 2, "base_delay_s": 0, "max_delay_s": 0, "timeout_s": 10},
        "matrix": [
            {
                "provider": "openai",
                "models": [MODEL],
                "model_params": {"detail": "low", "stream": [False, True]},
                "strategies": [{"name": "concurrent", "max_concurrency": 3}],
            },
            {
                "provider": "openai",
                "models": [MODEL],
                "strategies": [
                    {"name": "single-prompt", "chunk_size": 3},
                    {"name": "provider-batch", "poll_initial_s": 0.01, "poll_max_s": 0.05},
                ],
            },
        ],
    }
    path = tmp_path / "exp.yaml"
    path.write_text(yaml.safe_dump(config))
    plan = load_plan(path, default_registry())
    data = bundle_mod.load(await run(plan, results_dir=tmp_path / "results", cache_dir=tmp_path / "cache"))
    bundle_mod.validate(data)
    assert data["status"] == "complete" and data["simulated"]
    cells = {c["id"]: c for c in data["cells"]}
    streamed = [c for c in cells.values() if c["model_params"].get("stream") is True]
    plain = [c for c in cells.values() if c["model_params"].get("stream") is False]
    assert len(streamed) == len(plain) == 1
    assert streamed[0]["summary"]["ttft_p50_s"] is not None and plain[0]["summary"]["ttft_p50_s"] is None
    batch = [r for r in data["records"] if r["batch"]]
    assert len(batch) == 6 and all(r["cost_usd"] for r in batch)
    from visionbench.services.pricing import default_table
    from visionbench.types import Usage

    full = default_table().cost(MODEL, Usage(**batch[0]["usage"]), batch=False, provider="openai")
    assert batch[0]["cost_usd"] == pytest.approx(full / 2)  # the Batch API's 50%
    assert all(json.dumps(r).find(KEY) < 0 for r in data["records"])

    # TTFT percentiles in the terminal table, the HTML report and compare
    from rich.console import Console

    from visionbench.report.compare import compare, comparison_html
    from visionbench.report.html import write_html_report
    from visionbench.report.tables import print_sheet
    from visionbench.report.terminal import cells_sheet

    console = Console(width=250, record=True)
    print_sheet(console, cells_sheet(data), None)
    assert "ttft p50" in console.export_text()
    html = write_html_report(data, tmp_path / "report.html").read_text().replace("<wbr>", "")
    assert "<th>ttft p50 s</th>" in html and "<th>out tok/s p50</th>" in html
    assert "p50 time to first token s" in comparison_html(compare([data, data]))


async def test_gemini_v1_batches_and_openai_batches_share_the_path(monkeypatch):
    """GET /v1/batches/{id} is both Gemini's (API version v1) and OpenAI's: each job answers its own protocol."""
    from visionbench.providers.gemini import Gemini

    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    monkeypatch.setenv("GEMINI_API_KEY", KEY)
    quiet = {"defaults": QUIET, "models": {MODEL: {}, "gemini-3.5-flash": {}}}
    async with Emulator(profiles_from_dict(quiet), time_scale=0) as emu:
        gemini = Gemini(Gemini.Options(base_url=emu.base_url, api_version="v1"))
        oa = OpenAIChat(OpenAIChat.Options(base_url=emu.openai_base_url))
        try:
            g_job = await gemini.submit_batch("gemini-3.5-flash", {"a": make_request("gemini-3.5-flash")})
            o_job = await oa.submit_batch(MODEL, {"a": make_request(MODEL)})
            assert (await gemini.poll_batch(g_job)).total == 1
            assert (await oa.poll_batch(o_job)).total == 1
        finally:
            await gemini.aclose()
            await oa.aclose()
