"""The emulator answers any task from the labels (issue 24, part 5), through the real google-genai, anthropic and
openai SDKs over HTTP: yes/no, choices, text and JSON objects, each with its seeded error model; output tokens that
follow the answer's length; thinking that follows the request's thinking controls; a request with no image."""

from __future__ import annotations

import base64
import difflib
import io
import json
import shutil
from pathlib import Path
from typing import Any

import anthropic
import openai
import pytest
import yaml
from google import genai
from google.genai import types
from PIL import Image

from visionbench.emulator import Emulator
from visionbench.emulator.profile_schema import profiles_from_dict
from visionbench.emulator.replies import NO_IMAGE_REPLY

SAMPLES = Path(__file__).resolve().parents[1] / "framework" / "sample_images"
#: Is there a person in the image?
#: The shipped labels beside the sample images (a person in it? which kind of scene?).
PERSON = json.loads((SAMPLES / "labels-person.json").read_text())
SCENE = json.loads((SAMPLES / "labels-scene.json").read_text())
CAPTION = {
    "chelsea.jpg": "A cat",
    "coffee.jpg": "A cup of coffee on a saucer with a spoon, seen from above on a wooden table in a cafe",
    "rocket.jpg": (
        "A rocket lifting off from its launch pad at dusk, a column of white smoke and orange flame below it, "
        "the sky darkening over the coast, and the service tower standing to the left of the plume"
    ),
}
QUIET = {
    "latency": {"base_s": 0.0, "jitter": 0.0, "output_tokens_per_s": 1e6, "thinking_sd": 0},
    "faults": {"http_500": 0, "http_503": 0, "http_529": 0, "drop_connection": 0, "slow": {"probability": 0}},
    "rate_limit": {"requests_per_minute": None},
}
GEMINI, CLAUDE, GPT = "gemini-3.5-flash", "claude-haiku-4-5", "gpt-6.1-terra"


def dataset(tmp_path: Path, labels: dict[str, Any], name: str = "data") -> Path:
    """Copies of the sample images named in ``labels``, with a labels.json of them."""
    folder = tmp_path / name
    folder.mkdir()
    for image in labels:
        shutil.copy(SAMPLES / image, folder / image)
    (folder / "labels.json").write_text(json.dumps(labels))
    return folder


def profiles(**model: Any) -> Any:
    return profiles_from_dict({"seed": 3, "defaults": QUIET, "models": {"*": model}})


def jpeg(path: Path, side: int = 512) -> bytes:
    with Image.open(path) as im:
        im = im.convert("RGB")
        im.thumbnail((side, side))
        out = io.BytesIO()
        im.save(out, "JPEG", quality=85)
        return out.getvalue()


class Clients:
    """One client of each SDK pointed at an emulator, each asking one image (or none) and a prompt."""

    def __init__(self, emu: Emulator) -> None:
        self.g = genai.Client(
            api_key="k",
            http_options=types.HttpOptions(
                base_url=emu.base_url, api_version="v1beta", retry_options=types.HttpRetryOptions(attempts=1)
            ),
        )
        self.a = anthropic.AsyncAnthropic(api_key="k", base_url=emu.base_url, max_retries=0)
        self.o = openai.AsyncOpenAI(api_key="k", base_url=emu.openai_base_url, max_retries=0)

    async def gemini(self, image: bytes | None, prompt: str, **config: Any) -> types.GenerateContentResponse:
        parts: list[Any] = [types.Part.from_bytes(data=image, mime_type="image/jpeg")] if image else []
        return await self.g.aio.models.generate_content(
            model=GEMINI, contents=[*parts, prompt], config=types.GenerateContentConfig(**config) if config else None
        )

    async def claude(self, image: bytes | None, prompt: str, **kw: Any) -> Any:
        blocks: list[dict[str, Any]] = []
        if image:
            data = base64.b64encode(image).decode()
            blocks.append({"type": "image", "source": {"type": "base64", "media_type": "image/jpeg", "data": data}})
        blocks.append({"type": "text", "text": prompt})
        kw.setdefault("max_tokens", 4096)
        return await self.a.messages.create(model=CLAUDE, messages=[{"role": "user", "content": blocks}], **kw)

    async def gpt(self, image: bytes | None, prompt: str, **kw: Any) -> Any:
        content: list[dict[str, Any]] = []
        if image:
            url = "data:image/jpeg;base64," + base64.b64encode(image).decode()
            content.append({"type": "image_url", "image_url": {"url": url}})
        content.append({"type": "text", "text": prompt})
        return await self.o.chat.completions.create(model=GPT, messages=[{"role": "user", "content": content}], **kw)

    async def ask(self, sdk: str, image: bytes | None, prompt: str) -> str:
        """The reply text of one SDK."""
        if sdk == "gemini":
            return (await self.gemini(image, prompt)).text or ""
        if sdk == "anthropic":
            return next(b.text for b in (await self.claude(image, prompt)).content if b.type == "text")
        return (await self.gpt(image, prompt)).choices[0].message.content or ""

    async def close(self) -> None:
        await self.o.close()
        await self.a.close()


YES_NO = "Is there a person in this image? Answer yes or no."


# -- yes/no --------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("sdk", ["gemini", "anthropic", "openai"])
async def test_boolean_labels_are_answered_yes_or_no(tmp_path: Path, sdk: str) -> None:
    folder = dataset(tmp_path, PERSON)
    async with Emulator(profiles(answers={"boolean_error": 0}), dataset=folder, label_field=None) as emu:
        clients = Clients(emu)
        got = {name: await clients.ask(sdk, jpeg(folder / name), YES_NO) for name in PERSON}
        await clients.close()
    assert got == {name: "yes" if person else "no" for name, person in PERSON.items()}


async def boolean_errors(folder: Path, side: int, rounds: int = 4) -> tuple[list[str], int]:
    """(the replies, how many are wrong) over ``rounds`` asks of every image at ``side`` px, through gemini."""
    noisy = profiles(answers={"boolean_error": 0.15, "low_res_error": 3.0})
    async with Emulator(noisy, dataset=folder, label_field=None) as emu:
        clients = Clients(emu)
        replies = [
            (name, await clients.ask("gemini", jpeg(folder / name, side), YES_NO))
            for _ in range(rounds)
            for name in PERSON
        ]
        await clients.close()
    assert {r for _, r in replies} <= {"yes", "no"}
    return [r for _, r in replies], sum((r == "yes") != PERSON[name] for name, r in replies)


async def test_boolean_errors_are_seeded_and_grow_at_lower_resolution(tmp_path: Path) -> None:
    folder = dataset(tmp_path, PERSON)
    first, wrong_full = await boolean_errors(folder, 512)
    again, wrong_again = await boolean_errors(folder, 512)
    assert first == again and wrong_full == wrong_again  # a fresh emulator with the same seed answers the same
    _, wrong_small = await boolean_errors(folder, 128)
    assert 0 < wrong_full < wrong_small  # 40 asks each: ~15% wrong at 512 px, ~40% at 128 px


# -- choices -------------------------------------------------------------------------------------------------------
CHOICES = ["portrait", "group", "animal", "food", "outdoor"]
SCENE_PROMPT = "What kind of scene is this: portrait, group, animal, food or outdoor?"


@pytest.mark.parametrize("sdk", ["gemini", "anthropic", "openai"])
async def test_choice_labels_with_an_enum_schema_answer_one_of_the_choices(tmp_path: Path, sdk: str) -> None:
    folder = dataset(tmp_path, SCENE)
    schema = {
        "type": "object",
        "properties": {"scene": {"type": "string", "enum": CHOICES}},
        "required": ["scene"],
        "additionalProperties": False,
    }
    noisy = profiles(answers={"choice_error": 0.2, "low_res_error": 0})
    async with Emulator(noisy, dataset=folder, label_field=None) as emu:
        clients = Clients(emu)
        prompt = "What kind of scene is this?"  # the set is offered by the schema only
        replies = []
        for name in [*SCENE, *SCENE]:
            image = jpeg(folder / name)
            if sdk == "gemini":
                r = await clients.gemini(image, prompt, response_mime_type="application/json", response_schema=schema)
                text = r.text
            elif sdk == "anthropic":
                r = await clients.claude(image, prompt, extra_body={"output_config": {"format": {
                    "type": "json_schema", "schema": schema}}})  # fmt: skip
                text = r.content[0].text
            else:
                fmt = {"type": "json_schema", "json_schema": {"name": "scene", "schema": schema, "strict": True}}
                r = await clients.gpt(image, prompt, response_format=fmt)
                text = r.choices[0].message.content
            replies.append((name, json.loads(text)["scene"]))
        await clients.close()
    assert {r for _, r in replies} <= set(CHOICES)  # a wrong answer is another of the choices
    assert sum(r == SCENE[n] for n, r in replies) >= 0.6 * len(replies)  # ~80% right


async def test_choices_named_in_the_prompt_are_confused_with_each_other(tmp_path: Path) -> None:
    folder = dataset(tmp_path, SCENE)
    noisy = profiles(answers={"choice_error": 0.3, "low_res_error": 0})
    async with Emulator(noisy, dataset=folder, label_field=None) as emu:
        clients = Clients(emu)
        replies = [(n, await clients.ask("gemini", jpeg(folder / n), SCENE_PROMPT)) for _ in range(3) for n in SCENE]
        await clients.close()
    assert {r for _, r in replies} <= set(CHOICES)  # never a misspelt choice: a choice is confused, not noised
    right = sum(r == SCENE[n] for n, r in replies)
    assert len(replies) / 2 < right < len(replies)  # ~30% confused


# -- text and JSON -------------------------------------------------------------------------------------------------
async def test_text_labels_come_back_with_character_noise(tmp_path: Path) -> None:
    folder = dataset(tmp_path, CAPTION)
    image = jpeg(folder / "rocket.jpg")
    label = CAPTION["rocket.jpg"]
    async with Emulator(profiles(answers={"text_error": 0}), dataset=folder, label_field=None) as emu:
        clients = Clients(emu)
        clean = await clients.ask("openai", image, "Describe this image.")
        await clients.close()
    noisy = profiles(answers={"text_error": 0.05, "low_res_error": 0})
    async with Emulator(noisy, dataset=folder, label_field=None) as emu:
        clients = Clients(emu)
        first = await clients.ask("anthropic", image, "Describe this image.")
        second = await clients.ask("anthropic", image, "Describe this image.")
        await clients.close()
    async with Emulator(noisy, dataset=folder, label_field=None) as emu:
        clients = Clients(emu)
        again = await clients.ask("anthropic", image, "Describe this image.")
        await clients.close()
    assert clean == label
    assert first != label and second not in (label, first)  # each ask draws its own noise...
    assert again == first  # ...seeded: a fresh emulator answers the same
    for reply in (first, second):  # ~5% of 190 characters substituted or deleted
        assert 0.85 < difflib.SequenceMatcher(None, reply, label).ratio() < 1 and len(reply) <= len(label)


OBJECTS = {
    "chelsea.jpg": {"animal": "cat", "people": 0, "indoors": True, "colours": ["orange", "grey"]},
    "coffee.jpg": {"animal": "none", "people": 0, "indoors": True, "colours": ["brown", "white"]},
    "group_4.jpg": {"animal": "none", "people": 4, "indoors": False, "colours": ["green", "blue"]},
}
OBJECT_SCHEMA = {
    "type": "object",
    "properties": {
        "animal": {"type": "string"},
        "people": {"type": "integer"},
        "indoors": {"type": "boolean"},
        "colours": {"type": "array", "items": {"type": "string"}},
    },
    "required": ["animal", "people", "indoors", "colours"],
}


@pytest.mark.parametrize("sdk", ["gemini", "openai"])
async def test_object_labels_with_a_json_schema_come_back_as_json_objects(tmp_path: Path, sdk: str) -> None:
    folder = dataset(tmp_path, {name: {"description": label} for name, label in OBJECTS.items()})
    async with Emulator(profiles(answers={"json_error": 0}), dataset=folder, label_field="description") as emu:
        clients = Clients(emu)
        got = {}
        for name in OBJECTS:
            if sdk == "gemini":
                r = await clients.gemini(
                    jpeg(folder / name),
                    "Describe it.",
                    response_mime_type="application/json",
                    response_schema=OBJECT_SCHEMA,
                )
                got[name] = json.loads(r.text)
            else:
                fmt = {"type": "json_schema", "json_schema": {"name": "d", "schema": OBJECT_SCHEMA}}
                r = await clients.gpt(jpeg(folder / name), "Describe it.", response_format=fmt)
                got[name] = json.loads(r.choices[0].message.content)
        await clients.close()
    assert got == OBJECTS


async def test_object_labels_lose_or_change_fields_under_noise(tmp_path: Path) -> None:
    folder = dataset(tmp_path, {name: {"description": label} for name, label in OBJECTS.items()})
    async with Emulator(profiles(answers={"json_error": 0.5}), dataset=folder, label_field="description") as emu:
        clients = Clients(emu)
        replies = [
            json.loads(await clients.ask("gemini", jpeg(folder / n), "Describe it as JSON."))
            for _ in range(3)
            for n in OBJECTS
        ]
        await clients.close()
    assert all(isinstance(r, dict) and set(r) <= set(OBJECT_SCHEMA["properties"]) for r in replies)
    assert any(r not in OBJECTS.values() for r in replies)
    assert any(len(r) < 4 for r in replies)  # a field dropped


# -- tokens --------------------------------------------------------------------------------------------------------
async def test_output_tokens_follow_the_answers_length(tmp_path: Path) -> None:
    folder = dataset(tmp_path, CAPTION)
    async with Emulator(profiles(answers={"text_error": 0}), dataset=folder, label_field=None) as emu:
        clients = Clients(emu)
        g = {
            n: (await clients.gemini(jpeg(folder / n), "Describe it.")).usage_metadata.candidates_token_count
            for n in CAPTION
        }
        a = {n: (await clients.claude(jpeg(folder / n), "Describe it.")).usage.output_tokens for n in CAPTION}
        o = {n: (await clients.gpt(jpeg(folder / n), "Describe it.")).usage.completion_tokens for n in CAPTION}
        await clients.close()
    for usage in (g, a, o):
        assert usage["chelsea.jpg"] < usage["coffee.jpg"] < usage["rocket.jpg"]
        assert usage["rocket.jpg"] == -(-len(CAPTION["rocket.jpg"]) // 4)  # ~4 characters a token, as the reply is


THINKER = {"latency": {"thinking_tokens": 400, "thinking_per_image": 100}}


async def test_thinking_follows_the_thinking_controls(tmp_path: Path) -> None:
    folder = dataset(tmp_path, {"group_4.jpg": True})
    image = jpeg(folder / "group_4.jpg")
    async with Emulator(profiles(**THINKER), dataset=folder, label_field=None) as emu:
        clients = Clients(emu)

        async def gemini(**thinking: Any) -> int:
            r = await clients.gemini(image, YES_NO, thinking_config=types.ThinkingConfig(**thinking))
            return r.usage_metadata.thoughts_token_count or 0

        async def gpt(effort: str | None) -> int:
            r = await clients.gpt(image, YES_NO, **({"reasoning_effort": effort} if effort else {}))
            return r.usage.completion_tokens_details.reasoning_tokens

        async def claude(effort: str | None, budget: int = 3000) -> int:
            extra = {"extra_body": {"output_config": {"effort": effort}}} if effort else {}
            r = await clients.claude(image, YES_NO, thinking={"type": "enabled", "budget_tokens": budget}, **extra)
            return r.usage.output_tokens - 1  # the reply "yes" is one token

        levels = {lv: await gemini(thinking_level=lv) for lv in ("MINIMAL", "LOW", "MEDIUM", "HIGH")}
        default = await gemini()
        budget = await gemini(thinking_budget=128)
        efforts = {e: await gpt(e) for e in ("minimal", "low", "medium", "high", "xhigh")}
        no_effort, none = await gpt(None), await gpt("none")
        claude_efforts = {e: await claude(e) for e in ("low", "medium", "high", "max")}
        claude_default, claude_capped = await claude(None), await claude("max", budget=1024)
        await clients.close()
    # the profile's 500 tokens (400 + 100 per image) times the documented factors: 0.25, 0.5, 1, 2, 3
    assert levels == {"MINIMAL": 125, "LOW": 250, "MEDIUM": 500, "HIGH": 1000} and default == 500
    assert budget == 128  # a budget caps thinking
    assert efforts == {"minimal": 125, "low": 250, "medium": 500, "high": 1000, "xhigh": 1500}
    assert no_effort == 500 and none == 0
    assert claude_efforts == {"low": 250, "medium": 500, "high": 1000, "max": 1500} and claude_default == 500
    assert claude_capped == 1024


# -- no image ------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("sdk", ["gemini", "anthropic", "openai"])
async def test_a_request_with_no_image_is_answered(tmp_path: Path, sdk: str) -> None:
    folder = dataset(tmp_path, PERSON)
    async with Emulator(profiles(), dataset=folder, label_field=None) as emu:
        clients = Clients(emu)
        text = await clients.ask(sdk, None, "Hello, are you there?")
        await clients.close()
        assert emu.stats[{"gemini": GEMINI, "anthropic": CLAUDE, "openai": GPT}[sdk]].succeeded == 1
    assert text == NO_IMAGE_REPLY


async def test_a_request_with_no_image_and_a_schema_gets_a_blank_of_its_shape(tmp_path: Path) -> None:
    async with Emulator(profiles()) as emu:
        clients = Clients(emu)
        r = await clients.gemini(None, "Anyone?", response_mime_type="application/json", response_schema=OBJECT_SCHEMA)
        await clients.close()
    assert json.loads(r.text) == {}


# -- a whole run ---------------------------------------------------------------------------------------------------
async def test_a_yes_no_task_end_to_end(tmp_path: Path) -> None:
    """A run of a boolean task on the three SDKs against the emulator: every answer parses, most are right."""
    from visionbench.results import bundle as bundle_mod
    from visionbench.run.plan import load_plan
    from visionbench.run.plugins import default_registry
    from visionbench.run.runner import run

    folder = dataset(tmp_path, PERSON)
    profile_file = tmp_path / "profiles.yaml"
    profile_file.write_text(yaml.safe_dump({"seed": 1, "time_scale": 0, "defaults": QUIET, "models": {"*": {}}}))
    config = {
        "name": "yes-no",
        "dataset": {"path": str(folder), "labels": "labels.json", "label_field": None},
        "task": {"id": "person-present", "answer": "boolean", "prompt": YES_NO},
        "preprocessing": {"max_side": 512},
        "emulator": {"profiles": str(profile_file)},
        "retry": {"max_attempts": 2, "base_delay_s": 0.01, "max_delay_s": 0.05, "timeout_s": 20},
        "matrix": [
            {
                "provider": "gemini",
                "models": [GEMINI],
                "strategies": ["sequential", {"name": "single-prompt", "chunk_size": 5}],
            },
            {"provider": "anthropic", "models": [CLAUDE], "strategies": ["sequential"]},
            {"provider": "openai", "models": [GPT], "strategies": ["sequential"]},
        ],
    }
    path = tmp_path / "yes-no.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    data = bundle_mod.load(
        await run(load_plan(path, default_registry()), results_dir=tmp_path / "r", cache_dir=tmp_path / "c")
    )
    bundle_mod.validate(data)
    assert data["status"] == "complete" and len(data["cells"]) == 4
    for cell in data["cells"]:
        s = cell["summary"]
        assert s["errors"] == 0, cell["id"]  # every reply parsed as yes/no
        assert s["exact_match"] >= 0.7, cell["id"]
        assert s["output_tokens"] > 0, cell["id"]


# -- plan ----------------------------------------------------------------------------------------------------------
def plan_config(tmp_path: Path, labels: dict[str, Any], answer: str, matrix: list[dict[str, Any]]) -> Path:
    folder = dataset(tmp_path, labels, name=f"plan-{answer}")
    config = {
        "name": f"plan-{answer}",
        "dataset": {"path": str(folder), "labels": "labels.json", "label_field": None},
        "task": {"answer": answer, "prompt": "Describe this image." if answer == "text" else YES_NO},
        "emulator": {"time_scale": 0},
        "matrix": matrix,
    }
    path = tmp_path / f"plan-{answer}.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


async def test_plan_estimates_output_tokens_from_the_labels_length(tmp_path: Path) -> None:
    from visionbench.run.estimate import OUTPUT_TOKENS_PER_ANSWER, estimate
    from visionbench.run.plan import load_plan
    from visionbench.run.plugins import default_registry

    registry = default_registry()
    gemini = [
        {"provider": "gemini", "models": [GEMINI], "strategies": ["sequential"]},
        {
            "provider": "gemini",
            "models": [GEMINI],
            "model_params": {"max_output_tokens": 20},
            "strategies": [{"name": "sequential", "label": "capped"}],
        },
    ]
    text = {e.cell_id: e for e in await estimate(load_plan(plan_config(tmp_path, CAPTION, "text", gemini), registry))}
    mean = -(-sum(-(-len(c) // 4) for c in CAPTION.values()) // len(CAPTION))  # the labels' mean tokens, rounded up
    assert mean > 20 and text[f"gemini/{GEMINI}/sequential"].output_tokens == 3 * mean
    capped = text[f"gemini/{GEMINI}/capped"]
    assert capped.output_tokens == 3 * 20 and any("max_output_tokens" in n for n in capped.notes)
    yes_no = await estimate(load_plan(plan_config(tmp_path, PERSON, "boolean", gemini[:1]), registry))
    assert yes_no[0].output_tokens == len(PERSON)  # "yes" / "no": one token each
    counts = await estimate(load_plan(plan_config(tmp_path, {n: 3 for n in PERSON}, "integer", gemini[:1]), registry))
    assert counts[0].output_tokens == len(PERSON) * OUTPUT_TOKENS_PER_ANSWER  # counting tasks as before


async def test_plan_thinking_follows_the_thinking_controls_as_the_emulator_does(tmp_path: Path) -> None:
    from visionbench.run.estimate import estimate
    from visionbench.run.plan import load_plan
    from visionbench.run.plugins import default_registry

    def cells(provider: str, model: str, name: str, levels: list[str]) -> list[dict[str, Any]]:
        return [
            {
                "provider": provider,
                "models": [model],
                "model_params": {name: lv},
                "strategies": [{"name": "sequential", "label": lv}],
            }
            for lv in levels
        ]

    matrix = cells("gemini", GEMINI, "thinking_level", ["low", "high"]) + cells(
        "openai", GPT, "reasoning_effort", ["low", "high"]
    )
    matrix.append({"provider": "gemini", "models": [GEMINI], "strategies": ["sequential"]})
    plan = load_plan(plan_config(tmp_path, PERSON, "boolean", matrix), default_registry())
    thinking = {e.cell_id: e.thinking_tokens for e in await estimate(plan)}
    g, o = f"gemini/{GEMINI}", f"openai/{GPT}"
    assert thinking[f"{g}/low"] * 4 == thinking[f"{g}/high"] == thinking[f"{g}/sequential"] * 2 > 0  # 0.5, 2, 1
    assert thinking[f"{o}/low"] * 4 == thinking[f"{o}/high"] > 0


async def _run_task(tmp_path: Path, name: str, labels: dict[str, Any], task: dict[str, Any]) -> Any:
    """A run of ``task`` on copies of the sample images with ``labels``, emulated, on the three SDKs."""
    from visionbench.results import bundle as bundle_mod
    from visionbench.run.plan import load_plan
    from visionbench.run.plugins import default_registry
    from visionbench.run.runner import run

    folder = dataset(tmp_path, labels, name=name)
    profile_file = tmp_path / f"{name}-profiles.yaml"
    profile_file.write_text(yaml.safe_dump({"seed": 1, "time_scale": 0, "defaults": QUIET, "models": {"*": {}}}))
    config = {
        "name": name,
        "dataset": {"path": str(folder), "labels": "labels.json", "label_field": None},
        "task": task,
        "preprocessing": {"max_side": 512},
        "emulator": {"profiles": str(profile_file)},
        "retry": {"max_attempts": 2, "base_delay_s": 0.01, "max_delay_s": 0.05, "timeout_s": 20},
        "matrix": [
            {"provider": "gemini", "models": [GEMINI], "strategies": ["sequential", {"name": "single-prompt"}]},
            {"provider": "anthropic", "models": [CLAUDE], "strategies": ["sequential"]},
            {"provider": "openai", "models": [GPT], "strategies": ["sequential"]},
        ],
    }
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    data = bundle_mod.load(
        await run(load_plan(path, default_registry()), results_dir=tmp_path / "r", cache_dir=tmp_path / "c")
    )
    bundle_mod.validate(data)
    assert data["status"] == "complete" and len(data["cells"]) == 4
    return data


async def test_a_classification_task_end_to_end(tmp_path: Path) -> None:
    """`answer: choice` through the three SDKs against the emulator: every reply is one of the choices, most right."""
    choices = sorted(set(SCENE.values()))
    prompt = f"What kind of scene is this? Answer with one of: {', '.join(choices)}."
    data = await _run_task(tmp_path, "scenes", SCENE, {"answer": "choice", "choices": choices, "prompt": prompt})
    for cell in data["cells"]:
        assert cell["summary"]["errors"] == 0, cell["id"]
        assert {a["value"] for a in cell["answers"].values()} <= set(choices), cell["id"]
        assert cell["summary"]["exact_match"] >= 0.7, cell["id"]


async def test_a_json_extraction_task_end_to_end(tmp_path: Path) -> None:
    """`answer: json` with a schema, object labels, through the three SDKs against the emulator: every reply is an
    object of the schema's fields, most of them right."""
    labels = {name: {"scene": scene, "people": PERSON[name]} for name, scene in SCENE.items()}
    schema = {
        "type": "object",
        "properties": {"scene": {"type": "string"}, "people": {"type": "boolean"}},
        "required": ["scene", "people"],
    }
    prompt = "Describe the image as JSON: its scene and whether people are in it."
    data = await _run_task(tmp_path, "extract", labels, {"answer": "json", "schema": schema, "prompt": prompt})
    for cell in data["cells"]:
        assert cell["summary"]["errors"] == 0, cell["id"]
        assert all(set(a["value"]) == {"scene", "people"} for a in cell["answers"].values()), cell["id"]
        assert cell["summary"]["field_match"] >= 0.7, cell["id"]
