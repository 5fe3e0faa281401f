"""The provider plugin shown in the README works as written: registered through the hook, run through an
experiment against a small HTTP server, retried on 429."""

import re
from pathlib import Path

import yaml
from aiohttp import web

from visionbench.results import bundle as bundle_mod
from visionbench.run.plan import load_plan
from visionbench.run.plugins import collect, make_manager
from visionbench.run.runner import run

README = Path(__file__).resolve().parents[1] / "README.md"


def readme_plugin(tmp_path):
    code = re.search(r"```python\n(# my_vlm\.py\n.*?)```", README.read_text(), re.DOTALL).group(1)
    assert len(code.splitlines()) <= 45
    namespace: dict = {}
    exec(compile(code, "my_vlm.py", "exec"), namespace)
    module = type("my_vlm", (), {"register_providers": staticmethod(namespace["register_providers"])})
    return module


async def test_readme_plugin_runs_an_experiment(tmp_path, image_dir, monkeypatch):
    seen = []
    monkeypatch.setenv("MY_VLM_KEY", "sk-readme-plugin-key-42")

    async def ask(request: web.Request) -> web.Response:
        form = await request.post()
        assert request.headers["authorization"] == "Bearer sk-readme-plugin-key-42"  # toolkit.api_key
        seen.append(form["prompt"])
        if len(seen) == 1:
            return web.json_response({"error": "busy"}, status=429, headers={"retry-after": "0.01"})
        return web.json_response({"text": str(len(form.getall("images"))), "tokens_in": 42})

    app = web.Application()
    app.router.add_post("/v1/ask", ask)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]
    try:
        registry = collect(make_manager([readme_plugin(tmp_path)]))
        assert "my-vlm" in registry.providers
        config = {
            "name": "readme",
            "dataset": {"path": str(image_dir), "labels": "labels.json", "label_field": "person_count"},
            "task": {"prompt": "How many images?", "answer": "integer"},
            "retry": {"base_delay_s": 0, "max_delay_s": 1},  # waits the 0.01 s asked
            "providers": {"my-vlm": {"base_url": f"http://127.0.0.1:{port}"}},
            "matrix": [{"provider": "my-vlm", "models": ["v1"], "strategies": ["sequential"]}],
        }
        path = tmp_path / "readme.yaml"
        path.write_text(yaml.safe_dump(config))
        plan = load_plan(path, registry)
        data = bundle_mod.load(await run(plan, results_dir=tmp_path / "r", cache_dir=None))
    finally:
        await runner.cleanup()
    bundle_mod.validate(data)
    records = data["records"]
    assert len(records) == 6 and records[0]["attempts"] == 2  # the 429 was retried
    assert all(r["answers"][0]["value"] == 1 and r["usage"]["input_tokens"] == 42 for r in records)
    assert seen[0] == "How many images?"
    assert not any("sk-readme-plugin-key-42" in p.read_text() for p in (tmp_path / "r").rglob("*") if p.is_file())


def readme_scorer():
    code = re.search(r"```python\n(# my_scorers\.py\n.*?)```", README.read_text(), re.DOTALL).group(1)
    assert len([line for line in code.splitlines() if line.strip()]) <= 32  # "a scorer in 30 lines"
    namespace: dict = {}
    exec(compile(code, "my_scorers.py", "exec"), namespace)
    return type("my_scorers", (), {"register_scorers": staticmethod(namespace["register_scorers"])})


def test_readme_scorer_scores_by_hand_and_through_a_run(tmp_path, monkeypatch):
    import asyncio

    from visionbench.run.config import task_scorers
    from visionbench.scorer import Scored
    from visionbench.types import Task

    registry = collect(make_manager([readme_scorer()]))
    assert "token_f1" in registry.scorers and "exact" in registry.scorers  # beside the built-ins
    task = Task("t", "p", "text")
    scorers = task_scorers(Path("c.yaml"), registry, task, [{"name": "token_f1", "min_f1": 0.5}, "exact"])
    f1 = dict(scorers.scorers)["token_f1"]
    assert f1.score(Scored("a", "blue door cafe", ("Blue Door Cafe",))).value == 1.0
    # "the blue door" shares 2 of its 3 words with the 3 of the reference: P = R = 2/3, F1 = 2/3
    assert abs(f1.score(Scored("a", "the blue door", ("Blue Door Cafe", "x"))).value - 2 / 3) < 1e-12
    assert f1.score(Scored("a", "a red door", ("Blue Door Cafe",))).value == 0.0  # F1 1/3 < min_f1 0.5
    # through a run: the shipped VQA demo against an emulator that answers right, scored by the plugin
    source = Path(__file__).resolve().parents[1] / "configs" / "vqa-emulated.yaml"
    config = yaml.safe_load(source.read_text())
    config["dataset"]["path"] = str((source.parent / config["dataset"]["path"]).resolve())
    config["task"]["scorers"] = [{"name": "token_f1", "min_f1": 0.5}, "exact"]
    quiet = {"latency": {"base_s": 0.0, "jitter": 0.0}, "answers": {"text_error": 0.0}, "faults": {"http_500": 0}}
    profiles = tmp_path / "profiles.yaml"
    profiles.write_text(yaml.safe_dump({"seed": 1, "time_scale": 0, "defaults": quiet, "models": {"*": {}}}))
    config["emulator"] = {"profiles": str(profiles)}
    config["matrix"] = [{"provider": "openai", "models": ["gpt-6.1-terra"], "strategies": ["sequential"]}]
    path = tmp_path / "vqa.yaml"
    path.write_text(yaml.safe_dump(config))
    data = bundle_mod.load(asyncio.run(run(load_plan(path, registry), results_dir=tmp_path / "r", cache_dir=None)))
    bundle_mod.validate(data)
    scores = data["cells"][0]["summary"]["scores"]
    assert list(scores) == ["token_f1", "exact"]
    assert scores["token_f1"]["mean"] == scores["exact"]["mean"] == 1.0  # every answer the label's words
    assert scores["token_f1"]["metrics"] == {"all_words_right": 1.0}
