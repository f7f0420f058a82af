"""owf-run's benchmarks (issues 9, 10): one table, owf-run against plain loops and itself.

    .venv/bin/python bench/run.py                   # everything, the issue's sizes (~6 minutes)
    .venv/bin/python bench/run.py --only a,e        # some workloads
    .venv/bin/python bench/run.py --skip d,g,e5000  # without the three slowest parts
    .venv/bin/python bench/run.py --quick           # small sizes, one round: a smoke run

owf-run runs as a user runs it (the `owf-run` next to this Python, in a subprocess) with
`--emulator URL`, against the project's emulator serving in a process of its own; the plain
loops (bench/baselines.py) send the same requests to the same emulator. See bench/README.md.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from harness import Bench, BenchError
from suite import WORKLOADS, Options, Sizes
from table import ERROR, Row, error_row, render_markdown, render_text

QUICK_SCALE = 0.02
SKIPPABLE = {*WORKLOADS, "e5000"}
_NOTES = (
    "(a), (b), (d): from the emulator receiving the first invocation to the process's exit,",
    "  startup, job loading and the token fetch excluded (they are (e) and (f)).",
    "(c): the emulator's arrival times of the first and the last call.",
    "(e), (f), (g): the whole process. Ratios are the median of round-by-round ratios.",
    "Every owf-run run journals (a state directory of its own); 'journal vs none' compares it",
    "  with bench/no_journal.py: the same CLI without the journal's per-step and per-item records.",
)


@dataclass(frozen=True)
class Settings:
    workloads: tuple[str, ...]
    options: Options
    scale: float
    markdown: bool
    owf_run: Path


def parse_settings(argv: Sequence[str] | None = None) -> Settings:
    parser = _parser()
    arguments = parser.parse_args(argv)
    scale = QUICK_SCALE if arguments.quick else arguments.scale
    rounds = 1 if arguments.quick else arguments.rounds
    if scale <= 0 or rounds < 1:
        parser.error("--scale must be above 0 and --rounds at least 1")
    skip = _names(parser, arguments.skip, SKIPPABLE, "--skip")
    only = _names(parser, arguments.only, set(WORKLOADS), "--only") or set(WORKLOADS)
    big_rounds = 1 if arguments.quick else arguments.big_rounds
    if big_rounds < 1:
        parser.error("--big-rounds must be at least 1")
    options = Options(Sizes().scaled(scale), rounds, scale == 1, "e5000" in skip, big_rounds)
    workloads = tuple(name for name in WORKLOADS if name in only and name not in skip)
    return Settings(workloads, options, scale, arguments.markdown, arguments.owf_run)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default="", help="workloads to run, e.g. a,e (default: all)")
    parser.add_argument("--skip", default="", help="workloads to leave out, e.g. d,e5000")
    parser.add_argument("--scale", type=float, default=1.0, help="size factor (default 1)")
    parser.add_argument("--quick", action="store_true", help=f"--scale {QUICK_SCALE}, one round")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of the short workloads")
    parser.add_argument(
        "--big-rounds", type=int, default=3, help="rounds of (d), about 2 minutes each"
    )
    parser.add_argument("--markdown", action="store_true", help="print a Markdown table")
    parser.add_argument("--owf-run", type=Path, default=_default_owf_run(), help="the CLI to time")
    return parser


def _default_owf_run() -> Path:
    return Path(sys.executable).parent / "owf-run"


def _names(parser: argparse.ArgumentParser, text: str, known: set[str], option: str) -> set[str]:
    names = {name.strip() for name in text.split(",") if name.strip()}
    unknown = names - known
    if unknown:
        listed, choices = ", ".join(sorted(unknown)), ", ".join(sorted(known))
        parser.error(f"{option}: unknown {listed} (known: {choices})")
    return names


def run_workloads(bench: Bench, settings: Settings) -> tuple[list[Row], list[str]]:
    """Every chosen workload's rows; a workload that breaks gets an ERROR row and a footnote."""
    rows: list[Row] = []
    footnotes: list[str] = []
    for name in settings.workloads:
        print(f"running ({name})...", file=sys.stderr, flush=True)
        try:
            rows += WORKLOADS[name](bench, settings.options)
        except BenchError as error:
            footnotes.append(str(error))
            rows.append(error_row(f"({name})", len(footnotes)))
    return rows, footnotes


def header(settings: Settings) -> str:
    when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    scale = "" if settings.scale == 1 else f", sizes x{settings.scale} (verdicts indicative only)"
    return (
        f"owf-run benchmarks: {when}, {os.cpu_count()} CPUs, Python {platform.python_version()}, "
        f"{settings.options.rounds} round(s){scale}"
    )


def report(settings: Settings, rows: list[Row], notes: list[str], footnotes: list[str]) -> str:
    render = render_markdown if settings.markdown else render_text
    lines = [header(settings), "", render(rows), "", *_NOTES, *notes]
    lines += [f"[{n}] {text}" for n, text in enumerate(footnotes, start=1)]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    settings = parse_settings(argv)
    with tempfile.TemporaryDirectory(prefix="owf-bench-") as folder:
        bench = Bench(Path(folder), settings.owf_run)
        try:
            rows, footnotes = run_workloads(bench, settings)
        finally:
            notes = bench.close()
    print(report(settings, rows, notes, footnotes))
    return 1 if any(row.result == ERROR for row in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
