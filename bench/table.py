"""The one table: a row per measure, with owf-run's figure, the baseline's, their ratio and
the issue's target; and the small statistics the rows are made of."""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass

COLUMNS = ("workload", "owf-run", "baseline", "ratio", "target", "result")
PASS, FAIL, INFO, ERROR = "pass", "FAIL", "-", "ERROR"


@dataclass(frozen=True)
class Row:
    workload: str
    owf_run: str
    baseline: str
    ratio: str
    target: str
    result: str

    def cells(self) -> tuple[str, ...]:
        return (self.workload, self.owf_run, self.baseline, self.ratio, self.target, self.result)


def error_row(workload: str, footnote: int) -> Row:
    return Row(workload, f"see [{footnote}]", "", "", "", ERROR)


def verdict(ok: bool) -> str:
    return PASS if ok else FAIL


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


def paired_ratio(numerators: Sequence[float], denominators: Sequence[float]) -> float:
    """The median of the ratios taken round by round: drift during the run cancels out."""
    return statistics.median(a / b for a, b in zip(numerators, denominators, strict=True))


def seconds(value: float) -> str:
    return f"{value * 1000:.0f} ms" if value < 1 else f"{value:.2f} s"


def times(value: float) -> str:
    return f"{value:.2f}x"


def micros(value: float) -> str:
    return f"{value * 1e6:,.0f} us"


def per_second(value: float) -> str:
    return f"{value:,.0f}/s"


def megabytes(value: float) -> str:
    return f"{value:.0f} MB"


def render_text(rows: Sequence[Row]) -> str:
    widths = [max(len(cells[i]) for cells in _all_cells(rows)) for i in range(len(COLUMNS))]
    lines = [_aligned(COLUMNS, widths), _aligned(tuple("-" * w for w in widths), widths)]
    lines += [_aligned(row.cells(), widths) for row in rows]
    return "\n".join(lines)


def render_markdown(rows: Sequence[Row]) -> str:
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(row.cells()) + " |" for row in rows]
    return "\n".join(lines)


def _all_cells(rows: Sequence[Row]) -> list[tuple[str, ...]]:
    return [COLUMNS, *(row.cells() for row in rows)]


def _aligned(cells: tuple[str, ...], widths: Sequence[int]) -> str:
    # The workload reads left to right; figures line up on the right.
    first = cells[0].ljust(widths[0])
    rest = [cell.rjust(width) for cell, width in zip(cells[1:], widths[1:], strict=True)]
    return "  ".join([first, *rest]).rstrip()
