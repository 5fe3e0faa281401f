"""The emulator honours forced tool use (issue 24, part 5), through the real SDKs over HTTP: a forced tool's call
comes back with arguments that fill its parameters schema from the image's label, as structured output does; a tool
choice of ``auto`` (or ``none``) is answered as text."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import anthropic
import openai
import pytest
from google.genai import types
from test_emulator_tasks import CLAUDE, GEMINI, GPT, OBJECT_SCHEMA, OBJECTS, Clients, dataset, jpeg, profiles

from visionbench.emulator import Emulator
from visionbench.services.tokens import text_tokens

COUNTS = {"group_2.jpg": 2, "group_4.jpg": 4, "group_6.jpg": 6}
COUNT_SCHEMA = {"type": "object", "properties": {"count": {"type": "integer"}}, "required": ["count"]}
EXACT = {"json_error": 0, "relative_sd": 0, "absolute_sd": 0, "multi_image_undercount": 0, "low_res_undercount": 0}


def objects(tmp_path: Path) -> Path:
    return dataset(tmp_path, {name: {"description": label} for name, label in OBJECTS.items()})


# -- OpenAI Chat Completions -----------------------------------------------------------------------------------------
def openai_tool(name: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"type": "function", "function": {"name": name, "description": "Report it.", "parameters": schema}}


@pytest.mark.parametrize("choice", ["named", "required"])
async def test_openai_forced_tool_call_fills_the_parameters_from_an_object_label(tmp_path: Path, choice: str) -> None:
    folder = objects(tmp_path)
    tools = [openai_tool("other", {"type": "object", "properties": {}}), openai_tool("describe", OBJECT_SCHEMA)]
    if choice == "required":
        tools.reverse()  # "required": the first tool
    tool_choice: Any = {"type": "function", "function": {"name": "describe"}} if choice == "named" else "required"
    async with Emulator(profiles(answers=EXACT), dataset=folder, label_field="description") as emu:
        clients = Clients(emu)
        got = {}
        for name in OBJECTS:
            r = await clients.gpt(jpeg(folder / name), "Describe it.", tools=tools, tool_choice=tool_choice)
            choice0 = r.choices[0]
            assert choice0.finish_reason == "tool_calls" and choice0.message.content is None
            (call,) = choice0.message.tool_calls
            assert call.type == "function" and call.function.name == "describe" and call.id
            arguments = call.function.arguments
            reasoning = r.usage.completion_tokens_details.reasoning_tokens
            assert r.usage.completion_tokens - reasoning == text_tokens(arguments)  # the arguments are the output
            got[name] = json.loads(arguments)
        await clients.close()
    assert got == OBJECTS


async def test_openai_forced_tool_call_carries_a_count_label(tmp_path: Path) -> None:
    folder = dataset(tmp_path, COUNTS)
    tools = [openai_tool("report_count", COUNT_SCHEMA)]
    choice = {"type": "function", "function": {"name": "report_count"}}
    async with Emulator(profiles(answers=EXACT), dataset=folder, label_field=None) as emu:
        clients = Clients(emu)
        got = {}
        for name in COUNTS:
            r = await clients.gpt(jpeg(folder / name), "How many people?", tools=tools, tool_choice=choice)
            got[name] = json.loads(r.choices[0].message.tool_calls[0].function.arguments)
        await clients.close()
    assert got == {name: {"count": n} for name, n in COUNTS.items()}


async def test_openai_streamed_tool_call_arrives_in_pieces(tmp_path: Path) -> None:
    folder = objects(tmp_path)
    tools = [openai_tool("describe", OBJECT_SCHEMA)]
    async with Emulator(profiles(answers=EXACT), dataset=folder, label_field="description") as emu:
        clients = Clients(emu)
        name = "group_4.jpg"
        url = "data:image/jpeg;base64," + base64.b64encode(jpeg(folder / name)).decode()
        content = [{"type": "image_url", "image_url": {"url": url}}, {"type": "text", "text": "Describe it."}]
        async with clients.o.chat.completions.stream(
            model=GPT, messages=[{"role": "user", "content": content}], tools=tools, tool_choice="required"
        ) as stream:
            async for _ in stream:
                pass
            final = await stream.get_final_completion()
        await clients.close()
    choice = final.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.tool_calls[0].function.name == "describe"
    assert json.loads(choice.message.tool_calls[0].function.arguments) == OBJECTS[name]


@pytest.mark.parametrize("tool_choice", ["auto", "none"])
async def test_openai_tool_choice_auto_or_none_answers_as_text(tmp_path: Path, tool_choice: str) -> None:
    folder = dataset(tmp_path, COUNTS)
    async with Emulator(profiles(answers=EXACT), dataset=folder, label_field=None) as emu:
        clients = Clients(emu)
        r = await clients.gpt(
            jpeg(folder / "group_4.jpg"),
            "How many people?",
            tools=[openai_tool("report_count", COUNT_SCHEMA)],
            tool_choice=tool_choice,
        )
        await clients.close()
    assert r.choices[0].message.content == "4" and not r.choices[0].message.tool_calls
    assert r.choices[0].finish_reason == "stop"


async def test_openai_tool_choice_naming_a_missing_tool_is_a_400(tmp_path: Path) -> None:
    folder = dataset(tmp_path, COUNTS)
    async with Emulator(profiles(answers=EXACT), dataset=folder, label_field=None) as emu:
        clients = Clients(emu)
        with pytest.raises(openai.BadRequestError, match="not among the tools"):
            await clients.gpt(
                jpeg(folder / "group_4.jpg"),
                "How many people?",
                tools=[openai_tool("report_count", COUNT_SCHEMA)],
                tool_choice={"type": "function", "function": {"name": "nope"}},
            )
        await clients.close()


# -- Anthropic Messages ----------------------------------------------------------------------------------------------
def anthropic_tool(name: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"name": name, "description": "Report it.", "input_schema": schema}


@pytest.mark.parametrize("choice", [{"type": "tool", "name": "describe"}, {"type": "any"}])
async def test_anthropic_forced_tool_use_fills_the_input_from_an_object_label(
    tmp_path: Path, choice: dict[str, Any]
) -> None:
    folder = objects(tmp_path)
    tools = [anthropic_tool("describe", OBJECT_SCHEMA), anthropic_tool("other", {"type": "object"})]
    async with Emulator(profiles(answers=EXACT), dataset=folder, label_field="description") as emu:
        clients = Clients(emu)
        got = {}
        for name in OBJECTS:
            r = await clients.claude(jpeg(folder / name), "Describe it.", tools=tools, tool_choice=choice)
            assert r.stop_reason == "tool_use"
            (block,) = r.content
            assert block.type == "tool_use" and block.name == "describe" and block.id.startswith("toolu_")
            assert r.usage.output_tokens == text_tokens(json.dumps(block.input, separators=(",", ":")))
            got[name] = block.input
        await clients.close()
    assert got == OBJECTS


async def test_anthropic_forced_tool_use_carries_a_count_label(tmp_path: Path) -> None:
    folder = dataset(tmp_path, COUNTS)
    tools = [anthropic_tool("report_count", COUNT_SCHEMA)]
    choice = {"type": "tool", "name": "report_count"}
    async with Emulator(profiles(answers=EXACT), dataset=folder, label_field=None) as emu:
        clients = Clients(emu)
        got = {}
        for name in COUNTS:
            r = await clients.claude(jpeg(folder / name), "How many people?", tools=tools, tool_choice=choice)
            got[name] = r.content[0].input
        await clients.close()
    assert got == {name: {"count": n} for name, n in COUNTS.items()}


async def test_anthropic_streamed_tool_use_arrives_as_input_json_deltas(tmp_path: Path) -> None:
    folder = objects(tmp_path)
    name = "chelsea.jpg"
    async with Emulator(profiles(answers=EXACT), dataset=folder, label_field="description") as emu:
        clients = Clients(emu)
        data = base64.b64encode(jpeg(folder / name)).decode()
        image = {"type": "image", "source": {"type": "base64", "media_type": "image/jpeg", "data": data}}
        async with clients.a.messages.stream(
            model=CLAUDE,
            max_tokens=1024,
            messages=[{"role": "user", "content": [image, {"type": "text", "text": "Describe it."}]}],
            tools=[anthropic_tool("describe", OBJECT_SCHEMA)],
            tool_choice={"type": "any"},
        ) as stream:
            final = await stream.get_final_message()
        await clients.close()
    assert final.stop_reason == "tool_use"
    assert final.content[0].type == "tool_use" and final.content[0].input == OBJECTS[name]


@pytest.mark.parametrize("tool_choice", [None, {"type": "auto"}, {"type": "none"}])
async def test_anthropic_tool_choice_auto_or_none_answers_as_text(tmp_path: Path, tool_choice: Any) -> None:
    folder = dataset(tmp_path, COUNTS)
    kw: dict[str, Any] = {"tools": [anthropic_tool("report_count", COUNT_SCHEMA)]}
    if tool_choice is not None:
        kw["tool_choice"] = tool_choice
    async with Emulator(profiles(answers=EXACT), dataset=folder, label_field=None) as emu:
        clients = Clients(emu)
        r = await clients.claude(jpeg(folder / "group_4.jpg"), "How many people?", **kw)
        await clients.close()
    assert r.stop_reason == "end_turn" and r.content[0].type == "text" and r.content[0].text == "4"


async def test_anthropic_forced_tool_use_with_thinking_is_a_400(tmp_path: Path) -> None:
    folder = dataset(tmp_path, COUNTS)
    async with Emulator(profiles(answers=EXACT), dataset=folder, label_field=None) as emu:
        clients = Clients(emu)
        with pytest.raises(anthropic.BadRequestError, match="Thinking may not be enabled"):
            await clients.claude(
                jpeg(folder / "group_4.jpg"),
                "How many people?",
                tools=[anthropic_tool("report_count", COUNT_SCHEMA)],
                tool_choice={"type": "any"},
                thinking={"type": "enabled", "budget_tokens": 1024},
            )
        await clients.close()


# -- Gemini ----------------------------------------------------------------------------------------------------------
def gemini_config(schema: dict[str, Any], mode: str = "ANY", allowed: list[str] | None = None) -> dict[str, Any]:
    declarations = [
        types.FunctionDeclaration(name="other", parameters_json_schema={"type": "object"}),
        types.FunctionDeclaration(name="describe", description="Report it.", parameters_json_schema=schema),
    ]
    if allowed is None:
        declarations.reverse()  # no allowed names: the first declaration
    calling = types.FunctionCallingConfig(mode=mode, allowed_function_names=allowed)  # type: ignore[arg-type]
    return {
        "tools": [types.Tool(function_declarations=declarations)],
        "tool_config": types.ToolConfig(function_calling_config=calling),
    }


@pytest.mark.parametrize("allowed", [["describe"], None])
async def test_gemini_forced_function_call_fills_the_args_from_an_object_label(
    tmp_path: Path, allowed: list[str] | None
) -> None:
    folder = objects(tmp_path)
    async with Emulator(profiles(answers=EXACT), dataset=folder, label_field="description") as emu:
        clients = Clients(emu)
        got, config = {}, gemini_config(OBJECT_SCHEMA, allowed=allowed)
        for name in OBJECTS:
            r = await clients.gemini(jpeg(folder / name), "Describe it.", **config)
            (call,) = r.function_calls or []
            assert call.name == "describe"
            assert r.usage_metadata.candidates_token_count == text_tokens(json.dumps(call.args, separators=(",", ":")))
            got[name] = call.args
        await clients.close()
    assert got == OBJECTS


async def test_gemini_forced_function_call_carries_a_count_label(tmp_path: Path) -> None:
    folder = dataset(tmp_path, COUNTS)
    async with Emulator(profiles(answers=EXACT), dataset=folder, label_field=None) as emu:
        clients = Clients(emu)
        got = {}
        for name in COUNTS:
            r = await clients.gemini(
                jpeg(folder / name), "How many people?", **gemini_config(COUNT_SCHEMA, allowed=["describe"])
            )
            got[name] = (r.function_calls or [])[0].args
        await clients.close()
    assert got == {name: {"count": n} for name, n in COUNTS.items()}


async def test_gemini_streamed_function_call_comes_whole(tmp_path: Path) -> None:
    folder = objects(tmp_path)
    name = "coffee.jpg"
    async with Emulator(profiles(answers=EXACT), dataset=folder, label_field="description") as emu:
        clients = Clients(emu)
        config = types.GenerateContentConfig(**gemini_config(OBJECT_SCHEMA, allowed=["describe"]))
        parts = [types.Part.from_bytes(data=jpeg(folder / name), mime_type="image/jpeg"), "Describe it."]
        calls = [
            call
            async for chunk in await clients.g.aio.models.generate_content_stream(
                model=GEMINI, contents=parts, config=config
            )
            for call in chunk.function_calls or []
        ]
        await clients.close()
    assert [(c.name, c.args) for c in calls] == [("describe", OBJECTS[name])]


@pytest.mark.parametrize("mode", ["AUTO", "NONE"])
async def test_gemini_function_calling_auto_or_none_answers_as_text(tmp_path: Path, mode: str) -> None:
    folder = dataset(tmp_path, COUNTS)
    async with Emulator(profiles(answers=EXACT), dataset=folder, label_field=None) as emu:
        clients = Clients(emu)
        r = await clients.gemini(jpeg(folder / "group_4.jpg"), "How many people?", **gemini_config(COUNT_SCHEMA, mode))
        await clients.close()
    assert r.text == "4" and not r.function_calls


# -- pydantic-ai's tool output (optional: skipped when pydantic-ai is not installed) ---------------------------------
async def test_pydantic_ai_tool_output_against_the_emulator(tmp_path: Path) -> None:
    pydantic_ai = pytest.importorskip("pydantic_ai")
    from pydantic import BaseModel
    from pydantic_ai.models.openai import OpenAIChatModel
    from pydantic_ai.providers.openai import OpenAIProvider

    class Description(BaseModel):
        animal: str
        people: int
        indoors: bool
        colours: list[str]

    folder = objects(tmp_path)
    async with Emulator(profiles(answers=EXACT), dataset=folder, label_field="description") as emu:
        model = OpenAIChatModel(GPT, provider=OpenAIProvider(base_url=emu.openai_base_url, api_key="k"))
        agent = pydantic_ai.Agent(
            model, output_type=pydantic_ai.ToolOutput(Description), model_settings={"thinking": False}
        )
        got = {}
        for name in OBJECTS:
            image = pydantic_ai.BinaryContent(data=jpeg(folder / name), media_type="image/jpeg")
            result = await agent.run(["Describe it.", image])
            got[name] = result.output.model_dump()
    assert got == OBJECTS
