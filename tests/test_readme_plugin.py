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
            "retry": {"base_delay_s": 0, "max_delay_s": 0},
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
