"""The emulator serves the models the services serve today, and rejects bad keys when told the valid one.

Through the real SDKs over HTTP, with the services' error shapes (issue 13, item 2).
"""

from __future__ import annotations

import base64
import io
import json
import os
from datetime import date
from pathlib import Path
from typing import Any

import anthropic
import pytest
import yaml
from google import genai
from google.genai import errors as genai_errors
from google.genai import types
from PIL import Image

from visionbench.cli import main
from visionbench.emulator import Emulator, load_profiles
from visionbench.emulator.catalogue import Catalogue, is_official
from visionbench.emulator.profile_schema import profiles_from_dict
from visionbench.services.lifecycle import find_lifecycle

QUIET = {"latency": {"base_s": 0, "output_tokens_per_s": 1e9, "jitter": 0}, "faults": {"http_500": 0, "http_503": 0}}


def jpeg() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (64, 48), (90, 120, 60)).save(out, "JPEG")
    return out.getvalue()


def gem(emu: Emulator, key: str = "any") -> genai.Client:
    return genai.Client(api_key=key, http_options=types.HttpOptions(base_url=emu.base_url))


def claude(emu: Emulator, key: str = "any") -> anthropic.AsyncAnthropic:
    return anthropic.AsyncAnthropic(api_key=key, base_url=emu.base_url, max_retries=0)


async def ask_gemini(client: genai.Client, model: str) -> Any:
    part = types.Part.from_bytes(data=jpeg(), mime_type="image/jpeg")
    return await client.aio.models.generate_content(model=model, contents=[part, "How many people?"])


async def ask_claude(client: anthropic.AsyncAnthropic, model: str) -> Any:
    image = {"type": "base64", "media_type": "image/jpeg", "data": base64.b64encode(jpeg()).decode()}
    content = [{"type": "image", "source": image}, {"type": "text", "text": "How many people?"}]
    return await client.messages.create(model=model, max_tokens=16, messages=[{"role": "user", "content": content}])


@pytest.fixture
async def emu(tmp_path: Path) -> Any:
    (tmp_path / "labels.json").write_text("{}")
    async with Emulator(profiles_from_dict({"models": {"*": QUIET}}), dataset=tmp_path, time_scale=0) as e:
        yield e


@pytest.mark.parametrize("model", ["gemini-3.5-flsh", "gemini-2.5-flash", "gemini-1.5-pro", "gemini-9-ultra"])
async def test_gemini_answers_unknown_and_retired_models_with_its_404(emu: Emulator, model: str) -> None:
    with pytest.raises(genai_errors.ClientError) as err:
        await ask_gemini(gem(emu), model)
    assert (err.value.code, err.value.status) == (404, "NOT_FOUND")
    assert err.value.message == (
        f"models/{model} is not found for API version v1beta, or is not supported for generateContent. "
        "Call ListModels to see the list of available models and their supported methods."
    )
    assert model not in emu.stats  # nothing was served


@pytest.mark.parametrize("model", ["claude-3-5-sonnet-20241022", "claude-sonnet-4-20250514", "claude-haiku-9"])
async def test_anthropic_answers_unknown_and_retired_models_with_its_404(emu: Emulator, model: str) -> None:
    with pytest.raises(anthropic.NotFoundError) as err:
        await ask_claude(claude(emu), model)
    body = err.value.body
    assert err.value.status_code == 404
    assert body["type"] == "error" and body["error"] == {"type": "not_found_error", "message": f"model: {model}"}


async def test_current_models_and_their_versions_are_served(emu: Emulator) -> None:
    g = gem(emu)  # one client: the SDK closes its session when the client goes
    for model in ("gemini-3.5-flash", "models/gemini-3.5-flash-lite", "gemini-3.1-pro-preview"):
        assert (await ask_gemini(g, model)).text is not None
    for model in ("claude-haiku-5-5", "claude-haiku-4-5-20251001", "claude-sonnet-4-6"):
        assert (await ask_claude(claude(emu), model)).content
    # the batch endpoints check the model too
    with pytest.raises(genai_errors.ClientError) as err:
        await g.aio.batches.create(model="gemini-2.5-flash", src=[{"contents": [{"parts": [{"text": "x"}]}]}])
    assert err.value.code == 404


async def test_a_profile_serves_a_name_it_lists_exactly_but_a_glob_adds_none(tmp_path: Path) -> None:
    (tmp_path / "labels.json").write_text("{}")
    profiles = profiles_from_dict({"models": {"gemini-3-pro-preview": QUIET, "gemini-*": QUIET, "my-*": QUIET}})
    async with Emulator(profiles, dataset=tmp_path, time_scale=0) as emu:
        assert (await ask_gemini(gem(emu), "gemini-3-pro-preview")).text is not None  # shut down, but listed
        for model in ("gemini-2.5-pro", "my-local-model"):
            with pytest.raises(genai_errors.ClientError):
                await ask_gemini(gem(emu), model)


def test_the_packaged_profiles_name_no_model_that_was_shut_down() -> None:
    """Each exact name in default.yaml is one the service serves: a stale profile would serve a dead model."""
    profiles = load_profiles()
    today = date.today()
    for name in profiles.models:
        provider = "anthropic" if name.startswith("claude") else "gemini"
        row = find_lifecycle(provider, name)
        assert row is None or row.retires is None or row.retires > today, name
    catalogue = Catalogue(profiles, today)
    assert "gemini-3.5-flash" in catalogue.served("gemini") and "gemini-2.5-flash" not in catalogue.served("gemini")
    assert "claude-haiku-5-5" in catalogue.served("anthropic") and "claude-2" not in catalogue.served("anthropic")


def test_retirement_follows_the_day() -> None:
    """gemini-2.5-flash was served until its shutdown on 2026-12-01, and not from that day."""
    assert Catalogue(profiles_from_dict({}), date(2026, 11, 30)).serves("gemini", "gemini-2.5-flash-001")
    assert not Catalogue(profiles_from_dict({}), date(2026, 12, 1)).serves("gemini", "gemini-2.5-flash-001")


# -- keys --------------------------------------------------------------------------------------------------------
@pytest.fixture
async def keyed(tmp_path: Path) -> Any:
    (tmp_path / "labels.json").write_text("{}")
    profiles = profiles_from_dict({"models": {"*": QUIET}})
    async with Emulator(profiles, dataset=tmp_path, time_scale=0, valid_keys={"good-key-123"}) as e:
        yield e


async def test_gemini_rejects_a_bad_key_with_api_key_invalid(keyed: Emulator) -> None:
    with pytest.raises(genai_errors.ClientError) as err:
        await ask_gemini(gem(keyed, "wrong-key-456"), "gemini-3.5-flash")
    assert (err.value.code, err.value.status) == (400, "INVALID_ARGUMENT")
    assert err.value.message == "API key not valid. Please pass a valid API key."
    assert err.value.details["error"]["details"][0]["reason"] == "API_KEY_INVALID"
    assert "wrong-key-456" not in json.dumps(err.value.details)
    assert (await ask_gemini(gem(keyed, "good-key-123"), "gemini-3.5-flash")).text is not None


async def test_anthropic_rejects_a_bad_key_with_authentication_error(keyed: Emulator) -> None:
    with pytest.raises(anthropic.AuthenticationError) as err:
        await ask_claude(claude(keyed, "wrong-key-456"), "claude-haiku-5-5")
    assert err.value.status_code == 401
    assert err.value.body["error"] == {"type": "authentication_error", "message": "invalid x-api-key"}
    assert "wrong-key-456" not in json.dumps(err.value.body)
    assert (await ask_claude(claude(keyed, "good-key-123"), "claude-haiku-5-5")).content


async def test_any_key_is_accepted_by_default(emu: Emulator) -> None:
    assert (await ask_gemini(gem(emu, "whatever"), "gemini-3.5-flash")).text is not None
    assert (await ask_claude(claude(emu, "whatever-else"), "claude-haiku-5-5")).content


def test_a_bad_key_fails_the_run_without_reaching_the_bundle(tmp_path: Path, monkeypatch, capsys) -> None:
    """``emulator.valid_key_env``: the providers send their own keys, and a wrong one fails as for real."""
    images = tmp_path / "images"
    images.mkdir()
    for i in range(2):
        Image.new("RGB", (64, 48), (i * 50, 90, 60)).save(images / f"p{i}.jpg")
    (images / "labels.json").write_text(json.dumps({"p0.jpg": 1, "p1.jpg": 2}))
    config = {
        "name": "keys",
        "dataset": {"path": "images", "labels": "labels.json"},
        "task": {"id": "count", "prompt": "How many people?", "answer": "integer"},
        "matrix": [
            {"provider": "gemini", "models": ["gemini-3.5-flash"], "strategies": ["sequential"]},
            {"provider": "anthropic", "models": ["claude-haiku-5-5"], "strategies": ["sequential"]},
        ],
        "emulator": {"time_scale": 0, "valid_key_env": "VB_TEST_VALID_KEY"},
    }
    path = tmp_path / "exp.yaml"
    path.write_text(yaml.safe_dump(config))
    monkeypatch.setenv("VB_TEST_VALID_KEY", "the-right-key-000")
    monkeypatch.setenv("GEMINI_API_KEY", "the-right-key-000")
    monkeypatch.setenv("ANTHROPIC_API_KEY", "a-wrong-key-999")
    code = main(["run", str(path), "--results", str(tmp_path / "results"), "--no-cache", "--quiet"])
    out = capsys.readouterr()
    assert code == 4, out.err  # incomplete: Claude's requests failed, Gemini's were answered
    [bundle] = (tmp_path / "results").glob("*/bundle.json")
    text = bundle.read_text()
    assert "a-wrong-key-999" not in text + out.out + out.err and "the-right-key-000" not in text + out.out + out.err
    records = json.loads(text)["records"]
    by_provider = {r["cell"].split("/")[0]: r for r in records}
    assert by_provider["gemini"]["error"] is None
    assert "authentication_error" in by_provider["anthropic"]["error"]["message"]


def test_valid_key_env_must_be_set(tmp_path: Path, monkeypatch, capsys) -> None:
    monkeypatch.delenv("VB_TEST_UNSET_KEY", raising=False)
    assert main(["emulate", "--key-env", "VB_TEST_UNSET_KEY", "--port", "0"]) == 2
    err = capsys.readouterr().err
    assert "--key-env VB_TEST_UNSET_KEY" in err and "not set" in err
    assert os.environ.get("VB_TEST_UNSET_KEY") is None


def test_the_anthropic_sdks_own_end_of_life_dates_are_in_the_lifecycle_file() -> None:
    """The anthropic SDK warns about the models it knows are ending; each past date must stop the emulator too."""
    sdk = pytest.importorskip("anthropic._data.deprecated_models")
    from datetime import datetime

    for model, when in sdk.DEPRECATED_MODELS.items():
        ends = datetime.strptime(
            when.replace("th,", ",").replace("st,", ",").replace("nd,", ",").replace("rd,", ","), "%B %d, %Y"
        ).date()
        if ends <= date.today() and is_official("anthropic", model):  # (a name the price data lacks is not served)
            row = find_lifecycle("anthropic", model)
            assert row is not None and row.retires == ends, model


async def test_openai_answers_retired_models_and_bad_keys_as_the_service(keyed: Emulator) -> None:
    import openai

    image = "data:image/jpeg;base64," + base64.b64encode(jpeg()).decode()
    content = [{"type": "image_url", "image_url": {"url": image}}, {"type": "text", "text": "How many people?"}]
    messages = [{"role": "user", "content": content}]
    good = openai.AsyncOpenAI(api_key="good-key-123", base_url=keyed.openai_base_url, max_retries=0)
    assert (await good.chat.completions.create(model="gpt-6.1-terra", messages=messages)).choices
    for model in ("gpt-3.5-turbo", "gpt-6.1-tera"):  # shut down; misspelt
        with pytest.raises(openai.NotFoundError) as nf:
            await good.chat.completions.create(model=model, messages=messages)
        assert nf.value.code == "model_not_found" and f"`{model}` does not exist" in nf.value.message
    bad = openai.AsyncOpenAI(api_key="wrong-key-456", base_url=keyed.openai_base_url, max_retries=0)
    with pytest.raises(openai.AuthenticationError) as err:
        await bad.chat.completions.create(model="gpt-6.1-terra", messages=messages)
    assert err.value.status_code == 401 and err.value.code == "invalid_api_key"
    assert "456" not in json.dumps(err.value.body)
    await good.close()
    await bad.close()
