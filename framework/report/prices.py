"""The prices a run used, per model, in dollars per million tokens, and the share of its cost that was thinking.

A cost figure is only readable beside its unit prices: a model can look cheap per image because its price is
low, or because it answered in fewer tokens; and a thinking model's tokens can be most of its bill.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from typing import Any

from visionbench.report.tables import Column, Sheet
from visionbench.results.model import Bundle


def thinking_share(entries: list[Any]) -> float | None:
    """What share of the cost of ``entries`` (cell entries) thinking tokens were (None: cost or share unknown)."""
    cost = thinking = 0.0
    for entry in entries:
        summary = entry.summary
        spent, thought = summary.metric("cost_usd"), summary.get("thinking_cost_usd")
        if spent is None or thought is None:
            return None
        cost, thinking = cost + spent, thinking + thought
    return thinking / cost if cost > 0 else None


def prices_sheet(bundle: Mapping[str, Any]) -> Sheet | None:
    """One row per provider/model of the run: input and output price per 1M tokens (with the tier above a
    number of input tokens, where the price has one), the batch price, and thinking's share of its cost."""
    bundle = Bundle.of(bundle)
    used = bundle.pricing.used if "pricing" in bundle else {}
    if not used or not any((e.summary.metric("items") or 0) > (e.summary.metric("errors") or 0) for e in bundle.cells):
        return None  # no prices, or nothing answered: nothing was paid for
    by_model: dict[str, list[Any]] = {}
    endpoints = bundle.get("endpoints") or {}
    for entry in bundle.cells:
        # the price table names a model by its endpoint's plugin (an endpoint "local-vllm" of plugin "openai")
        endpoint = endpoints.get(entry.provider)
        plugin = endpoint.get("plugin", entry.provider) if isinstance(endpoint, Mapping) else entry.provider
        by_model.setdefault(f"{plugin}/{entry.model}", []).append(entry)
    rows = []
    models = [name.partition("/")[2] for name in used]
    unique = len(set(models)) == len(models)  # then the model names alone are shorter and as clear
    for name, price in used.items():
        cells = by_model.get(name, [])
        share = thinking_share(cells) if cells else None
        think = "-" if share is None else f"{share:.0%}"
        shown = name.partition("/")[2] if unique else name
        if not price:  # no row: the provider gave each reply's cost itself (a local model's $0), or none
            own = any(e.summary.metric("cost_usd") is not None for e in cells)
            rows.append([shown, *(["the provider's own"] * 2 if own else ["unpriced"] * 2), "-", think])
            continue
        standard_in, standard_out, batch = _rates(price)
        rows.append([shown, standard_in, standard_out, batch, think])
    columns = [
        Column("model", numeric=False, key=True),
        Column("input $/1M", keep=0),
        Column("output $/1M", keep=0),
        Column("batch", keep=1),
        Column("think %", keep=0),
    ]
    notes = [
        "thinking tokens are billed as output; (>100k: $x) is the price when a request has more than 100k input "
        "tokens; think %: the share of the model's cost in this run that went to thinking"
    ]
    return Sheet("Prices used (USD per 1M tokens)", columns, rows, notes)


def _rates(price: Mapping[str, Any]) -> tuple[str, str, str]:
    """(input, output, batch) as text, from a price as the bundle records it (genai-prices' or a config row)."""
    if "standard" in price:  # genai-prices
        standard = price["standard"]
        batch = price.get("batch")
        if isinstance(batch, str):  # "standard x 0.5"
            factor = batch.rpartition("x")[2].strip()
            batch_text = f"x{_number(factor)}"
        elif isinstance(batch, Mapping):
            batch_text = _ratio(batch.get("input_mtok"), standard.get("input_mtok"))
        else:
            batch_text = "-"
        return _tiered(standard.get("input_mtok")), _tiered(standard.get("output_mtok")), batch_text
    threshold = price.get("long_context_threshold")

    def with_long(key: str) -> str:
        long = price.get(f"{key}_long")
        return _money(price.get(key)) + (f" (>{_tokens(threshold)}: {_money(long)})" if long is not None else "")

    input_text, output_text = with_long("input"), with_long("output")
    return input_text, output_text, f"x{_number(price.get('batch_factor', 0.5))}"


def _tiered(rate: Any) -> str:
    if isinstance(rate, Mapping):
        tiers = "".join(f" (>{_tokens(start)}: {_money(value)})" for start, value in rate.get("tiers", []))
        return _money(rate.get("base")) + tiers
    return _money(rate)


def _ratio(batch: Any, standard: Any) -> str:
    base = lambda r: r.get("base") if isinstance(r, Mapping) else r  # noqa: E731
    try:
        return f"x{_number(Decimal(str(base(batch))) / Decimal(str(base(standard))))}"
    except (InvalidOperation, ZeroDivisionError, TypeError):
        return "-"


def _money(value: Any) -> str:
    if value is None:
        return "-"
    try:
        return f"${Decimal(str(value)):,.2f}" if Decimal(str(value)) >= Decimal("0.01") else f"${Decimal(str(value))}"
    except InvalidOperation:
        return str(value)


def _tokens(count: Any) -> str:
    """A token count as a tier's start: 100k, 1.5M."""
    n = int(count)
    if n >= 1_000_000:
        return f"{n / 1_000_000:g}M"
    return f"{n / 1000:g}k" if n >= 1000 else str(n)


def _number(value: Any) -> str:
    try:
        return f"{float(value):g}"
    except (TypeError, ValueError):
        return str(value)


__all__ = ["prices_sheet", "thinking_share"]
