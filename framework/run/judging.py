"""Model scorers (LLM judges) asked about a cell's final answers, once the cell's strategy is done.

Each answered, labelled item is asked about once per model scorer, through the run's own providers and caller
(timeouts, retries, backoff, on the run's clock), at most ``Judge.max_concurrency`` at a time; its images are
prepared as the cell prepared them. Every request becomes a record of the cell (``Recorder``: priced, its reply
read by the scorer) marked as the judge's (``Record.judge``), so the cell's own requests, latency, tokens and cost
leave it out and the judge's figures count it (``results.scores.judge_figures``). A request that fails, or a reply
that gives no score, costs that item's judge score (its record holds the error), not the run. A verdict already in
the run being resumed, about the same inputs, is not asked again.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from visionbench.data.image_bytes import Preprocessor
from visionbench.errors import ItemError
from visionbench.provider import Provider
from visionbench.results.scores import TaskScorers
from visionbench.run.calling import Caller
from visionbench.run.cellrun import CellRun
from visionbench.run.readahead import ReadAhead
from visionbench.run.recorder import Recorder, Where
from visionbench.run.replay import Replay, judge_key
from visionbench.scorer import Judge, ModelScorer, Score
from visionbench.services.pricing import PriceTable
from visionbench.types import Answer, ImageItem, PreparedImage, Record, Request, Task, fill_template


@dataclass(frozen=True)
class _Tools:
    providers: Mapping[str, Provider]
    caller: Caller
    preprocessor: Preprocessor
    recorder: Recorder
    replay: Replay | None = None


def inputs_digest(judge: Judge, prompt: str, system: str | None, item: ImageItem, preprocessing: str | None) -> str:
    """What a judge's request asks, in 16 hex digits: its endpoint, model and params, its words, and the item's
    images as prepared (their content hash and the preprocessing; none when it sends no image)."""
    what = [judge.provider, judge.model, judge.model_params, judge.max_output_tokens, prompt, system]
    if judge.images:
        what += [item.sha256, preprocessing]
    return hashlib.sha256(json.dumps(what, sort_keys=True, default=str).encode()).hexdigest()[:16]


def earlier_verdicts(records: Iterable[Record]) -> dict[tuple[str, str], Record]:
    """The judge records of a resumed run that gave a score, by (scorer key, inputs digest): asked again, the same
    inputs would be the same request."""
    out: dict[tuple[str, str], Record] = {}
    for record in records:
        if record.judge is not None and record.error is None and all(a.error is None for a in record.answers):
            out[(record.judge["scorer"], record.judge["inputs"])] = record
    return out


async def judge_cell(
    scorers: TaskScorers,
    run: CellRun,
    items: Iterable[ImageItem],
    final: Mapping[str, Answer],
    *,
    providers: Mapping[str, Provider],
    caller: Caller,
    preprocessor: Preprocessor,
    prices: PriceTable | None,
    on_record: Callable[[Record], None],
    earlier: Sequence[Record] = (),
    replay: Replay | None = None,
) -> None:
    """Ask each model scorer of ``scorers`` about each answered labelled item of the cell; each request's record
    goes to ``on_record`` (its answer's value the item's score, or its error). ``earlier``: the judge records of the
    run being resumed, whose verdicts are kept where the inputs are the same; ``replay``: an earlier run whose
    verdicts stand in for the requests asked alike (``run --replay``)."""
    judges = scorers.judges
    if not judges:
        return
    tools = _Tools(providers, caller, preprocessor, Recorder(run, on_record, prices), replay)
    done = earlier_verdicts(earlier)
    for key, scorer in judges:
        wanted = [job for job in judge_jobs(scorers, scorer, run, items, final) if (key, job[2]) not in done]
        if wanted:
            await _judge_all(key, scorer, wanted, run, tools)


async def _judge_all(
    key: str,
    scorer: ModelScorer,
    wanted: list[tuple[ImageItem, tuple[str, str | None] | str, str]],
    run: CellRun,
    tools: _Tools,
) -> None:
    """Ask ``scorer``'s judge about each of ``wanted``, ``max_concurrency`` at a time (its images read ahead)."""
    judge = scorer.judge
    images = (image for item, _, _ in wanted for image in item.images()) if judge.images else iter(())
    cache = ReadAhead(tools.preprocessor, images, run.preprocessing)
    pending = iter(wanted)

    async def worker() -> None:
        for item, asked, digest in pending:
            await _ask(key, scorer, judge, item, asked, digest, run, cache, tools)

    tasks = [asyncio.ensure_future(worker()) for _ in range(min(judge.max_concurrency, len(wanted)))]
    try:
        await asyncio.gather(*tasks)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        cache.close()


def judge_jobs(
    scorers: TaskScorers, scorer: ModelScorer, run: CellRun, items: Iterable[ImageItem], final: Mapping[str, Answer]
) -> Iterator[tuple[ImageItem, tuple[str, str | None] | str, str]]:
    """Each answered labelled item with what its judge is asked (or why it cannot be: a scorer's error) and the
    inputs' digest."""
    preprocessing = run.preprocessing.key()
    for item in items:
        for scored, ok in scorers.scored_items([(item.id, item.label, item.fields)], final):
            if not ok:
                continue
            question = fill_template(run.task.prompt, item.fields)
            try:
                asked = scorer.ask(scored, question)
            except Exception as exc:  # noqa: BLE001 - a plugin's bug costs the item's judge score
                yield item, f"the judge's question: {type(exc).__name__}: {exc}", f"unasked:{item.id}"
                continue
            digest = inputs_digest(scorer.judge, asked.prompt, asked.system, item, preprocessing)
            yield item, (asked.prompt, asked.system), digest


async def _ask(
    key: str,
    scorer: ModelScorer,
    judge: Judge,
    item: ImageItem,
    prompt: tuple[str, str | None] | str,
    digest: str,
    run: CellRun,
    cache: ReadAhead,
    tools: _Tools,
) -> None:
    caller, recorder = tools.caller, tools.recorder
    where = Where(judge.provider, judge.model, None, None)
    marked: dict[str, Any] = {"scorer": key, "inputs": digest}
    if isinstance(prompt, str):  # the scorer could not word it
        now = caller.now()
        recorder.record(where, [item.id], now, now, 0, error={"kind": "item", "message": prompt}, judge=marked)
        return
    try:
        images = [await _prepared(cache, image, run) for image in item.images()] if judge.images else []
    except ItemError as exc:
        now = caller.now()
        error = {"kind": "item", "message": f"image: {exc}"}
        recorder.record(where, [item.id], now, now, 0, error=error, judge=marked)
        return
    text, system = prompt
    request = Request(
        model=judge.model,
        task=Task(f"judge:{key}", text, "number", system=system),
        prompt=text,
        images=tuple(images),
        params=dict(judge.model_params),
        max_output_tokens=judge.max_output_tokens,
    )

    def read(reply: str, ids: list[str]) -> list[Answer]:
        try:
            score = scorer.read(reply)
            if not isinstance(score, Score) or not 0.0 <= score.value <= 1.0:
                raise ValueError(f"gave {score!r}; a score is a Score in [0, 1]")
        except Exception as exc:  # noqa: BLE001 - an unreadable verdict costs the item's judge score
            return [Answer(i, error=f"unreadable verdict: {exc}") for i in ids]
        marked["why"] = score.why
        return [Answer(i, value=score.value) for i in ids]

    earlier = tools.replay.take(judge_key(digest)) if tools.replay is not None else None
    if earlier is not None:  # run --replay: asked alike before
        run_id = tools.replay.run_id  # type: ignore[union-attr]
        recorder.replayed(where, [item.id], caller.now(), earlier, run_id, judge_key(digest), judge=marked, parse=read)
        return
    backend = tools.providers[judge.provider]
    outcome = await caller.call(lambda: backend.generate(request))
    recorder.record(
        where,
        [item.id],
        outcome.start_s,
        outcome.end_s,
        outcome.attempts,
        result=outcome.error or outcome.value,  # type: ignore[arg-type]
        queue_s=outcome.queue_s,
        backoff_s=outcome.backoff_s,
        judge=marked,
        parse=read,
    )


async def _prepared(cache: ReadAhead, image: ImageItem, run: CellRun) -> PreparedImage:
    hit = cache.lookup(image, run.preprocessing)
    return hit if hit is not None else await cache.build(image, run.preprocessing)


__all__ = ["earlier_verdicts", "inputs_digest", "judge_cell"]
