"""Endpoints apart from plugins: two named endpoints of one plugin in one run, and which endpoints a run's emulator
stands in for (only those whose plugin declares a protocol it serves, and that set no base_url).

Real SDKs over real HTTP: the run's own emulator, a second ``Emulator`` started by the test as a "self-hosted"
OpenAI-compatible server, and a small aiohttp server for a third-party plugin.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, ClassVar

import aiohttp
import pytest
import yaml
from aiohttp import web
from replay_server import ReplayServer, Reply

from visionbench import hookimpl
from visionbench.cli import main
from visionbench.emulator import Emulator
from visionbench.errors import ConfigError
from visionbench.provider import Provider, RemoteOptions
from visionbench.report.html import write_html_report
from visionbench.results import bundle as bundle_mod
from visionbench.run.config import load_experiment
from visionbench.run.plan import load_plan
from visionbench.run.plugins import collect, make_manager
from visionbench.run.runner import run
from visionbench.types import Capabilities, Request, Response, Usage

QUIET = {"http_500": 0, "http_503": 0, "http_529": 0, "malformed_body": 0, "drop_connection": 0, "slow": {}}


def _profiles(folder: Path) -> Path:
    """Emulator profiles without faults, so every item is answered."""
    path = folder / "quiet.yaml"
    path.write_text(yaml.safe_dump({"seed": 1, "time_scale": 0, "defaults": {"faults": QUIET}, "models": {"*": {}}}))
    return path


def _config(tmp_path: Path, image_dir: Path, providers: dict, matrix: list, **extra: Any) -> Path:
    config = {
        "name": "endpoints",
        "dataset": {"path": str(image_dir), "labels": "labels.json", "label_field": "person_count"},
        "task": {"id": "count-people", "prompt": "How many people?", "answer": "integer"},
        "preprocessing": {"max_side": 64},
        "retry": {"max_attempts": 3, "base_delay_s": 0.0, "max_delay_s": 0.0, "timeout_s": 10},
        "providers": providers,
        "matrix": matrix,
        **extra,
    }
    path = tmp_path / "exp.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


# -- a third-party plugin on RemoteOptions that declares no protocol -------------------------------------------------


class Counter(Provider):
    """A third-party provider of a remote API of its own, on the public ``RemoteOptions``; no ``protocols``."""

    name = "counter"
    #: Where requests go when the options set no base_url (the test points it at its server).
    default_url: ClassVar[str] = "http://127.0.0.1:9"

    class Options(RemoteOptions):
        api_key_env: str = "COUNTER_KEY"

    def capabilities(self, model: str) -> Capabilities:
        return Capabilities(max_images_per_request=1)

    async def generate(self, request: Request) -> Response:
        async with (
            aiohttp.ClientSession() as http,
            http.post(f"{self.base_url() or self.default_url}/count", json={"n": len(request.images)}) as r,
        ):
            if r.status != 200:
                from visionbench.errors import Fatal

                raise Fatal(f"HTTP {r.status}", status=r.status)
            body = await r.json()
        return Response(text=str(body["count"]), usage=Usage(input_tokens=1, output_tokens=1), cost_usd=0.0)


class _CounterPlugin:
    @staticmethod
    @hookimpl
    def register_providers(register):
        register(Counter)


@pytest.fixture
async def counter_server():
    seen: list[dict] = []

    async def count(request: web.Request) -> web.Response:
        seen.append(await request.json())
        return web.json_response({"count": 3})

    app = web.Application()
    app.router.add_post("/count", count)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]
    old = Counter.default_url
    Counter.default_url = f"http://127.0.0.1:{port}"
    try:
        yield seen
    finally:
        Counter.default_url = old
        await runner.cleanup()


async def test_a_plugin_that_declares_no_protocol_is_not_sent_to_the_emulator(tmp_path, image_dir, counter_server):
    """Bug 1: a RemoteOptions plugin without protocols keeps its own options and server under ``emulator:``."""
    registry = collect(make_manager([_CounterPlugin]))
    path = _config(
        tmp_path,
        image_dir,
        {"counter": {}},
        [
            {"provider": "counter", "models": ["c1"], "strategies": ["sequential"]},
            {"provider": "gemini", "models": ["gemini-3.5-flash"], "strategies": ["sequential"]},
        ],
        emulator={"profiles": str(_profiles(tmp_path)), "time_scale": 0},
    )
    env_before = dict(os.environ)
    plan = load_plan(path, registry)
    counter = plan.providers["counter"]
    data = bundle_mod.load(await run(plan, results_dir=tmp_path / "r", cache_dir=None))
    new = os.environ.keys() - env_before.keys()  # (importing cv2 sets a few of its own)
    assert not [k for k in new if "KEY" in k or "VISIONBENCH" in k]  # no process-wide change for the emulator
    bundle_mod.validate(data)
    assert plan.providers["counter"] is counter and counter.endpoint is None
    assert counter.options == Counter.Options() and counter.options.base_url is None  # untouched
    assert len(counter_server) == 6  # every image went to its own server, none to the emulator
    by_cell = {}
    for r in data["records"]:
        by_cell.setdefault(r["cell"].split("/")[0], []).append(r)
    assert all(r["error"] is None and r["answers"][0]["value"] == 3 for r in by_cell["counter"])
    assert all(r["error"] is None for r in by_cell["gemini"])  # the built-in one was emulated
    endpoints = data["endpoints"]
    assert endpoints["counter"] == {
        "plugin": "counter",
        "base_url": None,
        "emulated": False,
        "options": Counter.Options().model_dump(mode="json"),
    }
    assert endpoints["gemini"]["emulated"] is True and endpoints["gemini"]["base_url"].startswith("http://127.0.0.1:")


# -- two endpoints of the openai plugin in one run ---------------------------------------------------------------------


async def test_two_endpoints_of_one_plugin_one_emulated_one_self_hosted_in_one_run(
    tmp_path, image_dir, registry, monkeypatch
):
    """``providers: {openai: {}, local: {plugin: openai, base_url: ...}}``: two cells of one plugin, each endpoint
    answering from its own server, both recorded in one bundle with the base URL really used (bug 2 too)."""
    monkeypatch.setenv("VB_LOCAL_KEY", "sk-local-secret-123")
    profiles = _profiles(tmp_path)
    async with Emulator(profiles, dataset=image_dir, labels="labels.json", label_field="person_count") as server:
        path = _config(
            tmp_path,
            image_dir,
            {
                "openai": {},  # hosted OpenAI in a real run; here the run's emulator stands in for it
                "local": {"plugin": "openai", "base_url": server.openai_base_url, "api_key_env": "VB_LOCAL_KEY"},
            },
            [
                {"provider": "openai", "models": ["gpt-6.1-terra"], "strategies": ["sequential"]},
                {"provider": "local", "models": ["gpt-6-luna"], "strategies": ["sequential"]},
            ],
            emulator={"profiles": str(profiles), "time_scale": 0},
        )
        plan = load_plan(path, registry)
        assert [c.id for c in plan.experiment.cells] == [
            "openai/gpt-6.1-terra/sequential",
            "local/gpt-6-luna/sequential",
        ]
        assert type(plan.providers["openai"]) is type(plan.providers["local"])  # one plugin
        assert plan.providers["openai"] is not plan.providers["local"]  # one instance per endpoint
        data_path = await run(plan, results_dir=tmp_path / "r", cache_dir=None)
        data = bundle_mod.load(data_path)
        self_hosted = server.stats
    bundle_mod.validate(data)
    assert data["status"] == "complete", [r["error"] for r in data["records"] if r["error"]][:3]
    assert {c["id"]: (c["summary"]["items"], c["summary"]["errors"]) for c in data["cells"]} == {
        "openai/gpt-6.1-terra/sequential": (6, 0),
        "local/gpt-6-luna/sequential": (6, 0),
    }
    # the self-hosted server saw only its endpoint's model; the emulated endpoint's went to the run's emulator
    assert set(self_hosted) == {"gpt-6-luna"} and self_hosted["gpt-6-luna"].succeeded == 6
    endpoints = data["endpoints"]
    assert endpoints["local"]["plugin"] == endpoints["openai"]["plugin"] == "openai"
    assert endpoints["local"]["base_url"] == server.openai_base_url and endpoints["local"]["emulated"] is False
    emulated = endpoints["openai"]["base_url"]
    assert endpoints["openai"]["emulated"] is True
    assert emulated.startswith("http://127.0.0.1:") and emulated.endswith("/v1") and emulated != server.openai_base_url
    assert (
        endpoints["local"]["options"]["api_key_env"] == "VB_LOCAL_KEY" and "plugin" not in endpoints["local"]["options"]
    )
    assert "sk-local-secret-123" not in Path(data_path).read_text()  # options name the key's variable, never the key
    # Bug 2: the environment's record is the URL used, not "(SDK default)"
    assert data["environment"]["providers"]["openai"]["base_url"] == emulated
    assert "(SDK default)" not in json.dumps(data["environment"])
    # both endpoints priced as their plugin, openai
    assert all(r["cost_usd"] for r in data["records"])
    # report.html says where each endpoint's requests went
    html = write_html_report(data, tmp_path / "report.html", draw_charts=False).read_text()
    section = html[html.index("<h2>Endpoints</h2>") : html.index("<h2>Configuration</h2>")]
    assert server.openai_base_url.replace("/", "/<wbr>") in section and emulated.replace("/", "/<wbr>") in section


async def test_an_emulated_bundle_records_the_emulators_base_url(tmp_path, image_dir, registry):
    """Bug 2: the header is written once the emulator is up, so it says where the requests went."""
    path = _config(
        tmp_path,
        image_dir,
        {},
        [
            {"provider": "gemini", "models": ["gemini-3.5-flash"], "strategies": ["sequential"]},
            {"provider": "anthropic", "models": ["claude-haiku-5-5"], "strategies": ["sequential"]},
        ],
        emulator={"profiles": str(_profiles(tmp_path)), "time_scale": 0},
    )
    plan = load_plan(path, registry)
    data = bundle_mod.load(await run(plan, results_dir=tmp_path / "r", cache_dir=None))
    urls = {name: e["base_url"] for name, e in data["endpoints"].items()}
    assert urls["gemini"] == urls["anthropic"] and urls["gemini"].startswith("http://127.0.0.1:")
    assert {name: p["base_url"] for name, p in data["environment"]["providers"].items()} == urls
    assert all(e["emulated"] and e["plugin"] == name for name, e in data["endpoints"].items())
    assert plan.providers["gemini"].endpoint is None  # the checked plan is left as it was; the run built its own


# -- config ------------------------------------------------------------------------------------------------------------


def test_endpoint_options_are_validated_once_against_their_plugin(tmp_path, image_dir, registry):
    path = _config(
        tmp_path,
        image_dir,
        {"vllm": {"plugin": "openai", "base_url": "http://127.0.0.1:8000/v1", "structured_output": "prompt"}},
        [{"provider": "vllm", "models": ["qwen2.5-vl"], "strategies": ["sequential"]}],
    )
    exp = load_experiment(path, registry)
    vllm = exp.endpoints["vllm"]
    assert vllm.plugin == "openai" and vllm.options.structured_output == "prompt"  # a typed, validated object
    assert exp.cells[0].id == "vllm/qwen2.5-vl/sequential"
    assert exp.prices.plugins["vllm"] == "openai"

    for providers, needle in [
        ({"vllm": {"plugin": "openai", "structured_output": "yes"}}, "providers.vllm.structured_output"),
        ({"vllm": {"plugin": "vllm"}}, "providers.vllm.plugin: unknown provider plugin 'vllm'"),
        ({"vllm": {"base_url": "http://x"}}, "providers.vllm: unknown provider"),
        ({"vllm": {"plugin": "openai"}, "my/vllm": {"plugin": "openai"}}, "providers.my/vllm: an endpoint's name"),
    ]:
        path = _config(
            tmp_path, image_dir, providers, [{"provider": "vllm", "models": ["m"], "strategies": ["sequential"]}]
        )
        with pytest.raises(ConfigError, match=needle.replace(".", r"\.").replace("(", r"\(")):
            load_experiment(path, registry)
    path = _config(tmp_path, image_dir, {}, [{"provider": "nowhere", "models": ["m"], "strategies": ["sequential"]}])
    with pytest.raises(ConfigError, match="matrix\\[0\\].provider: unknown provider 'nowhere'"):
        load_experiment(path, registry)


def test_the_readme_example_of_hosted_openai_and_vllm_loads(tmp_path, image_dir, registry):
    """The README's example of two endpoints of the openai plugin is a valid config."""
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    after = readme[readme.index("One plugin can be several endpoints") :]
    block = yaml.safe_load(after[after.index("```yaml\n") + 8 : after.index("```\n", after.index("```yaml\n") + 8)])
    path = _config(tmp_path, image_dir, block["providers"], block["matrix"], pricing=block["pricing"])
    plan = load_plan(path, registry)
    assert {name: e.plugin for name, e in plan.experiment.endpoints.items()} == {"openai": "openai", "vllm": "openai"}
    assert (
        plan.providers["vllm"].base_url() == "http://localhost:8000/v1" and plan.providers["openai"].base_url() is None
    )
    assert [c.provider for c in plan.experiment.cells] == ["openai", "vllm"]
    qwen = "Qwen/Qwen2.5-VL-7B-Instruct"
    assert plan.experiment.prices.find(qwen, "vllm") is not None  # priced by the config's row


async def test_adaptive_tier1_on_another_endpoint_of_the_same_plugin(tmp_path, image_dir, registry):
    """``tier1.provider`` names an endpoint too: two endpoints of one plugin, one instance each."""
    answers = {f"img{i}.png": i for i in range(6)}
    path = _config(
        tmp_path,
        image_dir,
        {"big": {"plugin": "scripted", "answers": answers}, "small": {"plugin": "scripted", "answers": answers}},
        [
            {
                "provider": "big",
                "models": ["m1"],
                "strategies": [{"name": "adaptive", "escalate_at": 3, "tier1": {"provider": "small", "max_side": 32}}],
            }
        ],
    )
    plan = load_plan(path, registry)
    data = bundle_mod.load(await run(plan, results_dir=tmp_path / "r", cache_dir=None))
    small, big = plan.providers["small"], plan.providers["big"]
    assert small is not big and len(small.requests) == 6  # every image at tier 1, on the small endpoint
    assert sorted(r.images[0].item_id for r in big.requests) == ["img3.png", "img4.png", "img5.png"]
    assert set(data["endpoints"]) == {"big", "small"} and data["endpoints"]["small"]["plugin"] == "scripted"


# -- a base_url that answers with a web page ---------------------------------------------------------------------------

WEB_PAGES = {
    200: "<!DOCTYPE html>\n<html><head><title>Welcome to nginx!</title></head><body><h1>Welcome</h1></body></html>",
    404: "<html><head><title>404 Not Found</title></head><body><center><h1>404 Not Found</h1></center></body></html>",
}


@pytest.fixture
def web_server():
    """A ``ReplayServer`` on loopback serving from a thread of its own (the CLI under test runs its own loop)."""
    import asyncio
    import threading

    server, loop = ReplayServer(), asyncio.new_event_loop()
    loop.run_until_complete(server.__aenter__())
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    yield server
    loop.call_soon_threadsafe(loop.stop)
    thread.join(5)
    loop.run_until_complete(server.__aexit__(None, None, None))
    loop.close()


@pytest.mark.parametrize("status", [200, 404])
def test_a_base_url_answering_a_web_page_says_so_and_is_not_retried(
    tmp_path, image_dir, monkeypatch, capsys, web_server, status
):
    """Every provider pointed at a web server (its home page, or its 404 page), streamed or not, through the real
    SDKs: one attempt per item, an error saying what answered and where, and no HTML in the bundle or the tables."""
    for var in ("GEMINI_API_KEY", "ANTHROPIC_API_KEY", "OPENAI_API_KEY"):
        monkeypatch.setenv(var, "sk-page-test")
    web_server.fallback = Reply(status, WEB_PAGES[status], content_type="text/html")
    models = {"gemini": "gemini-3.5-flash", "anthropic": "claude-haiku-4-5", "openai": "gpt-6.1-terra"}
    urls = {"gemini": web_server.url, "anthropic": web_server.url, "openai": web_server.url + "/v1"}
    concurrent = {"name": "concurrent", "max_concurrency": 2}
    matrix = [
        {"provider": p, "models": [m], "strategies": [strategy], "model_params": {"stream": stream}}
        for p, m in models.items()
        for strategy, stream in (("sequential", False), (concurrent, True))
    ]
    path = _config(tmp_path, image_dir, {p: {"base_url": url} for p, url in urls.items()}, matrix)
    code = main(["run", str(path), "--results", str(tmp_path / "r"), "--no-report"])
    out = capsys.readouterr()
    assert code == 4, out.err
    [bundle] = (tmp_path / "r").glob("*/bundle.json")
    records = json.loads(bundle.read_text())["records"]
    assert len(records) == 3 * 2 * 6 and all(r["attempts"] == 1 for r in records)  # not retried as transient
    title = "Welcome to nginx!" if status == 200 else "404 Not Found"
    for record in records:
        provider = record["cell"].split("/")[0]
        api = {"gemini": "Gemini", "anthropic": "Anthropic", "openai": "OpenAI"}[provider]
        assert record["error"]["kind"] == "fatal"
        # google-genai reads a stream a line at a time, and says only the first: the page's title may not be in it
        untitled = provider == "gemini" and "concurrent" in record["cell"] and "\n" in WEB_PAGES[status]
        page = f"HTTP {status}" if untitled else f"HTTP {status}, {title!r}"
        assert record["error"]["message"] == (
            f"an HTML page answered ({page}), not the {api} API: is base_url right? ({urls[provider]})"
        )
    assert len(web_server.requests) == 36
    assert "<html" not in bundle.read_text().lower() and "<html" not in (out.out + out.err).lower()
    assert "is base_url right?" in out.out
