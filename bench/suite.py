"""The workloads (a)-(f) of issue 9, each measured against its baseline, as table rows."""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from harness import (
    OKTA_RATE,
    REFUSED,
    Bench,
    BenchError,
    EmulatorKind,
    Trial,
    interleave,
    journaled_items,
)
from table import (
    INFO,
    Row,
    median,
    megabytes,
    micros,
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
JOURNAL_RATE_LIMIT = 0.9  # with the journal, at least this share of the items/s without it
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
    resume_tail: int = 1000  # (g): items of the CSV a resume still has to send

    def scaled(self, factor: float) -> Sizes:
        def size(n: int, least: int = 10) -> int:
            return max(least, round(n * factor))

        return Sizes(
            size(self.chain_steps),
            size(self.pool_items, POOL_CONCURRENCY),
            size(self.paced_items, 5),
            size(self.csv_rows, 100),
            tuple(size(n) for n in self.plan_steps),
            size(self.resume_tail),
        )


@dataclass(frozen=True)
class Options:
    sizes: Sizes
    rounds: int  # (c) runs once: its yardstick is fixed; (d) has its own
    full_size: bool  # the sizes: absolute targets (3 s, 150 MB) apply as written
    skip_largest_plan: bool
    big_rounds: int = 3  # (d): one round is three 100,000-row runs; its ratios move by ±0.035


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

    owf, sync, loop, bare = interleave(
        [
            measure(bench.owf_job(job, emulator)),
            measure(bench.baseline("chain-sync", emulator.url, str(steps))),
            measure(bench.baseline("chain-async", emulator.url, str(steps))),
            measure(bench.owf_job(job, emulator, journal=False)),
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
        _time_row(f"{name}, journal vs none", _run_times(owf), _run_times(bare)),
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
    bare_argv = bench.owf_job(job, emulator, journal=False)
    owf, loop, bare = interleave(
        [
            lambda: bench.trial(emulator, "slow", items, bench.owf_job(job, emulator)),
            lambda: bench.trial(emulator, "slow", items, loop_argv),
            lambda: bench.trial(emulator, "slow", items, bare_argv),
        ],
        options.rounds,
    )
    name = f"(b) {label(items)} items x{POOL_CONCURRENCY}, 50 ms flow"
    return [
        _time_row(f"{name} vs asyncio loop", _run_times(owf), _run_times(loop), 1.1, "<= 1.1x"),
        _time_row(f"{name}, journal vs none", _run_times(owf), _run_times(bare)),
    ]


# -- (c) Okta's pace -------------------------------------------------------------------


def paced(bench: Bench, options: Options) -> list[Row]:
    items = options.sizes.paced_items
    job = foreach_job(bench.folder, "echo", items, PACED_CONCURRENCY, rate_limit=None)
    emulator = bench.emulator(EmulatorKind(rate_limit=OKTA_RATE))
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
    """owf-run as it is (every item journaled), owf-run without the journal's records, and
    the plain loop, taking turns."""
    rows = options.sizes.csv_rows
    job, data = csv_job(bench.folder, rows, CSV_CONCURRENCY)
    emulator = bench.emulator()
    bench.prepare_baselines()
    loop_argv = bench.baseline("csv", emulator.url, str(data), str(CSV_CONCURRENCY))
    owf, bare, loop = interleave(
        [
            lambda: bench.trial(emulator, "echo", rows, bench.owf_job(job, emulator)),
            lambda: bench.trial(
                emulator, "echo", rows, bench.owf_job(job, emulator, journal=False)
            ),
            lambda: bench.trial(emulator, "echo", rows, loop_argv),
        ],
        options.big_rounds,
    )
    _check_journaled(owf, rows, "owf-run")
    _check_journaled(bare, 0, "owf-run without the journal's records")
    name = f"(d) {label(rows)} CSV rows x{CSV_CONCURRENCY}"
    return _csv_rows(name, rows, owf, loop) + _journal_rows(name, rows, owf, bare)


def _check_journaled(trials: Sequence[Trial], expected: int, who: str) -> None:
    """The comparison is only what it says if one side journaled every item, the other none."""
    for trial in trials:
        if trial.journaled != expected:
            held = f"{trial.journaled:,}"
            raise BenchError(f"{who}: its journal holds {held} items, not {expected:,}")


def _rates(rows: int, trials: Sequence[Trial]) -> list[float]:
    return [rows / trial.seconds for trial in trials]


def _peak_rss(trials: Sequence[Trial]) -> float:
    return max(trial.peak_rss_mb for trial in trials)


def _rate_row(name: str, owf: list[float], base: list[float], limit: float) -> Row:
    """owf-run's items/s against the baseline's, round by round; at least `limit` times."""
    ratio = paired_ratio(owf, base)
    return Row(
        name,
        per_second(median(owf)),
        per_second(median(base)),
        times(ratio),
        f">= {limit}x",
        verdict(ratio >= limit),
    )


def _rss_row(name: str, owf: Sequence[Trial], base: Sequence[Trial]) -> Row:
    """The highest peak over the rounds: flat memory holds in every one."""
    rss = _peak_rss(owf)
    return Row(
        name,
        megabytes(rss),
        megabytes(_peak_rss(base)),
        times(rss / _peak_rss(base)),
        f"<= {RSS_LIMIT_MB} MB",
        verdict(rss <= RSS_LIMIT_MB),
    )


def _csv_rows(name: str, rows: int, owf: Sequence[Trial], loop: Sequence[Trial]) -> list[Row]:
    owf_rates, loop_rates = _rates(rows, owf), _rates(rows, loop)
    return [
        _rate_row(f"{name}: items/s vs asyncio loop", owf_rates, loop_rates, 0.8),
        _rss_row(f"{name}: peak RSS", owf, loop),
    ]


def _journal_rows(name: str, rows: int, owf: Sequence[Trial], bare: Sequence[Trial]) -> list[Row]:
    """What the journal costs: the same run with it (owf-run as it is) and without it."""
    owf_rates, bare_rates = _rates(rows, owf), _rates(rows, bare)
    return [
        _rate_row(f"{name}: items/s, journal vs none", owf_rates, bare_rates, JOURNAL_RATE_LIMIT),
        _cpu_row(f"{name}: CPU per item, journal vs none", rows, owf, bare),
        _rss_row(f"{name}: peak RSS, journal vs none", owf, bare),
    ]


def _cpu_row(name: str, rows: int, owf: Sequence[Trial], bare: Sequence[Trial]) -> Row:
    """owf-run's own CPU time (startup included) per item: what a busy machine moves least."""
    owf_cpu = [trial.cpu / rows for trial in owf]
    bare_cpu = [trial.cpu / rows for trial in bare]
    ratio = paired_ratio(owf_cpu, bare_cpu)
    return Row(name, micros(median(owf_cpu)), micros(median(bare_cpu)), times(ratio), INFO, INFO)


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


# -- (g) resuming a big CSV ----------------------------------------------------------------


def resume(bench: Bench, options: Options) -> list[Row]:
    """`--resume` of a CSV run whose last items failed, against a fresh run of only those
    items: the difference is what skipping the items that succeeded costs."""
    rows, tail = options.sizes.csv_rows, options.sizes.resume_tail
    job, _ = csv_job(bench.folder, rows, CSV_CONCURRENCY)
    small_job, _ = csv_job(bench.folder, tail, CSV_CONCURRENCY)
    settled = _failed_tail_run(bench, job, rows, tail)
    emulator = bench.emulator()
    resumed, fresh = interleave(
        [
            lambda: bench.trial(
                emulator,
                "echo",
                tail,
                bench.owf_job(job, emulator, "--resume"),
                bench.copy_state(settled),  # each round resumes the same failed run
            ),
            lambda: bench.trial(emulator, "echo", tail, bench.owf_job(small_job, emulator)),
        ],
        options.rounds,
    )
    name = f"(g) --resume of {label(rows)} rows, {label(tail)} left"
    return [
        *_resume_rows(name, rows - tail, _walls(resumed), _walls(fresh)),
        _rss_row(f"{name}: peak RSS vs the fresh run", resumed, fresh),
    ]


def _failed_tail_run(bench: Bench, job: Path, rows: int, tail: int) -> Path:
    """The state directory of a run of `job` whose last `tail` calls were refused (exit 1)."""
    _progress(f"(g) a run of {label(rows)} rows, the last {label(tail)} refused")
    failing = bench.emulator(EmulatorKind(fail_after=rows - tail))
    state = bench.new_state()
    finished = bench.run(bench.owf_job(job, failing), state, exit_code=1)
    stats = failing.flow("echo")
    statuses = {} if stats is None else stats.statuses
    wanted = {200: rows - tail, REFUSED: tail}
    journaled = journaled_items(state)
    if statuses != wanted or journaled != rows - tail:
        raise BenchError(
            f"(g)'s first run: the emulator answered {statuses}, not {wanted}; the journal "
            f"holds {journaled:,} items succeeded; {finished.failure()}"
        )
    return state


def _resume_rows(name: str, skipped: int, resumed: list[float], fresh: list[float]) -> list[Row]:
    """The resume against the fresh run; what it took more, over the items it skipped."""
    skip_rates = [skipped / (a - b) for a, b in zip(resumed, fresh, strict=True) if a > b]
    rate = per_second(median(skip_rates)) if skip_rates else "too fast to tell"
    return [
        _time_row(f"{name}: whole process vs a fresh run of those", resumed, fresh),
        Row(f"{name}: items skipped/s", rate, "", "", INFO, INFO),
    ]


WORKLOADS: dict[str, Callable[[Bench, Options], list[Row]]] = {
    "a": chained,
    "b": pool,
    "c": paced,
    "d": big_csv,
    "e": load_and_plan,
    "f": help_text,
    "g": resume,
}
