"""The ``gemini`` provider against a local replay server, through the real google-genai SDK over HTTP."""

from __future__ import annotations

import base64
import random
import ssl

import pytest
from replay_server import Reply, image_bytes, make_request

from visionbench.errors import BadRequest, ConfigError, Fatal, RateLimited, Transient
from visionbench.providers import gemini
from visionbench.providers.gemini import Gemini
from visionbench.run.plugins import collect, make_manager
from visionbench.secrets import REDACTED

pytestmark = pytest.mark.filterwarnings("ignore:Inheritance class AiohttpClientSession:DeprecationWarning")

KEY = "test-gemini-key-SECRET-42"
MODEL = "gemini-3.5-flash"
PATH = f"/v1/models/{MODEL}:generateContent"


def ok_body(text: str = "3", **extra) -> dict:
    body = {
        "candidates": [{"content": {"parts": [{"text": text}], "role": "model"}, "finishReason": "STOP"}],
        "modelVersion": MODEL,
        "responseId": "resp-1",
        "usageMetadata": {
            "promptTokenCount": 270,
            "candidatesTokenCount": 1,
            "totalTokenCount": 271,
            "promptTokensDetails": [{"modality": "TEXT", "tokenCount": 12}, {"modality": "IMAGE", "tokenCount": 258}],
        },
    }
    body.update(extra)
    return body


def error_body(code: int, status: str, message: str, details: list | None = None) -> dict:
    return {"error": {"code": code, "message": message, "status": status, **({"details": details} if details else {})}}


@pytest.fixture
async def provider(replay, monkeypatch):
    monkeypatch.setenv("GEMINI_API_KEY", KEY)
    p = Gemini(Gemini.Options(base_url=replay.url))
    await p.start()
    yield p
    await p.aclose()


def test_registers_as_a_plugin():
    assert collect(make_manager([gemini], entry_points=False)).providers == {"gemini": Gemini}


def test_options_and_capabilities():
    with pytest.raises(Exception, match="extra"):
        Gemini.Options(api_key="x")
    caps = Gemini(Gemini.Options(max_images_per_request=7)).capabilities(MODEL)
    assert (caps.max_images_per_request, caps.structured_output, caps.batch, caps.tasks) == (7, True, True, None)
    env = Gemini().environment()
    assert env["sdk"] == "google-genai 3.3.0" and "key" not in str(env).lower()


async def test_one_verifying_tls_context_for_every_transport(provider, monkeypatch):
    """The client's transports share one TLS context (one CA bundle load, not three), and it still verifies."""
    api = provider._get_client()._api_client  # google-genai 3.3 (pinned) internals
    tls = api._async_client_session_request_args["ssl"]  # what aiohttp sends the requests with
    assert tls.verify_mode == ssl.CERT_REQUIRED and tls.check_hostname
    assert tls.get_ca_certs()  # certifi's bundle, as the SDK would load
    assert api._websocket_ssl_ctx["ssl"] is tls
    assert api._async_httpx_client_args["verify"] is tls


async def test_request_carries_images_prompt_system_and_key(provider, replay):
    replay.add("POST", PATH, Reply(200, ok_body()))
    request = make_request(MODEL, n_images=2, prompt="Count them", system="Be terse.")
    response = await provider.generate(request)
    assert response.text == "3" and response.request_id == "resp-1" and response.model_version == MODEL
    assert response.cost_usd is None and KEY not in repr(response)
    sent = replay.requests[0]
    assert sent.path == PATH and sent.headers["x-goog-api-key"] == KEY
    parts = sent.json["contents"][0]["parts"]
    assert sent.json["contents"][0]["role"] == "user"
    for part, image in zip(parts[:2], request.images):
        assert base64.urlsafe_b64decode(part["inlineData"]["data"]) == image.data
        assert part["inlineData"]["mime_type"] == "image/jpeg"
    assert parts[2] == {"text": "Count them"}
    assert sent.json["systemInstruction"]["parts"] == [{"text": "Be terse."}]
    assert sent.json["generationConfig"] == {"maxOutputTokens": 256}


async def test_model_params_map_to_generation_config(provider, replay):
    replay.add("POST", PATH, Reply(200, ok_body()))
    params = {
        "temperature": 0.0,
        "max_output_tokens": 99,
        "thinking_budget": 128,
        "media_resolution": "low",
        "part_media_resolution": "ultra_high",
        "seed": 7,
    }
    await provider.generate(make_request(MODEL, params=params))
    body = replay.requests[0].json
    config = body["generationConfig"]
    assert config["temperature"] == 0.0 and config["maxOutputTokens"] == 99 and config["seed"] == 7
    assert config["mediaResolution"] == "MEDIA_RESOLUTION_LOW"
    assert config["thinkingConfig"] == {"thinking_budget": 128}
    assert body["contents"][0]["parts"][0]["mediaResolution"] == {"level": "MEDIA_RESOLUTION_ULTRA_HIGH"}


async def test_thinking_level(provider, replay):
    replay.add("POST", PATH, Reply(200, ok_body()))
    await provider.generate(make_request(MODEL, params={"thinking_level": "low"}))
    assert replay.requests[0].json["generationConfig"]["thinkingConfig"] == {"thinking_level": "LOW"}


@pytest.mark.parametrize(
    "params, words",
    [
        ({"temprature": 1}, ["temprature", "allowed", "temperature", "thinking_budget"]),
        ({"thinking_level": "galaxy-brain"}, ["invalid model parameter"]),
        ({"media_resolution": "enormous"}, ["invalid model parameter"]),
    ],
)
async def test_bad_params_are_refused_before_sending(provider, replay, params, words):
    with pytest.raises(BadRequest) as info:
        await provider.generate(make_request(MODEL, params=params))
    assert all(w in str(info.value) for w in words)
    assert replay.requests == []


async def test_too_many_images(replay, monkeypatch):
    monkeypatch.setenv("GEMINI_API_KEY", KEY)
    p = Gemini(Gemini.Options(base_url=replay.url, max_images_per_request=2))
    with pytest.raises(BadRequest, match="at most 2"):
        await p.generate(make_request(MODEL, n_images=3))
    await p.aclose()


async def test_response_schema_asks_for_json(provider, replay):
    replay.add("POST", PATH, Reply(200, ok_body("[1, 2]")))
    schema = {"type": "array", "items": {"type": "integer"}, "minItems": 2, "maxItems": 2}
    response = await provider.generate(make_request(MODEL, n_images=2, schema=schema))
    config = replay.requests[0].json["generationConfig"]
    assert config["responseMimeType"] == "application/json" and config["responseJsonSchema"] == schema
    assert response.text == "[1, 2]"


async def test_v1beta_and_usage_as_reported(replay, monkeypatch):
    monkeypatch.setenv("GEMINI_API_KEY", KEY)
    body = ok_body()
    body["candidates"][0]["content"]["parts"] = [{"text": "thinking about it", "thought": True}, {"text": "4"}]
    body["usageMetadata"] = {
        "promptTokenCount": 300,
        "candidatesTokenCount": 1,
        "thoughtsTokenCount": 50,
        "cachedContentTokenCount": 256,
    }
    replay.add("POST", f"/v1beta/models/{MODEL}:generateContent", Reply(200, body))
    p = Gemini(Gemini.Options(base_url=replay.url, api_version="v1beta"))
    response = await p.generate(make_request(MODEL))  # no start(): the client is built on first use
    await p.aclose()
    assert response.text == "4"  # the thought part is not in the text
    u = response.usage
    assert (u.input_tokens, u.output_tokens, u.thinking_tokens, u.cached_tokens, u.image_tokens) == (
        300,
        1,
        50,
        256,
        None,
    )


async def test_missing_usage_is_none(provider, replay):
    body = ok_body()
    del body["usageMetadata"]
    replay.add("POST", PATH, Reply(200, body))
    assert (await provider.generate(make_request(MODEL))).usage is None


async def test_usage_image_tokens(provider, replay):
    replay.add("POST", PATH, Reply(200, ok_body()))
    u = (await provider.generate(make_request(MODEL))).usage
    assert (u.input_tokens, u.output_tokens, u.thinking_tokens, u.cached_tokens, u.image_tokens) == (
        270,
        1,
        None,
        None,
        258,
    )


@pytest.mark.parametrize("headers, simulated", [({"X-VisionBench-Simulated": "1"}, True), ({}, False)])
async def test_simulated_header(provider, replay, headers, simulated):
    replay.add("POST", PATH, Reply(200, ok_body(), headers=headers))
    assert (await provider.generate(make_request(MODEL))).simulated is simulated


@pytest.mark.parametrize(
    "reply, kind, status, retry_after",
    [
        (
            Reply(429, error_body(429, "RESOURCE_EXHAUSTED", "Quota exceeded"), {"Retry-After": "7"}),
            RateLimited,
            429,
            7.0,
        ),
        (
            Reply(
                429,
                error_body(
                    429,
                    "RESOURCE_EXHAUSTED",
                    "Quota exceeded",
                    [{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "2s"}],
                ),
            ),
            RateLimited,
            429,
            2.0,
        ),
        (  # not finite: no wait (400 nines overflow a float to inf), and a header of inf is none either
            Reply(
                429,
                error_body(
                    429,
                    "RESOURCE_EXHAUSTED",
                    "Quota exceeded",
                    [{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "9" * 400 + "s"}],
                ),
                {"Retry-After": "inf"},
            ),
            RateLimited,
            429,
            None,
        ),
        (Reply(500, error_body(500, "INTERNAL", "Internal error")), Transient, 500, None),
        (Reply(502, "<html>Bad Gateway</html>", content_type="text/html"), Transient, 502, None),
        (Reply(503, error_body(503, "UNAVAILABLE", "The model is overloaded")), Transient, 503, None),
        (Reply(504, error_body(504, "DEADLINE_EXCEEDED", "Deadline expired")), Transient, 504, None),
        (
            Reply(400, error_body(400, "INVALID_ARGUMENT", "Request contains an invalid argument.")),
            BadRequest,
            400,
            None,
        ),
        (
            Reply(413, error_body(413, "INVALID_ARGUMENT", "Request payload size exceeds the limit")),
            BadRequest,
            413,
            None,
        ),
        (
            Reply(
                400,
                error_body(
                    400,
                    "INVALID_ARGUMENT",
                    "API key not valid.",
                    [{"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "API_KEY_INVALID"}],
                ),
            ),
            Fatal,
            400,
            None,
        ),
        (
            Reply(401, error_body(401, "UNAUTHENTICATED", "Request had invalid authentication credentials")),
            Fatal,
            401,
            None,
        ),
        (Reply(403, error_body(403, "PERMISSION_DENIED", "Permission denied")), Fatal, 403, None),
        (Reply(404, error_body(404, "NOT_FOUND", "models/nope is not found")), Fatal, 404, None),
    ],
)
async def test_error_mapping(provider, replay, reply, kind, status, retry_after):
    replay.add("POST", PATH, reply)
    with pytest.raises(kind) as info:
        await provider.generate(make_request(MODEL))
    err = info.value
    assert type(err) is kind and err.status == status
    assert getattr(err, "retry_after", None) == retry_after
    body = reply.body
    assert (body["error"]["message"] if isinstance(body, dict) else "Bad Gateway") in str(err)
    assert KEY not in str(err) and KEY not in repr(err.__context__)
    assert len(replay.requests) == 1  # SDK retries are off


@pytest.mark.parametrize(
    "reply", [Reply(200, "{not json"), Reply(503, "{not json"), Reply(200, "[1, 2]"), Reply(drop=True)]
)
async def test_malformed_bodies_and_dropped_connections_are_transient(provider, replay, reply):
    replay.add("POST", PATH, reply)
    with pytest.raises(Transient) as info:
        await provider.generate(make_request(MODEL))
    assert KEY not in str(info.value)
    assert len(replay.requests) == 1  # one request: no silent SDK retry


async def test_blocked_prompt_is_a_bad_request(provider, replay):
    body = {
        "promptFeedback": {"blockReason": "PROHIBITED_CONTENT"},
        "usageMetadata": {"promptTokenCount": 270},
        "modelVersion": MODEL,
        "responseId": "resp-2",
    }
    replay.add("POST", PATH, Reply(200, body))
    with pytest.raises(BadRequest, match="PROHIBITED_CONTENT"):
        await provider.generate(make_request(MODEL))


async def test_a_key_echoed_by_the_server_is_redacted(provider, replay):
    replay.add("POST", PATH, Reply(400, error_body(400, "INVALID_ARGUMENT", f"API key {KEY} is not valid")))
    with pytest.raises(Exception) as info:
        await provider.generate(make_request(MODEL))
    assert KEY not in str(info.value) and REDACTED in str(info.value)


async def test_missing_key_names_the_variable(replay, monkeypatch):
    monkeypatch.delenv("MY_GEMINI_KEY", raising=False)
    p = Gemini(Gemini.Options(base_url=replay.url, api_key_env="MY_GEMINI_KEY"))
    with pytest.raises(ConfigError, match="MY_GEMINI_KEY"):
        await p.start()
    with pytest.raises(Fatal, match="MY_GEMINI_KEY"):
        await p.generate(make_request(MODEL))
    assert replay.requests == []


# Batch mode


def _batch_job(name: str, state: str, responses: list | None = None) -> dict:
    metadata = {
        "@type": "type.googleapis.com/google.ai.generativelanguage.v1main.GenerateContentBatch",
        "model": f"models/{MODEL}",
        "displayName": "visionbench",
        "state": state,
    }
    if responses is not None:
        metadata["output"] = {"inlinedResponses": {"inlinedResponses": responses}}
    return {"name": name, "metadata": metadata}


async def test_batch_submit_poll_collect_cancel(provider, replay):
    keys = [f"item-{i}" for i in range(5)]
    requests = {k: make_request(MODEL, prompt=f"prompt {k}", system="sys") for k in keys}
    replay.add(
        "POST", f"/v1/models/{MODEL}:batchGenerateContent", Reply(200, _batch_job("batches/b1", "BATCH_STATE_PENDING"))
    )
    job_id = await provider.submit_batch(MODEL, requests)
    assert job_id == "batches/b1"
    sent = replay.requests[0].json["batch"]["inputConfig"]["requests"]["requests"]
    assert [entry["metadata"] for entry in sent] == [{"key": k} for k in keys]
    for entry, key in zip(sent, keys):
        assert entry["request"]["contents"][0]["parts"][-1] == {"text": f"prompt {key}"}
        assert entry["request"]["systemInstruction"]["parts"] == [{"text": "sys"}]
        assert base64.urlsafe_b64decode(
            entry["request"]["contents"][0]["parts"][0]["inlineData"]["data"]
        ) == image_bytes(size=(40, 30))

    # Results in shuffled order, one failed, one with the simulated mark.
    results = [{"response": ok_body(str(i), responseId=f"r{i}"), "metadata": {"key": f"item-{i}"}} for i in range(4)]
    results[1]["response"]["sdkHttpResponse"] = {"headers": {"x-visionbench-simulated": "1"}}
    results.append({"error": {"code": 3, "message": "Unable to process input image."}, "metadata": {"key": "item-4"}})
    random.Random(3).shuffle(results)
    replay.add(
        "GET",
        "/v1/batches/b1",
        Reply(200, _batch_job("batches/b1", "BATCH_STATE_RUNNING")),
        Reply(200, _batch_job("batches/b1", "BATCH_STATE_SUCCEEDED", results)),
    )
    running = await provider.poll_batch(job_id)
    assert (running.state, running.done, running.total) == ("BATCH_STATE_RUNNING", False, 5)
    done = await provider.poll_batch(job_id)
    assert (done.state, done.done, done.succeeded, done.failed, done.total) == ("BATCH_STATE_SUCCEEDED", True, 4, 1, 5)

    out = await provider.collect_batch(job_id)
    assert set(out) == set(keys)
    for i in range(4):
        assert out[f"item-{i}"].text == str(i) and out[f"item-{i}"].request_id == f"r{i}"
        assert out[f"item-{i}"].usage.image_tokens == 258
        assert out[f"item-{i}"].simulated is (i == 1)
    assert isinstance(out["item-4"], BadRequest) and "Unable to process input image" in str(out["item-4"])

    replay.add("POST", "/v1/batches/b1:cancel", Reply(200, {}))
    await provider.cancel_batch(job_id)
    assert replay.requests[-1].path == "/v1/batches/b1:cancel"


async def test_batch_failed_state_is_done(provider, replay):
    replay.add("GET", "/v1/batches/b2", Reply(200, _batch_job("batches/b2", "BATCH_STATE_FAILED")))
    status = await provider.poll_batch("batches/b2")
    assert status.done and "FAILED" in status.state
    assert await provider.collect_batch("batches/b2") == {}


async def test_batch_errors_are_mapped(provider, replay):
    replay.add("GET", "/v1/batches/b3", Reply(404, error_body(404, "NOT_FOUND", "Batch not found")))
    with pytest.raises(Fatal, match="Batch not found"):
        await provider.poll_batch("batches/b3")
