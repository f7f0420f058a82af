"""The repository documents itself.

The generated reference pages are fresh, every link in README.md and docs/ stays inside the
repository and resolves, and the hand-written pages name every key of the model and every
name of the template context, so they cannot drift from the code unnoticed.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import pytest

from owf_runner import __version__
from owf_runner.model import job_schema

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
SCRIPT = ROOT / "scripts" / "gen_reference.py"
MARKDOWN = [ROOT / "README.md", *sorted(DOCS.rglob("*.md"))]

FENCED_BLOCK = re.compile(r"^ {0,3}(`{3,}|~{3,}).*?^ {0,3}\1", re.MULTILINE | re.DOTALL)
CODE_SPAN = re.compile(r"(`+)(.+?)(?<!`)\1(?!`)", re.DOTALL)
INLINE_LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(\s*<?([^)\s>]*)>?(?:\s+\"[^\"]*\")?\s*\)")
REFERENCE_DEFINITION = re.compile(r"^ {0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s|$)", re.MULTILINE)
HTML_LINK = re.compile(r"""\b(?:href|src)\s*=\s*["']([^"']*)["']""", re.IGNORECASE)
HTML_ANCHOR = re.compile(r"""<a\s[^>]*\b(?:id|name)\s*=\s*["']([^"']+)["']""", re.IGNORECASE)
HEADING = re.compile(r"^ {0,3}#{1,6}\s+(.+?)\s*#*\s*$", re.MULTILINE)
URL_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")
YAML_KEY = re.compile(r"(?:^|[\s{,\[-])([A-Za-z_][A-Za-z0-9_]*):(?=\s|$)", re.MULTILINE)


def read(path: Path) -> str:
    return path.read_text(encoding="utf-8")


def relative(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


# -- (a) the generated pages are fresh ------------------------------------------------


def gen_reference(*args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, str(SCRIPT), *args]
    return subprocess.run(command, capture_output=True, text=True, cwd=ROOT, timeout=120)


def test_generated_reference_pages_are_fresh() -> None:
    result = gen_reference("--check")
    assert result.returncode == 0, result.stderr


def test_check_fails_on_a_page_edited_by_hand(tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    shutil.copytree(DOCS, docs)
    page = docs / "job-file-reference.md"
    page.write_text(read(page).replace("| `steps` |", "| `stepz` |"), encoding="utf-8")
    result = gen_reference("--check", "--docs", str(docs))
    assert result.returncode == 1
    assert f"{page} is stale" in result.stderr


def test_check_fails_on_a_missing_page(tmp_path: Path) -> None:
    result = gen_reference("--check", "--docs", str(tmp_path))
    assert result.returncode == 1
    assert f"{tmp_path / 'job-file-reference.md'} is stale" in result.stderr


def object_schemas(schema: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The top level and every object definition of a schema, by name."""
    defs = schema.get("$defs", {})
    objects = {name: node for name, node in defs.items() if "properties" in node}
    return {"(top level)": schema, **objects}


def test_job_reference_has_a_table_row_for_every_key_of_every_object() -> None:
    page = read(DOCS / "job-file-reference.md")
    objects = object_schemas(job_schema())
    assert len(HEADING.findall(page)) == 1 + len(objects)  # the title, then one per object
    rows = set(re.findall(r"^\| `([^`]+)` \|", page, re.MULTILINE))
    missing = {key for node in objects.values() for key in node["properties"]} - rows
    assert not missing, f"keys without a row in job-file-reference.md: {sorted(missing)}"


# -- (b) links stay inside the repository and resolve ----------------------------------


def prose(text: str) -> str:
    """The Markdown without fenced blocks and code spans: where links are links."""
    return CODE_SPAN.sub("", FENCED_BLOCK.sub("", text))


def link_targets(text: str) -> Iterator[str]:
    outside_code = prose(text)
    for pattern in (INLINE_LINK, REFERENCE_DEFINITION, HTML_LINK):
        yield from pattern.findall(outside_code)


def github_slug(heading: str) -> str:
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link's text only
    return re.sub(r"[^\w\- ]", "", text.lower()).replace(" ", "-")


@cache
def anchors(path: Path) -> frozenset[str]:
    text = FENCED_BLOCK.sub("", read(path))
    found: set[str] = set(HTML_ANCHOR.findall(text))
    seen: dict[str, int] = {}
    for heading in HEADING.findall(text):
        slug = github_slug(heading)
        count = seen.get(slug, 0)
        found.add(slug if count == 0 else f"{slug}-{count}")
        seen[slug] = count + 1
    return frozenset(found)


def link_problem(doc: Path, target: str) -> str | None:
    if not target:
        return "empty link"
    if URL_SCHEME.match(target) or target.startswith(("/", "//")):
        return "not a relative link"
    path_part, _, anchor = target.partition("#")
    path = (doc.parent / unquote(path_part)).resolve() if path_part else doc
    if not path.is_relative_to(ROOT):
        return "leaves the repository"
    if not path.is_file():
        return "no such file"
    if anchor and path.suffix == ".md" and anchor not in anchors(path):
        return f"no heading or anchor #{anchor} in {relative(path)}"
    return None


@pytest.mark.parametrize("doc", MARKDOWN, ids=relative)
def test_every_link_is_relative_and_resolves(doc: Path) -> None:
    problems = [
        f"{target}: {problem}"
        for target in link_targets(read(doc))
        if (problem := link_problem(doc, target))
    ]
    assert not problems, f"{relative(doc)}: " + "; ".join(problems)


@pytest.mark.parametrize("doc", MARKDOWN, ids=relative)
def test_no_web_address_outside_code(doc: Path) -> None:
    # GitHub turns a bare http(s) address into a link: that would leave the repository too.
    found = re.findall(r"\bhttps?://\S+", prose(read(doc)))
    assert not found, f"{relative(doc)}: {found}"


# A pinned owf-runner in an example (a wheel's name, an image tag, a requirement).
PINNED_VERSION = re.compile(r"owf[-_]runner(?:-|:|==)(\d+\.\d+\.\d+)")
EXAMPLES = [*MARKDOWN, *sorted((DOCS / "ci").glob("*.yml")), *sorted(DOCS.rglob("*.yaml"))]


@pytest.mark.parametrize("doc", EXAMPLES, ids=relative)
def test_a_version_pinned_in_an_example_is_this_one(doc: Path) -> None:
    """Copied as written, an example installs the version its docs describe."""
    pinned = set(PINNED_VERSION.findall(read(doc)))
    assert pinned <= {__version__}, f"{relative(doc)} pins {sorted(pinned)}, not {__version__}"


def test_the_version_pin_pattern_finds_each_form() -> None:
    text = "owf_runner-9.9.9-py3-none-any.whl owf-runner:1.2.3 owf-runner==0.0.1 owf-runner 3"
    assert PINNED_VERSION.findall(text) == ["9.9.9", "1.2.3", "0.0.1"]


@pytest.mark.parametrize(
    ("target", "problem"),
    [
        ("https://example.com/", "not a relative link"),
        ("../shared/DESIGN.md", "leaves the repository"),
        ("docs/nothing-here.md", "no such file"),
        ("docs/job-file.md#no-such", "no heading or anchor #no-such in docs/job-file.md"),
        ("docs/job-file.md#foreach", None),
        ("#exit-codes", None),
    ],
)
def test_the_link_checker_itself(target: str, problem: str | None) -> None:
    assert link_problem(ROOT / "README.md", target) == problem


def test_the_docs_index_links_every_page() -> None:
    linked = {target.partition("#")[0] for target in link_targets(read(DOCS / "README.md"))}
    pages = {path.name for path in DOCS.glob("*.md")} - {"README.md"}
    assert pages <= linked, f"docs/README.md does not link {sorted(pages - linked)}"


# -- (c) the walkthrough names every key of the model ---------------------------------


def code_spans(text: str) -> set[str]:
    return {span.strip() for _, span in CODE_SPAN.findall(FENCED_BLOCK.sub("", text))}


def documented_keys(text: str) -> set[str]:
    """Keys written as `key` in the prose or as `key:` in a YAML example."""
    blocks = "\n".join(match.group(0) for match in FENCED_BLOCK.finditer(text))
    return code_spans(text) | set(YAML_KEY.findall(blocks))


JOB_KEYS = [
    (name, key) for name, node in object_schemas(job_schema()).items() for key in node["properties"]
]


@pytest.mark.parametrize(("obj", "key"), JOB_KEYS, ids=[f"{o}.{k}" for o, k in JOB_KEYS])
def test_job_file_walkthrough_names_every_key(obj: str, key: str) -> None:
    assert key in documented_keys(read(DOCS / "job-file.md")), f"{obj}.{key}"


def test_the_walkthrough_check_knows_the_step_keys() -> None:
    step_keys = {key for obj, key in JOB_KEYS if obj == "Step"}
    top_keys = {key for obj, key in JOB_KEYS if obj == "(top level)"}
    assert {"foreach", "continue_on_error", "fail_fast", "outputs"} <= step_keys
    assert {"version", "orgs", "credentials", "defaults", "steps"} <= top_keys


# -- (d) the template page names every name of the context -----------------------------

TEMPLATE_CONTEXT = [
    "vars",
    "env",
    "steps.<id>.outputs",
    "steps.<id>.response",
    "steps.<id>.status",
    "steps.<id>.results",
    "{item, index, label, status, outputs, response}",
    "item",
    "index",
    "response",
    "run.id",
    "run.started_at",
    "job.name",
    "now()",
    "uuid4()",
]


@pytest.mark.parametrize("name", TEMPLATE_CONTEXT)
def test_templates_page_names_the_context(name: str) -> None:
    assert name in code_spans(read(DOCS / "templates.md"))


def test_templates_page_names_what_the_code_provides() -> None:
    from owf_runner import context

    names = context.COMMON_NAMES | context.FOREACH_NAMES | context.RESPONSE_NAMES
    names |= context.RUN_TIME_NAMES
    spans = code_spans(read(DOCS / "templates.md"))
    # `steps` is documented as `steps.<id>.outputs`, `now` as `now()`: a prefix will do.
    missing = [
        name
        for name in sorted(names)
        if not any(re.match(rf"{re.escape(name)}(?![A-Za-z0-9_])", span) for span in spans)
    ]
    assert len(names) >= 8
    assert not missing, f"templates.md does not name {missing}"


def test_templates_page_lists_the_fields_of_a_foreach_result() -> None:
    from owf_runner.outcomes import ItemResult, Status

    fields = ItemResult(0, None, Status.SUCCEEDED, 1).as_context()
    assert "{" + ", ".join(fields) + "}" in code_spans(read(DOCS / "templates.md"))


# -- the stub page names every key of the stub model -----------------------------------


def test_stubs_page_names_every_stub_key() -> None:
    from owf_runner.emulator import _stubs

    stub_file = getattr(_stubs, "StubFile", None)
    if stub_file is None:
        pytest.skip("owf_runner.emulator._stubs has no StubFile model yet")
    objects = object_schemas(stub_file.model_json_schema())
    keys = {key for node in objects.values() for key in node["properties"]}
    missing = keys - documented_keys(read(DOCS / "stubs.md"))
    assert not missing, f"stubs.md does not name {sorted(missing)}"
