"""Report files of one run, from the journal's records: JSON for programs, JUnit XML for CI test
viewers, one HTML page for people (DESIGN §4, §5; the JSON shape is in docs/reports.md).

The same records serve a run that just ended and ``owf-run show RUN_ID`` long after. Items are
streamed from ``items(step_id)`` straight into the file, so memory does not grow with them.
Bodies and responses are never written: they can be large, and personal.

Every text written passes the one redactor first, then is escaped for its format: JSON escapes
control characters itself (and everything outside ASCII); XML and HTML get ``escape_controls``
then their own escaping, so no byte XML 1.0 cannot carry reaches a file. A report is written
to a temporary file beside its path and renamed over it: a reader never sees half of one.
"""

from __future__ import annotations

import contextlib
import copy
import html
import json
import math
import os
import re
import secrets
import textwrap
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, Final, TextIO
from xml.sax.saxutils import escape as xml_escape
from xml.sax.saxutils import quoteattr

from owf_runner.errors import ReportError
from owf_runner.history import UNKNOWN_OUTCOME, duration
from owf_runner.journal import (
    EMULATOR,
    NOT_RUN,
    PROBLEMS,
    RUNNING,
    SENDING,
    SKIPPED,
    STEP_INVOCATION,
    SUCCEEDED,
    UNKNOWN,
    ItemRecord,
    RunRecord,
    StepRecord,
    instant,
)
from owf_runner.redaction import MASK, REDACTOR, escape_controls, shown

FORMAT: Final = "owf-run report"
VERSION: Final = 1
LISTED: Final = 1000  # failed items named per step in JUnit and HTML; the rest are counted
REASON_CHARS: Final = 1000
LABEL_CHARS: Final = 200
MAX_DEPTH: Final = 64  # an output nested deeper is written as TOO_DEEP
TOO_DEEP: Final = "(nested too deep for a report)"
JUNIT_TYPE: Final = "owf-run"
RUN_CASE: Final = "(run)"  # the JUnit testcase of a run that failed outside any step

Items = Callable[[str], Iterable[ItemRecord]]


# -- the file ---------------------------------------------------------------------------------


def check_report_path(path: Path) -> None:
    """ReportError unless a report could be written at ``path``; writes nothing."""
    _destination(path)


def _destination(path: Path) -> Path:
    """The file a report at ``path`` replaces: ``path``, or the file it links to when it is a
    symbolic link (written through, as ``> FILE`` would: the link stays a link); ReportError
    when it cannot be written there."""
    try:
        destination = path.resolve() if path.is_symlink() else path
        reason = _unwritable(destination)
    except RuntimeError:  # a loop of links
        reason = "a symbolic link loop", "name a file"
    except OSError as error:  # a directory on the way that may not be searched
        reason = _os_reason(error), "fix the permissions or name another file"
    if reason is not None:
        raise ReportError(_cannot_write(path, *reason))
    return destination


def _unwritable(path: Path) -> tuple[str, str] | None:
    """Why a report cannot go to ``path``, and what to do; None when it can."""
    parent = path.parent
    if path.is_dir():
        return "it is a directory", "name a file"
    if not parent.exists():
        return f"no such directory: {_named(parent)}", "create it first or name another file"
    if not parent.is_dir():
        return f"{_named(parent)} is not a directory", "name another file"
    if path.exists() and not path.is_file():  # a device or a pipe: renaming over it is no write
        return "not a regular file", "name a file"
    if not os.access(parent, os.W_OK | os.X_OK):
        return f"permission denied in {_named(parent)}", "fix the permissions or name another file"
    return None


def _cannot_write(path: Path, reason: str, hint: str) -> str:
    return f"{_named(path)}: cannot write the report ({reason}): {hint}"


def _named(path: Path) -> str:
    return escape_controls(str(path))


class _ReportFile:
    """The temporary file a report is written to; an OSError becomes a ReportError."""

    def __init__(self, path: Path, stream: TextIO) -> None:
        self.path, self._stream = path, stream

    def write(self, text: str) -> None:
        try:  # not `with _file_errors`: this runs once per item
            self._stream.write(text)
        except OSError as error:
            raise _write_error(self.path, error) from None


@contextlib.contextmanager
def _file_errors(path: Path) -> Iterator[None]:
    try:
        yield
    except OSError as error:
        raise _write_error(path, error) from None


def _write_error(path: Path, error: OSError) -> ReportError:
    return ReportError(_cannot_write(path, _os_reason(error), "name another file"))


def _os_reason(error: OSError) -> str:
    return escape_controls(error.strerror or str(error))


@contextlib.contextmanager
def _atomic(path: Path) -> Iterator[_ReportFile]:
    """A file that appears at ``path`` whole, or not at all (the temporary one is removed)."""
    destination = _destination(path)
    temporary = destination.parent / f".{destination.name}.{secrets.token_hex(4)}.tmp"
    with _file_errors(path):
        # The mode a new file gets from the umask, as `> FILE` would: a report is meant to be read.
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with open(
            descriptor, "w", encoding="utf-8", errors="backslashreplace", newline="\n"
        ) as stream:
            yield _ReportFile(path, stream)
            with _file_errors(path):  # here, so that closing has nothing left to fail on
                stream.flush()
                os.fsync(stream.fileno())
        with _file_errors(path):
            os.replace(temporary, destination)
    except BaseException:
        with contextlib.suppress(OSError):
            temporary.unlink()
        raise


# -- shared facts -----------------------------------------------------------------------------


def _failing(step: StepRecord) -> bool:
    """A step that neither succeeded nor was left out: failed, unknown, or stopped mid-way."""
    return step.status not in (SUCCEEDED, SKIPPED, NOT_RUN)


def _run_failed_elsewhere(run: RunRecord, steps: Sequence[StepRecord]) -> bool:
    """The run did not succeed, yet no step says why (auth refused before the first step)."""
    return run.status != SUCCEEDED and not any(map(_failing, steps))


def _run_reason(run: RunRecord) -> str:
    if run.status == RUNNING:  # `show` of a run still going, or of one that died unnoticed
        return "the run had not finished when this report was written"
    code = "" if run.exit_code is None else f", exit code {run.exit_code}"
    return f"the run did not succeed: {escape_controls(REDACTOR.redact(run.status))}{code}"


_STEP_REASONS: Final = {
    UNKNOWN: "outcome unknown: the flow may have run",
    RUNNING: "did not finish: the run stopped while this step ran",
}


def _step_reason(step: StepRecord) -> list[str]:
    """Why the step failed, a line at a time, redacted and escaped."""
    if step.error:
        lines = REDACTOR.redact(step.error).splitlines()
        return [_cut(escape_controls(line), REASON_CHARS) for line in lines] or [""]
    return [_STEP_REASONS.get(step.status, escape_controls(REDACTOR.redact(step.status)))]


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit] + "…"


def _problems(items: Iterable[ItemRecord]) -> Iterator[ItemRecord]:
    return (item for item in items if item.status in PROBLEMS)


def _listed(items: Iterable[ItemRecord]) -> Iterator[ItemRecord | int]:
    """The first LISTED problem items, then (if any are left) how many more there were."""
    more = 0
    for count, item in enumerate(_problems(items)):
        if count < LISTED:
            yield item
        else:
            more += 1
    if more:
        yield more


def _item_name(item: ItemRecord) -> str:
    if item.label:
        return shown(item.label, LABEL_CHARS)
    return "the request" if item.index == STEP_INVOCATION else f"#{item.index}"


def _item_status(item: ItemRecord) -> str:
    if item.status == SENDING:
        return UNKNOWN_OUTCOME
    return "outcome unknown" if item.status == UNKNOWN else shown(item.status, LABEL_CHARS)


def _reason(item: ItemRecord) -> str:
    return shown(item.error, REASON_CHARS) if item.error else ""


def _execution(item: ItemRecord) -> str:
    return shown(item.execution_id, LABEL_CHARS) if item.execution_id else ""


def _more(count: int) -> str:
    return f"... and {count:,} more"


def _seconds(value: float) -> float:
    """Seconds fit to write: a negative or non-finite number (a clock set back) is 0."""
    return value if math.isfinite(value) and value > 0 else 0.0


def _run_seconds(run: RunRecord) -> float | None:
    started, finished = instant(run.started_at), instant(run.finished_at)
    if started is None or finished is None:
        return None
    return round(_seconds((finished - started).total_seconds()), 3)


# -- JSON ---------------------------------------------------------------------------------------


def write_json_report(
    path: Path, run: RunRecord, steps: Sequence[StepRecord], items: Items
) -> None:
    """The versioned JSON report (``report_schema()``): the run, each step, each item."""
    with _atomic(path) as out:
        out.write(_opened(json.dumps(_json_run(run), indent=2)) + ',\n  "steps": [')
        for number, step in enumerate(steps):
            out.write(",\n" if number else "\n")
            _write_json_step(out, step, items(step.step_id))
        out.write("\n  ]\n}\n" if steps else "]\n}\n")


def _opened(text: str) -> str:
    """A JSON object's text without its closing brace, so that more members can follow."""
    return text.removesuffix("\n}")


def _json_run(run: RunRecord) -> dict[str, Any]:
    return {
        "format": FORMAT,
        "version": VERSION,
        "run_id": _data(run.id),
        "job_name": _data(run.job_name),
        "job_path": _data(run.job_path),
        "job_sha256": _data(run.job_sha256),
        "target": _data(run.target),
        "started_at": _data(run.started_at),
        "finished_at": None if run.finished_at is None else _data(run.finished_at),
        "duration_seconds": _run_seconds(run),
        "status": _data(run.status),
        "exit_code": run.exit_code,
        "sessions": run.sessions,
        "counts": {
            "steps_succeeded": run.steps_succeeded,
            "steps_failed": run.steps_failed,
            "items_succeeded": run.items_succeeded,
            "items_failed": run.items_failed,
            "items_unknown": run.items_unknown,
        },
    }


def _write_json_step(out: _ReportFile, step: StepRecord, items: Iterable[ItemRecord]) -> None:
    head = textwrap.indent(_opened(json.dumps(_json_step(step), indent=2)), "    ")
    out.write(head + ',\n      "items": [')
    written = 0
    for item in items:
        out.write((",\n        " if written else "\n        ") + _json_item(item))
        written += 1
    out.write("\n      ]\n    }" if written else "]\n    }")


def _json_step(step: StepRecord) -> dict[str, Any]:
    return {
        "id": _data(step.step_id),
        "position": step.position,
        "status": _data(step.status),
        "attempts": step.attempts,
        "seconds": round(_seconds(step.seconds), 3),
        "item_count": step.items,
        "failed_item_count": step.failed_items,
        "outputs": _outputs(step.outputs),
        "error": None if step.error is None else _data(step.error),
    }


def _json_item(item: ItemRecord) -> str:
    """One item as one line of JSON. Composed here rather than by ``json.dumps`` of a dict,
    which costs five times as much: this runs once per item."""
    index = None if item.index == STEP_INVOCATION else item.index
    return (
        f'{{"index": {_integer(index)}, "label": {_string(item.label)},'
        f' "status": {_string(item.status)}, "attempts": {_integer(item.attempts)},'
        f' "http_status": {_integer(item.http_status)},'
        f' "outputs": {json.dumps(_outputs(item.outputs)) if item.outputs else "{}"},'
        f' "error": {_string(item.error)}, "execution_id": {_string(item.execution_id)}}}'
    )


def _integer(value: int | None) -> str:
    return "null" if value is None else str(int(value))


def _string(text: str | None) -> str:
    return "null" if text is None else json.dumps(_data(text))


def _data(text: str) -> str:
    """Text for a JSON string: redacted, and a lone surrogate (which strict parsers refuse)
    spelled out as its escape, as the journal stores it."""
    redacted = REDACTOR.redact(text)
    if redacted.isascii():
        return redacted
    return redacted.encode("utf-8", "backslashreplace").decode("utf-8")


def _outputs(outputs: dict[str, Any]) -> dict[str, Any]:
    return {_data(str(name)): _value(value, MAX_DEPTH) for name, value in outputs.items()}


def _value(value: Any, depth: int) -> Any:
    """An output's value with every string redacted, and every number too: a number that is a
    secret (or holds one) becomes the mask. JSON has no NaN: it is written as a string."""
    if depth < 0:
        return TOO_DEEP
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int | float):
        text = json.dumps(value)
        if not math.isfinite(value):
            return text
        return value if REDACTOR.redact(text) == text else MASK
    if isinstance(value, dict):
        return {_data(str(key)): _value(part, depth - 1) for key, part in value.items()}
    if isinstance(value, list | tuple):
        return [_value(part, depth - 1) for part in value]
    return _data(value if isinstance(value, str) else str(value))


def report_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of the JSON report, version 1 (a new copy each call)."""
    return copy.deepcopy(
        {
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "title": "owf-run report",
            "description": "One run of an owf-run job: its steps and every item (docs/reports.md).",
            "type": "object",
            "required": [*_RUN_PROPERTIES, "steps"],
            "additionalProperties": False,
            "properties": {
                **_RUN_PROPERTIES,
                "steps": {"type": "array", "items": {"$ref": "#/$defs/step"}},
            },
            "$defs": {
                "counts": _closed(_COUNTS),
                "step": _closed(_STEP_PROPERTIES),
                "item": _closed(_ITEM_PROPERTIES),
                "outputs": {
                    "type": "object",
                    "description": "Output name to value; secret outputs are never written.",
                },
            },
        }
    )


def _closed(properties: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "object",
        "required": list(properties),
        "additionalProperties": False,
        "properties": properties,
    }


def _described(kind: Any, description: str) -> dict[str, Any]:
    return {"type": kind, "description": description}


_TEXT_OR_NULL: Final = ["string", "null"]
_COUNT: Final = {"type": "integer", "minimum": 0}
_COUNTS: Final = dict.fromkeys(
    ("steps_succeeded", "steps_failed", "items_succeeded", "items_failed", "items_unknown"),
    _COUNT,
)
_RUN_PROPERTIES: Final = {
    "format": {"const": FORMAT},
    "version": {"const": VERSION},
    "run_id": _described("string", "The run's id, as `owf-run history` lists it."),
    "job_name": _described("string", "The job's `name:`."),
    "job_path": _described("string", "The job file the run read."),
    "job_sha256": _described("string", "SHA-256 of the job file as the run read it."),
    "target": _described("string", "okta, or emulator (a rehearsal: nothing reached Okta)."),
    "started_at": _described("string", "ISO 8601, UTC."),
    "finished_at": _described(_TEXT_OR_NULL, "ISO 8601, UTC; null while running."),
    "duration_seconds": {"type": ["number", "null"], "minimum": 0},
    "status": _described("string", "succeeded, failed, interrupted or running."),
    "exit_code": {"type": ["integer", "null"]},
    "sessions": {"type": "integer", "minimum": 1, "description": "1 + the number of resumes."},
    "counts": {"$ref": "#/$defs/counts"},
}
_STEP_PROPERTIES: Final = {
    "id": {"type": "string"},
    "position": {"type": "integer", "minimum": 0},
    "status": _described(
        "string", "succeeded, failed, unknown, skipped, not run, or running (stopped mid-way)."
    ),
    "attempts": _COUNT,
    "seconds": {"type": "number", "minimum": 0},
    "item_count": _COUNT,
    "failed_item_count": _COUNT,
    "outputs": {"$ref": "#/$defs/outputs"},
    "error": {"type": _TEXT_OR_NULL},
    "items": {"type": "array", "items": {"$ref": "#/$defs/item"}},
}
_ITEM_PROPERTIES: Final = {
    "index": {
        "type": ["integer", "null"],
        "minimum": 0,
        "description": "The item's index in the foreach; null for a step without foreach.",
    },
    "label": {"type": _TEXT_OR_NULL},
    "status": _described(
        "string", "succeeded, failed, unknown, or sending (in flight when the run stopped)."
    ),
    "attempts": _COUNT,
    "http_status": {"type": ["integer", "null"]},
    "outputs": {"$ref": "#/$defs/outputs"},
    "error": {"type": _TEXT_OR_NULL},
    "execution_id": {"type": _TEXT_OR_NULL},
}


# -- JUnit XML ----------------------------------------------------------------------------------

# What XML 1.0 cannot carry (escaped text never holds it: a last guard, not the escaping).
_NOT_XML: Final = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
_REPLACEMENT: Final = "\ufffd"


def write_junit(path: Path, run: RunRecord, steps: Sequence[StepRecord], items: Items) -> None:
    """One testsuite for the run, one testcase per step; a failed step's failure names its
    failed and unknown items."""
    job = shown(run.job_name)
    failed_elsewhere = _run_failed_elsewhere(run, steps)
    counts = _junit_counts(run, steps, failed_elsewhere)
    with _atomic(path) as out:
        out.write(_junit_head(run, job, counts))
        for step in steps:
            _write_testcase(out, job, step, items)
        if failed_elsewhere:
            out.write(_run_testcase(run, job))
        out.write("  </testsuite>\n</testsuites>\n")


def _junit_head(run: RunRecord, job: str, counts: dict[str, str]) -> str:
    totals = {name: value for name, value in counts.items() if name != "skipped"}  # not there
    suite = _attributes(name=job, timestamp=shown(run.started_at), **counts)
    return (
        f'<?xml version="1.0" encoding="UTF-8"?>\n<testsuites{_attributes(name=job, **totals)}>\n'
        f"  <testsuite{suite}>\n{_properties(run)}"
    )


def _run_testcase(run: RunRecord, job: str) -> str:
    reason = _run_reason(run)
    return (
        f"{_testcase_start(job, RUN_CASE, 0.0)}>\n{_failure_start(reason)}{_xml(reason)}"
        "</failure>\n    </testcase>\n"
    )


def _junit_counts(
    run: RunRecord, steps: Sequence[StepRecord], failed_elsewhere: bool
) -> dict[str, str]:
    """The testsuite's counts; the run's duration when known, else its steps' time."""
    seconds = _run_seconds(run)
    if seconds is None:
        seconds = sum(_seconds(step.seconds) for step in steps)
    return {
        "tests": str(len(steps) + failed_elsewhere),
        "failures": str(sum(map(_failing, steps)) + failed_elsewhere),
        "errors": "0",
        "skipped": str(sum(step.status in (SKIPPED, NOT_RUN) for step in steps)),
        "time": f"{seconds:.3f}",
    }


def _properties(run: RunRecord) -> str:
    facts = {
        "run_id": run.id,
        "job_path": run.job_path,
        "target": run.target,
        "status": run.status,
        "exit_code": "" if run.exit_code is None else str(run.exit_code),
        "sessions": str(run.sessions),
    }
    lines = [f"      <property{_attributes(name=k, value=shown(v))}/>\n" for k, v in facts.items()]
    return "    <properties>\n" + "".join(lines) + "    </properties>\n"


def _write_testcase(out: _ReportFile, job: str, step: StepRecord, items: Items) -> None:
    start = _testcase_start(job, shown(step.step_id), _seconds(step.seconds))
    if step.status in (SKIPPED, NOT_RUN):
        out.write(f"{start}>\n      <skipped{_attributes(message=shown(step.status))}/>\n")
    elif _failing(step):
        reason = _step_reason(step)
        text = _xml("\n".join(reason))
        out.write(f"{start}>\n{_failure_start(reason[0])}{text}")
        for entry in _listed(items(step.step_id)):
            out.write("\n" + _xml(_more(entry) if isinstance(entry, int) else _problem_line(entry)))
        out.write("</failure>\n")
    else:
        out.write(f"{start}/>\n")
        return
    out.write("    </testcase>\n")


def _testcase_start(job: str, name: str, seconds: float) -> str:
    """The opening tag, not yet closed: ``>`` or ``/>`` follows."""
    return f"    <testcase{_attributes(classname=job, name=name, time=f'{seconds:.3f}')}"


def _failure_start(message: str) -> str:
    return f"      <failure{_attributes(message=message, type=JUNIT_TYPE)}>"


def _problem_line(item: ItemRecord) -> str:
    """``alice: failed, HTTP 400, reason, execution 123``, as `owf-run show` lists it."""
    if item.status == SENDING:
        return f"{_item_name(item)}: {UNKNOWN_OUTCOME}"
    parts = [_item_status(item)]
    if item.http_status is not None:
        parts.append(f"HTTP {item.http_status}")
    if item.error:
        parts.append(_reason(item))
    if item.execution_id:
        parts.append(f"execution {_execution(item)}")
    return f"{_item_name(item)}: {', '.join(parts)}"


def _attributes(**values: str) -> str:
    """`` name="value"`` pairs; the values are escaped already (``shown``)."""
    return "".join(
        f" {name}={quoteattr(_NOT_XML.sub(_REPLACEMENT, value))}" for name, value in values.items()
    )


def _xml(text: str) -> str:
    """Escaped text (``shown``) as XML character data: `]]>` and `<` cannot end or open anything."""
    return xml_escape(_NOT_XML.sub(_REPLACEMENT, text))


# -- HTML ---------------------------------------------------------------------------------------

_CSP: Final = "default-src 'none'; style-src 'unsafe-inline'"
_STYLE: Final = """
body { font: 15px/1.45 system-ui, sans-serif; margin: 2rem auto; max-width: 72rem;
       padding: 0 1rem; color: #1b1f24; }
h1 { font-size: 1.5rem; } h2 { font-size: 1.15rem; margin-top: 2rem; }
dl { display: grid; grid-template-columns: max-content auto; gap: .2rem 1rem; }
dt { color: #57606a; } dd { margin: 0; }
table { border-collapse: collapse; width: 100%; }
th, td { text-align: left; padding: .3rem .6rem; border-bottom: 1px solid #d0d7de;
         vertical-align: top; overflow-wrap: anywhere; }
th { background: #f6f8fa; } td.n { text-align: right; font-variant-numeric: tabular-nums; }
.succeeded { color: #1a7f37; } .failed, .unknown, .sending, .running { color: #cf222e; }
.skipped, .not-run { color: #57606a; }
.note { color: #57606a; } code { font-size: .95em; }
""".strip()


def write_html(path: Path, run: RunRecord, steps: Sequence[StepRecord], items: Items) -> None:
    """One self-contained page: the run's facts, its steps, each failed step's items."""
    with _atomic(path) as out:
        out.write(_html_head(run))
        out.write(_html_facts(run))
        out.write(_html_steps(steps))
        for step in steps:
            if _failing(step):
                _write_html_problems(out, step, items(step.step_id))
        out.write(
            '<p class="note">Written by owf-run from the run journal. Request and response'
            " bodies are not included; secrets are masked.</p>\n</body>\n</html>\n"
        )


def _h(text: str) -> str:
    """Escaped text (``shown``) as HTML: `<script>` is text, not markup."""
    return html.escape(text, quote=True)


def _status_class(status: str) -> str:
    return re.sub(r"[^a-z]+", "-", status.lower()).strip("-") or "unknown"


def _html_head(run: RunRecord) -> str:
    title = _h(f"{shown(run.job_name)} — run {shown(run.id)}")
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f'<meta http-equiv="Content-Security-Policy" content="{_CSP}">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{title}</title>\n<style>\n{_STYLE}\n</style>\n</head>\n<body>\n"
        f"<h1>{_h(shown(run.job_name))}: run {_h(shown(run.id))}</h1>\n"
    )


def _html_facts(run: RunRecord) -> str:
    seconds = _run_seconds(run)
    target = "emulator (nothing reached Okta)" if run.target == EMULATOR else shown(run.target)
    facts = {
        "Status": _span(run.status),
        "Exit code": "-" if run.exit_code is None else str(run.exit_code),
        "Job file": f"<code>{_h(shown(run.job_path))}</code>",
        "Target": _h(target),
        "Started": _h(shown(run.started_at)),
        "Finished": "-" if run.finished_at is None else _h(shown(run.finished_at)),
        "Duration": "-" if seconds is None else duration(seconds),
        "Sessions": str(run.sessions),
        "Steps": f"{run.steps_succeeded:,} succeeded, {run.steps_failed:,} failed",
        "Items": (
            f"{run.items_succeeded:,} succeeded, {run.items_failed:,} failed,"
            f" {run.items_unknown:,} unknown"
        ),
    }
    rows = "".join(f"<dt>{name}</dt><dd>{value}</dd>\n" for name, value in facts.items())
    return f"<dl>\n{rows}</dl>\n"


def _span(status: str, text: str | None = None) -> str:
    """``text`` (the status itself by default), coloured by the status."""
    shown_text = shown(status) if text is None else text
    return f'<span class="{_status_class(status)}">{_h(shown_text)}</span>'


def _html_steps(steps: Sequence[StepRecord]) -> str:
    if not steps:
        return "<h2>Steps</h2>\n<p>No step ran.</p>\n"
    head = "<tr><th>Step</th><th>Status</th><th>Attempts</th><th>Items</th><th>Time</th></tr>"
    rows = "".join(_html_step_row(step) for step in steps)
    return f"<h2>Steps</h2>\n<table>\n<thead>{head}</thead>\n<tbody>\n{rows}</tbody>\n</table>\n"


def _html_step_row(step: StepRecord) -> str:
    items = "-"
    if step.items:
        failed = f" ({step.failed_items:,} failed)" if step.failed_items else ""
        items = f"{step.items:,}{failed}"
    cells = (
        _cell(_h(shown(step.step_id))),
        _cell(_span(step.status)),
        _number(f"{step.attempts:,}"),
        _number(items),
        _number(duration(_seconds(step.seconds))),
    )
    return f"<tr>{''.join(cells)}</tr>\n"


def _cell(markup: str) -> str:
    return f"<td>{markup}</td>"


def _number(markup: str) -> str:
    return f'<td class="n">{markup}</td>'


def _write_html_problems(out: _ReportFile, step: StepRecord, items: Iterable[ItemRecord]) -> None:
    reason = "<br>".join(map(_h, _step_reason(step)))
    out.write(f"<h2>Step {_h(shown(step.step_id))}: what failed</h2>\n<p>{reason}</p>\n")
    rows = 0
    for entry in _listed(items):
        out.write(("" if rows else _PROBLEMS_TABLE) + _html_problem_row(entry))
        rows += 1
    if rows:
        out.write("</tbody>\n</table>\n")


_PROBLEMS_TABLE: Final = (
    "<table>\n<thead><tr><th>Item</th><th>Status</th><th>HTTP</th><th>Reason</th>"
    "<th>Execution id</th></tr></thead>\n<tbody>\n"
)


def _html_problem_row(entry: ItemRecord | int) -> str:
    if isinstance(entry, int):
        return f'<tr><td colspan="5" class="note">{_more(entry)}</td></tr>\n'
    cells = (
        _cell(_h(_item_name(entry))),
        _cell(_span(entry.status, _item_status(entry))),
        _number("" if entry.http_status is None else str(entry.http_status)),
        _cell(_h(_reason(entry))),
        _cell(f"<code>{_h(_execution(entry))}</code>" if entry.execution_id else ""),
    )
    return f"<tr>{''.join(cells)}</tr>\n"
