"""The ``visionbench`` command: run, validate, report, and list plugins."""

from __future__ import annotations

import argparse
import asyncio
import errno
import gc
import logging
import math
import os
import signal
import sys
import tempfile
import threading
import traceback
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, TypeVar

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from visionbench import __version__
from visionbench.data.dataset import default_cache_dir
from visionbench.errors import BudgetExceeded, ConfigError, InputError, VisionbenchError
from visionbench.report.terminal import FORMATS, next_steps, print_report
from visionbench.results.bundle import load as load_bundle
from visionbench.results.model import Bundle
from visionbench.run.plugins import default_registry
from visionbench.secrets import RedactingFilter, redact

#: Exit codes: 2 for bad input (config, dataset, bundle, folder...), 3 over budget, 70 (EX_SOFTWARE) for a bug.
EXIT_INPUT, EXIT_BUDGET, EXIT_BUG, EXIT_INTERRUPTED = 2, 3, 70, 130
DEBUG_ENV = "VISIONBENCH_DEBUG"
T = TypeVar("T")


def output_width() -> int | None:
    """COLUMNS when set; else the terminal's width when stdout is one (None: rich measures it); else 80.
    (Rich alone would measure the terminal on stdin even when stdout is piped to a file.)"""
    columns = os.environ.get("COLUMNS", "")
    if columns.isdigit() and int(columns) > 0:
        return int(columns)
    return None if sys.stdout.isatty() else 80


# Tables are fitted to this width, numbers never cut.
console = Console(width=output_width())
err_console = Console(stderr=True)


#: Exit codes: 0 complete; 2 bad input (config, dataset, bundle, arguments); 3 over budget (--max-cost);
#: 4 the run finished but some items failed (resume with --retry-errors); 130 interrupted (Ctrl-C).
EXIT_INPUT, EXIT_BUDGET, EXIT_INCOMPLETE, EXIT_INTERRUPTED = 2, 3, 4, 130


def budget_usd(text: str) -> float:
    """``--max-cost``: a positive, finite number of dollars (anything else is a usage error, never 'no budget')."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of dollars") from None
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"{text!r}: the budget must be a positive, finite number of dollars")
    return value


def _run_to_the_end(coro: Coroutine[Any, Any, T]) -> T:
    """``asyncio.run``, where the first Ctrl-C cancels the run (it writes its bundle as interrupted) and
    later ones, while that bundle is written and worker threads stop, are noted rather than raised."""
    task: asyncio.Task | None = None
    pressed = 0

    async def main() -> T:
        nonlocal task
        task = asyncio.current_task()
        return await coro

    def on_sigint(signum: int, frame: object) -> None:
        nonlocal pressed
        pressed += 1
        if pressed == 1 and task is not None:
            runner.get_loop().call_soon_threadsafe(task.cancel)
        elif pressed == 2:
            print("still writing the bundle of the interrupted run; it will be kept", file=sys.stderr)

    in_main_thread = threading.current_thread() is threading.main_thread()  # only there can signals be set
    previous = signal.signal(signal.SIGINT, on_sigint) if in_main_thread else None  # before the Runner: it keeps ours
    try:
        with asyncio.Runner() as runner:
            try:
                return runner.run(main())
            except asyncio.CancelledError:
                raise KeyboardInterrupt from None
    finally:
        if previous is not None:
            signal.signal(signal.SIGINT, previous)


def _writable_folder(path: Path, what: str) -> None:
    """Create ``path`` if need be and check a file can be written in it, before a run writes anything."""
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=path):
            pass
    except OSError as exc:
        raise InputError(f"{path}: the {what} cannot be written: {exc.strerror or exc}") from None


class _RichProgress:
    def __init__(self, progress: Progress) -> None:
        self.progress = progress
        self.task = None

    def start_cell(self, label: str, total: int) -> None:
        if self.task is not None:
            self.progress.update(self.task, completed=self.progress.tasks[self.task].total)
        self.task = self.progress.add_task(label, total=total)

    def advance(self, n: int) -> None:
        self.progress.advance(self.task, n)


def _print_warnings(plan) -> None:
    """One line per model that is retired, retiring, deprecated or unknown."""
    for line in plan.warnings:
        print(f"warning: {line}", file=sys.stderr)


def _print_plan(estimates) -> None:
    """The estimates as tables fitted to the terminal (short cell names and a legend; a summary for big sweeps)."""
    from visionbench.report.plan_table import print_plan

    print_plan(console, estimates)


def cmd_plan(args: argparse.Namespace) -> int:
    from visionbench.run.plan import load_plan

    registry = default_registry()
    plan = load_plan(args.config, registry, dataset=args.dataset)
    _print_warnings(plan)
    estimates = asyncio.run(_estimate(plan, args.count_tokens))
    _print_plan(estimates)
    return 0


async def _estimate(plan, count_tokens: bool):
    """The plan's cost estimates; counting tokens asks the services (or the emulator), so they are started."""
    from visionbench.run.estimate import estimate
    from visionbench.run.plan import started

    if not count_tokens:
        return await estimate(plan, count_tokens=False)
    async with started(plan) as live:
        return await estimate(live, count_tokens=True)


#: A new run of more requests than this shows its plan's totals first, and asks (``--yes``: does not).
CONFIRM_ABOVE = 1_000


def _confirm_size(plan, estimates) -> None:
    """Above ``CONFIRM_ABOVE`` requests: the plan's totals on stderr, then a question on a terminal; without one
    (a script, CI), a refusal naming ``--yes``, before anything is sent. (``estimates``: made here if None.)"""
    from visionbench.report.plan_table import summary_sheet
    from visionbench.report.tables import print_sheet
    from visionbench.run.estimate import request_count

    requests = request_count(plan)
    if requests <= CONFIRM_ABOVE:
        return
    estimates = estimates if estimates is not None else asyncio.run(_estimate(plan, False))
    print_sheet(err_console, summary_sheet(estimates), err_console.width)
    size = f"{requests:,} requests ({len(plan.items):,} images, {len(plan.experiment.cells):,} cells)"
    if not sys.stdin.isatty():
        raise ConfigError(
            f"this run sends {size}, more than {CONFIRM_ABOVE:,}: give --yes to run it (stdin is not a terminal to "
            "ask on; `visionbench plan CONFIG` shows the plan); nothing was run"
        )
    print(f"this run sends {size}. Run it? [y/N] ", end="", file=sys.stderr, flush=True)
    if sys.stdin.readline().strip().lower() not in ("y", "yes"):
        raise VisionbenchError(f"not confirmed: {size} not sent; nothing was run")


def cmd_run(args: argparse.Namespace) -> int:
    from visionbench.data.image_bytes import max_pixels_from_env
    from visionbench.run.plan import load_plan
    from visionbench.run.runner import new_run_id, run

    registry = default_registry()
    previous = None
    if args.retry_errors and not args.resume:
        raise VisionbenchError("--retry-errors goes with --resume RUN: it asks a run's failed items again")
    if args.resume and args.dataset:
        raise VisionbenchError("--dataset goes with a CONFIG, not --resume: a resumed run keeps the images it began on")
    if args.resume:
        from visionbench.run.resume import prepare_resume

        plan, previous = prepare_resume(args.resume, registry, retry_errors=args.retry_errors, cache_dir=args.cache_dir)
        experiment = plan.experiment
        run_id = previous.run_id
        run_dir = Path(args.resume).resolve()
        run_dir = run_dir if run_dir.is_dir() else run_dir.parent
        args.results = str(run_dir.parent)  # the bundle is carried on where it is
    elif args.config:
        plan = load_plan(args.config, registry, dataset=args.dataset, cache_dir=args.cache_dir)
        experiment = plan.experiment
        run_id = new_run_id(experiment.name)
    else:
        raise VisionbenchError("give a CONFIG to run, or --resume RUN to finish an unfinished run")
    _print_warnings(plan)
    estimates = asyncio.run(_estimate(plan, False)) if previous is None and args.max_cost is not None else None
    if args.max_cost is not None and estimates is not None:
        from visionbench.run.estimate import total_cost

        total = total_cost(estimates)
        if total is None:
            unpriced = [e.cell_id for e in estimates if e.cost_usd is None]
            shown = ", ".join(unpriced[:5]) + (f" and {len(unpriced) - 5} more" if len(unpriced) > 5 else "")
            if not args.allow_unpriced:
                raise ConfigError(
                    f"--max-cost ${args.max_cost:.4f} cannot be enforced: the plan cannot price {shown} (no price "
                    "for its model, or no token formula), so its spend would not count; add a price row under "
                    "`pricing:` in the config, or give --allow-unpriced to run knowing that; nothing was run"
                )
            print(
                f"warning: --allow-unpriced: the spend of {shown} is not counted against --max-cost",
                file=sys.stderr,
            )
        elif total > args.max_cost:
            _print_plan(estimates)
            raise BudgetExceeded(
                f"the plan estimates ${total:.4f}, over --max-cost ${args.max_cost:.4f}; nothing was run"
            )
    if previous is None and not args.yes:
        _confirm_size(plan, estimates)
    cache_dir = (
        Path(args.cache_dir)
        if args.cache_dir
        else (Path(experiment.spec.cache_dir) if experiment.spec.cache_dir else default_cache_dir())
    )
    _writable_folder(Path(args.results), "results folder (--results)")
    if not args.no_cache:
        _writable_folder(cache_dir, "cache folder (--cache-dir)")
    max_pixels_from_env()  # a bad limit stops the run here, before its bundle exists
    run_dir = Path(args.results) / run_id
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    try:
        with Progress(*columns, console=err_console, disable=args.quiet) as bar:
            bundle_path = _run_to_the_end(
                run(
                    plan,
                    results_dir=Path(args.results),
                    run_id=run_id,
                    # --quiet: no bar, so nothing to advance per request (a disabled bar still counts and times)
                    progress=None if args.quiet else _RichProgress(bar),
                    cache_dir=None if args.no_cache else cache_dir,
                    max_cost_usd=args.max_cost,
                    previous=previous,
                    retry_errors=args.retry_errors,
                    replay=Path(args.replay) if args.replay else None,
                )
            )
    except BaseException as exc:  # stopped, interrupted or broken off: say where the bundle is and how to go on
        if (run_dir / "bundle.json").exists():
            print(f"bundle so far: {run_dir / 'bundle.json'}", file=sys.stderr)
            again = " --max-cost USD" if isinstance(exc, BudgetExceeded) else ""
            print(f"to finish it: visionbench run --resume {run_dir}{again}", file=sys.stderr)
        raise
    bundle = load_bundle(bundle_path, lazy=True)
    outputs = "none" if args.no_report else ("all" if args.charts else "html")
    _report(bundle, bundle_path.parent, args, None if args.no_cache else cache_dir, outputs)
    return EXIT_INCOMPLETE if bundle.status == "incomplete" else 0


def _report(
    bundle: Bundle, folder: Path, args: argparse.Namespace, cache_dir: Path | None = None, outputs: str = "all"
) -> None:
    """The tables (as asked: fitted, wide or for scripts), then ``outputs`` ("all": charts and report.html;
    "html": report.html without charts; "none"), then what to do next.
    With a script format only the tables go to stdout; the file names and hints go to stderr."""
    out = console if args.format == "table" else err_console
    group_by = getattr(args, "group_by", None)
    print_report(bundle, console, wide=args.wide, fmt=args.format, group_by=group_by)
    if outputs == "none":
        out.print(
            f"report: not written (--no-report); visionbench report {folder} writes it", soft_wrap=True, highlight=False
        )
    else:
        _write_outputs(bundle, folder, out, cache_dir, charts=outputs == "all", group_by=group_by)
    out.print(f"bundle: {folder / 'bundle.json'}", soft_wrap=True, highlight=False)
    for line in next_steps(bundle, str(folder)):
        err_console.print(line, soft_wrap=True, highlight=False)


def _write_outputs(
    bundle: Bundle,
    folder: Path,
    out: Console,
    cache_dir: Path | None,
    charts: bool = True,
    group_by: str | None = None,
) -> None:
    """The self-contained HTML report beside the bundle, and the charts (PNG, in the page too) if asked."""
    from visionbench.report.html import write_html_report

    if charts:
        from visionbench.report.charts import write_charts

        drawn = write_charts(bundle, folder)
        out.print(f"charts: {', '.join(p.name for p in drawn.values())} in {folder}", soft_wrap=True, highlight=False)
    else:
        drawn = None
        out.print(f"charts: not drawn (--charts, or visionbench report {folder})", soft_wrap=True, highlight=False)
    html = write_html_report(bundle, folder / "report.html", drawn, cache_dir, draw_charts=charts, group_by=group_by)
    out.print(f"report: {html}", soft_wrap=True, highlight=False)


def cmd_validate(args: argparse.Namespace) -> int:
    from visionbench.run.plan import load_plan

    registry = default_registry()
    plan = load_plan(args.config, registry, dataset=args.dataset)
    experiment = plan.experiment
    _print_warnings(plan)
    console.print(
        f"{args.config}: OK: {len(plan.items)} images, "
        f"{len(experiment.cells)} cells x {experiment.spec.repeats} repeats"
    )
    for cell in experiment.cells:
        params = ", ".join(f"{k}={v}" for k, v in cell.written_params().items())
        console.print(
            f"  {cell.id}  ({cell.strategy}{': ' + params if params else ''})", soft_wrap=True, highlight=False
        )
    from visionbench.run.emulated import emulated_protocol

    for name, provider in plan.providers.items():
        endpoint = experiment.endpoints[name]
        if emulated_protocol(experiment, endpoint, type(provider)):
            where = ", to the emulator"
        elif provider.base_url():
            where = f", to {provider.base_url()}"
        else:
            where = ", to the service (the SDK's default URL)" if type(provider).protocols else ""
        console.print(f"  endpoint {name}: plugin {endpoint.plugin}{where}", soft_wrap=True, highlight=False)
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    bundle = load_bundle(args.run, lazy=True)
    path = Path(args.run)
    cached = bundle.config.get("cache_dir")
    cache_dir = Path(args.cache_dir or cached or default_cache_dir())
    _report(bundle, path if path.is_dir() else path.parent, args, cache_dir if cache_dir.is_dir() else None)
    return 0


def cmd_rescore(args: argparse.Namespace) -> int:
    from visionbench.run.rescore import rescore

    path = rescore(
        args.run,
        default_registry(),
        config=args.config,
        results_dir=args.results,
        ask_judges=not args.no_judge,
        cache_dir=args.cache_dir,
    )
    bundle = load_bundle(path, lazy=True)
    out = console if args.format == "table" else err_console
    source = bundle.rescored_from or {}
    judged = [r for r in bundle.records if r.get("judge") is not None]
    before = {(r["cell"], r["judge"].get("inputs")) for r in load_bundle(args.run, lazy=True).records if r.get("judge")}
    again = [r for r in judged if (r["cell"], r["judge"].get("inputs")) not in before]
    if again:
        cost = [r.get("cost_usd") for r in again]
        spent = f"${sum(c for c in cost if c is not None):.4f}" + ("" if None not in cost else " and unpriced")
        said = f"the LLM judge asked again about {len(again)} changed answers ({spent}); nothing else sent"
    else:
        said = "no request sent"
    out.print(f"rescored run {source.get('run_id')}: {said}", soft_wrap=True, highlight=False)
    cached = bundle.config.get("cache_dir")
    cache_dir = Path(args.cache_dir or cached or default_cache_dir())
    _report(bundle, path.parent, args, cache_dir if cache_dir.is_dir() else None, outputs="html")
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    from visionbench.report.compare import compare, comparison_html, print_comparison

    try:
        comparison = compare([load_bundle(run, lazy=True) for run in args.runs], by=args.by, group_by=args.group_by)
    except ValueError as exc:
        raise VisionbenchError(str(exc)) from None
    print_comparison(comparison, console)
    if args.html:
        Path(args.html).write_text(comparison_html(comparison), encoding="utf-8", errors="backslashreplace")
        console.print(f"comparison: {args.html}")
    return 0


def cmd_calibrate(args: argparse.Namespace) -> int:
    import yaml

    from visionbench.emulator.profile_schema import profiles_from_dict
    from visionbench.run.calibrate import calibrate, load_runs, profiles_text, table

    runs = load_runs(args.runs)
    calibration = calibrate(runs)
    out = Path(args.output)
    text = profiles_text(runs, calibration)
    profiles_from_dict(yaml.safe_load(text), source=str(out))  # what the emulator will load (a ValueError: a bug)
    out.write_text(text, encoding="utf-8")
    print(table(calibration.fits))
    for fit in calibration.fits:
        for note in fit.notes:
            print(f"{fit.model}: {note}")
    for why in calibration.left_out:
        print(f"left out: {why}")
    print(f"profiles: {out} (use it with emulator: {{profiles: {out}}}; its header has each fit's figures)")
    return 0


def _valid_keys(names: list[str] | None) -> set[str] | None:
    """The keys held by the environment variables ``names`` (read there, never from the command line)."""
    if not names:
        return None
    missing = [name for name in names if not os.environ.get(name)]
    if missing:
        raise InputError(f"--key-env {missing[0]}: that environment variable is not set (it holds a valid key)")
    return {os.environ[name] for name in names}


def cmd_emulate(args: argparse.Namespace) -> int:
    from visionbench.emulator import serve_forever

    if not 0 <= args.port <= 65535:
        raise InputError(f"--port {args.port}: a port must be in 0..65535 (0 picks a free one)")
    try:
        asyncio.run(
            serve_forever(
                args.profiles,
                args.dataset,
                labels=args.labels,
                label_field=args.label_field,
                host=args.host,
                port=args.port,
                time_scale=args.time_scale,
                valid_keys=_valid_keys(args.key_env),
            )
        )
    except ValueError as exc:
        raise VisionbenchError(str(exc)) from None
    except OSError as exc:
        where = f"{args.host}:{args.port}"
        if exc.errno == errno.EADDRINUSE:
            raise InputError(f"--port {args.port}: {where} is already in use; pick another port") from None
        raise InputError(f"--port {args.port}: cannot listen on {where}: {exc.strerror or exc}") from None
    return 0


def _list(kind: str) -> int:
    registry = default_registry()
    table = registry.providers if kind == "provider" else registry.strategies
    for name, cls in sorted(table.items()):
        doc = (cls.__doc__ or sys.modules[cls.__module__].__doc__ or "").strip().splitlines()[0]
        console.print(f"{name:16} {registry.origins[f'{kind}:{name}']:28} {doc}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="visionbench", description=__doc__)
    parser.add_argument("--version", action="version", version=f"visionbench {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser(
        "run",
        help="run an experiment config; writes results/<run-id>/: bundle.json and report.html (charts with --charts)",
    )
    p.add_argument("config", nargs="?", help="the experiment config (YAML)")
    p.add_argument(
        "--resume",
        metavar="RUN",
        help="finish an interrupted, over-budget (stopped), failed or incomplete run (its folder or bundle.json), "
        "from any folder: only what is missing runs, into the same bundle",
    )
    p.add_argument("--results", default="results", help="folder for run folders (default: results)")
    p.add_argument(
        "--cache-dir",
        help="preprocessed-image cache (default: the config's cache_dir, else VISIONBENCH_CACHE_DIR, "
        "else ~/.cache/visionbench/images)",
    )
    p.add_argument("--no-cache", action="store_true", help="preprocess every image afresh")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    outputs = p.add_mutually_exclusive_group()  # --charts --no-report asks for two things: a usage error (exit 2)
    outputs.add_argument(
        "--charts",
        action="store_true",
        help="also draw the charts (PNG, and in report.html): about 1.2 s of CPU; visionbench report RUN draws them "
        "later",
    )
    outputs.add_argument(
        "--no-report",
        action="store_true",
        help="print the tables only: no report.html, no charts (visionbench report RUN writes them later)",
    )
    p.add_argument(
        "--replay",
        metavar="RUN",
        help="answer each request that matches one of RUN's (same provider, model, params, prompt and images) with "
        "RUN's reply instead of sending it; the rest are sent (default: the config's replay:, else none)",
    )
    p.add_argument(
        "--retry-errors",
        action="store_true",
        help="with --resume: ask the run's failed items again (the answered ones are kept)",
    )
    p.add_argument(
        "--max-cost",
        type=budget_usd,
        metavar="USD",
        help="refuse to start if the plan estimates more; stop once the whole run's spend exceeds it "
        "(a resume keeps the run's budget and counts what it spent before); a cell the plan cannot price is "
        "refused, as its spend could not count",
    )
    p.add_argument(
        "-y",
        "--yes",
        action="store_true",
        help=f"run a plan of more than {CONFIRM_ABOVE:,} requests without asking (without a terminal to ask on, "
        "such a run is refused unless given this)",
    )
    p.add_argument(
        "--allow-unpriced",
        action="store_true",
        help="with --max-cost: run cells the plan cannot price anyway (their spend is not counted)",
    )
    _dataset_option(p)
    _output_options(p)
    p.set_defaults(fn=cmd_run)

    p = sub.add_parser("plan", help="estimate requests, tokens and dollars per cell before spending anything")
    p.add_argument("config")
    p.add_argument(
        "--count-tokens",
        action="store_true",
        help="ask the providers' count-tokens endpoints instead of the documented formulas (needs keys)",
    )
    _dataset_option(p)
    p.set_defaults(fn=cmd_plan)

    p = sub.add_parser("validate", help="check a config, its dataset and plugins without running anything")
    p.add_argument("config")
    _dataset_option(p)
    p.set_defaults(fn=cmd_validate)

    p = sub.add_parser("report", help="print a run's tables; write its charts and a self-contained report.html")
    p.add_argument("run", help="a run folder or bundle.json")
    p.add_argument(
        "--cache-dir",
        help="the preprocessed-image cache the gallery's thumbnails come from (default: as for run); "
        "images not in it are preprocessed again from the dataset",
    )
    _output_options(p)
    p.add_argument("--group-by", metavar="FIELD", help=GROUP_BY_HELP)
    p.set_defaults(fn=cmd_report)

    p = sub.add_parser(
        "rescore",
        help="re-parse a run's stored replies and score them again with its (or a changed) task; writes a new run "
        "folder; sends no request but an LLM judge's about answers that changed (--no-judge: none)",
    )
    p.add_argument("run", help="a run folder or bundle.json")
    p.add_argument(
        "--config",
        metavar="FILE",
        help="the run's config with the task's answer type, choices, schema, decimal or scorers changed (nothing "
        "that changes what was sent); default: the config stored in the run",
    )
    p.add_argument("--results", help="folder for the new run folder (default: the source run's results folder)")
    p.add_argument(
        "--no-judge",
        action="store_true",
        help="an LLM judge is not asked again about answers that changed (their verdicts are left out): send nothing",
    )
    p.add_argument("--cache-dir", help="the preprocessed-image cache the gallery's thumbnails come from (as report)")
    _output_options(p)
    p.set_defaults(fn=cmd_rescore)

    p = sub.add_parser("compare", help="line up the cells of two or more runs and show the differences")
    p.add_argument("runs", nargs="+", help="run folders or bundle.json files; the first is the baseline")
    p.add_argument(
        "--by",
        choices=("id", "label"),
        default="id",
        help="match cells by full id (provider/model/label), or by label: the label alone, qualified by provider "
        "and then model only where labels repeat (e.g. the same strategies on another model)",
    )
    p.add_argument("--html", metavar="PATH", help="also write the comparison as one HTML page")
    p.add_argument("--group-by", metavar="FIELD", help=GROUP_BY_HELP)
    p.set_defaults(fn=cmd_compare)

    p = sub.add_parser("calibrate", help="fit the emulator's profile of each model to runs' records (times, tokens)")
    p.add_argument("runs", nargs="+", help="run folders or bundle.json files (real runs, or emulated ones)")
    p.add_argument("-o", "--output", required=True, metavar="PATH", help="the profiles YAML to write")
    p.set_defaults(fn=cmd_calibrate)

    p = sub.add_parser("emulate", help="serve a local emulator of the Gemini, Anthropic and OpenAI APIs on loopback")
    p.add_argument("--dataset", help="folder of labelled images the emulated models answer from")
    p.add_argument("--labels", default="labels.json", help="labels file, relative to --dataset (default: labels.json)")
    p.add_argument(
        "--label-field",
        default="person_count",
        help="when each label is an object, the field holding the answer (default: person_count)",
    )
    p.add_argument("--profiles", help="per-model profiles YAML (default: the packaged default.yaml)")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on, loopback only (default: 127.0.0.1)")
    p.add_argument("--port", type=int, default=8765, help="port to listen on, 0 picks a free one (default: 8765)")
    p.add_argument(
        "--time-scale",
        type=float,
        help="multiply every simulated delay (default: the profiles' time_scale; 0 = instant)",
    )
    p.add_argument(
        "--key-env",
        action="append",
        metavar="NAME",
        help="accept only the key held by environment variable NAME (repeatable), answering any other as the"
        " services do; default: any key",
    )
    p.set_defaults(fn=cmd_emulate)

    sub.add_parser("providers", help="list loaded provider plugins").set_defaults(fn=lambda a: _list("provider"))
    sub.add_parser("strategies", help="list loaded strategy plugins").set_defaults(fn=lambda a: _list("strategy"))
    return parser


def _dataset_option(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--dataset",
        metavar="PATH",
        help="use this folder of images (or manifest) instead of the config's dataset.path, e.g. the labelled "
        "eval photos kept outside the repository; its labels file is read by the config's dataset.labels name, "
        "the config's dataset.include is not applied (it names the config's own images), dataset.limit is",
    )


GROUP_BY_HELP = (
    "break every scorer's mean down by this row field (the items' fields; default: the task's group_by); "
    'items without it are "(none)"'
)


def _output_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--wide",
        action="store_true",
        help="every column at full width, however wide the terminal (default: fit its width, or COLUMNS, "
        "or 80 when piped, leaving out low-priority columns; numbers are never cut)",
    )
    p.add_argument(
        "--format",
        choices=FORMATS,
        default="table",
        help="table (default); csv (the per-cell table, full cell ids), json or markdown (every table), for "
        "scripts: only the tables go to stdout",
    )


def _error(message: str) -> None:
    """One line on stderr, secrets blanked out."""
    print(f"error: {' '.join(redact(message).split())}", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    """The command line. Bad input exits 2 with one line naming the file or option at fault; anything
    unexpected is a bug: one line saying so and exit 70 (the traceback with VISIONBENCH_DEBUG=1).

    Without ``argv`` this is the process's own command (the ``visionbench`` script, ``python -m visionbench.cli``),
    and the process ends when it returns: everything it made is then frozen out of the garbage collector
    (``gc.freeze``), so that the interpreter's shutdown does not walk it all again in its final collections. That
    walk, over the SDK's types and the run's objects, took about 0.3 s of CPU, more than a small run's own work;
    the memory goes back to the system with the process either way. (Called with ``argv``, as tests and scripts
    do, nothing is frozen: their process goes on.)"""
    code = _command(argv)
    if argv is None:
        gc.freeze()
    return code


def _command(argv: list[str] | None) -> int:
    for stream in (sys.stdout, sys.stderr):
        if hasattr(stream, "reconfigure"):  # a file name that is not UTF-8 is shown escaped, not a crash
            stream.reconfigure(errors="backslashreplace")
    args = build_parser().parse_args(argv)
    handler = logging.StreamHandler()
    handler.addFilter(RedactingFilter())
    logging.basicConfig(level=logging.WARNING, handlers=[handler], format="%(levelname)s %(name)s: %(message)s")
    try:
        return args.fn(args)
    except BudgetExceeded as exc:
        _error(str(exc))
        return EXIT_BUDGET
    except VisionbenchError as exc:
        _error(str(exc))
        return EXIT_INPUT
    except FileNotFoundError as exc:
        _error(f"{exc.filename}: no such file")
        return EXIT_INPUT
    except KeyboardInterrupt:
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGINT, signal.SIG_DFL)  # the bundle is written: one more Ctrl-C quits at once
        print("interrupted: the bundle written so far is kept", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as exc:  # noqa: BLE001 - whatever escapes is a bug: say so in one line, not a traceback
        if isinstance(exc, OSError) and exc.filename is not None:  # a folder full, read-only, not a folder...
            _error(f"{exc.filename}: {exc.strerror or exc}")
            return EXIT_INPUT
        if os.environ.get(DEBUG_ENV):
            print(redact(traceback.format_exc()), file=sys.stderr, end="")
        _error(
            f"this is a bug in visionbench, please report it: {type(exc).__name__}: {exc} "
            f"(set {DEBUG_ENV}=1 to see the traceback)"
        )
        return EXIT_BUG


if __name__ == "__main__":
    sys.exit(main())
