"""The job file's JSON Schema, as editors read it.

Every key has a description and the schema has a stable ``$id`` (editors show the one,
tools name the schema by the other); the committed file is what the model generates,
its examples are valid job-file values, and every job file the model accepts, the
schema accepts too.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from owf_runner.errors import OwfError
from owf_runner.model import Job, job_schema
from owf_runner.yamlfile import load_yaml

ROOT = Path(__file__).resolve().parent.parent
SCHEMA_FILE = ROOT / "schemas" / "job.schema.json"
SCRIPT = ROOT / "scripts" / "gen_reference.py"
JOB_SCHEMA_ID = "urn:owf-runner:job:1"  # agreed for version 1 of the format: never changes

Schema = dict[str, Any]


def draft_2020_12() -> Any:
    """jsonschema's validator class; the tests that need it skip without that dev extra."""
    jsonschema = pytest.importorskip("jsonschema", reason="jsonschema is a dev extra")
    return jsonschema.Draft202012Validator


@cache
def committed() -> Schema:
    schema: Schema = json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))
    return schema


def pointer(path: tuple[str | int, ...]) -> str:
    """A JSON pointer (RFC 6901) to ``path``."""
    return "".join("/" + str(part).replace("~", "~0").replace("/", "~1") for part in path)


def nodes(
    value: Any, path: tuple[str | int, ...] = ()
) -> Iterator[tuple[tuple[str | int, ...], Any]]:
    """Every node of a schema with its path, the schema itself first."""
    yield path, value
    if isinstance(value, dict):
        for key, child in value.items():
            if key not in ("examples", "default", "const", "enum"):  # values, not schemas
                yield from nodes(child, (*path, key))
    elif isinstance(value, list):
        for index, child in enumerate(value):
            yield from nodes(child, (*path, index))


def properties(schema: Schema) -> Iterator[tuple[str, Schema]]:
    """(JSON pointer, schema) of every property of every object, $defs included."""
    for path, node in nodes(schema):
        if isinstance(node, dict) and isinstance(node.get("properties"), dict):
            for key, prop in node["properties"].items():
                yield pointer((*path, "properties", key)), prop


# -- what editors show ------------------------------------------------------------------


def test_every_property_has_a_description() -> None:
    found = list(properties(committed()))
    undescribed = [at for at, prop in found if not str(prop.get("description", "")).strip()]
    assert len(found) >= 60  # the walk reaches into $defs
    assert not undescribed, f"properties without a description: {undescribed}"


def test_the_walk_names_a_property_without_a_description() -> None:
    schema = {"$defs": {"Org": {"properties": {"domain": {"description": "x"}, "bare": {}}}}}
    undescribed = [at for at, prop in properties(schema) if not prop.get("description")]
    assert undescribed == ["/$defs/Org/properties/bare"]


def test_the_schema_names_its_draft_and_its_stable_id_first() -> None:
    schema = committed()
    assert list(schema)[:2] == ["$schema", "$id"]
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["$id"] == JOB_SCHEMA_ID
    assert schema["title"] == "owf-runner job file (version 1)"
    assert schema["description"]


def test_the_schema_is_a_valid_draft_2020_12_schema() -> None:
    draft_2020_12().check_schema(committed())


def test_every_ref_is_inside_the_schema() -> None:
    # A $ref with anything before its '#' would send an editor fetching another document.
    refs = [
        node["$ref"] for _, node in nodes(committed()) if isinstance(node, dict) and "$ref" in node
    ]
    assert refs
    assert all(ref.startswith("#/$defs/") for ref in refs), refs


# -- the file is the model's -------------------------------------------------------------


def test_the_committed_file_is_what_the_model_generates() -> None:
    expected = json.dumps(job_schema(), indent=2) + "\n"
    message = "schemas/job.schema.json is stale: run .venv/bin/python scripts/gen_reference.py"
    assert SCHEMA_FILE.read_text(encoding="utf-8") == expected, message


def gen_reference(*args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, str(SCRIPT), *args]
    return subprocess.run(command, capture_output=True, text=True, cwd=ROOT, timeout=120)


def test_check_fails_on_a_stale_schema_file(tmp_path: Path) -> None:
    stale = tmp_path / "job.schema.json"
    stale.write_text(SCHEMA_FILE.read_text(encoding="utf-8").replace(JOB_SCHEMA_ID, "urn:x"))

    result = gen_reference("--check", "--schemas", str(tmp_path))

    assert result.returncode == 1
    assert result.stderr == (
        f"{stale} is stale: run `python scripts/gen_reference.py` to update it\n"
    )


def test_generating_writes_the_schema_file(tmp_path: Path) -> None:
    docs, schemas = tmp_path / "docs", tmp_path / "schemas"

    result = gen_reference("--docs", str(docs), "--schemas", str(schemas))

    assert result.returncode == 0, result.stderr
    assert (schemas / "job.schema.json").read_bytes() == SCHEMA_FILE.read_bytes()
    assert f"wrote {schemas / 'job.schema.json'}\n" in result.stdout


# -- examples and job files are valid ------------------------------------------------------


def validator_at(schema: Schema, at: str) -> Any:
    """A validator for the node at JSON pointer ``at``, reached through the schema's $id."""
    validator = draft_2020_12()
    referencing = pytest.importorskip("referencing", reason="jsonschema, a dev extra, brings it")
    resource = referencing.Resource.from_contents(schema)
    registry = referencing.Registry().with_resource(schema["$id"], resource)
    return validator({"$ref": f"{schema['$id']}#{at}"}, registry=registry)


def examples(schema: Schema) -> Iterator[tuple[str, Any]]:
    for path, node in nodes(schema):
        if isinstance(node, dict) and isinstance(node.get("examples"), list):
            for example in node["examples"]:
                yield pointer(path), example


EXAMPLES = list(examples(committed()))


def test_the_schema_has_examples_for_urls_templates_secrets_durations_and_rates() -> None:
    shown = {at.rsplit("/", 1)[-1] for at, _ in EXAMPLES}
    wanted = {"flow", "token_url", "when", "label", "private_key", "token", "timeout"}
    assert wanted | {"rate_limit", "max_wait", "env", "file", "command"} <= shown


@pytest.mark.parametrize(("at", "example"), EXAMPLES, ids=[at for at, _ in EXAMPLES])
def test_each_example_is_valid_where_it_stands(at: str, example: Any) -> None:
    errors = [error.message for error in validator_at(committed(), at).iter_errors(example)]
    assert not errors, f"{at}: example {example!r}: {errors}"


def test_a_wrong_value_fails_where_an_example_passes() -> None:
    # The check above proves something only if the validator it builds can say no.
    validator = validator_at(committed(), "/$defs/Step/properties/rate_limit")
    assert validator.is_valid("2/s")
    assert not validator.is_valid("fast")


def yaml_files() -> list[Path]:
    found = [
        *ROOT.joinpath("jobs").rglob("*.yaml"),
        *ROOT.joinpath("tests", "data").rglob("*.yaml"),
    ]
    return sorted(path for path in found if "stubs" not in path.relative_to(ROOT).parts)


@cache
def model_accepts(path: Path) -> bool:
    try:
        Job.model_validate(load_yaml(path).data)
    except (OwfError, ValidationError):  # unreadable YAML is not a job file either
        return False
    return True


VALID_JOBS = [path for path in yaml_files() if model_accepts(path)]


def test_the_valid_job_files_include_the_example_job() -> None:
    assert ROOT / "jobs" / "onboarding.yaml" in VALID_JOBS
    assert len(VALID_JOBS) >= 5


@pytest.mark.parametrize("path", VALID_JOBS, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_a_job_file_the_model_accepts_the_schema_accepts(path: Path) -> None:
    document = yaml.safe_load(path.read_text(encoding="utf-8"))
    validator = draft_2020_12()(committed())
    errors = [
        f"{pointer(tuple(e.absolute_path))}: {e.message}" for e in validator.iter_errors(document)
    ]
    assert not errors, f"{path.relative_to(ROOT)}: {errors}"


# What only owf-run itself can tell: an editor's schema check passes these files, and
# `owf-run validate` is still the one to run before a job goes live.
SCHEMA_CANNOT_TELL = {
    "tests/data/invalid/duplicate_nested_key.yaml": "a YAML reader keeps the last of two keys",
    "tests/data/invalid/duplicate_yaml_key.yaml": "a YAML reader keeps the last of two keys",
    "tests/data/invalid/rate_limit_under_one_a_day.yaml": "a rate's value is checked in code",
    "tests/data/invalid/rate_limit_zero.yaml": "a rate's value is checked in code",
    "tests/data/invalid/timeout_nan.yaml": "JSON Schema has no 'finite number'",
}


def yaml_documents_the_model_refuses() -> Iterator[Path]:
    for path in yaml_files():
        if not model_accepts(path):
            try:
                yaml.safe_load(path.read_text(encoding="utf-8"))
            except (yaml.YAMLError, UnicodeDecodeError):  # not YAML: nothing for a schema to say
                continue
            yield path


REFUSED = list(yaml_documents_the_model_refuses())


@pytest.mark.parametrize("path", REFUSED, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_a_job_file_the_model_refuses_the_schema_refuses_unless_listed(path: Path) -> None:
    document = yaml.safe_load(path.read_text(encoding="utf-8"))
    name = path.relative_to(ROOT).as_posix()
    if draft_2020_12()(committed()).is_valid(document):
        assert name in SCHEMA_CANNOT_TELL, (
            f"the schema accepts {name}, which owf-run refuses: tighten the schema, "
            "or list the file in SCHEMA_CANNOT_TELL saying why it cannot"
        )
    else:
        assert name not in SCHEMA_CANNOT_TELL, f"the schema now refuses {name}: unlist it"
