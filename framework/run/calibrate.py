"""Emulator profiles fitted to runs' records (``visionbench calibrate``): each model's latency, thinking, faults
and batch turnaround, as a profiles file the emulator loads.

What a bundle shows, per model (the cells' records, not an LLM judge's; times in modelled seconds, wall seconds
times ``Bundle.to_modelled``, so a run made against the emulator calibrates as the service it imitated):

- service time: of a request that succeeded at its first attempt, not through a batch API, its latency
  (``end_s - start_s`` less ``backoff_s``, which is 0 at one attempt); none from a run emulated at time scale 0
  (instant: its times are the harness's own). Client and network time are part of it, as they are of what a
  user waits for. Fitted as ``base + per input token x input + (output + thinking) / rate``
  (non-negative least squares, weighted by 1 / the time: the emulator's noise is relative), as the emulator
  computes it; jitter is the spread (sd) of the log of measured / fitted time. Requests over ``OUTLIER_SD`` sd off
  (that sd from the median absolute deviation, which a few stalls do not move) are left out of both: a stall of
  the network or the client is not the service's spread.
- tokens: ``usage`` as the service reported it; a count it did not report is taken as 0.
- thinking: by images and, where labels are numbers (counting), by the people they say, as the profile's curve
  (``Latency.expected_thinking``). Requests of one size of image group identify only thinking per image; two
  sizes the fixed part too; three and more the extra per additional image as well.
- TTFT and output rate as streamed: only from streamed records (``ttft_s``, ``output_tokens_per_s``).
- faults, per attempt: a record keeps only its last attempt's error (kind, status) and how many attempts it took.
  A failed record's attempts are all counted as its final error; a successful record's earlier attempts failed
  with errors not recorded, shared out as the recorded ones are (all 5xx when none was recorded). 429s are
  reported, not written as faults: the emulator answers 429 from its rate limits. Retry-after values are not
  recorded in a bundle, so none is fitted.
- batch turnaround: a batch record's ``end_s - start_s`` (submission to result), the median.

Not observable and left at the emulator's defaults: capacity, rate limits, the answers' error model.
"""

from __future__ import annotations

import math
import statistics
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from scipy.optimize import least_squares, nnls

from visionbench.errors import InputError
from visionbench.results.bundle import load as load_bundle
from visionbench.results.model import Bundle

#: Fewest usable requests a model's latency is fitted from.
MIN_REQUESTS = 3
#: Requests whose time is this many standard deviations (of the log of measured / fitted) off the fit are left out
#: of it: a stall of the network or the client, not the service's spread.
OUTLIER_SD = 4.0
#: The emulator's default ``Latency.thinking_person_cap``, which the fit assumes (a few hundred requests do not
#: identify it; tests/test_calibrate.py checks it is the emulator's). This module does not import the emulator:
#: ``run.emulated`` is the one module of ``run`` that does.
PERSON_CAP = 300.0


@dataclass
class Run:
    """One bundle to calibrate from."""

    path: str
    bundle: Bundle


@dataclass
class Fit:
    """One model's fitted figures (modelled seconds)."""

    model: str
    providers: list[str]
    #: Requests the latency was fitted from (0: too few, say a model only sent through a batch API; the figures
    #: are then None), and the fit: seconds, seconds per input token, output tokens/s (None also when the tokens
    #: did not explain the time: the profile then leaves the emulator's default), R², residual sd, jitter.
    n: int = 0
    base_s: float | None = None
    per_input_token_s: float | None = None
    output_tokens_per_s: float | None = None
    r2: float | None = None
    residual_sd_s: float | None = None
    jitter: float | None = None
    #: Thinking tokens: per request whatever its images, per image, per person (numeric labels), extra share per
    #: additional image, relative spread; and the plain means per request and per image.
    thinking_tokens: float = 0.0
    thinking_per_image: float = 0.0
    thinking_per_person: float = 0.0
    multi_image_thinking: float = 0.0
    thinking_sd: float = 0.0
    thinking_mean: float = 0.0
    thinking_mean_per_image: float = 0.0
    #: Streamed requests: their number, TTFT = base + per input token (+ thinking / rate), median output rate.
    streamed: int = 0
    ttft_base_s: float | None = None
    ttft_per_input_token_s: float | None = None
    stream_tokens_per_s: float | None = None
    #: Per attempt: attempts, 429s and 5xx (``module docstring``), 5xx by status.
    attempts: int = 0
    rate_limited: float = 0.0
    server_errors: float = 0.0
    by_status: dict[int, float] = field(default_factory=dict)
    batch_n: int = 0
    batch_turnaround_s: float | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def rate_429(self) -> float:
        return self.rate_limited / self.attempts if self.attempts else 0.0

    @property
    def rate_5xx(self) -> float:
        return self.server_errors / self.attempts if self.attempts else 0.0


@dataclass
class Calibration:
    """Each model's fit, and the models left out, each with why."""

    fits: list[Fit]
    left_out: list[str] = field(default_factory=list)


def load_runs(paths: Sequence[str | Path]) -> list[Run]:
    """The bundles at ``paths`` (run folders or bundle.json files)."""
    return [Run(str(path), load_bundle(path, lazy=True)) for path in paths]


def difficulty(people: float) -> float:
    """``Latency.difficulty`` at the default cap."""
    return PERSON_CAP * (1.0 - math.exp(-max(0.0, people) / PERSON_CAP))


@dataclass
class _Request:
    service_s: float
    input_tokens: float
    output_tokens: float
    thinking_tokens: float | None
    #: Its items: an image each, or an item of several images counted once, as the emulator's thinking counts them.
    images: int
    difficulty: float | None  # sum of d(people) over its items; None: an item without a numeric label
    ttft_s: float | None
    tokens_per_s: float | None
    #: False for a run emulated at time scale 0 (instant): its times are the harness's, nothing modelled.
    timed: bool = True


def _number(value: Any) -> float | None:
    if isinstance(value, list) and value:
        value = value[0]
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


@dataclass
class _Found:
    """One run's records by model: the usable requests (succeeded at one attempt, no batch, no judge), every
    record of the cells (no judge) and the turnarounds of the batch requests that succeeded (modelled seconds)."""

    usable: dict[str, list[_Request]] = field(default_factory=lambda: defaultdict(list))
    records: dict[str, list[dict[str, Any]]] = field(default_factory=lambda: defaultdict(list))
    batch_s: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))


def _requests(run: Run) -> _Found:
    """What ``run`` has to calibrate from (``_Found``)."""
    bundle = run.bundle
    scale = bundle.to_modelled
    timed = not (bundle.get("simulated") and bundle.numeric_scale == 0)
    items = {e.id: e for e in bundle.item_entries}
    found = _Found()
    for r in bundle.records:
        if r.get("judge") is not None:
            continue
        found.records[r["model"]].append(r)
        if r.get("batch") and not r.get("error") and timed:
            found.batch_s[r["model"]].append((r["end_s"] - r["start_s"]) * scale)
        usage = r.get("usage") or {}
        if r.get("error") or r.get("batch") or r.get("attempts") != 1 or usage.get("input_tokens") is None:
            continue
        entries = [items.get(i) for i in r["item_ids"]]
        people = [_number(e.label) if e is not None else None for e in entries]
        ttft, rate = r.get("ttft_s"), r.get("output_tokens_per_s")
        found.usable[r["model"]].append(
            _Request(
                service_s=(r["end_s"] - r["start_s"] - (r.get("backoff_s") or 0.0)) * scale,
                input_tokens=usage["input_tokens"],
                output_tokens=usage.get("output_tokens") or 0,
                thinking_tokens=usage.get("thinking_tokens"),
                images=len(entries),
                difficulty=None if None in people else sum(difficulty(p or 0.0) for p in people),
                ttft_s=ttft * scale if ttft is not None else None,
                tokens_per_s=rate / scale if rate is not None else None,
                timed=timed,
            )
        )
    return found


def calibrate(runs: Sequence[Run]) -> Calibration:
    """Each model's fit over every run's records. A run with no record, or with no request that succeeded, is an
    InputError naming it; so is a set of runs from which no model could be fitted."""
    total = _Found()
    providers: dict[str, set[str]] = defaultdict(set)
    for run in runs:
        if not run.bundle.records:
            raise InputError(f"{run.path}: run {run.bundle.run_id} has no records to calibrate from")
        found = _requests(run)
        if not any(found.usable.values()) and not any(found.batch_s.values()):
            count = sum(len(v) for v in found.records.values())
            raise InputError(
                f"{run.path}: run {run.bundle.run_id} has no request that succeeded at its first attempt with its "
                f"tokens reported ({count} records, none judged): nothing to fit"
            )
        for model, recs in found.records.items():
            total.usable[model] += found.usable.get(model, [])
            total.records[model] += recs
            total.batch_s[model] += found.batch_s.get(model, [])
            providers[model].update(r["provider"] for r in recs)
    fits, left_out = [], []
    for model in sorted(total.records):
        reqs = total.usable.get(model, [])
        timed = [r for r in reqs if r.timed]
        if len(timed) < MIN_REQUESTS and not total.batch_s.get(model):
            left_out.append(
                f"{model}: {len(timed)} timed requests answered at their first attempt with their tokens (fewer "
                f"than {MIN_REQUESTS}) and no batch request answered"
            )
            continue
        fit = Fit(model, sorted(providers[model]))
        if len(timed) >= MIN_REQUESTS:
            _latency(fit, timed)
            _streamed(fit, timed)
        else:
            fit.notes.append(f"{len(timed)} timed requests answered at their first attempt, not batched: no latency")
        if len(timed) < len(reqs):
            fit.notes.append(f"{len(reqs) - len(timed)} requests emulated at time scale 0 (instant): times not fitted")
        if reqs:
            _thinking(fit, reqs)
        _faults(fit, total.records[model])
        _batch(fit, total.batch_s.get(model, []))
        fits.append(fit)
    if not fits:
        names = ", ".join(f"{run.path} ({run.bundle.run_id})" for run in runs)
        raise InputError(
            f"{names}: no model has {MIN_REQUESTS} or more requests that succeeded at their first attempt with "
            "their tokens reported, or a batch request that succeeded: nothing to fit"
        )
    return Calibration(fits, left_out)


def _nnls(x: np.ndarray, y: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
    """Non-negative least squares of ``y`` on the columns of ``x`` (rows weighted), columns that do not vary
    among the rows (other than the first, the constant) left at 0."""
    keep = [0] + [j for j in range(1, x.shape[1]) if np.ptp(x[:, j]) > 0]
    w = np.ones(len(y)) if weights is None else weights
    coef = np.zeros(x.shape[1])
    coef[keep] = nnls(x[:, keep] * w[:, None], y * w)[0]
    return coef


def _robust_fit(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """(coefficients, the rows kept, sd of the log of measured / fitted over them) of ``y`` on ``x``: non-negative,
    each row weighed by 1 / its fitted value (the noise is relative), rows over ``OUTLIER_SD`` robust sd (from the
    median absolute deviation) off left out."""
    keep = np.ones(len(y), dtype=bool)
    for _ in range(3):
        coef = _nnls(x[keep], y[keep])
        for _ in range(2):
            fitted = x[keep] @ coef
            coef = _nnls(x[keep], y[keep], 1.0 / np.maximum(fitted, 1e-3 * max(float(y.mean()), 1e-9)))
        logs = np.log(np.maximum(y, 1e-9) / np.maximum(x @ coef, 1e-9))
        sigma = _robust_sd(logs[keep])
        trimmed = np.abs(logs - np.median(logs[keep])) <= OUTLIER_SD * sigma if sigma > 0 else keep
        if (trimmed == keep).all():
            break
        keep = trimmed
    logs = np.log(np.maximum(y, 1e-9) / np.maximum(x @ coef, 1e-9))[keep]
    return coef, keep, float(logs.std(ddof=min(x.shape[1], len(logs) - 1))) if len(logs) > 1 else 0.0


def _latency(fit: Fit, reqs: list[_Request]) -> None:
    y = np.array([r.service_s for r in reqs])
    x = np.array([[1.0, r.input_tokens, r.output_tokens + (r.thinking_tokens or 0)] for r in reqs])
    coef, keep, sigma = _robust_fit(x, y)
    fitted = x @ coef
    residual = (y - fitted)[keep]
    total = float(((y[keep] - y[keep].mean()) ** 2).sum())
    r2 = 1.0 - float((residual**2).sum()) / total if total > 0 else 1.0
    notes = fit.notes
    if not keep.all():
        notes.append(f"{int((~keep).sum())} of {len(y)} requests over {OUTLIER_SD} sd off the fit left out")
    if np.ptp(x[:, 1]) == 0:
        notes.append("input tokens did not vary: their cost is in the base")
    rate = 1.0 / coef[2] if coef[2] > 0 else None
    if rate is None:
        notes.append("output and thinking tokens did not explain the time: output rate left at the default")
    fit.n, fit.base_s, fit.per_input_token_s, fit.output_tokens_per_s = int(keep.sum()), *map(float, coef[:2]), rate
    fit.r2, fit.residual_sd_s = r2, float(residual.std(ddof=min(3, len(residual) - 1)))
    fit.jitter = math.sqrt(math.exp(sigma**2) - 1.0)


def _robust_sd(values: np.ndarray) -> float:
    """The standard deviation of normal ``values`` from their median absolute deviation (a few far off do not
    move it)."""
    return float(1.4826 * np.median(np.abs(values - np.median(values)))) if len(values) > 3 else 0.0


def _thinking(fit: Fit, reqs: list[_Request]) -> None:
    """Thinking tokens as ``Latency.expected_thinking`` gives them (see the module docstring)."""
    rows = [r for r in reqs if r.thinking_tokens is not None]
    if not rows:
        fit.notes.append("thinking tokens not reported: none modelled")
        return
    y = np.array([float(r.thinking_tokens or 0) for r in rows])
    n = np.array([float(r.images) for r in rows])
    people = all(r.difficulty is not None for r in rows)
    d = np.array([r.difficulty or 0.0 for r in rows]) if people else np.zeros(len(rows))
    fit.thinking_mean = float(y.mean())
    fit.thinking_mean_per_image = float((y / n).mean())
    if not y.any():
        return
    sizes = len(set(n.tolist()))
    if sizes >= 3:
        start = _nnls(np.column_stack([np.ones(len(y)), n, d]), y)
        found = least_squares(
            lambda p: (p[0] + p[1] * n + p[2] * d) * (1 + p[3] * (n - 1)) - y,
            [*start, 0.0],
            bounds=(0, np.inf),
        ).x
        t0, ti, k, m = (float(v) for v in found)
    elif sizes == 2:
        t0, ti, k = (float(v) for v in _nnls(np.column_stack([np.ones(len(y)), n, d]), y))
        m = 0.0
    else:  # one size: thinking per image only (the fixed part cannot be told from it)
        ti, k = (float(v) for v in _nnls(np.column_stack([n, d]), y))
        t0, m = 0.0, 0.0
    expected = (t0 + ti * n + k * d) * (1 + m * (n - 1))
    ok = expected > 0
    fit.thinking_tokens, fit.thinking_per_image, fit.thinking_per_person, fit.multi_image_thinking = t0, ti, k, m
    fit.thinking_sd = min(1.0, float((y[ok] / expected[ok]).std())) if ok.sum() > 1 else 0.0
    if not people:
        fit.notes.append("labels are not numbers: thinking by people not fitted")


def _streamed(fit: Fit, reqs: list[_Request]) -> None:
    rows = [r for r in reqs if r.ttft_s is not None]
    fit.streamed = len(rows)
    if len(rows) < MIN_REQUESTS:
        return
    y = np.array([r.ttft_s for r in rows], dtype=float)
    x = np.array([[1.0, r.input_tokens, r.thinking_tokens or 0] for r in rows])
    coef = _robust_fit(x, y)[0]
    fit.ttft_base_s, fit.ttft_per_input_token_s = float(coef[0]), float(coef[1])
    rates = [r.tokens_per_s for r in rows if r.tokens_per_s]
    fit.stream_tokens_per_s = statistics.median(rates) if rates else None


def _is_5xx(error: dict[str, Any]) -> bool:
    status = error.get("status")
    return isinstance(status, int) and 500 <= status < 600


def _faults(fit: Fit, records: Iterable[dict[str, Any]]) -> None:
    """429 and 5xx per attempt (see the module docstring for what a record shows)."""
    attempts = 0
    unrecorded = 0
    limited = 0.0
    statuses: dict[int, float] = defaultdict(float)
    for r in records:
        if r.get("batch") or not r.get("attempts"):
            continue
        attempts += r["attempts"]
        error = r.get("error")
        if error is None:
            unrecorded += r["attempts"] - 1
        elif error.get("kind") == "rate_limited" or error.get("status") == 429:
            limited += r["attempts"]
        elif _is_5xx(error):
            statuses[error["status"]] += r["attempts"]
    known = limited + sum(statuses.values())
    if unrecorded:
        if known:
            share = unrecorded / known
            limited *= 1 + share
            statuses = defaultdict(float, {s: v * (1 + share) for s, v in statuses.items()})
        else:
            statuses[503] += unrecorded
            fit.notes.append(f"{unrecorded} retried attempts failed with errors not recorded: counted as 503")
    fit.attempts, fit.rate_limited = attempts, limited
    fit.by_status, fit.server_errors = dict(statuses), sum(statuses.values())


def _batch(fit: Fit, times: list[float]) -> None:
    fit.batch_n = len(times)
    fit.batch_turnaround_s = statistics.median(times) if times else None


def _sig(value: float, digits: int = 4) -> float:
    """``value`` to ``digits`` significant digits (a profile reads better without float noise)."""
    return float(f"{value:.{digits}g}") if value else 0.0


def model_profile(fit: Fit) -> dict[str, Any]:
    """The profile entry of one fitted model (what was not observed is left out: the emulator's defaults)."""
    faults: dict[str, float] = defaultdict(float)
    for status, count in fit.by_status.items():
        faults[{500: "http_500", 529: "http_529"}.get(status, "http_503")] += count / fit.attempts
    profile: dict[str, Any] = {}
    if fit.base_s is not None:
        profile["latency"] = {
            "base_s": _sig(fit.base_s),
            "per_input_token_s": _sig(fit.per_input_token_s or 0.0),
            **({"output_tokens_per_s": _sig(fit.output_tokens_per_s)} if fit.output_tokens_per_s else {}),
            "thinking_tokens": round(fit.thinking_tokens),
            "thinking_per_image": _sig(fit.thinking_per_image),
            "thinking_per_person": _sig(fit.thinking_per_person),
            "multi_image_thinking": _sig(fit.multi_image_thinking),
            "thinking_sd": _sig(min(1.0, fit.thinking_sd), 3),
            "jitter": _sig(min(2.0, fit.jitter or 0.0), 3),
        }
    if faults:
        profile["faults"] = {key: _sig(value, 3) for key, value in sorted(faults.items())}
    if fit.batch_turnaround_s is not None:
        profile["batch"] = {"turnaround_s": _sig(fit.batch_turnaround_s)}
    return profile


def _percent(value: float) -> str:
    return f"{100 * value:.1f}%"


def fit_lines(fit: Fit) -> list[str]:
    """One model's fit figures in words (the profile's header comment)."""
    fitted = (
        f"service time over {fit.n} requests: R² {fit.r2:.3f}, residual sd {fit.residual_sd_s:.3g} s, jitter "
        f"{fit.jitter:.3g}"
        if fit.r2 is not None and fit.residual_sd_s is not None and fit.jitter is not None
        else "no latency fitted"
    )
    lines = [
        f"{fit.model} ({', '.join(fit.providers)}): {fitted}",
        f"  thinking: mean {fit.thinking_mean:.0f} per request, {fit.thinking_mean_per_image:.0f} per image",
        f"  faults: 429 {_percent(fit.rate_429)} and 5xx {_percent(fit.rate_5xx)} of {fit.attempts} attempts",
    ]
    if fit.ttft_base_s is not None:
        rate = f", output {fit.stream_tokens_per_s:.3g} tokens/s" if fit.stream_tokens_per_s else ""
        per_1k = 1000 * (fit.ttft_per_input_token_s or 0)
        ttft = f"TTFT {fit.ttft_base_s:.3g} s + {per_1k:.3g} s per 1k input tokens"
        lines.append(f"  streamed ({fit.streamed}): {ttft}{rate}")
    if fit.batch_turnaround_s is not None:
        lines.append(f"  batch turnaround: median {fit.batch_turnaround_s:.4g} s of {fit.batch_n} requests")
    lines += [f"  note: {note}" for note in fit.notes]
    return lines


def calibrated_from(runs: Sequence[Run], fits: Sequence[Fit]) -> list[dict[str, Any]]:
    """The runs a profile was fitted to, as ``EmulatorProfiles.calibrated_from`` holds them."""
    fitted = {fit.model for fit in fits}
    return [
        {
            "run_id": run.bundle.run_id,
            "path": str(Path(run.path).resolve()),
            "models": sorted({r["model"] for r in run.bundle.records if r["model"] in fitted}),
            "simulated": bool(run.bundle.get("simulated")),
        }
        for run in runs
    ]


def profiles_text(runs: Sequence[Run], calibration: Calibration, *, at: datetime | None = None) -> str:
    """The profiles file: a header naming the runs and each model's fit (and those left out), then the profiles."""
    fits = calibration.fits
    when = (at or datetime.now(UTC)).strftime("%Y-%m-%d %H:%M UTC")
    head = [f"Emulator profiles fitted by `visionbench calibrate` on {when} to the records of:"]
    for run in runs:
        simulated = " (simulated)" if run.bundle.get("simulated") else ""
        head.append(f"  run {run.bundle.run_id}{simulated}: {Path(run.path).resolve()}")
    head += [
        "Modelled seconds: service time = base_s + per_input_token_s x input tokens + (output + thinking tokens) /",
        "output_tokens_per_s, times jitter (visionbench.run.calibrate says what a bundle shows and what not).",
        "Not observed, left at the emulator's defaults: capacity, rate limits, the answers' error model.",
        "",
    ]
    for fit in fits:
        head += fit_lines(fit)
    head += [f"left out: {why}" for why in calibration.left_out]
    data = {
        "seed": 0,
        "time_scale": 1.0,
        "calibrated_from": calibrated_from(runs, fits),
        "models": {fit.model: model_profile(fit) for fit in fits},
    }
    body = yaml.safe_dump(data, sort_keys=False, allow_unicode=True)
    text = "".join(f"# {line}".rstrip() + "\n" for line in head) + body
    return text


#: The terminal table's columns: heading, width, figure.
COLUMNS: tuple[tuple[str, int], ...] = (
    ("model", 0),
    ("n", 5),
    ("base s", 7),
    ("s/1k in", 8),
    ("out tok/s", 9),
    ("think/req", 9),
    ("think/img", 9),
    ("jitter", 6),
    ("R²", 6),
)


def _shown(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def table(fits: Sequence[Fit]) -> str:
    """Each model's fit, one row each, as the terminal shows it."""
    rows = [
        [
            fit.model,
            str(fit.n),
            _shown(fit.base_s, ".3g"),
            _shown(None if fit.per_input_token_s is None else 1000 * fit.per_input_token_s, ".3g"),
            _shown(fit.output_tokens_per_s, ".3g"),
            f"{fit.thinking_mean:.0f}",
            f"{fit.thinking_mean_per_image:.0f}",
            _shown(fit.jitter, ".3f"),
            _shown(fit.r2, ".3f"),
        ]
        for fit in fits
    ]
    width = max([len("model")] + [len(r[0]) for r in rows])
    widths = [width] + [w for _, w in COLUMNS[1:]]
    lines = ["  ".join(h.ljust(w) if i == 0 else h.rjust(w) for i, ((h, _), w) in enumerate(zip(COLUMNS, widths)))]
    for row in rows:
        lines.append("  ".join(v.ljust(w) if i == 0 else v.rjust(w) for i, (v, w) in enumerate(zip(row, widths))))
    return "\n".join(lines)
