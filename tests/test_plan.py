"""resolve: the checked job becomes one immutable Plan, identified for the journal."""

from __future__ import annotations

import dataclasses
import hashlib
import os
from pathlib import Path

import pytest

from owf_runner.commands import load_plan
from owf_runner.failures import FailureClass
from owf_runner.sources import SourceKind
from owf_runner.templating import Constant, Template

JOB = """\
version: 1
vars: {name: Ada, file: rows.csv}
orgs:
  acme: {domain: acme.okta.com, credential: jwt, rate_limit: 5/s}
  beta: {token_url: "https://login.beta.example/oauth2/v1/token", credential: hook}
credentials:
  jwt: {type: private_key_jwt, client_id: 0oaX, key_id: k, private_key: {env: NOPE}}
  hook: {type: client_token, token: {env: NOPE}}
defaults:
  org: acme
  timeout: 30
  retry: {attempts: 2, backoff: {max: 5}}
steps:
  - id: first
    flow: https://acme.workflows.okta.com/api/flo/first/invoke
    payload: {name: "{{ vars.name }}", plain: text}
    idempotent: true
    retry: {backoff: {initial: 0.5}}
  - id: second
    org: beta
    flow: https://beta.workflows.okta.com/api/flo/second/invoke
    foreach: {csv: "{{ vars.file }}"}
    rate_limit: 2/s
    timeout: 5
    retry: {on: [server]}
"""


@pytest.fixture
def job(tmp_path: Path) -> Path:
    path = tmp_path / "job.yaml"
    path.write_text(JOB)
    return path


def test_the_plan_is_identified_by_resolved_path_and_content_hash(
    job: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(job.parent)

    plan = load_plan(Path("job.yaml"))

    assert plan.identity.path == job.resolve()
    assert plan.identity.path.is_absolute()
    assert plan.identity.sha256 == hashlib.sha256(JOB.encode()).hexdigest()


def test_a_changed_file_has_another_identity(job: Path) -> None:
    before = load_plan(job).identity
    job.write_text(JOB.replace("timeout: 5", "timeout: 6"))

    after = load_plan(job).identity

    assert after.path == before.path
    assert after.sha256 != before.sha256


def test_every_default_is_settled_in_the_plan(job: Path) -> None:
    first, second = load_plan(job).steps

    assert (first.org.name, first.org.auth, first.org.token_url) == (
        "acme",
        "oauth2",
        "https://acme.okta.com/oauth2/v1/token",
    )
    assert (first.rate_limit, first.per_second, first.timeout) == ("5/s", 5.0, 30.0)
    assert (first.retry.attempts, first.retry.backoff_initial, first.retry.backoff_max) == (
        2,
        0.5,
        5,
    )
    assert first.retry.on == {*FailureClass}  # idempotent adds server, timeout, dropped
    assert (second.org.name, second.org.auth) == ("beta", "client_token")
    assert second.org.token_url == "https://login.beta.example/oauth2/v1/token"
    assert (second.rate_limit, second.per_second, second.timeout) == ("2/s", 2.0, 5.0)
    assert second.retry.on == {FailureClass.SERVER}
    assert second.foreach is not None
    assert second.foreach.field.at == ("steps", 1, "foreach", "csv")
    assert getattr(second.foreach, "kind", None) is SourceKind.CSV


def test_templates_are_compiled_once_and_plain_strings_stay_plain(job: Path) -> None:
    first = load_plan(job).steps[0]

    payload = first.payload.value
    keys_and_values = dict(zip(["name", "plain"], payload.items, strict=True))  # type: ignore[attr-defined]
    assert isinstance(keys_and_values["name"][1], Template)
    assert keys_and_values["name"][1].names == {"vars"}
    assert keys_and_values["plain"][1] == Constant("text")
    assert first.payload.at == ("steps", 0, "payload")


def test_the_plan_cannot_be_changed(job: Path) -> None:
    plan = load_plan(job)

    with pytest.raises(dataclasses.FrozenInstanceError):
        plan.steps[0].timeout = 1  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        plan.name = "other"  # type: ignore[misc]


def test_a_plan_needs_no_secret(job: Path) -> None:
    assert "NOPE" not in os.environ
    assert [step.id for step in load_plan(job).steps] == ["first", "second"]
