"""The emulator's work-driven latency and token model, token rate limits, and the seed calibration."""

from __future__ import annotations

import base64
import io
from pathlib import Path
from typing import Any

import anthropic
import pytest
from conftest import EVAL_IMAGES, needs_eval_images
from google import genai
from google.genai import errors as genai_errors
from google.genai import types
from PIL import Image

from visionbench.emulator import Emulator
from visionbench.emulator.engine import CountRequest, Engine, ImagePart
from visionbench.emulator.matching import DatasetIndex
from visionbench.emulator.profile_schema import DEFAULT_PROFILES, Latency, load_profiles, profiles_from_dict
from visionbench.emulator.state import ModelState

ROOT = Path(__file__).resolve().parents[1]
SEED_PROFILES = DEFAULT_PROFILES.with_name("seed-notebook.yaml")
SEED_IMAGES = ["ultralytics_bus.jpg", "coco_train2017_000000000641.jpg", "ucf_cc_50_4.jpg", "ucf_cc_50_39.jpg"]
QUIET = {
    "latency": {"base_s": 0.0, "jitter": 0.0, "output_tokens_per_s": 1e6},
    "faults": {"http_500": 0, "http_503": 0, "drop_connection": 0, "slow": {"probability": 0}},
}


def test_thinking_grows_with_images_and_people() -> None:
    lat = Latency(thinking_tokens=100, thinking_per_image=50, thinking_per_person=10, multi_image_thinking=0.1)
    profile = profiles_from_dict({"models": {"*": {"latency": lat.model_dump()}}}).models["*"]
    st = ModelState("m", "*", profile, 0, 0.0)
    engine = Engine(profiles_from_dict({}), None, 0.0)
    one, crowd = engine.thinking(st, [2], "d"), engine.thinking(st, [200], "d")
    assert one == round(100 + 50 + 10 * lat.difficulty(2)) and crowd > 10 * one // 2
    assert lat.difficulty(20) == pytest.approx(20, rel=0.05) and lat.difficulty(5000) < lat.thinking_person_cap
    four = engine.thinking(st, [2, 2, 2, 2], "d")
    assert four == round((100 + 4 * (50 + 10 * lat.difficulty(2))) * 1.3)  # 30% more for 3 extra images


def jpeg(width: int = 64, height: int = 48) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (width, height), (10, 200, 30)).save(out, "JPEG")
    return out.getvalue()


@pytest.fixture
async def limited(tmp_path: Path) -> Any:
    (tmp_path / "labels.json").write_text("{}")
    profile = {**QUIET, "rate_limit": {"requests_per_minute": None, "input_tokens_per_minute": 150}}
    async with Emulator(profiles_from_dict({"models": {"*": profile}}), dataset=tmp_path, time_scale=1.0) as emu:
        yield emu


async def test_input_tokens_per_minute_limit_and_headers(limited: Emulator) -> None:
    client = anthropic.AsyncAnthropic(api_key="k", base_url=limited.base_url, max_retries=0)
    image = {"type": "base64", "media_type": "image/jpeg", "data": base64.b64encode(jpeg(240, 240)).decode()}
    msg = [{"role": "user", "content": [{"type": "image", "source": image}, {"type": "text", "text": "How many?"}]}]
    raw = await client.messages.with_raw_response.create(model="claude-haiku-4-5", max_tokens=16, messages=msg)
    used = (await raw.parse()).usage.input_tokens
    headers = raw.headers
    for kind in ("requests", "tokens", "input-tokens"):
        assert {f"anthropic-ratelimit-{kind}-{f}" for f in ("limit", "remaining", "reset")} <= set(headers)
    assert headers["anthropic-ratelimit-input-tokens-remaining"] == str(150 - used)
    with pytest.raises(anthropic.RateLimitError) as err:  # a second one would pass the 150 input tokens
        await client.messages.create(model="claude-haiku-4-5", max_tokens=16, messages=msg)
    assert err.value.response.headers["anthropic-ratelimit-input-tokens-remaining"] == str(150 - used)
    assert int(err.value.response.headers["retry-after"]) >= 1
    http = types.HttpOptions(base_url=limited.base_url, retry_options=types.HttpRetryOptions(attempts=1))
    gem = genai.Client(api_key="k", http_options=http)
    small = types.Part.from_bytes(data=jpeg(32, 32), mime_type="image/jpeg")  # 258 tokens: over 150 alone
    with pytest.raises(genai_errors.ClientError) as gerr:
        await gem.aio.models.generate_content(model="gemini-3.5-flash", contents=[small, "How many?"])
    quota = gerr.value.details["error"]["details"][0]["violations"][0]
    assert gerr.value.code == 429 and "input_token_count" in quota["quotaMetric"]


@needs_eval_images
async def test_seed_profile_reproduces_the_seeds_wall_times() -> None:
    """Simulated service times (no sleeping) of the seed's three ways, within 15% of 85.47 / 39.35 / 99.92 s."""
    index = DatasetIndex.build(EVAL_IMAGES, "labels.json", "person_count")
    engine = Engine(load_profiles(SEED_PROFILES), index, 0.0)
    parts = []
    for name in SEED_IMAGES:
        with Image.open(EVAL_IMAGES / name) as im:
            out = io.BytesIO()
            im.convert("RGB").save(out, "JPEG", quality=90)
            parts.append(ImagePart(out.getvalue(), "image/jpeg"))
    st = engine.state("gemini-3-pro-preview", "gemini")

    async def seconds(images: list[ImagePart], digest: str) -> tuple[float, list[int]]:
        req = CountRequest("gemini", "gemini-3-pro-preview", images, prompt="Count the people.", digest=digest)
        out = await engine.compute(req)
        return engine.service_time(st, out, digest), out.counts

    alone = [(await seconds([p], f"one{i}"))[0] for i, p in enumerate(parts)]
    together, counts = await seconds(parts, "all")
    assert sum(alone) == pytest.approx(85.47, rel=0.15) and max(alone) == pytest.approx(39.35, rel=0.15)
    assert together == pytest.approx(99.92, rel=0.15)
    assert counts[2] < 0.7 * 96 and counts[3] < 0.7 * 164  # the crowds undercounted in one request
