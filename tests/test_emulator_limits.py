"""The emulator refuses what the services refuse (documented limits), through the real SDKs, with their errors."""

from __future__ import annotations

import base64
import io
import json
import os
from pathlib import Path
from typing import Any

import anthropic
import pytest
from google import genai
from google.genai import errors as genai_errors
from google.genai import types
from PIL import Image

from visionbench.emulator import Emulator
from visionbench.emulator.profile_schema import profiles_from_dict
from visionbench.run.plugins import default_registry
from visionbench.services.limits import limits_for

QUIET = {
    "latency": {"base_s": 0.0, "jitter": 0.0, "output_tokens_per_s": 1e6, "thinking_per_image": 100},
    "faults": {"http_500": 0, "http_503": 0, "drop_connection": 0, "slow": {"probability": 0}},
    "rate_limit": {"requests_per_minute": None},
}


@pytest.fixture
async def emu(tmp_path: Path) -> Any:
    (tmp_path / "labels.json").write_text("{}")
    # gemini-2.5-flash was shut down on 2026-12-01; listing it exactly serves it, to test its documented range
    profiles = profiles_from_dict({"models": {"*": QUIET, "gemini-2.5-flash": QUIET}})
    async with Emulator(profiles, dataset=tmp_path, time_scale=0) as e:
        yield e


def image(width: int, height: int, fmt: str = "JPEG") -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (width, height), (120, 80, 40)).save(out, fmt)
    return out.getvalue()


def block(data: bytes, media_type: str = "image/jpeg", b64: str | None = None) -> dict[str, Any]:
    text = b64 if b64 is not None else base64.b64encode(data).decode()
    return {"type": "image", "source": {"type": "base64", "media_type": media_type, "data": text}}


async def claude_error(emu: Emulator, blocks: list[dict[str, Any]], **kw: Any) -> anthropic.APIStatusError:
    client = anthropic.AsyncAnthropic(api_key="k", base_url=emu.base_url, max_retries=0)
    content = [*blocks, {"type": "text", "text": "How many people?"}]
    with pytest.raises(anthropic.APIStatusError) as err:
        await client.messages.create(
            model="claude-haiku-4-5",
            max_tokens=kw.pop("max_tokens", 64),
            messages=[{"role": "user", "content": content}],
            **kw,
        )
    body = err.value.body
    assert body["type"] == "error" and body["request_id"]  # the real envelope
    return err.value


def gem(emu: Emulator) -> genai.Client:
    http = types.HttpOptions(base_url=emu.base_url, api_version="v1", retry_options=types.HttpRetryOptions(attempts=1))
    return genai.Client(api_key="k", http_options=http)


async def gemini_error(client: genai.Client, parts: list[Any], model: str = "gemini-3.5-flash", **config: Any) -> Any:
    cfg = types.GenerateContentConfig(**config) if config else None
    with pytest.raises(genai_errors.ClientError) as err:
        await client.aio.models.generate_content(model=model, contents=[*parts, "How many?"], config=cfg)
    assert err.value.code == 400 and err.value.status == "INVALID_ARGUMENT"
    return err.value


async def test_anthropic_image_count_and_sides(emu: Emulator) -> None:
    small = block(image(8, 8))
    err = await claude_error(emu, [small] * 101)
    assert err.status_code == 400 and err.type == "invalid_request_error" and "101 > 100" in err.message
    err = await claude_error(emu, [block(image(8001, 8))])
    assert "max allowed size: 8000 pixels" in err.message and "messages.0.content.0.image" in err.message
    wide = block(image(2001, 8))
    err = await claude_error(emu, [small] * 20 + [wide])
    assert "many-image requests: 2000 pixels" in err.message
    client = anthropic.AsyncAnthropic(api_key="k", base_url=emu.base_url, max_retries=0)
    ok = await client.messages.create(  # 20 images are not "many": 2001 px is fine there, and 8000 px alone
        model="claude-haiku-4-5", max_tokens=64, messages=[{"role": "user", "content": [small] * 19 + [wide]}]
    )
    assert json.loads(ok.content[0].text) and len(json.loads(ok.content[0].text)) == 20


async def test_anthropic_bytes_and_media_types(emu: Emulator) -> None:
    big = b"\xff\xd8\xff" + os.urandom(5_859_375)  # 7.8 MB of base64
    err = await claude_error(emu, [block(big)])
    assert "image exceeds 5 MB maximum: 7812504 bytes > 5242880 bytes" in err.message
    four_mb = base64.b64encode(b"\xff\xd8\xff" + os.urandom(2_800_000)).decode()  # 3.7 MB each, 9 of them: 34 MB
    err = await claude_error(emu, [block(b"", b64=four_mb)] * 9)
    assert err.status_code == 413 and err.body["error"]["type"] == "request_too_large"
    err = await claude_error(emu, [block(image(8, 8, "BMP"), "image/bmp")])
    assert "media_type: Input should be 'image/jpeg', 'image/png', 'image/gif' or 'image/webp'" in err.message
    err = await claude_error(emu, [block(image(8, 8, "PNG"), "image/jpeg")])
    assert "Image does not match the provided media type image/jpeg" in err.message


async def test_anthropic_thinking_and_parameters(emu: Emulator) -> None:
    small = block(image(8, 8))
    err = await claude_error(emu, [small], max_tokens=2000, thinking={"type": "enabled", "budget_tokens": 2048})
    assert "`max_tokens` must be greater than `thinking.budget_tokens`" in err.message
    err = await claude_error(emu, [small], max_tokens=4000, thinking={"type": "enabled", "budget_tokens": 512})
    assert "greater than or equal to 1024" in err.message
    err = await claude_error(emu, [small], extra_body={"temperature": 0.2})  # API 2026-10-21 has no temperature
    assert "temperature" in err.message
    client = anthropic.AsyncAnthropic(api_key="k", base_url=emu.base_url, max_retries=0)
    msg = [{"role": "user", "content": [small, {"type": "text", "text": "How many?"}]}]
    plain = await client.messages.create(model="claude-haiku-4-5", max_tokens=64, messages=msg)
    thought = await client.messages.create(
        model="claude-haiku-4-5", max_tokens=4096, messages=msg, thinking={"type": "enabled", "budget_tokens": 2048}
    )
    assert [b.type for b in plain.content] == ["text"] and [b.type for b in thought.content] == ["thinking", "text"]
    assert thought.usage.output_tokens >= plain.usage.output_tokens + 100  # the thinking is billed


async def test_gemini_limits(emu: Emulator) -> None:
    client = gem(emu)  # one client: the SDK closes its session when the client goes
    err = await gemini_error(client, [types.Part.from_bytes(data=image(8, 8, "BMP"), mime_type="image/bmp")])
    assert err.message == "Unsupported MIME type: image/bmp"
    big = types.Part.from_bytes(data=b"\xff\xd8\xff" + os.urandom(16_000_000), mime_type="image/jpeg")
    err = await gemini_error(client, [big])
    assert err.message == "Request payload size exceeds the limit: 20971520 bytes."
    part = types.Part.from_bytes(data=image(8, 8), mime_type="image/jpeg")
    off = types.ThinkingConfig(thinking_budget=0)
    err = await gemini_error(client, [part], model="gemini-3.1-pro-preview", thinking_config=off)
    assert "only works in thinking mode" in err.message
    budget = types.ThinkingConfig(thinking_budget=30000)
    err = await gemini_error(client, [part], model="gemini-2.5-flash", thinking_config=budget)
    assert "between" in err.message
    ok = await client.aio.models.generate_content(
        model="gemini-3.5-flash", contents=[part, "How many?"], config=types.GenerateContentConfig(thinking_config=off)
    )
    assert ok.text is not None and not ok.usage_metadata.thoughts_token_count


def test_capabilities_carry_the_documented_limits() -> None:
    providers = default_registry().providers
    claude = providers["anthropic"]().capabilities("claude-haiku-4-5")
    assert (claude.max_images_per_request, claude.max_image_side, claude.max_image_side_many) == (100, 8000, 2000)
    assert (claude.many_images_threshold, claude.max_image_bytes, claude.max_request_bytes) == (20, 5 << 20, 32 << 20)
    gemini = providers["gemini"]().capabilities("gemini-3.5-flash")
    assert gemini.max_request_bytes == 20 << 20 and gemini.max_image_side is None
    assert all(limits_for("anthropic", "claude-x").sources.get(k) for k in ("max_image_side", "max_request_bytes"))
