"""Recorded real API responses, replayed over HTTP and parsed through the adapters by the real SDKs.

The cassettes live in the shared reference folder (read-only, never copied here); the test is skipped where
that folder is absent. Expected numbers are the ones in the recorded bodies.
"""

from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from replay_server import Reply, make_request

from visionbench.errors import BadRequest
from visionbench.providers.anthropic_messages import AnthropicMessages
from visionbench.providers.gemini import Gemini
from visionbench.types import Usage

CASSETTES = Path(__file__).resolve().parents[1].parent / "shared" / "reference" / "cassettes"
pytestmark = [
    pytest.mark.skipif(not (CASSETTES / "MANIFEST.json").is_file(), reason=f"no cassettes at {CASSETTES}"),
    pytest.mark.filterwarnings("ignore:Inheritance class AiohttpClientSession:DeprecationWarning"),
]

# file -> what the adapter must make of it
EXPECTED = {
    "gemini_2.0-flash_image-jpeg-540x360.json": dict(
        text="That is a potato.",
        usage=Usage(1817, 5, None, None, 1806),
        model_version="gemini-2.0-flash",
        request_id="64fNaIPHJNulqtsPx8OZsQQ",
    ),
    "gemini_2.0-flash_image-png-3008x2000.json": dict(
        text="The fruit in the image is a kiwi.",
        usage=Usage(3367, 9, None, None, 3354),
        model_version="gemini-2.0-flash",
        request_id="4YfNaLXqOsKVmtkPqqehuAQ",
    ),
    "gemini_2.0-flash_json-schema-output.json": dict(
        json={"city": "Mexico City", "country": "Mexico"},
        usage=Usage(8, 20, None, None, None),
        model_version="gemini-2.0-flash",
        request_id="EfsgaZT5JPbXz7IPqtGJkQ8",
    ),
    "gemini_2.5-pro_text-with-thoughts-usage.json": dict(
        text="Paris",
        usage=Usage(142, 1, 97, None, None),
        model_version="gemini-2.5-pro",
        request_id="ipYoaaGNB9qVmtkP_vrsuQs",
    ),
    "anthropic_haiku-4-5_image-base64-jpeg-540x360.json": dict(
        text_start="This is a **potato**",
        usage=Usage(276, 92, None, 0, None),
        model_version="claude-haiku-4-5-20251001",
        request_id="msg_01KHctj7AyWoJWmwcFoXsDH6",
    ),
    "anthropic_haiku-4-5_image-url.json": dict(
        text_start="This is a potato.",
        usage=Usage(296, 91, None, 0, None),
        model_version="claude-haiku-4-5-20251001",
        request_id="msg_01TQMY6yjmVxHiAh8qEdausZ",
    ),
    "anthropic_opus-4-6_error-400-invalid_request_error.json": dict(
        error=BadRequest,
        status=400,
        message=["This model does not support effort level 'xhigh'", "req_011Ca7jT9AHpgXgdv8igm4z9"],
    ),
    "anthropic_sonnet-4-5_image-base64-png-166x282_stream.sse": dict(skip="streaming is not used by the adapter"),
}


def _manifest() -> dict[str, dict]:
    if not (CASSETTES / "MANIFEST.json").is_file():
        return {}
    return {entry["file"]: entry for entry in json.loads((CASSETTES / "MANIFEST.json").read_text())}


def test_every_cassette_has_an_expectation():
    assert set(_manifest()) == set(EXPECTED)


def _reply(entry: dict) -> Reply:
    """The recorded status, body (bytes as stored) and headers (less the ones about the original framing)."""
    headers = {
        k: ", ".join(v)
        for k, v in entry["response_headers_recorded"].items()
        if k.lower() not in ("content-length", "transfer-encoding", "content-type", "content-encoding")
    }
    content_type = next(
        (v[0] for k, v in entry["response_headers_recorded"].items() if k.lower() == "content-type"), "application/json"
    )
    return Reply(entry["status"]["code"], (CASSETTES / entry["file"]).read_bytes(), headers, content_type.split(";")[0])


@pytest.mark.parametrize("name", sorted(EXPECTED))
async def test_cassette_through_adapter(name, replay, monkeypatch):
    expected = EXPECTED[name]
    if "skip" in expected:
        pytest.skip(expected["skip"])
    entry = _manifest()[name]
    path = urlsplit(entry["uri"]).path
    replay.add(entry["method"], path, _reply(entry))
    if name.startswith("gemini"):
        monkeypatch.setenv("GEMINI_API_KEY", "test-gemini-key-0001")
        api_version, model = path.split("/")[1], path.split("/models/")[1].split(":")[0]
        provider = Gemini(Gemini.Options(base_url=replay.url, api_version=api_version))
    else:
        monkeypatch.setenv("ANTHROPIC_API_KEY", "test-anthropic-key-0001")
        model = (
            entry["request_body_summary"].get("model", "claude-test")
            if isinstance(entry.get("request_body_summary"), dict)
            else "claude-test"
        )
        provider = AnthropicMessages(AnthropicMessages.Options(base_url=replay.url))
    await provider.start()
    try:
        request = make_request(model)
        if "error" in expected:
            with pytest.raises(expected["error"]) as info:
                await provider.generate(request)
            assert info.value.status == expected["status"]
            for fragment in expected["message"]:
                assert fragment in str(info.value)
            return
        response = await provider.generate(request)
    finally:
        await provider.aclose()
    assert len(replay.requests) == 1 and replay.requests[0].path == path
    assert response.usage == expected["usage"]
    assert response.model_version == expected["model_version"]
    assert response.request_id == expected["request_id"]
    assert response.cost_usd is None and response.simulated is False
    if "text" in expected:
        assert response.text == expected["text"]
    if "text_start" in expected:
        assert response.text.startswith(expected["text_start"])
    if "json" in expected:
        assert json.loads(response.text) == expected["json"]


async def test_recorded_body_with_simulated_header_is_marked(replay, monkeypatch):
    """The same recorded body, now with the emulator's header: the response says simulated."""
    entry = _manifest()["gemini_2.0-flash_image-jpeg-540x360.json"]
    reply = _reply(entry)
    reply.headers["X-Visionbench-Simulated"] = "1"
    replay.add("POST", "/v1/models/gemini-2.0-flash:generateContent", reply)
    monkeypatch.setenv("GEMINI_API_KEY", "test-gemini-key-0001")
    provider = Gemini(Gemini.Options(base_url=replay.url))
    try:
        response = await provider.generate(make_request("gemini-2.0-flash"))
    finally:
        await provider.aclose()
    assert response.simulated is True and response.usage.image_tokens == 1806
