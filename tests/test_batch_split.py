"""provider-batch splits a batch into as many jobs as each service's documented limits need (requests and bytes
per job; Gemini above its inline limit as an uploaded JSONL file), and the emulator refuses what the services
refuse, with their errors, so a batch that is not split fails here as it would there."""

from __future__ import annotations

import asyncio
import base64
import copy
import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anthropic
import numpy as np
import openai
import pytest
import yaml
from conftest import QUIET, capture_emulators
from google import genai
from google.genai import errors as genai_errors
from google.genai import types
from PIL import Image

from visionbench.emulator import Emulator
from visionbench.emulator.profile_schema import profiles_from_dict
from visionbench.results import bundle as bundle_mod
from visionbench.run.plan import load_plan
from visionbench.run.plugins import default_registry
from visionbench.run.runner import run
from visionbench.services import limits
from visionbench.services.limits import ENVELOPE_BYTES, limits_for, split_batch

MODELS = {"gemini": "gemini-3.5-flash", "anthropic": "claude-haiku-4-5", "openai": "gpt-6.1-terra"}
MB = 1024 * 1024


# -- planning -----------------------------------------------------------------------------------------------------
def test_split_by_requests_and_by_bytes_by_hand() -> None:
    # 10 requests, at most 4 a job: 4 + 4 + 2
    assert split_batch([100] * 10, 4, None, envelope=0) == [range(0, 4), range(4, 8), range(8, 10)]
    # 60-byte requests, 150 bytes a job with a 10-byte envelope: 10 + 60 + 60 = 130 fits, a third (190) does not
    assert split_batch([60] * 5, None, 150, envelope=10) == [range(0, 2), range(2, 4), range(4, 5)]
    # exactly at the limit still fits: 10 + 70 + 70 = 150
    assert split_batch([70, 70, 70], None, 150, envelope=10) == [range(0, 2), range(2, 3)]
    # a request too big for any job goes alone (the service's refusal then names it), the others around it too
    assert split_batch([10, 500, 10], None, 100, envelope=0) == [range(0, 1), range(1, 2), range(2, 3)]
    # whichever limit comes first: 3 requests a job, but 2 fit by bytes
    assert split_batch([40] * 4, 3, 100, envelope=0) == [range(0, 2), range(2, 4)]
    assert split_batch([], 10, 10) == [] and split_batch([5] * 3, None, None) == [range(0, 3)]


def test_the_issues_batch_at_the_documented_limits() -> None:
    # 2,000 images at 1536 px: 335 MB as one submission (167,500 bytes a request). Jobs by hand, keeping 4,096 bytes
    # for the envelope: OpenAI (200 MB = 209,715,200) floor(209,711,104 / 167,500) = 1,252 a job -> 1,252 + 748;
    # Anthropic (256 MB = 268,435,456) floor(268,431,360 / 167,500) = 1,602 -> 1,602 + 398; Gemini's input file
    # (2 GB) holds them all -> 1 job, over the 20 MB inline limit, so sent as a file.
    sizes = [167_500] * 2000
    assert sum(sizes) == 335_000_000
    openai_lim, anthropic_lim, gemini_lim = (limits_for(p, MODELS[p]) for p in ("openai", "anthropic", "gemini"))
    assert (openai_lim.batch_max_requests, openai_lim.batch_max_bytes) == (50_000, 200 * MB)
    assert (anthropic_lim.batch_max_requests, anthropic_lim.batch_max_bytes) == (100_000, 256 * MB)
    assert (gemini_lim.batch_max_bytes, gemini_lim.batch_inline_max_bytes) == (2048 * MB, 20 * MB)
    assert ENVELOPE_BYTES == 4096
    runs = split_batch(sizes, openai_lim.batch_max_requests, openai_lim.batch_max_bytes)
    assert [len(r) for r in runs] == [1252, 748]
    runs = split_batch(sizes, anthropic_lim.batch_max_requests, anthropic_lim.batch_max_bytes)
    assert [len(r) for r in runs] == [1602, 398]
    assert [len(r) for r in split_batch(sizes, None, gemini_lim.batch_max_bytes)] == [2000]
    # by requests: 120,000 small ones are 2 Anthropic jobs (100,000 + 20,000) and 3 OpenAI jobs (50,000 a job)
    small = [1000] * 120_000
    assert [len(r) for r in split_batch(small, 100_000, 256 * MB)] == [100_000, 20_000]
    assert [len(r) for r in split_batch(small, 50_000, 200 * MB)] == [50_000, 50_000, 20_000]
    for name in ("batch_max_requests", "batch_max_bytes"):
        assert openai_lim.sources[name] and anthropic_lim.sources[name]
    assert gemini_lim.sources["batch_inline_max_bytes"] and gemini_lim.sources["batch_max_bytes"]


# -- lowered limits (test only): the same mechanism at a size a test can afford ---------------------------------------
@pytest.fixture
def lowered(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    """The limits table, changed by the test: providers and the emulator both read it."""
    table = copy.deepcopy(limits._table())
    monkeypatch.setattr(limits, "_table", lambda: table)
    limits.limits_for.cache_clear()
    yield table
    limits.limits_for.cache_clear()


@pytest.fixture
async def emu(tmp_path: Path) -> Any:
    (tmp_path / "labels.json").write_text("{}")
    profiles = profiles_from_dict({"models": {"*": {**QUIET, "batch": {"turnaround_s": 0}}}})
    async with Emulator(profiles, dataset=tmp_path, time_scale=0) as e:
        yield e


def _jpeg(seed: int, width: int = 64, height: int = 48) -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, "JPEG", quality=85)
    return out.getvalue()


async def test_emulator_refuses_a_gemini_inline_batch_over_20_mb(emu) -> None:
    client = genai.Client(api_key="k", http_options=types.HttpOptions(base_url=emu.base_url))
    blob = b"\xff" * (8 * MB)  # 8 MB of bytes: 10.7 MB as base64, twice over 20 MB
    src = [
        types.InlinedRequest(
            contents=[types.Content(role="user", parts=[types.Part.from_bytes(data=blob, mime_type="image/jpeg")])],
            metadata={"key": f"k{i}"},
        )
        for i in range(2)
    ]
    with pytest.raises(genai_errors.ClientError) as caught:
        await client.aio.batches.create(model=MODELS["gemini"], src=src)
    assert caught.value.code == 400 and caught.value.status == "INVALID_ARGUMENT"
    assert "Request payload size exceeds the limit: 20971520 bytes" in str(caught.value.message)
    assert not emu._store.jobs


async def test_emulator_gemini_file_batch_upload_run_download(emu) -> None:
    # the File API route the service requires above 20 MB: a resumable upload, a job reading it, a responses file
    client = genai.Client(api_key="k", http_options=types.HttpOptions(base_url=emu.base_url))
    lines = []
    for i in range(3):
        part = {"inlineData": {"mimeType": "image/jpeg", "data": base64.b64encode(_jpeg(i)).decode()}}
        request = {"contents": [{"role": "user", "parts": [part, {"text": "How many people?"}]}]}
        lines.append(json.dumps({"key": f"req-{i}", "request": request}))
    data = ("\n".join(lines) + "\n").encode()
    uploaded = await client.aio.files.upload(file=io.BytesIO(data), config={"mime_type": "application/jsonl"})
    assert uploaded.name.startswith("files/") and uploaded.size_bytes == len(data)
    job = await client.aio.batches.create(model=MODELS["gemini"], src=uploaded.name)
    assert emu._store.get(job.name.removeprefix("batches/")).submitted_bytes == len(data)
    done = await client.aio.batches.get(name=job.name)
    for _ in range(100):  # computed in the background: done within moments
        if done.state.name != "JOB_STATE_RUNNING" and done.state.name != "JOB_STATE_PENDING":
            break
        await asyncio.sleep(0.05)
        done = await client.aio.batches.get(name=job.name)
    assert done.state.name == "JOB_STATE_SUCCEEDED" and done.dest.file_name and not done.dest.inlined_responses
    out = [json.loads(line) for line in (await client.aio.files.download(file=done.dest.file_name)).splitlines()]
    assert sorted(o["key"] for o in out) == ["req-0", "req-1", "req-2"]
    assert all(o["response"]["candidates"][0]["content"]["parts"][0]["text"] for o in out)
    with pytest.raises(genai_errors.ClientError) as caught:  # an uploaded file cannot be downloaded, as on the service
        await client.aio.files.download(file=uploaded.name)
    assert caught.value.code == 400


async def test_emulator_refuses_an_anthropic_batch_over_its_limits(emu, lowered) -> None:
    lowered["anthropic"]["*"]["batch_max_bytes"] = 2 * MB  # 256 MB in the service; 2 MB here, same check
    client = anthropic.AsyncAnthropic(api_key="k", base_url=emu.base_url, max_retries=0)
    image = {"type": "base64", "media_type": "image/jpeg", "data": base64.b64encode(b"\xff" * MB).decode()}
    params = {
        "model": MODELS["anthropic"],
        "max_tokens": 16,
        "messages": [{"role": "user", "content": [{"type": "image", "source": image}, {"type": "text", "text": "n?"}]}],
    }
    with pytest.raises(anthropic.APIStatusError) as caught:
        await client.messages.batches.create(requests=[{"custom_id": f"r{i}", "params": params} for i in range(2)])
    assert caught.value.status_code == 413
    assert caught.value.body["error"]["type"] == "request_too_large"
    assert "exceeds the maximum of 2097152 bytes" in caught.value.body["error"]["message"]
    lowered["anthropic"]["*"]["batch_max_requests"] = 3
    limits.limits_for.cache_clear()
    small = {**params, "messages": [{"role": "user", "content": "n?"}]}
    with pytest.raises(anthropic.BadRequestError) as caught:
        await client.messages.batches.create(requests=[{"custom_id": f"r{i}", "params": small} for i in range(4)])
    assert "at most 3 requests, not 4" in caught.value.body["error"]["message"]
    assert not emu._store.jobs


async def test_emulator_refuses_an_openai_batch_file_over_its_limits(emu, lowered) -> None:
    client = openai.AsyncOpenAI(api_key="k", base_url=emu.openai_base_url, max_retries=0)
    body = {"model": MODELS["openai"], "messages": [{"role": "user", "content": "n?"}]}
    line = json.dumps({"custom_id": "r", "method": "POST", "url": "/v1/chat/completions", "body": body})
    for limit, value, data, says in (
        ("batch_max_requests", 3, (line + "\n") * 4, "has 4 requests; a batch may have at most 3"),
        ("batch_max_bytes", 300, (line + "\n") * 3, "input file may be at most 300"),
    ):
        lowered["openai"]["*"][limit] = value  # 50,000 and 200 MB in the service
        limits.limits_for.cache_clear()
        uploaded = await client.files.create(file=("b.jsonl", data.encode()), purpose="batch")
        with pytest.raises(openai.BadRequestError) as caught:
            await client.batches.create(
                input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h"
            )
        assert caught.value.status_code == 400 and says in caught.value.message
    assert not emu._store.jobs


# -- end to end ---------------------------------------------------------------------------------------------------
def _dataset(folder: Path, n: int, make: Any) -> Path:
    folder.mkdir()
    labels = {}
    for i in range(n):
        (folder / f"i{i:04d}.jpg").write_bytes(make(i))
        labels[f"i{i:04d}.jpg"] = {"person_count": i % 10}
    (folder / "labels.json").write_text(json.dumps(labels))
    return folder


def _experiment(tmp_path: Path, images: Path, max_side: int) -> Path:
    profiles = tmp_path / "profiles.yaml"
    exact = {"relative_sd": 0, "absolute_sd": 0, "multi_image_undercount": 0, "low_res_undercount": 0}
    defaults = {**QUIET, "answers": {**QUIET["answers"], **exact}, "batch": {"turnaround_s": 0}}
    profiles.write_text(yaml.safe_dump({"seed": 1, "time_scale": 0, "defaults": defaults, "models": {"*": {}}}))
    strategy = {"name": "provider-batch", "poll_initial_s": 0.05, "poll_max_s": 0.2}
    config = {
        "name": "batch-split",
        "dataset": {"path": str(images), "labels": "labels.json", "label_field": "person_count"},
        "task": {"id": "count", "prompt": "How many people?", "answer": "integer"},
        "preprocessing": {"max_side": max_side},
        "emulator": {"profiles": str(profiles)},
        "retry": {"max_attempts": 2, "base_delay_s": 0, "max_delay_s": 0, "timeout_s": 600},
        "matrix": [{"provider": p, "models": [m], "strategies": [strategy]} for p, m in MODELS.items()],
    }
    path = tmp_path / "exp.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


async def _run(path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[dict, dict[str, list], Any]:
    """The bundle, the emulator's jobs per protocol (in submission order), and the emulator."""
    started = capture_emulators(monkeypatch)
    out = await run(load_plan(path, default_registry()), results_dir=tmp_path / "r", cache_dir=tmp_path / "c")
    data = bundle_mod.load(out)
    bundle_mod.validate(data)
    [emu] = started
    jobs: dict[str, list] = {p: [] for p in MODELS}
    for job in sorted(emu._store.jobs.values(), key=lambda j: j.created_mono):
        jobs[job.protocol].append(job)
    return data, jobs, emu


@pytest.mark.slow
async def test_2000_images_in_several_jobs_on_every_provider(tmp_path, lowered, monkeypatch) -> None:
    # Each request is about 4 KB (a 64 x 48 JPEG); the test lowers the limits so that they bite at 2,000 images:
    # OpenAI by requests (700 a job), Anthropic by bytes (3 MB a job), Gemini by bytes (2.5 MB a job, 1.5 MB inline:
    # the full jobs go as files, the last one inline). Seen: OpenAI 700 + 700 + 600; Anthropic 749 + 749 + 502
    # (2.98 MB, 2.98 MB, 2.0 MB); Gemini 633 x 3 as files (2.49 MB each) + 101 inline (0.40 MB). Before the split,
    # each provider sent one job and the emulator refused it (Gemini 400 over the inline limit, OpenAI 400,
    # Anthropic 413): all 2,000 items failed.
    lowered["openai"]["*"]["batch_max_requests"] = 700
    lowered["anthropic"]["*"]["batch_max_bytes"] = 3_000_000
    lowered["gemini"]["*"]["batch_max_bytes"] = 2_500_000
    lowered["gemini"]["*"]["batch_inline_max_bytes"] = 1_500_000
    images = _dataset(tmp_path / "images", 2000, _jpeg)
    data, jobs, emu = await _run(_experiment(tmp_path, images, 64), tmp_path, monkeypatch)
    assert data["status"] == "complete"
    for cell in data["cells"]:
        assert cell["summary"]["errors"] == 0 and cell["summary"]["exact_match"] == 1.0, cell["id"]
        assert len(cell["answers"]) == 2000
    extra = {c["provider"]: c["extra"]["batch"] for c in data["cells"]}
    sizes = {p: [len(j.items) for j in jobs[p]] for p in MODELS}
    print({p: [(len(j.items), j.submitted_bytes) for j in jobs[p]] for p in MODELS})  # seen with -s
    assert sizes["openai"] == extra["openai"]["requests_per_job"] == [700, 700, 600]
    assert len(sizes["anthropic"]) == extra["anthropic"]["jobs"] >= 3 and sum(sizes["anthropic"]) == 2000
    assert len(sizes["gemini"]) == extra["gemini"]["jobs"] >= 3 and sum(sizes["gemini"]) == 2000
    assert all(j.submitted_bytes <= 3_000_000 for j in jobs["anthropic"])
    assert all(j.submitted_bytes <= 2_500_000 for j in jobs["gemini"])
    gemini = GeminiJobs(emu, jobs["gemini"])
    assert gemini.from_file[:-1] == [True] * (len(jobs["gemini"]) - 1) and gemini.from_file[-1] is False
    assert all(e["state"] in ("BATCH_STATE_SUCCEEDED", "ended", "completed") for e in extra.values())
    assert not json.loads((tmp_path / "r" / "batch_jobs.json").read_text())  # every job collected, then forgotten


class GeminiJobs:
    """Which of the emulator's Gemini jobs came as an uploaded file (and not inline)."""

    def __init__(self, emu: Any, jobs: list) -> None:
        routes = emu.gemini_routes
        self.from_file = [job.id in routes.responses_files for job in jobs]


#: Noise shared by the big images: what makes them big (JPEG cannot compress it).
_NOISE = np.random.default_rng(99).integers(0, 192, (1024, 1536, 3), dtype=np.uint8)


def _big(i: int) -> bytes:
    """1536 x 1024: a coarse pattern of its own (what the emulator recognises it by) under noise; a JPEG of about
    1.05 MB, 1.4 MB as base64, that the preprocessing keeps at that size."""
    coarse = np.random.default_rng(i).integers(0, 256, (12, 16, 3), dtype=np.uint8)
    pattern = np.asarray(Image.fromarray(coarse).resize((1536, 1024), Image.BILINEAR))
    out = io.BytesIO()
    Image.fromarray(pattern // 4 + _NOISE).save(out, "JPEG", quality=85)
    return out.getvalue()


@pytest.mark.slow
async def test_over_the_real_documented_limits(tmp_path, monkeypatch) -> None:
    # The documented limits, unchanged, with data over them: 250 images of 1536 x 1024 (mostly noise), about
    # 350 MB of requests, over OpenAI's 200 MB file, Anthropic's 256 MB batch and Gemini's 20 MB inline batch.
    images = _dataset(tmp_path / "images", 250, _big)
    data, jobs, emu = await _run(_experiment(tmp_path, images, 1536), tmp_path, monkeypatch)
    assert data["status"] == "complete"
    for cell in data["cells"]:
        assert cell["summary"]["errors"] == 0 and cell["summary"]["exact_match"] == 1.0, cell["id"]
    submitted = {p: [j.submitted_bytes for j in jobs[p]] for p in MODELS}
    print({p: list(zip([len(j.items) for j in jobs[p]], submitted[p])) for p in MODELS})
    assert sum(submitted["openai"]) > 200 * MB and len(jobs["openai"]) == 2
    assert all(b <= 200 * MB for b in submitted["openai"])
    assert sum(submitted["anthropic"]) > 256 * MB and len(jobs["anthropic"]) == 2
    assert all(b <= 256 * MB for b in submitted["anthropic"])
    assert len(jobs["gemini"]) == 1 and submitted["gemini"][0] > 20 * MB  # one job, as a file (2 GB a file)
    assert GeminiJobs(emu, jobs["gemini"]).from_file == [True]


async def test_gemini_inlines_only_what_fits_inlined(tmp_path, lowered, monkeypatch) -> None:
    # Inlined, a request is about 15 bytes more than its line in a file ({"request", "metadata": {"key"}} and a
    # ", "). With the limit between the two, the provider must send a file: inlined, the service refuses it.
    from replay_server import image_bytes

    from visionbench.providers.gemini import Gemini

    monkeypatch.setenv("GEMINI_API_KEY", "k")
    model = MODELS["gemini"]
    (tmp_path / "a.jpg").write_bytes(image_bytes(size=(40, 30)))  # the image make_request sends: known, answered 3
    (tmp_path / "labels.json").write_text(json.dumps({"a.jpg": {"person_count": 3}}))
    profiles = profiles_from_dict({"models": {"*": {**QUIET, "batch": {"turnaround_s": 0}}}})
    async with Emulator(profiles, dataset=tmp_path, time_scale=0) as emu:
        gemini = Gemini(Gemini.Options(base_url=emu.base_url))
        await _inline_or_file(emu, gemini, model, lowered)


async def _inline_or_file(emu: Any, gemini: Any, model: str, lowered: dict[str, Any]) -> None:
    from replay_server import make_request

    try:
        requests = {f"item-{i}": make_request(model) for i in range(600)}
        lines = sum(gemini.batch_entry_bytes(model, key, r) for key, r in requests.items())
        limit = lines + ENVELOPE_BYTES + 5 * len(requests)
        lowered["gemini"]["*"]["batch_inline_max_bytes"] = limit
        src = []
        for key, request in requests.items():
            config, part_res = gemini._config(request, batch=True)
            contents = gemini._contents(request, part_res)
            src.append(types.InlinedRequest(contents=contents, config=config, metadata={"key": key}))
        with pytest.raises(genai_errors.ClientError, match=f"exceeds the limit: {limit} bytes"):
            await gemini._get_client().aio.batches.create(model=model, src=src)
        job_id = await gemini.submit_batch(model, requests)
        assert emu.gemini_routes.responses_files.keys() == {job_id.removeprefix("batches/")}  # sent as a file
        assert emu._store.get(job_id.removeprefix("batches/")).submitted_bytes == lines
        for _ in range(600):
            if (await gemini.poll_batch(job_id)).done:
                break
            await asyncio.sleep(0.05)
        results = await gemini.collect_batch(job_id)
        assert sorted(results) == sorted(requests) and {r.text for r in results.values()} == {"3"}  # type: ignore[union-attr]
    finally:
        await gemini.aclose()


async def test_emulator_refuses_a_gemini_input_file_over_its_limit(emu, lowered) -> None:
    lowered["gemini"]["*"]["batch_max_bytes"] = 1000  # 2 GB a file in the service
    client = genai.Client(api_key="k", http_options=types.HttpOptions(base_url=emu.base_url))
    with pytest.raises(genai_errors.ClientError) as caught:
        await client.aio.files.upload(file=io.BytesIO(b"x" * 1001), config={"mime_type": "application/jsonl"})
    assert caught.value.code == 400 and "File of 1001 bytes exceeds the maximum file size of 1000" in str(
        caught.value.message
    )
    assert not emu.gemini_routes.files.files and not emu.gemini_routes.files.uploads
