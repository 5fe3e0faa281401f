"""Where a call's result becomes a kept ``Record``: cell, repeat and tier set at creation, parsed, priced, forwarded."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from visionbench.errors import ProviderError
from visionbench.run.answers import parse_answers
from visionbench.run.cellrun import CellRun
from visionbench.services.pricing import PriceTable
from visionbench.types import Answer, Record, Response, Usage


@dataclass(frozen=True)
class Where:
    """Which provider, model, size and tier a request went to, and whether through the batch API."""

    provider: str
    model: str
    max_side: int | None
    tier: int | None
    batch: bool = False


class Recorder:
    """Makes each of a cell run's records, complete when made, and hands it on (to the bundle and the tallies).

    None is kept here, so memory stays flat.
    """

    def __init__(self, run: CellRun, on_record: Callable[[Record], None], prices: PriceTable | None = None) -> None:
        self.run = run
        self.prices = prices
        self._on_record = on_record

    def record(self, *args: Any, **kwargs: Any) -> Record:
        """The one place a call's result (a reply, or the error that ended it) becomes a kept ``Record`` (see
        ``make``), handed on to the run."""
        record = self.make(*args, **kwargs)
        self._on_record(record)
        return record

    def make(
        self,
        where: Where,
        ids: list[str],
        start_s: float,
        end_s: float,
        attempts: int,
        *,
        result: Response | ProviderError | None = None,
        error: dict[str, Any] | None = None,
        queue_s: float = 0.0,
        backoff_s: float = 0.0,
        request_id: str | None = None,
        judge: dict[str, Any] | None = None,
        parse: Callable[[str, list[str]], list[Answer]] | None = None,
        request_key: str | None = None,
    ) -> Record:
        """A call's result (a reply, or the error that ended it) as a ``Record``, not yet handed on.

        A judge's request (``judge``: see ``Record.judge``) has its reply read by ``parse`` instead of as the task's
        answers."""
        run = self.run
        side = where.max_side if where.max_side is not None else run.preprocessing.max_side
        record = Record(
            run.cell_id,
            ids,
            where.provider,
            where.model,
            where.tier,
            start_s,
            end_s,
            attempts,
            side,
            repeat=run.repeat,
            batch=where.batch,
            queue_s=queue_s,
            backoff_s=backoff_s,
            judge=judge,
            request_key=request_key,
        )
        if isinstance(result, ProviderError):
            error = {"kind": result.kind, "message": str(result), "status": result.status}
        if error is not None:
            record.error = error
            message = error["message"] if error["kind"] == "item" else f"{error['kind']}: {error['message']}"
            record.answers = [Answer(i, error=message) for i in ids]
        elif isinstance(result, Response):
            record.raw_text = result.text
            record.usage = result.usage
            record.cost_usd = self.price(where.provider, where.model, result, batch=where.batch)
            if record.cost_usd is not None and result.cost_usd is None:
                record.thinking_cost_usd = self.thinking_cost(where, result, record.cost_usd)
            record.request_id = result.request_id or request_id
            record.model_version = result.model_version
            record.simulated = result.simulated
            record.answers = parse(result.text, ids) if parse else parse_answers(result.text, ids, run.task)
            if result.ttft_s is not None:
                record.ttft_s = result.ttft_s
                out = result.usage.output_tokens if result.usage is not None else None
                if out is not None and result.generation_s:
                    record.output_tokens_per_s = out / result.generation_s
        return record

    def replayed(
        self,
        where: Where,
        ids: list[str],
        now: float,
        earlier: dict[str, Any],
        run_id: str,
        key: str,
        **more: Any,
    ) -> Record:
        """A record answered from an earlier run's record ``earlier`` (``run --replay``), not sent: its reply read
        again by the task as it is now (a judge's by ``parse``, with ``judge``), its usage and cost carried over, no
        attempt and no time of its own."""
        usage = earlier.get("usage")
        reply = Response(
            earlier["raw_text"],
            Usage(**usage) if usage else None,
            model_version=earlier.get("model_version"),
            request_id=earlier.get("request_id"),
            cost_usd=earlier.get("cost_usd"),
            simulated=bool(earlier.get("simulated")),
        )
        record = self.make(
            where, ids, now, now, 0, result=reply, request_key=None if more.get("judge") else key, **more
        )
        record.replayed = run_id
        record.thinking_cost_usd = earlier.get("thinking_cost_usd")
        self._on_record(record)
        return record

    def record_each(
        self, where: Where, ids: list[str], start_s: float, end_s: float, attempts: int, error: ProviderError
    ) -> list[Answer]:
        """One failed record per item (a batch fails item by item, so a retry can pick any of them)."""
        return [a for i in ids for a in self.record(where, [i], start_s, end_s, attempts, result=error).answers]

    def thinking_cost(self, where: Where, response: Response, cost: float) -> float:
        """What the reply's thinking tokens cost: its cost less the cost of the same usage without them (so a
        tiered or batch price is weighed as the table weighs it)."""
        usage = response.usage
        if usage is None or not usage.thinking_tokens or self.prices is None:
            return 0.0
        without = self.prices.cost(
            where.model, replace(usage, thinking_tokens=0), batch=where.batch, provider=where.provider
        )
        return max(0.0, cost - without) if without is not None else 0.0

    def price(self, provider: str, model: str, response: Response, *, batch: bool = False) -> float | None:
        """The provider's own figure if it gave one (local models: 0), else the price table's."""
        if response.cost_usd is not None:
            return response.cost_usd
        if self.prices is None:
            return None
        return self.prices.cost(model, response.usage, batch=batch, provider=provider)


__all__ = ["Recorder", "Where"]
