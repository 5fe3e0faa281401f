"""The ``anthropic`` provider against a local replay server, through the real anthropic SDK over HTTP."""

from __future__ import annotations

import base64
import json
import random

import pytest
from replay_server import Reply, image_bytes, make_request

from visionbench.errors import BadRequest, ConfigError, Fatal, RateLimited, Transient
from visionbench.providers import anthropic_messages
from visionbench.providers.anthropic_messages import AnthropicMessages
from visionbench.run.plugins import collect, make_manager
from visionbench.secrets import REDACTED
from visionbench.types import PreparedImage, Usage

KEY = "sk-ant-test-SECRET-4242"
MODEL = "claude-haiku-4-5"
PATH = "/v1/messages"


def message(text: str = "3", *, msg_id: str = "msg_1", **usage) -> dict:
    return {
        "id": msg_id,
        "type": "message",
        "role": "assistant",
        "model": "claude-haiku-4-5-20251001",
        "content": [{"type": "text", "text": text}],
        "stop_reason": "end_turn",
        "stop_sequence": None,
        "usage": {
            "input_tokens": 276,
            "output_tokens": 2,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 0,
            **usage,
        },
    }


def error(kind: str, text: str, request_id: str | None = "req_err_1") -> dict:
    return {"type": "error", "error": {"type": kind, "message": text}, "request_id": request_id}


@pytest.fixture
async def provider(replay, monkeypatch):
    monkeypatch.setenv("ANTHROPIC_API_KEY", KEY)
    p = AnthropicMessages(AnthropicMessages.Options(base_url=replay.url))
    await p.start()
    yield p
    await p.aclose()


def test_registers_as_a_plugin():
    registry = collect(make_manager([anthropic_messages], entry_points=False))
    assert registry.providers == {"anthropic": AnthropicMessages}


def test_options_and_capabilities():
    with pytest.raises(Exception, match="extra"):
        AnthropicMessages.Options(temperature=0)
    caps = AnthropicMessages().capabilities(MODEL)
    assert (caps.max_images_per_request, caps.structured_output, caps.batch, caps.tasks) == (100, True, True, None)
    env = AnthropicMessages().environment()
    assert env["sdk"] == "anthropic 2.10.0" and "key" not in str(env).lower()


async def test_request_carries_images_prompt_system_and_key(provider, replay):
    replay.add("POST", PATH, Reply(200, message(), headers={"request-id": "req_123"}))
    request = make_request(MODEL, n_images=2, prompt="Count them", system="Be terse.")
    response = await provider.generate(request)
    assert (response.text, response.request_id, response.model_version) == ("3", "req_123", "claude-haiku-4-5-20251001")
    assert response.cost_usd is None and KEY not in repr(response)
    sent = replay.requests[0]
    assert sent.headers["authorization"] == f"Bearer {KEY}" and sent.headers["anthropic-version"]
    assert sent.headers["x-stainless-retry-count"] == "0"
    body = sent.json
    assert (body["model"], body["max_tokens"], body["system"]) == (MODEL, 256, "Be terse.")
    assert "temperature" not in body and "output_config" not in body and "thinking" not in body
    [turn] = body["messages"]
    assert turn["role"] == "user"
    for block, image in zip(turn["content"][:2], request.images):
        assert block["type"] == "image" and block["source"]["type"] == "base64"
        assert block["source"]["media_type"] == "image/jpeg"
        assert base64.standard_b64decode(block["source"]["data"]) == image.data
    assert turn["content"][2] == {"type": "text", "text": "Count them"}


async def test_params(provider, replay):
    replay.add("POST", PATH, Reply(200, message()))
    await provider.generate(
        make_request(MODEL, params={"thinking_budget": 2048, "max_output_tokens": 4096, "effort": "low"})
    )
    body = replay.requests[0].json
    assert body["thinking"] == {"type": "enabled", "budget_tokens": 2048}
    assert body["max_tokens"] == 4096 and body["output_config"] == {"effort": "low"}


@pytest.mark.parametrize(
    "params, words",
    [
        ({"temperature": 0.2}, ["temperature", "2.x"]),
        ({"top_k": 5}, ["top_k"]),
        ({"budget": 5}, ["budget", "allowed", "thinking_budget"]),
        ({"thinking_budget": "lots"}, ["integers"]),
    ],
)
async def test_bad_params_are_refused_before_sending(provider, replay, params, words):
    with pytest.raises(BadRequest) as info:
        await provider.generate(make_request(MODEL, params=params))
    assert all(w in str(info.value) for w in words)
    assert replay.requests == []


async def test_unsupported_media_type_and_too_many_images(provider, replay):
    request = make_request(MODEL)
    bmp = PreparedImage("x.bmp", image_bytes("BMP"), "image/bmp", 40, 30)
    with pytest.raises(BadRequest, match="image/bmp"):
        await provider.generate(type(request)(MODEL, request.task, "p", (bmp,)))
    with pytest.raises(BadRequest, match="at most 100"):
        await provider.generate(make_request(MODEL, n_images=101))
    assert replay.requests == []


SCHEMA = {"type": "array", "items": {"type": "integer"}, "minItems": 3, "maxItems": 3}


async def test_response_schema_native(provider, replay):
    replay.add("POST", PATH, Reply(200, message("[1, 2, 3]")))
    response = await provider.generate(make_request(MODEL, n_images=3, schema=SCHEMA))
    fmt = replay.requests[0].json["output_config"]["format"]
    assert fmt["type"] == "json_schema"
    assert fmt["schema"]["type"] == "array" and fmt["schema"]["items"] == {"type": "integer"}
    assert "minItems: 3" in fmt["schema"]["description"]  # unsupported constraints move to the description
    assert json.loads(response.text) == [1, 2, 3]


async def test_response_schema_in_prompt(replay, monkeypatch):
    monkeypatch.setenv("ANTHROPIC_API_KEY", KEY)
    p = AnthropicMessages(AnthropicMessages.Options(base_url=replay.url, structured_output="prompt"))
    replay.add("POST", PATH, Reply(200, message("[1, 2, 3]")))
    await p.generate(make_request(MODEL, n_images=3, prompt="Count", schema=SCHEMA))
    await p.aclose()
    body = replay.requests[0].json
    text = body["messages"][0]["content"][-1]["text"]
    assert "output_config" not in body and text.startswith("Count") and json.dumps(SCHEMA) in text


async def test_usage_normalised(provider, replay):
    usage = {
        "input_tokens": 100,
        "output_tokens": 500,
        "cache_read_input_tokens": 1000,
        "cache_creation_input_tokens": 20,
        "output_tokens_details": {"thinking_tokens": 450},
    }
    replay.add("POST", PATH, Reply(200, message(**usage)))
    response = await provider.generate(make_request(MODEL))
    assert response.usage == Usage(
        input_tokens=1120, output_tokens=50, thinking_tokens=450, cached_tokens=1000, image_tokens=None
    )


async def test_usage_without_cache_fields(provider, replay):
    body = message()
    body["usage"] = {"input_tokens": 276, "output_tokens": 2}
    replay.add("POST", PATH, Reply(200, body))
    assert (await provider.generate(make_request(MODEL))).usage == Usage(276, 2, None, None, None)


@pytest.mark.parametrize("headers, simulated", [({"X-VisionBench-Simulated": "1"}, True), ({}, False)])
async def test_simulated_header(provider, replay, headers, simulated):
    replay.add("POST", PATH, Reply(200, message(), headers=headers))
    assert (await provider.generate(make_request(MODEL))).simulated is simulated


@pytest.mark.parametrize(
    "reply, kind, status, retry_after",
    [
        (
            Reply(
                429, error("rate_limit_error", "Number of requests has exceeded your rate limit"), {"retry-after": "7"}
            ),
            RateLimited,
            429,
            7.0,
        ),
        (
            Reply(429, error("rate_limit_error", "Slow down"), {"retry-after-ms": "1500", "retry-after": "2"}),
            RateLimited,
            429,
            1.5,
        ),
        (
            Reply(429, error("rate_limit_error", "Slow down"), {"retry-after-ms": "inf", "retry-after": "1e400"}),
            RateLimited,
            429,
            None,
        ),
        (Reply(500, error("api_error", "Internal server error")), Transient, 500, None),
        (Reply(503, error("api_error", "Service unavailable")), Transient, 503, None),
        (Reply(529, error("overloaded_error", "Overloaded")), Transient, 529, None),
        (
            Reply(400, error("invalid_request_error", "messages.0.content.0.image.source.base64: invalid base64 data")),
            BadRequest,
            400,
            None,
        ),
        (
            Reply(413, error("request_too_large", "Request exceeds the maximum allowed number of bytes")),
            BadRequest,
            413,
            None,
        ),
        (Reply(422, error("invalid_request_error", "Unprocessable")), BadRequest, 422, None),
        (Reply(401, error("authentication_error", "invalid x-api-key")), Fatal, 401, None),
        (Reply(403, error("permission_error", "Your API key does not have permission")), Fatal, 403, None),
        (Reply(404, error("not_found_error", "model: claude-nope")), Fatal, 404, None),
    ],
)
async def test_error_mapping(provider, replay, reply, kind, status, retry_after):
    replay.add("POST", PATH, reply)
    with pytest.raises(kind) as info:
        await provider.generate(make_request(MODEL))
    err = info.value
    assert type(err) is kind and err.status == status
    assert getattr(err, "retry_after", None) == retry_after
    assert reply.body["error"]["message"] in str(err) and "req_err_1" in str(err)
    assert KEY not in str(err)
    assert len(replay.requests) == 1  # SDK retries are off


@pytest.mark.parametrize(
    "reply",
    [
        Reply(200, "{not json"),
        Reply(200, {}),  # (a web page answering 200 is not malformed but the wrong base_url: test_endpoints.py)
        Reply(502, "<html>Bad Gateway</html>", content_type="text/html"),
        Reply(drop=True),
    ],
)
async def test_malformed_bodies_and_dropped_connections_are_transient(provider, replay, reply):
    replay.add("POST", PATH, reply)
    with pytest.raises(Transient) as info:
        await provider.generate(make_request(MODEL))
    assert KEY not in str(info.value)
    assert len(replay.requests) == 1  # one request: no silent SDK retry


async def test_a_key_echoed_by_the_server_is_redacted(provider, replay):
    replay.add("POST", PATH, Reply(401, error("authentication_error", f"invalid x-api-key {KEY}")))
    with pytest.raises(Exception) as info:
        await provider.generate(make_request(MODEL))
    assert KEY not in str(info.value) and REDACTED in str(info.value)


async def test_missing_key_names_the_variable(replay, monkeypatch):
    monkeypatch.delenv("MY_CLAUDE_KEY", raising=False)
    p = AnthropicMessages(AnthropicMessages.Options(base_url=replay.url, api_key_env="MY_CLAUDE_KEY"))
    with pytest.raises(ConfigError, match="MY_CLAUDE_KEY"):
        await p.start()
    with pytest.raises(Fatal, match="MY_CLAUDE_KEY"):
        await p.generate(make_request(MODEL))
    assert replay.requests == []


# Message Batches


def _batch(server_url: str, status: str, counts: dict, *, ended: bool = False) -> dict:
    return {
        "id": "msgbatch_01",
        "type": "message_batch",
        "processing_status": status,
        "request_counts": {"processing": 0, "succeeded": 0, "errored": 0, "canceled": 0, "expired": 0, **counts},
        "created_at": "2026-11-23T10:00:00Z",
        "expires_at": "2026-11-24T10:00:00Z",
        "ended_at": None,
        "cancel_initiated_at": None,
        "archived_at": None,
        "results_url": f"{server_url}/v1/messages/batches/msgbatch_01/results" if ended else None,
    }


async def test_batch_submit_poll_collect_cancel(provider, replay):
    keys = [f"item-{i}" for i in range(6)]
    requests = {k: make_request("claude-other", prompt=f"prompt {k}") for k in keys}
    replay.add("POST", "/v1/messages/batches", Reply(200, _batch(replay.url, "in_progress", {"processing": 6})))
    assert await provider.submit_batch(MODEL, requests) == "msgbatch_01"
    sent = replay.requests[0].json["requests"]
    assert [entry["custom_id"] for entry in sent] == keys
    for entry, key in zip(sent, keys):
        assert entry["params"]["model"] == MODEL and entry["params"]["max_tokens"] == 256
        content = entry["params"]["messages"][0]["content"]
        assert base64.standard_b64decode(content[0]["source"]["data"]) == image_bytes(size=(40, 30))
        assert content[-1]["text"] == f"prompt {key}"

    lines = [
        {"custom_id": f"item-{i}", "result": {"type": "succeeded", "message": message(str(i), msg_id=f"msg_{i}")}}
        for i in range(4)
    ]
    lines.append(
        {
            "custom_id": "item-4",
            "result": {"type": "errored", "error": error("invalid_request_error", "bad image", None)},
        }
    )
    lines.append({"custom_id": "item-5", "result": {"type": "expired"}})
    random.Random(5).shuffle(lines)
    ended = _batch(replay.url, "ended", {"succeeded": 4, "errored": 1, "expired": 1}, ended=True)
    replay.add(
        "GET",
        "/v1/messages/batches/msgbatch_01",
        Reply(200, _batch(replay.url, "in_progress", {"processing": 6})),
        Reply(200, ended),
    )
    replay.add(
        "GET",
        "/v1/messages/batches/msgbatch_01/results",
        Reply(
            200,
            "".join(json.dumps(line) + "\n" for line in lines),
            {"x-visionbench-simulated": "1"},
            content_type="application/binary",
        ),
    )

    running = await provider.poll_batch("msgbatch_01")
    assert (running.state, running.done, running.total) == ("in_progress", False, 6)
    done = await provider.poll_batch("msgbatch_01")
    assert (done.state, done.done, done.succeeded, done.failed, done.total) == ("ended", True, 4, 2, 6)

    out = await provider.collect_batch("msgbatch_01")
    assert set(out) == set(keys)
    for i in range(4):
        assert (out[f"item-{i}"].text, out[f"item-{i}"].request_id) == (str(i), f"msg_{i}")
        assert out[f"item-{i}"].usage.input_tokens == 276 and out[f"item-{i}"].simulated is True
    assert isinstance(out["item-4"], BadRequest) and "bad image" in str(out["item-4"])
    assert isinstance(out["item-5"], Transient) and "expired" in str(out["item-5"])

    replay.add("POST", "/v1/messages/batches/msgbatch_01/cancel", Reply(200, _batch(replay.url, "canceling", {})))
    await provider.cancel_batch("msgbatch_01")
    assert replay.requests[-1].path == "/v1/messages/batches/msgbatch_01/cancel"


async def test_batch_keys_must_be_custom_ids(provider, replay):
    with pytest.raises(BadRequest, match="custom_id"):
        await provider.submit_batch(MODEL, {"cell/img 1.png": make_request(MODEL)})
    assert replay.requests == []


async def test_batch_errors_are_mapped(provider, replay):
    replay.add("GET", "/v1/messages/batches/msgbatch_02", Reply(404, error("not_found_error", "batch not found")))
    with pytest.raises(Fatal, match="batch not found"):
        await provider.poll_batch("msgbatch_02")
