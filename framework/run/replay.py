"""Answering requests from an earlier run's records instead of sending them (``run --replay RUN``).

A request is known by its content: the provider plugin, model, parameters, system and prompt text, response
schema, and each image as the cache knows it (its content hash and every preprocessing parameter). Each record
a run makes carries that key (``Record.request_key``); a later run given ``--replay RUN`` looks each of its
requests up there, and a match is answered with that record's reply (re-read by the task as it now is), usage and
cost, marked ``replayed``, instead of being sent. What does not match is sent as usual. A key that several
requests share (repeats, identical cells) is answered by its records in turn, each once; when they run out, the
request is sent.

Replayed records are not requests of this run: they are left out of its latency, throughput and their tests, and
out of its spend (the budget), while its cost figures still count them, as what the cell costs.
"""

from __future__ import annotations

import hashlib
import json
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from visionbench.errors import ConfigError, VisionbenchError
from visionbench.results.model import Bundle
from visionbench.run.config import Experiment
from visionbench.types import Request

#: What a replayed record takes of the one it replays.
KEPT = ("raw_text", "usage", "cost_usd", "thinking_cost_usd", "model_version", "request_id", "simulated")


def request_key(plugin: str, request: Request, image_keys: list[str]) -> str:
    """The content key of ``request`` sent through ``plugin``: everything that shapes what the service is asked."""
    key = hashlib.sha256(_settings(plugin, request))
    varied = [request.task.system, request.prompt, image_keys, request.images_per_item]
    key.update(json.dumps(varied, ensure_ascii=False).encode())
    return key.hexdigest()[:32]


#: The JSON of what a cell's requests share (plugin, model, params, output limit, schema), by the objects' ids: a
#: cell's requests share its params and schema objects, so it is written once, not per request.
_shared: dict[tuple[Any, ...], tuple[Any, Any, bytes]] = {}


def _settings(plugin: str, request: Request) -> bytes:
    key = (plugin, request.model, id(request.params), request.max_output_tokens, id(request.response_schema))
    held = _shared.get(key)
    if held is not None and held[0] is request.params and held[1] is request.response_schema:
        return held[2]
    described = [plugin, request.model, request.params, request.max_output_tokens, request.response_schema]
    text = json.dumps(described, sort_keys=True, default=repr, ensure_ascii=False).encode() + b"\0"
    if len(_shared) > 256:
        _shared.clear()
    _shared[key] = (request.params, request.response_schema, text)
    return text


def judge_key(inputs: str) -> str:
    """A judge's request by its inputs' digest (``run.judging.inputs_digest``: its endpoint, model, params, words
    and the item's images as prepared)."""
    return f"judge:{inputs}"


@dataclass
class Replay:
    """An earlier run's answered requests by content key, each to be used once."""

    run_id: str
    path: str
    simulated: bool
    _by_key: dict[str, deque[dict[str, Any]]] = field(default_factory=dict)
    #: Requests answered from the run so far.
    used: int = 0

    @classmethod
    def of(cls, bundle: Bundle, path: str) -> Replay:
        """The replayable records of ``bundle``: answered without error, keyed (a judge's by its inputs' digest)."""
        replay = cls(bundle.run_id, path, bool(bundle.get("simulated")))
        keyed = 0
        for record in bundle.records:
            judge = record.get("judge")
            key = judge_key(judge["inputs"]) if judge else record.get("request_key")
            if key is None:
                continue
            keyed += 1
            if record.get("error") is None and record.get("raw_text") is not None:
                kept = {name: record.get(name) for name in KEPT}
                replay._by_key.setdefault(key, deque()).append(kept)
        if not keyed and len(bundle.records):
            raise ConfigError(
                f"{path}: run {bundle.run_id} has no request keys (it was made by an older visionbench): "
                "nothing in it can be matched to replay"
            )
        return replay

    def __len__(self) -> int:
        """Records left to replay."""
        return sum(len(queue) for queue in self._by_key.values())

    def take(self, key: str) -> dict[str, Any] | None:
        """The next unused record answering the request keyed ``key`` (None: none left: send it)."""
        queue = self._by_key.get(key)
        if not queue:
            return None
        self.used += 1
        return queue.popleft()

    def check(self, simulated: bool, where: str) -> None:
        """Refuse to stand simulated answers in for real ones, or real ones for simulated ones."""
        if self.simulated != simulated:
            what = "an emulator's (simulated)" if self.simulated else "the real services'"
            now = "simulated" if simulated else "real"
            raise ConfigError(
                f"{where}: replay: run {self.run_id} has {what} answers and this run is {now}: one cannot stand "
                "in for the other"
            )


def load_replay(experiment: Experiment, path: Path | None = None) -> Replay | None:
    """The run to replay from: ``path`` (``--replay``), else the config's ``replay:`` (relative to the config);
    None when neither names one. A run that is not there, or not a bundle, is a ConfigError naming it."""
    from visionbench.results.bundle import load

    if path is None and experiment.spec.replay is None:
        return None
    where = Path(path) if path is not None else experiment.source.parent / str(experiment.spec.replay)
    try:
        bundle = load(where, lazy=True)
    except VisionbenchError as exc:
        raise ConfigError(f"replay: {exc}") from None
    return Replay.of(bundle, str(where.resolve()))


__all__ = ["Replay", "judge_key", "load_replay", "request_key"]
