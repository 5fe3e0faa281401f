import json
import logging

from conftest import write_config

from visionbench.results import bundle as bundle_mod
from visionbench.run.plan import load_plan
from visionbench.run.runner import run
from visionbench.secrets import REDACTED, RedactingFilter, api_key_from_env, redact

KEY = "sk-test-0123456789abcdef"


def test_keys_read_from_env_are_redacted(monkeypatch):
    monkeypatch.setenv("VB_TEST_KEY", KEY)
    assert api_key_from_env("VB_TEST_KEY") == KEY
    assert redact(f"401: key {KEY} is invalid") == f"401: key {REDACTED} is invalid"
    record = logging.LogRecord("x", logging.ERROR, __file__, 1, "failed with %s", (KEY,), None)
    RedactingFilter().filter(record)
    assert KEY not in record.getMessage()


async def test_a_key_in_a_reply_never_reaches_the_bundle(tmp_path, image_dir, registry, monkeypatch):
    monkeypatch.setenv("VB_TEST_KEY", KEY)
    api_key_from_env("VB_TEST_KEY")
    options = {"reply_template": "echo " + KEY + " {}"}
    path = write_config(tmp_path, image_dir, ["sequential"], options=options)
    plan = load_plan(path, registry)
    bundle_path = await run(plan, results_dir=tmp_path / "results", cache_dir=None)
    text = bundle_path.read_text()
    assert KEY not in text and REDACTED in text
    bundle_mod.validate(json.loads(text))
