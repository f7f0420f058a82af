"""Report files: the JSON report, JUnit XML and the HTML page, from the journal's records.

Exact content for a small run; each format validated (JSON Schema, the vendored JUnit XSD);
hostile text and planted secrets; flat memory for 100,000 items read from a real journal;
paths that cannot take a report.
"""

from __future__ import annotations

import errno
import functools
import html
import http.server
import json
import os
import re
import shutil
import subprocess
import threading
import tracemalloc
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, ClassVar

import jsonschema
import pytest
import xmlschema

from owf_runner import reports
from owf_runner.errors import ExitCode
from owf_runner.journal import STEP_INVOCATION, ItemRecord, Journal, RunRecord, StepRecord
from owf_runner.redaction import MASK, REDACTOR
from owf_runner.reports import (
    LISTED,
    ReportError,
    check_report_path,
    report_schema,
    write_html,
    write_json_report,
    write_junit,
)
from tests.conftest import DATA, encoded_forms

ROOT = Path(__file__).resolve().parent.parent
JUNIT_XSD = DATA / "junit" / "junit.xsd"
RUN_ID = "20261129T140000Z-ab12cd"
WRITERS = (write_json_report, write_junit, write_html)
Writer = Callable[[Path, RunRecord, list[StepRecord], reports.Items], None]


def a_run(**kw: Any) -> RunRecord:
    fields: dict[str, Any] = {
        "id": RUN_ID,
        "job_path": "/jobs/nightly.yaml",
        "job_sha256": "ab" * 32,
        "job_name": "nightly",
        "started_at": "2026-11-29T14:00:00+00:00",
        "finished_at": "2026-11-29T14:04:05+00:00",
        "status": "failed",
        "exit_code": 1,
        "steps_succeeded": 1,
        "steps_failed": 1,
        "items_succeeded": 1,  # a foreach's items: a plain step's request counts with the steps
        "items_failed": 1,
        "items_unknown": 2,
    }
    return RunRecord(**{**fields, **kw})


def a_step(step_id: str, position: int, status: str, **kw: Any) -> StepRecord:
    return StepRecord(run_id=RUN_ID, step_id=step_id, position=position, status=status, **kw)


def an_item(step_id: str, index: int, status: str, **kw: Any) -> ItemRecord:
    return ItemRecord(run_id=RUN_ID, step_id=step_id, index=index, status=status, **kw)


def items_of(*records: ItemRecord) -> reports.Items:
    """``items(step_id)`` over records in memory, streamed like the journal's."""

    def items(step_id: str) -> Iterator[ItemRecord]:
        return (record for record in records if record.step_id == step_id)

    return items


SMALL_STEPS = [
    a_step("token", 0, "succeeded", attempts=1, seconds=0.25, outputs={"org": "acme"}),
    a_step(
        "users", 1, "failed", attempts=6, seconds=2.5, items=4, failed_items=3,
        error="3 of 4 items failed (2 of them may have run the flow: not re-sent)",
    ),
    a_step("notify", 2, "not run"),
]  # fmt: skip
SMALL_ITEMS = items_of(
    an_item("token", STEP_INVOCATION, "succeeded", attempts=1, http_status=200,
            outputs={"org": "acme"}, body={"large": "and personal"}),
    an_item("users", 0, "succeeded", label="ada@example.com", attempts=1, http_status=200,
            outputs={"id": "00u1", "groups": [1, 2]}, execution_id="ex-1"),
    an_item("users", 1, "failed", label="bob@example.com", attempts=3, http_status=400,
            error="HTTP 400: Invalid email", execution_id="ex-2"),
    an_item("users", 2, "unknown", label="cy@example.com", attempts=1,
            error="timed out after 30s"),
    an_item("users", 3, "sending"),
)  # fmt: skip


def write(writer: Writer, path: Path, run: RunRecord | None = None, **kw: Any) -> str:
    steps = kw.get("steps", SMALL_STEPS)
    writer(path, run or a_run(), steps, kw.get("items", SMALL_ITEMS))
    return path.read_text(encoding="utf-8")


# -- the JSON report ----------------------------------------------------------------------------


def test_the_json_report_of_a_small_run(tmp_path: Path) -> None:
    report = json.loads(write(write_json_report, tmp_path / "r.json"))
    nothing = {"outputs": {}, "error": None, "execution_id": None}
    assert report == {
        "format": "owf-run report",
        "version": 1,
        "run_id": RUN_ID,
        "job_name": "nightly",
        "job_path": "/jobs/nightly.yaml",
        "job_sha256": "ab" * 32,
        "target": "okta",
        "started_at": "2026-11-29T14:00:00+00:00",
        "finished_at": "2026-11-29T14:04:05+00:00",
        "duration_seconds": 245.0,
        "status": "failed",
        "exit_code": 1,
        "sessions": 1,
        "counts": {
            "steps_succeeded": 1, "steps_failed": 1,
            "items_succeeded": 1, "items_failed": 1, "items_unknown": 2,
        },
        "steps": [
            {
                "id": "token", "position": 0, "status": "succeeded", "attempts": 1,
                "seconds": 0.25, "item_count": 0, "failed_item_count": 0,
                "outputs": {"org": "acme"}, "error": None,
                "items": [
                    {"index": None, "label": None, "status": "succeeded", "attempts": 1,
                     "http_status": 200, **nothing, "outputs": {"org": "acme"}},
                ],
            },
            {
                "id": "users", "position": 1, "status": "failed", "attempts": 6,
                "seconds": 2.5, "item_count": 4, "failed_item_count": 3, "outputs": {},
                "error": "3 of 4 items failed (2 of them may have run the flow: not re-sent)",
                "items": [
                    {"index": 0, "label": "ada@example.com", "status": "succeeded",
                     "attempts": 1, "http_status": 200, "outputs": {"id": "00u1", "groups": [1, 2]},
                     "error": None, "execution_id": "ex-1"},
                    {"index": 1, "label": "bob@example.com", "status": "failed", "attempts": 3,
                     "http_status": 400, "outputs": {}, "error": "HTTP 400: Invalid email",
                     "execution_id": "ex-2"},
                    {"index": 2, "label": "cy@example.com", "status": "unknown", "attempts": 1,
                     "http_status": None, "outputs": {}, "error": "timed out after 30s",
                     "execution_id": None},
                    {"index": 3, "label": None, "status": "sending", "attempts": 0,
                     "http_status": None, **nothing},
                ],
            },
            {
                "id": "notify", "position": 2, "status": "not run", "attempts": 0,
                "seconds": 0.0, "item_count": 0, "failed_item_count": 0, "outputs": {},
                "error": None, "items": [],
            },
        ],
    }  # fmt: skip


def test_the_json_report_layout_one_item_a_line(tmp_path: Path) -> None:
    run = a_run(finished_at=None, status="running", exit_code=None)
    steps = [a_step("ping", 0, "succeeded", attempts=1, seconds=0.1)]
    items = items_of(an_item("ping", STEP_INVOCATION, "succeeded", attempts=1, http_status=204))
    text = write(write_json_report, tmp_path / "r.json", run, steps=steps, items=items)
    assert text.endswith(
        '  "steps": [\n'
        "    {\n"
        '      "id": "ping",\n'
        '      "position": 0,\n'
        '      "status": "succeeded",\n'
        '      "attempts": 1,\n'
        '      "seconds": 0.1,\n'
        '      "item_count": 0,\n'
        '      "failed_item_count": 0,\n'
        '      "outputs": {},\n'
        '      "error": null,\n'
        '      "items": [\n'
        '        {"index": null, "label": null, "status": "succeeded", "attempts": 1,'
        ' "http_status": 204, "outputs": {}, "error": null, "execution_id": null}\n'
        "      ]\n"
        "    }\n"
        "  ]\n"
        "}\n"
    )
    assert '  "finished_at": null,\n  "duration_seconds": null,\n' in text


def test_a_run_without_steps_is_a_valid_report(tmp_path: Path) -> None:
    text = write(write_json_report, tmp_path / "r.json", steps=[], items=items_of())
    assert text.endswith('"steps": []\n}\n')
    jsonschema.validate(json.loads(text), report_schema())


def test_the_json_report_validates_against_its_schema(tmp_path: Path) -> None:
    jsonschema.Draft202012Validator.check_schema(report_schema())
    for run in (a_run(), a_run(target="emulator", status="running", finished_at=None)):
        report = json.loads(write(write_json_report, tmp_path / "r.json", run))
        jsonschema.Draft202012Validator(report_schema()).validate(report)


def test_the_schema_refuses_what_the_report_never_holds(tmp_path: Path) -> None:
    report = json.loads(write(write_json_report, tmp_path / "r.json"))
    report["steps"][1]["items"][0]["body"] = {"large": "and personal"}
    with pytest.raises(jsonschema.ValidationError, match="'body' was unexpected"):
        jsonschema.validate(report, report_schema())


def test_the_committed_schema_is_current() -> None:
    committed = (ROOT / "schemas" / "report.schema.json").read_text(encoding="utf-8")
    expected = json.dumps(report_schema(), indent=2) + "\n"
    assert committed == expected, "schemas/report.schema.json is stale: regenerate it"


def test_report_schema_returns_a_fresh_copy() -> None:
    report_schema()["$defs"]["counts"]["properties"]["steps_failed"]["minimum"] = 5
    assert report_schema()["$defs"]["counts"]["properties"]["steps_failed"]["minimum"] == 0


def test_bodies_and_responses_never_reach_the_report(tmp_path: Path) -> None:
    steps = [a_step("token", 0, "succeeded", response={"status": 200, "body": "PERSONAL-1"})]
    items = items_of(an_item("token", STEP_INVOCATION, "succeeded", body={"p": "PERSONAL-2"}))
    for writer in WRITERS:
        text = write(writer, tmp_path / "r", steps=steps, items=items)
        assert "PERSONAL" not in text


def test_output_values_of_every_json_type(tmp_path: Path) -> None:
    deep: Any = "bottom"
    for _ in range(reports.MAX_DEPTH + 5):
        deep = [deep]
    outputs = {"n": 7, "f": 1.5, "nan": float("nan"), "inf": float("-inf"), "b": True,
               "none": None, "set": {1}, "deep": deep}  # fmt: skip
    items = items_of(an_item("users", 0, "succeeded", outputs=outputs))
    steps = [a_step("users", 0, "succeeded")]
    report = json.loads(write(write_json_report, tmp_path / "r.json", steps=steps, items=items))
    written = report["steps"][0]["items"][0]["outputs"]
    assert {k: v for k, v in written.items() if k != "deep"} == {
        "n": 7, "f": 1.5, "nan": "NaN", "inf": "-Infinity", "b": True, "none": None,
        "set": "{1}",
    }  # fmt: skip
    innermost = written["deep"]
    while isinstance(innermost, list):
        innermost = innermost[0]
    assert innermost == reports.TOO_DEEP


def test_a_number_that_is_a_secret_is_masked(tmp_path: Path) -> None:
    REDACTOR.add_value(987654321)
    items = items_of(an_item("users", 0, "succeeded", outputs={"pin": 987654321, "n": 12}))
    steps = [a_step("users", 0, "succeeded")]
    report = json.loads(write(write_json_report, tmp_path / "r.json", steps=steps, items=items))
    assert report["steps"][0]["items"][0]["outputs"] == {"pin": MASK, "n": 12}


def test_a_lone_surrogate_is_spelled_out(tmp_path: Path) -> None:
    items = items_of(an_item("users", 0, "failed", label="caf\udce9", error="\ud800!"))
    steps = [a_step("users", 0, "failed")]
    text = write(write_json_report, tmp_path / "r.json", steps=steps, items=items)
    assert text.isascii()
    item = json.loads(text)["steps"][0]["items"][0]
    assert (item["label"], item["error"]) == ("caf\\udce9", "\\ud800!")


# -- JUnit XML --------------------------------------------------------------------------------


@functools.cache
def junit_schema() -> xmlschema.XMLSchema:
    return xmlschema.XMLSchema(JUNIT_XSD)


def junit(path: Path, **kw: Any) -> ET.Element:
    text = write(write_junit, path, kw.pop("run", None), **kw)
    junit_schema().validate(path)
    return ET.fromstring(text)  # noqa: S314 (the file under test, validated just above)


@pytest.mark.parametrize(
    "document",
    [
        '<testsuites skipped="1"/>',  # not an attribute the common schema knows there
        '<testsuites><testsuite name="j" tests="1"><testcase/></testsuite></testsuites>',
        '<testsuites><testsuite name="j" tests="one"/></testsuites>',
        '<testsuites><testsuite name="j" tests="1" time="1,5"/></testsuites>',
        '<testsuites><testsuite name="j" tests="1"><testcase name="s"><failure message="m"/>'
        "</testcase></testsuite></testsuites>",  # a failure without its type
    ],
)
def test_the_vendored_junit_schema_has_teeth(document: str) -> None:
    assert not junit_schema().is_valid(document)


def test_junit_of_a_small_run(tmp_path: Path) -> None:
    root = junit(tmp_path / "r.xml")
    assert root.tag == "testsuites"
    assert root.attrib == {"name": "nightly", "tests": "3", "failures": "1", "errors": "0",
                           "time": "245.000"}  # fmt: skip
    (suite,) = root
    assert suite.attrib == {
        "name": "nightly", "timestamp": "2026-11-29T14:00:00+00:00", "tests": "3",
        "failures": "1", "errors": "0", "skipped": "1", "time": "245.000",
    }  # fmt: skip
    properties = {p.get("name"): p.get("value") for p in suite.iter("property")}
    assert properties == {"run_id": RUN_ID, "job_path": "/jobs/nightly.yaml", "target": "okta",
                          "status": "failed", "exit_code": "1", "sessions": "1"}  # fmt: skip
    token, users, notify = suite.iter("testcase")
    assert token.attrib == {"classname": "nightly", "name": "token", "time": "0.250"}
    assert list(token) == []
    assert users.attrib == {"classname": "nightly", "name": "users", "time": "2.500"}
    (failure,) = users
    assert failure.tag == "failure"
    assert failure.attrib == {
        "message": "3 of 4 items failed (2 of them may have run the flow: not re-sent)",
        "type": "owf-run",
    }
    assert failure.text == (
        "3 of 4 items failed (2 of them may have run the flow: not re-sent)\n"
        "bob@example.com: failed, HTTP 400, HTTP 400: Invalid email, execution ex-2\n"
        "cy@example.com: outcome unknown, timed out after 30s\n"
        "#3: outcome unknown (the run stopped while it was in flight)"
    )
    assert [(child.tag, child.attrib) for child in notify] == [("skipped", {"message": "not run"})]


def test_junit_names_the_first_thousand_failed_items_then_counts(tmp_path: Path) -> None:
    failed = [an_item("users", i, "failed", error="HTTP 500") for i in range(LISTED + 5)]
    steps = [a_step("users", 0, "failed", items=LISTED + 5, failed_items=LISTED + 5)]
    root = junit(tmp_path / "r.xml", steps=steps, items=items_of(*failed))
    failure = root.find("./testsuite/testcase/failure")
    assert failure is not None
    assert failure.text is not None
    lines = failure.text.split("\n")
    assert lines[0] == "failed" == failure.get("message")  # a step without an error: its status
    assert lines[1:3] == ["#0: failed, HTTP 500", "#1: failed, HTTP 500"]
    assert lines[LISTED] == f"#{LISTED - 1}: failed, HTTP 500"
    assert lines[LISTED + 1 :] == ["... and 5 more"]


def test_a_step_without_foreach_names_its_request(tmp_path: Path) -> None:
    steps = [a_step("ping", 0, "failed", error="HTTP 503: try later\nsecond line")]
    items = items_of(an_item("ping", STEP_INVOCATION, "failed", http_status=503))
    failure = junit(tmp_path / "r.xml", steps=steps, items=items).find(".//failure")
    assert failure is not None
    assert failure.get("message") == "HTTP 503: try later"
    assert failure.text == "HTTP 503: try later\nsecond line\nthe request: failed, HTTP 503"


def test_a_run_that_failed_outside_its_steps_is_a_failed_testcase(tmp_path: Path) -> None:
    run = a_run(exit_code=4)
    steps = [a_step("token", 0, "succeeded")]
    root = junit(tmp_path / "r.xml", run=run, steps=steps, items=items_of())
    assert (root.get("tests"), root.get("failures")) == ("2", "1")
    case = root.findall(".//testcase")[-1]
    assert case.get("name") == "(run)"
    failure = case.find("failure")
    assert failure is not None
    assert failure.get("message") == failure.text == "the run did not succeed: failed, exit code 4"


def test_a_run_still_running_says_so(tmp_path: Path) -> None:
    run = a_run(status="running", finished_at=None, exit_code=None)
    steps = [a_step("token", 0, "succeeded")]
    failure = junit(tmp_path / "r.xml", run=run, steps=steps, items=items_of()).find(".//failure")
    assert failure is not None
    assert failure.text == "the run had not finished when this report was written"


def test_a_successful_run_has_no_failure(tmp_path: Path) -> None:
    run = a_run(status="succeeded", exit_code=0)
    steps = [a_step("token", 0, "succeeded"), a_step("later", 1, "skipped")]
    root = junit(tmp_path / "r.xml", run=run, steps=steps, items=items_of())
    assert root.get("failures") == "0"
    assert root.find(".//failure") is None


# -- HTML -------------------------------------------------------------------------------------


def test_the_html_page_is_self_contained(tmp_path: Path) -> None:
    page = write(write_html, tmp_path / "r.html")
    assert page.startswith('<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n')
    assert (
        '<meta http-equiv="Content-Security-Policy"'
        " content=\"default-src 'none'; style-src 'unsafe-inline'\">"
    ) in page
    assert f"<title>nightly — run {RUN_ID}</title>" in page
    for outside in ("<script", "src=", "href=", "url(", "@import", "<link", "http://", "https://"):
        assert outside not in page.lower()


def test_the_html_page_shows_the_steps_and_failed_items(tmp_path: Path) -> None:
    page = write(write_html, tmp_path / "r.html")
    assert (
        '<tr><td>users</td><td><span class="failed">failed</span></td><td class="n">6</td>'
        '<td class="n">4 (3 failed)</td><td class="n">2.5s</td></tr>'
    ) in page
    assert "<dt>Duration</dt><dd>4m05s</dd>" in page
    assert (
        "<h2>Step users: what failed</h2>\n"
        "<p>3 of 4 items failed (2 of them may have run the flow: not re-sent)</p>\n"
    ) in page
    rows = re.findall(r"<tr><td>(?!token|users|notify).*?</tr>", page)
    assert rows == [
        '<tr><td>bob@example.com</td><td><span class="failed">failed</span></td>'
        '<td class="n">400</td><td>HTTP 400: Invalid email</td><td><code>ex-2</code></td></tr>',
        '<tr><td>cy@example.com</td><td><span class="unknown">outcome unknown</span></td>'
        '<td class="n"></td><td>timed out after 30s</td><td></td></tr>',
        '<tr><td>#3</td><td><span class="sending">outcome unknown (the run stopped while it was'
        ' in flight)</span></td><td class="n"></td><td></td><td></td></tr>',
    ]
    assert "ada@example.com" not in page  # succeeded items are not listed


def test_the_html_page_lists_the_first_thousand_then_counts(tmp_path: Path) -> None:
    failed = [an_item("users", i, "failed") for i in range(LISTED + 2)]
    steps = [a_step("users", 0, "failed")]
    page = write(write_html, tmp_path / "r.html", steps=steps, items=items_of(*failed))
    assert page.count("<tr><td>#") == LISTED
    assert '<tr><td colspan="5" class="note">... and 2 more</td></tr>\n</tbody>' in page


def test_an_emulated_run_says_so(tmp_path: Path) -> None:
    page = write(write_html, tmp_path / "r.html", a_run(target="emulator"))
    assert "<dt>Target</dt><dd>emulator (nothing reached Okta)</dd>" in page


# -- hostile text and secrets -------------------------------------------------------------------

HOSTILE = "<script>alert(1)</script> ]]> \x00 \x1b[2J \u202e & \"'"


def hostile_records() -> tuple[RunRecord, list[StepRecord], reports.Items]:
    run = a_run(job_name=HOSTILE, id=HOSTILE)
    steps = [a_step("users", 0, "failed", error=HOSTILE, outputs={HOSTILE: HOSTILE})]
    items = items_of(
        an_item("users", 0, "failed", label=HOSTILE, error=HOSTILE, execution_id=HOSTILE,
                outputs={"o": HOSTILE}),
    )  # fmt: skip
    return run, steps, items


@pytest.mark.parametrize("writer", WRITERS, ids=lambda w: w.__name__)
def test_hostile_text_is_escaped(tmp_path: Path, writer: Writer) -> None:
    path = tmp_path / "r"
    writer(path, *hostile_records())
    raw = path.read_bytes()
    for byte in (b"\x00", b"\x1b", "\u202e".encode()):
        assert byte not in raw
    if writer is not write_json_report:  # in JSON, `<script>` is a string like any other
        assert b"<script" not in raw
        assert b"]]>" not in raw


def test_hostile_text_keeps_every_format_valid(tmp_path: Path) -> None:
    run, steps, items = hostile_records()
    write_json_report(tmp_path / "r.json", run, steps, items)
    report = json.loads((tmp_path / "r.json").read_text())
    jsonschema.validate(report, report_schema())
    assert report["steps"][0]["items"][0]["label"] == HOSTILE  # JSON escapes it itself
    write_junit(tmp_path / "r.xml", run, steps, items)
    junit_schema().validate(tmp_path / "r.xml")
    failure = ET.parse(tmp_path / "r.xml").find(".//failure")  # noqa: S314 (as above)
    assert failure is not None
    assert failure.text is not None
    shown = "<script>alert(1)</script> ]]> \\x00 \\x1b[2J \\u202e & \"'"
    assert failure.text.split("\n")[1] == f"{shown}: failed, {shown}, execution {shown}"
    write_html(tmp_path / "r.html", run, steps, items)
    page = (tmp_path / "r.html").read_text()
    assert "&lt;script&gt;alert(1)&lt;/script&gt; ]]&gt; \\x00 \\x1b[2J \\u202e &amp;" in page


CANARY = "Canary-7f3a9c2e5b1d4f6a8c0e/+=ü"


def canary_records() -> tuple[RunRecord, list[StepRecord], reports.Items]:
    forms = list(encoded_forms(CANARY).values())
    text = " ".join(forms)
    run = a_run(id=f"run-{CANARY}", job_name=text, job_path=f"/jobs/{CANARY}.yaml")
    steps = [
        a_step("users", 0, "failed", error=text, outputs={CANARY: forms, "x": {"k": CANARY}}),
    ]
    items = items_of(
        an_item("users", 0, "failed", label=text, error=text, execution_id=CANARY,
                outputs={"o": text, CANARY: [CANARY]}),
        an_item("users", 1, "unknown", label=CANARY * 3),
    )  # fmt: skip
    return run, steps, items


@pytest.mark.parametrize("writer", WRITERS, ids=lambda w: w.__name__)
def test_a_registered_secret_never_reaches_a_report(tmp_path: Path, writer: Writer) -> None:
    REDACTOR.add(CANARY)
    path = tmp_path / "r"
    writer(path, *canary_records())
    written = path.read_bytes()
    for name, form in encoded_forms(CANARY).items():
        assert form.encode() not in written, name
    assert MASK.encode() in written


# -- memory stays flat --------------------------------------------------------------------------

MANY = 100_000
PEAK_BYTES = 4 * 1024 * 1024


@pytest.fixture(scope="module")
def big_journal(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Journal]:
    """A real journal holding one run whose foreach step has MANY failed items."""
    with Journal.open(tmp_path_factory.mktemp("state")) as journal:
        journal.begin_run(a_run(finished_at=None, status="running"))
        for index in range(MANY):
            journal.finished(an_item("users", index, "failed", label=f"u{index}", attempts=1))
        journal.step_finished(a_step("users", 0, "failed", items=MANY, failed_items=MANY))
        journal.finish_run(RUN_ID, "failed", 1, "2026-11-29T14:10:00+00:00")
        yield journal


@pytest.mark.parametrize("writer", WRITERS, ids=lambda w: w.__name__)
def test_memory_stays_flat_for_many_items(
    tmp_path: Path, big_journal: Journal, writer: Writer
) -> None:
    run = big_journal.run(RUN_ID)
    assert run is not None
    steps = big_journal.steps(RUN_ID)
    items = functools.partial(big_journal.items, RUN_ID)
    tracemalloc.start()
    try:
        writer(tmp_path / "r", run, steps, items)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < PEAK_BYTES
    text = (tmp_path / "r").read_text()
    assert f"u{MANY - 1}" in text if writer is write_json_report else f"{MANY - LISTED:,}" in text


def test_the_journal_streams_what_a_report_reads(tmp_path: Path) -> None:
    with Journal.open(tmp_path / "state") as journal:
        journal.begin_run(a_run(finished_at=None, status="running"))
        for step in SMALL_STEPS:
            journal.step_finished(step)
        for step in SMALL_STEPS:
            for item in SMALL_ITEMS(step.step_id):
                journal.finished(item)
        journal.finish_run(RUN_ID, "failed", 1, "2026-11-29T14:04:05+00:00")
        run = journal.run(RUN_ID)
        assert run is not None
        items = functools.partial(journal.items, RUN_ID)
        write_json_report(tmp_path / "from-journal.json", run, journal.steps(RUN_ID), items)
    write(write_json_report, tmp_path / "by-hand.json")
    from_journal = json.loads((tmp_path / "from-journal.json").read_text())
    assert from_journal == json.loads((tmp_path / "by-hand.json").read_text())


# -- where a report may go ------------------------------------------------------------------------


def refused(path: Path) -> str:
    """The message for ``path``, the same from the check and from every writer, with nothing
    written."""
    with pytest.raises(ReportError) as checked:
        check_report_path(path)
    assert checked.value.exit_code == ExitCode.USAGE == 2
    for writer in WRITERS:
        with pytest.raises(ReportError) as caught:
            writer(path, a_run(), SMALL_STEPS, SMALL_ITEMS)
        assert str(caught.value) == str(checked.value)
    return str(checked.value)


def test_a_missing_directory_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "missing" / "r.json"
    assert refused(path) == (
        f"{path}: cannot write the report (no such directory: {tmp_path / 'missing'}):"
        " create it first or name another file"
    )
    assert list(tmp_path.iterdir()) == []


def test_a_directory_is_refused(tmp_path: Path) -> None:
    assert (
        refused(tmp_path) == f"{tmp_path}: cannot write the report (it is a directory): name a file"
    )
    assert list(tmp_path.iterdir()) == []


def test_a_file_as_the_directory_is_refused(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    path = tmp_path / "file" / "r.json"
    assert refused(path) == (
        f"{path}: cannot write the report ({tmp_path / 'file'} is not a directory):"
        " name another file"
    )


def test_a_device_or_pipe_is_refused(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "pipe")
    path = tmp_path / "pipe"
    assert refused(path) == f"{path}: cannot write the report (not a regular file): name a file"
    assert refused(Path("/dev/null")) == (
        "/dev/null: cannot write the report (not a regular file): name a file"
    )


def test_a_directory_without_write_permission_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(os, "access", lambda *_args, **_kw: False)  # as root writes anywhere
    path = tmp_path / "r.json"
    assert refused(path) == (
        f"{path}: cannot write the report (permission denied in {tmp_path}):"
        " fix the permissions or name another file"
    )


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes anywhere")
def test_a_read_only_directory_is_refused(tmp_path: Path) -> None:
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    assert "(permission denied in" in refused(locked / "r.json")


def test_control_characters_in_a_path_are_escaped(tmp_path: Path) -> None:
    path = tmp_path / "no\x1bdir" / "r.json"
    assert refused(path).startswith(f"{tmp_path}/no\\x1bdir/r.json: cannot write the report")


def test_a_report_replaces_the_old_one_whole(tmp_path: Path) -> None:
    path = tmp_path / "r.json"
    path.write_text("old")
    write(write_json_report, path)
    assert json.loads(path.read_text())["run_id"] == RUN_ID
    assert [p.name for p in tmp_path.iterdir()] == ["r.json"]


def failing_items(step_id: str) -> Iterable[ItemRecord]:
    yield an_item(step_id, 0, "failed")
    raise RuntimeError("the journal went away")


@pytest.mark.parametrize("writer", WRITERS, ids=lambda w: w.__name__)
def test_an_error_midway_leaves_no_temporary_file(tmp_path: Path, writer: Writer) -> None:
    path = tmp_path / "r"
    path.write_text("old")
    with pytest.raises(RuntimeError, match="the journal went away"):
        writer(path, a_run(), SMALL_STEPS, failing_items)
    assert [p.name for p in tmp_path.iterdir()] == ["r"]
    assert path.read_text() == "old"


@pytest.mark.parametrize("call", ["fsync", "replace"])
def test_a_failed_write_is_a_report_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, call: str
) -> None:
    def full(*_args: object) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, call, full)
    path = tmp_path / "r.xml"
    with pytest.raises(ReportError) as caught:
        write(write_junit, path)
    assert str(caught.value) == (
        f"{path}: cannot write the report (No space left on device): name another file"
    )
    assert list(tmp_path.iterdir()) == []


def test_a_symbolic_link_is_written_through(tmp_path: Path) -> None:
    (tmp_path / "reports").mkdir()
    target = tmp_path / "reports" / "latest.json"
    target.write_text("old")
    link = tmp_path / "r.json"
    link.symlink_to(target)
    write(write_json_report, link)
    assert link.is_symlink()
    assert json.loads(target.read_text())["run_id"] == RUN_ID
    assert sorted(p.name for p in (tmp_path / "reports").iterdir()) == ["latest.json"]


def test_a_link_to_a_device_is_refused(tmp_path: Path) -> None:
    link = tmp_path / "out"
    link.symlink_to("/dev/null")
    assert refused(link) == f"{link}: cannot write the report (not a regular file): name a file"
    assert link.is_symlink()


def test_a_loop_of_links_is_refused(tmp_path: Path) -> None:
    (tmp_path / "a").symlink_to(tmp_path / "b")
    (tmp_path / "b").symlink_to(tmp_path / "a")
    path = tmp_path / "a"
    assert refused(path) == (f"{path}: cannot write the report (a symbolic link loop): name a file")


def test_a_directory_that_may_not_be_searched_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def denied(self: Path) -> bool:
        raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(self))

    monkeypatch.setattr(Path, "is_dir", denied)  # as a user meets /root/x
    path = tmp_path / "r.json"
    assert refused(path) == (
        f"{path}: cannot write the report (Permission denied): fix the permissions or name"
        " another file"
    )


# -- in a real browser ----------------------------------------------------------------------------

BROWSERS = ("chromium", "chromium-browser", "google-chrome")


def a_browser() -> str:
    """Chromium's path; a skip elsewhere, saying why, and a failure on CI, which installs it."""
    for name in BROWSERS:
        found = shutil.which(name)
        if found:
            return found
    why = "no Chromium here (Debian: apt-get install chromium); scripts/test installs it in CI"
    if os.environ.get("CI") == "true":
        pytest.fail(why)
    pytest.skip(why)


class Requests(http.server.BaseHTTPRequestHandler):
    """Counts every request a page makes to it: a report must make none."""

    seen: ClassVar[list[str]] = []

    def do_GET(self) -> None:
        self.seen.append(self.path)
        self.send_response(204)
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def listener() -> Iterator[tuple[str, list[str]]]:
    """A loopback server and the paths requested from it."""
    seen: list[str] = []
    handler = type("Handler", (Requests,), {"seen": seen})
    with http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler) as server:
        thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
        thread.start()
        try:
            yield f"http://127.0.0.1:{server.server_address[1]}", seen
        finally:
            server.shutdown()
            thread.join()


def rendered(browser: str, page: Path, profile: Path) -> str:
    """The page's DOM once Chromium has loaded it (its subresources too, had it any)."""
    command = [
        browser, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
        "--disable-extensions", "--disable-background-networking",
        f"--user-data-dir={profile}", "--dump-dom", page.as_uri(),
    ]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, timeout=60, check=True)
    return result.stdout


def test_a_browser_renders_hostile_labels_as_text_and_loads_nothing(
    tmp_path: Path, listener: tuple[str, list[str]]
) -> None:
    browser = a_browser()
    url, seen = listener
    # The harness sees what a page loads: a bare <img> to the listener is requested.
    control = tmp_path / "control.html"
    control.write_text(f'<!DOCTYPE html><img src="{url}/control">', encoding="utf-8")
    rendered(browser, control, tmp_path / "profile")
    assert seen == ["/control"]
    markup = (
        f'<script src="{url}/script"></script><img src="{url}/img">'
        f'<link rel="stylesheet" href="{url}/css"><style>@import "{url}/import";</style>'
    )
    run = a_run(job_name=markup)
    steps = [a_step("users", 0, "failed", error=markup)]
    items = items_of(an_item("users", 0, "failed", label=markup, error=markup))
    page = tmp_path / "r.html"
    write_html(page, run, steps, items)
    dom = rendered(browser, page, tmp_path / "profile")
    assert seen == ["/control"]  # nothing more: the page loaded nothing
    assert "<script" not in dom
    assert "<img" not in dom
    assert html.escape(markup, quote=False) in dom  # shown as the text it is
