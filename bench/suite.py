"""The workloads (a)-(f) of issue 9, each measured against its baseline, as table rows."""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from harness import OKTA_RATE, Bench, Trial, interleave
from table import (
    INFO,
    Row,
    median,
    megabytes,
    paired_ratio,
    per_second,
    seconds,
    times,
    verdict,
)
from workloads import chain_job, csv_job, foreach_job

POOL_CONCURRENCY = 30
PACED_CONCURRENCY = 10  # more workers than pacing allows: the pacing, not the pool, sets the pace
CSV_CONCURRENCY = 50
RSS_LIMIT_MB = 150
LINEAR_SIZES = (100, 1000, 5000)
# A per-step cost under this counts as this much when judging linearity: a fast command's
# tiny slopes are mostly noise.
SLOPE_FLOOR = 10e-6


@dataclass(frozen=True)
class Sizes:
    chain_steps: int = 1000
    pool_items: int = 600
    paced_items: int = 60
    csv_rows: int = 100_000
    plan_steps: tuple[int, ...] = LINEAR_SIZES

    def scaled(self, factor: float) -> Sizes:
        def size(n: int, least: int = 10) -> int:
            return max(least, round(n * factor))

        return Sizes(
            size(self.chain_steps),
            size(self.pool_items, POOL_CONCURRENCY),
            size(self.paced_items, 5),
            size(self.csv_rows, 100),
            tuple(size(n) for n in self.plan_steps),
        )


@dataclass(frozen=True)
class Options:
    sizes: Sizes
    rounds: int  # (c) and (d) run once: they are long, and (c)'s yardstick is fixed
    full_size: bool  # the sizes: absolute targets (3 s, 150 MB) apply as written
    skip_largest_plan: bool


def _progress(text: str) -> None:
    print(f"  {text}", file=sys.stderr, flush=True)


def label(n: int) -> str:
    return f"{n:,}"


# -- (a) chained steps ---------------------------------------------------------------


def chained(bench: Bench, options: Options) -> list[Row]:
    steps = options.sizes.chain_steps
    job, emulator = chain_job(bench.folder, steps), bench.emulator()
    bench.prepare_baselines()

    def measure(argv: list[str]) -> Callable[[], Trial]:
        return lambda: bench.trial(emulator, "echo", steps, argv)

    owf, sync, loop = interleave(
        [
            measure(bench.owf_job(job, emulator)),
            measure(bench.baseline("chain-sync", emulator.url, str(steps))),
            measure(bench.baseline("chain-async", emulator.url, str(steps))),
        ],
        options.rounds,
    )
    name = f"(a) {label(steps)} chained steps"
    return [
        _time_row(
            f"{name} vs sync loop", _run_times(owf), _run_times(sync), 2.0, "<= 2.0x (aim 1.3x)"
        ),
        _time_row(f"{name} vs asyncio loop", _run_times(owf), _run_times(loop)),
        # What the user waits for, startup and loading included (their targets are (e), (f)).
        _time_row(f"{name}, whole process vs sync loop", _walls(owf), _walls(sync)),
    ]


def _run_times(trials: Sequence[Trial]) -> list[float]:
    return [trial.seconds for trial in trials]


def _walls(trials: Sequence[Trial]) -> list[float]:
    return [trial.wall for trial in trials]


def _time_row(
    name: str,
    owf: Sequence[float],
    base: Sequence[float],
    limit: float | None = None,
    target: str = INFO,
) -> Row:
    """owf-run's seconds against the baseline's, round by round; no limit: for reference."""
    ratio = paired_ratio(owf, base)
    result = INFO if limit is None else verdict(ratio <= limit)
    return Row(name, seconds(median(owf)), seconds(median(base)), times(ratio), target, result)


# -- (b) a pool of workers on a slow flow --------------------------------------------------


def pool(bench: Bench, options: Options) -> list[Row]:
    items = options.sizes.pool_items
    job = foreach_job(bench.folder, "slow", items, POOL_CONCURRENCY)
    emulator = bench.emulator()
    bench.prepare_baselines()
    loop_argv = bench.baseline("pool", emulator.url, "slow", str(items), str(POOL_CONCURRENCY))
    owf, loop = interleave(
        [
            lambda: bench.trial(emulator, "slow", items, bench.owf_job(job, emulator)),
            lambda: bench.trial(emulator, "slow", items, loop_argv),
        ],
        options.rounds,
    )
    name = f"(b) {label(items)} items x{POOL_CONCURRENCY}, 50 ms flow vs asyncio loop"
    return [_time_row(name, _run_times(owf), _run_times(loop), 1.1, "<= 1.1x")]


# -- (c) Okta's pace -------------------------------------------------------------------


def paced(bench: Bench, options: Options) -> list[Row]:
    items = options.sizes.paced_items
    job = foreach_job(bench.folder, "echo", items, PACED_CONCURRENCY, rate_limit=None)
    emulator = bench.emulator(rate_limit=OKTA_RATE)
    trial = bench.trial(emulator, "echo", items, bench.owf_job(job, emulator))
    ideal = (items - 1) / OKTA_RATE  # evenly spaced calls: one interval fewer than calls
    ratio = trial.span / ideal
    name = f"(c) {label(items)} items at the default 10/s"
    return [
        Row(
            f"{name}: first to last call",
            seconds(trial.span),
            f"{seconds(ideal)} ideal",
            times(ratio),
            "<= 1.05x",
            verdict(ratio <= 1.05),
        ),
        Row(f"{name}: 429s", str(trial.throttled), "", "", "0", verdict(not trial.throttled)),
    ]


# -- (d) a big CSV -------------------------------------------------------------------------


def big_csv(bench: Bench, options: Options) -> list[Row]:
    rows = options.sizes.csv_rows
    job, data = csv_job(bench.folder, rows, CSV_CONCURRENCY)
    emulator = bench.emulator()
    bench.prepare_baselines()
    loop_argv = bench.baseline("csv", emulator.url, str(data), str(CSV_CONCURRENCY))
    owf, loop = interleave(
        [
            lambda: bench.trial(emulator, "echo", rows, bench.owf_job(job, emulator)),
            lambda: bench.trial(emulator, "echo", rows, loop_argv),
        ],
        rounds=1,
    )
    return _csv_rows(f"(d) {label(rows)} CSV rows x{CSV_CONCURRENCY}", rows, owf[0], loop[0])


def _csv_rows(name: str, rows: int, owf: Trial, loop: Trial) -> list[Row]:
    owf_rate, loop_rate = rows / owf.seconds, rows / loop.seconds
    rate_ratio = owf_rate / loop_rate
    rss = owf.peak_rss_mb
    return [
        Row(
            f"{name}: items/s vs asyncio loop",
            per_second(owf_rate),
            per_second(loop_rate),
            times(rate_ratio),
            ">= 0.8x",
            verdict(rate_ratio >= 0.8),
        ),
        Row(
            f"{name}: peak RSS",
            megabytes(rss),
            megabytes(loop.peak_rss_mb),
            times(rss / loop.peak_rss_mb),
            f"<= {RSS_LIMIT_MB} MB",
            verdict(rss <= RSS_LIMIT_MB),
        ),
    ]


# -- (e) validate and plan -------------------------------------------------------------


def load_and_plan(bench: Bench, options: Options) -> list[Row]:
    sizes = options.sizes.plan_steps
    if options.skip_largest_plan:
        sizes = sizes[:-1]
    walls = {n: _load_walls(bench, n, options.rounds) for n in sizes}
    rows: list[Row] = []
    for command in ("validate", "plan"):
        rows += [_load_row(command, n, walls[n], options) for n in sizes]
        linear = _linear_row(command, {n: median(walls[n][command]) for n in sizes})
        rows.append(linear if options.full_size else _as_info(linear))
    return rows


def _load_walls(bench: Bench, steps: int, rounds: int) -> dict[str, list[float]]:
    """Whole-process seconds of `validate`, `plan` and a libyaml load of one job."""
    _progress(f"(e) {label(steps)} steps")
    job = str(chain_job(bench.folder, steps))
    libyaml = "import sys, yaml; yaml.load(open(sys.argv[1]), Loader=yaml.CSafeLoader)"
    commands = {
        "validate": bench.owf("validate", job),
        "plan": bench.owf("plan", job),
        "libyaml": [sys.executable, "-c", libyaml, job],
    }
    runs = [(lambda argv=argv: bench.run(argv).wall) for argv in commands.values()]
    return dict(zip(commands, interleave(runs, rounds), strict=True))


def _load_row(command: str, steps: int, walls: dict[str, list[float]], options: Options) -> Row:
    wall, floor = median(walls[command]), median(walls["libyaml"])
    name = f"(e) {command}, {label(steps)} steps vs libyaml load"
    if command == "plan" and steps == LINEAR_SIZES[-1] and options.full_size:
        target, result = "<= 3 s", verdict(wall <= 3.0)
    else:
        target, result = INFO, INFO
    ratio = paired_ratio(walls[command], walls["libyaml"])
    return Row(name, seconds(wall), seconds(floor), times(ratio), target, result)


def _as_info(row: Row) -> Row:
    """Small jobs load in startup's noise: their slopes say nothing about linearity."""
    return dataclasses.replace(row, result=INFO)


def _linear_row(command: str, walls: dict[int, float]) -> Row:
    """Linear: a step costs as much in the largest job as in the middle one."""
    name = f"(e) {command}: cost per added step, small vs large"
    if len(walls) < 3:
        return Row(name, "needs 3 sizes", "", "", "<= 1.5x", INFO)
    small, middle, large = sorted(walls)
    low = (walls[middle] - walls[small]) / (middle - small)
    high = (walls[large] - walls[middle]) / (large - middle)
    ratio = high / max(low, SLOPE_FLOOR)
    figures = f"{low * 1e6:.0f} -> {high * 1e6:.0f} us"
    return Row(name, figures, "", times(ratio), "<= 1.5x", verdict(ratio <= 1.5))


# -- (f) start-up ----------------------------------------------------------------------------


def help_text(bench: Bench, options: Options) -> list[Row]:
    runs = [lambda: bench.run(bench.owf("--help")).wall, lambda: bench.run(_bare_python()).wall]
    owf, bare = interleave(runs, options.rounds + 2)
    ratio = paired_ratio(owf, bare)
    return [
        Row(
            "(f) owf-run --help vs bare python",
            seconds(median(owf)),
            seconds(median(bare)),
            times(ratio),
            "<= 200 ms",
            verdict(median(owf) <= 0.2),
        )
    ]


def _bare_python() -> list[str]:
    return [sys.executable, "-c", "pass"]


WORKLOADS: dict[str, Callable[[Bench, Options], list[Row]]] = {
    "a": chained,
    "b": pool,
    "c": paced,
    "d": big_csv,
    "e": load_and_plan,
    "f": help_text,
}
