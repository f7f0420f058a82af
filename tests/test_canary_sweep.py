"""The canary sweep (DESIGN §4, issue 11): plant every kind of secret, switch every sink on,
and grep every byte `owf-run` wrote for each secret in every encoding the redactor promises.

The canaries: a private key as PEM and another as a JWK, a client token, secret outputs of
several shapes (a string every escaping changes, a number-ish string, a nested dict), and every
access token the emulator issued and client assertion it received. Each scenario runs the real
CLI with every sink on (``--verbose``, ``--report/--junit/--html``; then again with
``--log-format json``), then ``history``, ``show RUN --report/--junit/--html``, ``plan`` and
``validate``; every file under ``tmp_path`` (the journal and its WAL, lock files, crash logs,
reports, temporary files) and everything printed must hold none of them.

Each in-process command starts with an empty redactor, as a new process would: a secret one
command registered must not hide a leak in the next. The forms looked for are conftest's
encodings, plus Jinja's `tojson`, Python's repr and the HTML/XML escapes (``forms_of``).

The four leaks it found (a secret output of an answer failing its checks, Python's repr of a
secret in a template error, a label cut inside a secret, a JWK's private member alone) are fixed;
their tests stay.
"""

from __future__ import annotations

import base64
import functools
import html
import json
import os
import re
import secrets
import signal
import tempfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs
from xml.sax.saxutils import quoteattr

import pytest
from joserfc.jwk import ECKey, RSAKey

from owf_runner import runner, tokencmd
from owf_runner.emulator import Emulator, Fault, FlowStub
from owf_runner.emulator._assertion import OAuthError
from owf_runner.redaction import MASK, REDACTOR
from tests.conftest import Cli, ec_key, encoded_forms, encodings, pem, rsa_key
from tests.processes import Finished, owf_run, started

RunCli = Callable[..., Cli]
Printed = Cli | Finished
LONG_RUN = re.compile(r"[A-Za-z0-9]{16}")  # what redaction._long_runs masks in any secret
REPORTS = {"html": "html", "report": "json", "junit": "xml"}  # option → extension, sorted
HANG = 30.0  # seconds a flow takes to answer a call the test kills the run at: never in time


# -- the canaries ------------------------------------------------------------------------------


@functools.cache
def _keys() -> tuple[RSAKey, ECKey]:
    """One RSA key (planted as PEM) and one EC key (as a JWK) for the whole module: making
    keys is the slow part, and each test's canaries are fresh all the same.

    The EC key's `d` has no run of 16 letters and digits: the redactor masks such runs of any
    secret, so with one (most keys) a leak of `d` shows as fragments of it, and whether the
    whole of `d` is found would depend on the key drawn. Without one, it never does."""
    for _ in range(10_000):
        ec = ec_key("P-256")
        if not LONG_RUN.search(str(ec.as_dict(private=True)["d"])):
            return rsa_key(), ec
    raise AssertionError("no EC key without a long run in 10,000 draws")


@dataclass(frozen=True)
class Canaries:
    pem_key: str
    jwk_key: str  # the JWK's JSON text, as the environment holds it
    jwk_private: str  # its private member `d`
    client_token: str
    name: str  # a secret output: a string that JSON, URL, HTML and XML escaping all change
    pin: str  # a secret output: a number-ish string (a leading zero a number would lose)
    creds: dict[str, Any]  # a secret output: a nested dict

    def outputs(self) -> dict[str, Any]:
        return {"creds": self.creds, "name": self.name, "pin": self.pin}

    def planted(self) -> list[str]:
        """Every secret the job holds, and the renderings of the nested output."""
        deep = self.creds["deep"]
        leaves = [self.creds["user"], *map(str, self.creds["pair"]), deep["path"]]
        whole = [json.dumps(self.creds, ensure_ascii=flag) for flag in (True, False)]
        fixed = [self.pem_key, self.jwk_key, self.jwk_private, self.client_token]
        return [*fixed, self.name, self.pin, *leaves, *whole, str(self.creds)]


def new_canaries() -> Canaries:
    rsa, ec = _keys()
    tag = secrets.token_hex(6)
    jwk = {**ec.as_dict(private=True), "kid": "kid-jwk"}
    return Canaries(
        pem_key=pem(rsa),
        jwk_key=json.dumps(jwk),
        jwk_private=str(jwk["d"]),
        client_token=f"ct-canary-{tag}-tok",
        name=f"Zoë <&> 'ключ' \"canary\" {tag}",
        pin="0" + "".join(secrets.choice("123456789") for _ in range(15)),
        creds={
            "user": f"ünï\t\\canary-{tag}",  # a tab and a backslash: escaped by JSON and repr
            "pair": [f"pässwörd/{tag}+=", int("7" + str(secrets.randbelow(10**14)).zfill(14))],
            "deep": {"path": f"päth canary/sëcret+{tag}"},
        },
    )


_HTMLSAFE = str.maketrans({"<": "\\u003c", ">": "\\u003e", "&": "\\u0026", "'": "\\u0027"})


def tojson_form(secret: str) -> str:
    """The secret inside what Jinja's `tojson` makes of it: JSON with <, >, & and ' escaped."""
    return json.dumps(secret)[1:-1].translate(_HTMLSAFE)


def forms_of(secret: str) -> set[str]:
    """conftest's encodings; Jinja's `tojson` (JSON with <, >, & and ' escaped too), which a
    template may send on and a flow echo; Python's repr, as a message quotes a value (Jinja's
    "has no attribute 'NAME'"), and that repr in a JSON string; and the HTML and XML escapes
    of them all, as the HTML page and JUnit apply them."""
    quoted = {repr(secret)[1:-1], ascii(secret)[1:-1]}
    forms = encodings(secret) | quoted | {json.dumps(form)[1:-1] for form in quoted}
    forms.add(tojson_form(secret))
    escaped = {html.escape(form, quote=quote) for form in forms for quote in (True, False)}
    return forms | escaped | {quoteattr(form)[1:-1] for form in forms}  # JUnit's attributes


# -- the job -----------------------------------------------------------------------------------

JOB = """version: 1
vars:
  names: [a, b, c]
  table: {{known: 1}}
orgs:
  pem: {{domain: acme.okta.com, credential: pem}}
  jwk: {{domain: acme.okta.com, credential: jwk}}
  hooks: {{domain: acme.okta.com, credential: hook}}
credentials:
  pem:
    type: private_key_jwt
    client_id: 0oaPEM
    key_id: kid-pem
    private_key: {{env: OWF_SWEEP_PEM}}
  jwk: {{type: private_key_jwt, client_id: 0oaJWK, private_key: {{env: OWF_SWEEP_JWK}}}}
  hook: {{type: client_token, token: {{env: OWF_SWEEP_TOKEN}}}}
defaults:
  rate_limit: 1000/s
steps:
  - id: issue
    org: pem
    flow: https://acme.workflows.okta.com/api/flo/issue/invoke
    idempotent: true
    payload: {{ask: creds}}{expect}
    outputs:
      creds: {{value: "{{{{ response.body.creds }}}}", secret: true}}
      name: {{value: "{{{{ response.body.name }}}}", secret: true}}
      pin: {{value: "{{{{ response.body.pin }}}}", secret: true}}
      user: "{{{{ response.body.creds.user }}}}"
  - id: each
    org: jwk
    flow: https://acme.workflows.okta.com/api/flo/each/invoke
    foreach: "{{{{ vars.names }}}}"
    concurrency: 2
    continue_on_error: true
    label: "{label}"
    payload: {{item: "{{{{ item }}}}", name: "{{{{ steps.issue.outputs.name }}}}"}}
    outputs:
      seen: "{{{{ response.body }}}}"
  - id: use
    org: hooks
    flow: https://acme.workflows.okta.com/api/flo/use/invoke
    query: {{name: "{{{{ steps.issue.outputs.name }}}}", pin: "{{{{ steps.issue.outputs.pin }}}}"}}
    headers: {{X-Pin: "{{{{ steps.issue.outputs.pin }}}}"}}
    payload:
      creds: "{{{{ steps.issue.outputs.creds }}}}"
      said: "sent {{{{ steps.issue.outputs.creds }}}} as {{{{ steps.issue.outputs.name }}}}"
      token: "{{{{ env.OWF_SWEEP_TOKEN }}}}"
      keys: ["{{{{ env.OWF_SWEEP_PEM }}}}", "{{{{ env.OWF_SWEEP_JWK }}}}"]{more}
    outputs:
      echoed: "{{{{ response.body }}}}"
"""
LABEL = "{{ item }} {{ steps.issue.outputs.pin }}"
# A label longer than a label may be, cut inside the secret: KEPT of its digits are left.
KEPT = 12
LONG_LABEL = f"{{{{ 'x' * {runner.MAX_LABEL - 1 - KEPT} }}}}{{{{ steps.issue.outputs.pin }}}}"
# A template that fails at run time with the secret in Jinja's message ("no attribute 'Zoë…'").
TEMPLATE_ERROR = '\n      pick: "{{{{ vars.table[steps.issue.outputs.{output}] }}}}"'

# The secret outputs sent on through Jinja's own encoding filters (and echoed back).
ENCODED = "".join(
    f'\n      {name}: "{{{{ steps.issue.outputs.{output} | {encode} }}}}"'
    for name, output, encode in (
        ("name_json", "name", "tojson"),
        ("creds_json", "creds", "tojson"),
        ("name_url", "name", "urlencode"),
        ("pin_url", "pin", "urlencode"),
    )
)

# What a flow echoes: the request as it came, headers (the bearer token, the client token) too.
ECHO = {
    "body": "{{ request.body }}",
    "headers": "{{ request.headers }}",
    "query": "{{ request.query }}",
    "path": "{{ request.path }}",
}
# The echo as a failure: its headers carry the credentials back too.
ECHO_HEADERS = {
    "X-Echo-Auth": "{{ request.headers.get('authorization', '-') }}",
    "X-Echo-Client-Token": "{{ request.headers.get('x-api-client-token', '-') }}",
}
ECHO_500 = Fault(status=500, headers=ECHO_HEADERS, body=ECHO)
ECHO_429 = Fault(status=429, headers={**ECHO_HEADERS, "Retry-After": "0"}, body=ECHO)  # retried
# A redirect is a failure that names its Location: here, one that holds the credentials.
ECHO_302 = Fault(
    status=302,
    headers={
        "Location": "https://elsewhere.example/"
        "?auth={{ request.headers.authorization | urlencode }}"
        "&name={{ request.body.name | urlencode }}"
    },
)


@dataclass(frozen=True)
class Sweep:
    """One test's world: the emulator, the job, the state dir, and everything printed."""

    emulator: Emulator
    canaries: Canaries
    root: Path
    cli: RunCli
    printed: list[Printed] = field(default_factory=list)

    @property
    def job(self) -> Path:
        return self.root / "job.yaml"

    @property
    def state(self) -> Path:
        return self.root / "state"

    @property
    def env(self) -> dict[str, str]:
        return {**os.environ, "OWF_STATE_DIR": str(self.state), "TMPDIR": str(self.root / "tmp")}

    def write_job(self, more: str = "", label: str = LABEL, expect: str = "") -> None:
        self.job.write_text(JOB.format(more=more, label=label, expect=expect))

    def owf(self, *args: str) -> Cli:
        """`owf-run ARGS` in this process, with an empty redactor, as a fresh process has."""
        REDACTOR.__init__()  # type: ignore[misc]
        result = self.cli(*args)
        self.printed.append(result)
        return result

    def received(self, flow: str, count: int) -> Callable[[], bool]:
        """An event to wait on: the emulator has had ``count`` calls of ``flow``."""
        return lambda: len(self.emulator.invocations(flow)) >= count

    def process(self, *args: str) -> Finished:
        done = owf_run(args, self.env)
        self.printed.append(done)
        return done

    def run_args(self, tag: str, *extra: str) -> list[str]:
        """A run with every sink on: reports of three kinds, the journal in our state dir."""
        return [
            str(self.job),
            "--emulator",
            self.emulator.base_url,
            "--state-dir",
            str(self.state),
            "--verbose",
            *self.report_args(f"run-{tag}"),
            *extra,
        ]

    def report_args(self, stem: str) -> list[str]:
        reports = self.root / "reports"
        reports.mkdir(exist_ok=True)
        paths = {flag: reports / f"{stem}.{ext}" for flag, ext in REPORTS.items()}
        return [arg for flag, path in paths.items() for arg in (f"--{flag}", str(path))]

    def run_both_ways(self, code: int) -> None:
        """The job, with text lines and then with JSON lines; each ends with ``code``."""
        text = self.owf(*self.run_args("text"))
        assert text.code == code, text.out + text.err
        lines = self.owf(*self.run_args("json", "--log-format", "json"))
        assert lines.code == code, lines.out + lines.err
        assert all(json.loads(line) for line in lines.out.splitlines())
        written = sorted(path.name for path in (self.root / "reports").iterdir())
        assert written == [
            f"run-{tag}.{ext}" for tag in ("json", "text") for ext in REPORTS.values()
        ]

    def after_the_fact(self) -> None:
        """Every command that reads the journal or the job, and reports written from the journal."""
        state = ("--state-dir", str(self.state))
        history = self.owf("history", *state)
        assert history.code == 0, history.err
        run_ids = [line.split()[0] for line in history.out.splitlines()[1:]]  # [0]: the header
        for run_id in run_ids:
            shown = self.owf("show", run_id, *state, *self.report_args(f"show-{run_id}"))
            assert shown.code == 0, shown.out + shown.err
        assert self.owf("plan", str(self.job)).code == 0
        assert self.owf("validate", str(self.job)).code == 0

    def assert_no_canary(self) -> None:
        """No form of any secret in any file under the test's directory, or anything printed."""
        everything = [*self.canaries.planted(), *issued_by(self.emulator)]
        leaks = find_leaks(self.places(), everything)
        assert leaks == [], "\n".join(leaks)

    def places(self) -> Iterator[tuple[str, bytes]]:
        for path in sorted(self.root.rglob("*")):
            if path.is_file():
                yield str(path.relative_to(self.root)), path.read_bytes()
        for number, done in enumerate(self.printed):
            yield f"printed by command {number}", (done.out + done.err).encode()


def issued_by(emulator: Emulator) -> list[str]:
    """Every access token the emulator issued or was shown, and every client assertion sent."""
    tokens = set(emulator._tokens)  # no public list of them
    for call in emulator.invocations():
        scheme, _, token = call.headers.get("authorization", "").partition(" ")
        if scheme == "Bearer":
            tokens.add(token)
    assertions = {
        parse_qs(call.body.decode())["client_assertion"][0] for call in emulator.token_requests()
    }
    return sorted(tokens | assertions)


def find_leaks(places: Iterable[tuple[str, bytes]], planted: Iterable[str]) -> list[str]:
    forms = {form.encode(): secret for secret in planted for form in forms_of(secret)}
    return [
        f"{where}: {secret[:40]!r}… as {form[:60]!r}"
        for where, data in places
        for form, secret in forms.items()
        if form in data
    ]


# -- the fixture -------------------------------------------------------------------------------


@pytest.fixture
def sweep(
    tmp_path: Path, emulator: Emulator, cli: RunCli, monkeypatch: pytest.MonkeyPatch
) -> Sweep:
    canaries = new_canaries()
    rsa, ec = _keys()
    monkeypatch.setenv("OWF_SWEEP_PEM", canaries.pem_key)
    monkeypatch.setenv("OWF_SWEEP_JWK", canaries.jwk_key)
    monkeypatch.setenv("OWF_SWEEP_TOKEN", canaries.client_token)
    monkeypatch.setenv("OWF_STATE_DIR", str(tmp_path / "state"))
    (tmp_path / "tmp").mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))  # a crash log's fallback
    emulator.register_client("0oaPEM", "kid-pem", rsa.as_dict(private=False))
    emulator.register_client("0oaJWK", "kid-jwk", ec.as_dict(private=False))
    emulator.register_client_token(canaries.client_token)
    emulator.set_stub("issue", FlowStub(body=canaries.outputs(), echo=False))
    emulator.set_stub("each", FlowStub(body=ECHO))
    emulator.set_stub("use", FlowStub(security="client_token", body=ECHO))
    found = Sweep(emulator, canaries, tmp_path, cli)
    found.write_job()
    return found


def echoed_sent_secrets(sweep: Sweep) -> None:
    """The secrets did travel where the job sent them (or the sweep would prove nothing)."""
    (use,) = sweep.emulator.invocations("use")[:1]
    sent = json.loads(use.body)
    assert sent["creds"] == sweep.canaries.creds
    assert sent["keys"] == [sweep.canaries.pem_key, sweep.canaries.jwk_key]
    assert use.headers["x-api-client-token"] == sweep.canaries.client_token


# -- the scenarios -----------------------------------------------------------------------------


def test_a_successful_run(sweep: Sweep) -> None:
    sweep.run_both_ways(0)

    echoed_sent_secrets(sweep)
    assert MASK in sweep.printed[0].out  # the echoes were printed, masked
    sweep.after_the_fact()
    sweep.assert_no_canary()


def test_a_flow_that_echoes_the_secret_outputs_in_every_encoding(sweep: Sweep) -> None:
    sweep.write_job(ENCODED)
    outputs = [sweep.canaries.name, sweep.canaries.pin, json.dumps(sweep.canaries.creds)]
    forms = sorted({form for secret in outputs for form in encoded_forms(secret).values()})
    forms = [f"{{% raw %}}{form}{{% endraw %}}" for form in forms]  # a stub's body is a template
    sweep.emulator.set_stub("use", FlowStub(security="client_token", body={**ECHO, "forms": forms}))

    sweep.run_both_ways(0)

    echoed_sent_secrets(sweep)
    sent = json.loads(sweep.emulator.invocations("use")[0].body)
    assert sent["name_json"] == f'"{tojson_form(sweep.canaries.name)}"'  # Jinja's form, sent
    sweep.after_the_fact()
    sweep.assert_no_canary()


def test_a_step_failure_whose_answer_echoes_the_request(sweep: Sweep) -> None:
    per_run = 2  # faults are counted across both runs: each run meets its own
    sweep.emulator.set_stub("each", FlowStub(faults=(ECHO_302, ECHO_500, Fault()) * per_run))
    faults = (ECHO_429, ECHO_500) * per_run
    sweep.emulator.set_stub("use", FlowStub(security="client_token", faults=faults))

    sweep.run_both_ways(1)

    echoed_sent_secrets(sweep)
    assert [call.status for call in sweep.emulator.invocations("use")] == [429, 500] * per_run
    each = sorted(call.status for call in sweep.emulator.invocations("each"))
    assert each == sorted([200, 302, 500] * per_run)
    assert "use: HTTP 500 " in sweep.printed[0].out
    sweep.after_the_fact()
    sweep.assert_no_canary()


def test_an_auth_refusal_that_quotes_the_assertion(
    sweep: Sweep, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(request: object, form: dict[str, str]) -> None:
        quoted = f"{form['client_assertion']} (key {sweep.canaries.pem_key!r})"
        raise OAuthError("invalid_client", f"The client_assertion {quoted} is invalid.")

    monkeypatch.setattr(sweep.emulator, "_grant", refuse)  # an Okta that says too much

    sweep.run_both_ways(4)

    assert len(sweep.emulator.token_requests()) == 2  # refusals are not retried
    assert f"invalid_client: The client_assertion {MASK}" in sweep.printed[0].err
    sweep.after_the_fact()
    sweep.assert_no_canary()


@pytest.mark.parametrize(
    "output",
    ["pin", "name"],
)
def test_a_template_error_at_run_time_that_names_a_secret(sweep: Sweep, output: str) -> None:
    sweep.write_job(TEMPLATE_ERROR.format(output=output))

    sweep.run_both_ways(1)

    sweep.after_the_fact()
    sweep.assert_no_canary()
    assert f"has no attribute '{MASK}'" in sweep.printed[0].out


def test_a_label_cut_inside_a_secret(sweep: Sweep) -> None:
    sweep.write_job(label=LONG_LABEL)

    sweep.run_both_ways(0)

    sweep.after_the_fact()
    sweep.assert_no_canary()
    head = sweep.canaries.pin[:KEPT]
    leaks = find_leaks(sweep.places(), [head])
    assert leaks == [], "\n".join(leaks)


FAILING_EXPECTS = {
    "that": '\n    expect: {that: ["{{ response.body.ok | default(false) }}"]}',
    "status": "\n    expect: {status: [201]}",
}


@pytest.mark.parametrize("expect", FAILING_EXPECTS)
def test_an_expectation_failing_on_the_answer_that_holds_the_secret_outputs(
    sweep: Sweep, expect: str
) -> None:
    sweep.write_job(expect=FAILING_EXPECTS[expect])

    sweep.run_both_ways(1)

    assert "issue: failed (1 attempt, " in sweep.printed[0].out
    sweep.after_the_fact()
    sweep.assert_no_canary()


def test_an_internal_error_with_every_secret_in_its_message(
    sweep: Sweep, monkeypatch: pytest.MonkeyPatch
) -> None:
    check = runner.Runner._check
    earlier: set[str] = set()  # tokens and assertions of the runs before: this one never saw them

    def explode(self: runner.Runner, step: Any, context: Any, response: Any) -> Any:
        outputs = check(self, step, context, response)
        if step.id == "use":
            this_run = set(issued_by(sweep.emulator)) - earlier
            earlier.update(this_run)
            cause = KeyError(repr(sweep.canaries.outputs()))
            planted = [p for p in sweep.canaries.planted() if p != sweep.canaries.jwk_private]
            message = " ".join([*planted, *sorted(this_run)])  # `d` alone: the test below
            raise RuntimeError(f"boom {message}") from cause
        return outputs

    monkeypatch.setattr(runner.Runner, "_check", explode)

    sweep.run_both_ways(70)

    logs = [Path(done.err.rsplit(" ", 1)[-1].strip()) for done in sweep.printed]
    assert sorted(logs) == sorted((sweep.state / "logs").iterdir())
    assert all(f"RuntimeError: boom {MASK}" in log.read_text() for log in logs)
    sweep.after_the_fact()
    sweep.assert_no_canary()


def test_a_run_killed_mid_flight_then_resumed(sweep: Sweep) -> None:
    hang = Fault(times=2, delay=HANG)
    sweep.emulator.set_stub("each", FlowStub(body=ECHO, faults=(hang,)))
    with started(sweep.run_args("killed"), sweep.env) as child:
        child.await_event(sweep.received("each", 2), "both workers' requests in flight")
        sweep.printed.append(child.killed())
    assert (sweep.state / "runs.sqlite3-wal").stat().st_size > 0
    sweep.assert_no_canary()  # the journal as the kill left it
    sweep.emulator.set_stub("each", FlowStub(body=ECHO))

    resumed = sweep.process(*sweep.run_args("resumed", "--resume", "--retry-unknown"))

    assert resumed.code == 0, resumed.out + resumed.err
    assert len(sweep.emulator.invocations("issue")) == 2  # again, for its secret outputs
    echoed_sent_secrets(sweep)
    sweep.after_the_fact()
    sweep.assert_no_canary()


def test_a_terminated_run_writes_its_reports_on_the_way_out(sweep: Sweep) -> None:
    sweep.emulator.set_stub("each", FlowStub(body=ECHO, faults=(Fault(times=2, delay=HANG),)))
    with started(sweep.run_args("terminated", "--grace", "0"), sweep.env) as child:
        child.await_event(sweep.received("each", 2), "both workers' requests in flight")
        child.send(signal.SIGTERM)
        done = child.finish()
    sweep.printed.append(done)

    assert done.code == 143, done.out + done.err
    assert (sweep.root / "reports" / "run-terminated.html").stat().st_size > 0
    sweep.after_the_fact()
    sweep.assert_no_canary()


def test_an_internal_error_quoting_the_parsed_jwk(
    sweep: Sweep, monkeypatch: pytest.MonkeyPatch
) -> None:
    def explode(self: runner.Runner, step: Any, context: Any, response: Any) -> Any:
        raise RuntimeError(f"cannot use key {json.loads(sweep.canaries.jwk_key)}")

    monkeypatch.setattr(runner.Runner, "_check", explode)

    crashed = sweep.owf(*sweep.run_args("text"))

    assert crashed.code == 70, crashed.out + crashed.err
    sweep.assert_no_canary()


# -- the one command that prints a token -------------------------------------------------------


def test_the_token_command_prints_the_token_and_nothing_else_holds_it(sweep: Sweep) -> None:
    target = ("--job", str(sweep.job), "--emulator", sweep.emulator.base_url)

    bare = sweep.owf("token", "pem", *target)
    header = sweep.owf("token", "jwk", "--header", *target)

    tokens = list(sweep.emulator._tokens)  # in the order issued
    assert (bare.code, header.code, bare.err, header.err) == (0, 0, "", "")
    assert [bare.out, header.out] == [f"{tokens[0]}\n", f"Authorization: Bearer {tokens[1]}\n"]
    sweep.printed.clear()  # what may hold the token, and was checked just now
    sweep.after_the_fact()
    sweep.assert_no_canary()


def test_the_token_command_crashing_logs_no_token(
    sweep: Sweep, monkeypatch: pytest.MonkeyPatch
) -> None:
    def explode(line: str) -> None:
        raise RuntimeError(f"boom {line}")

    monkeypatch.setattr(tokencmd, "_print_token", explode)

    crashed = sweep.owf(
        "token", "pem", "--job", str(sweep.job), "--emulator", sweep.emulator.base_url
    )

    assert (crashed.code, crashed.out) == (70, "")
    (log,) = (sweep.state / "logs").iterdir()
    assert f"RuntimeError: boom {MASK}" in log.read_text()
    sweep.assert_no_canary()


# -- the sweep itself --------------------------------------------------------------------------


def test_the_sweep_finds_a_secret_in_any_of_its_forms() -> None:
    canaries = new_canaries()
    name = canaries.name
    planted = {
        "raw": canaries.pin,
        "html": html.escape(name),
        "xml attribute": quoteattr(name)[1:-1],
        "tojson": tojson_form(name),
        "repr": repr(name)[1:-1],
        "repr in JSON": json.dumps(repr(name)[1:-1])[1:-1],
        "pem line": canaries.pem_key.splitlines()[3],
        "base64": base64.urlsafe_b64encode(canaries.client_token.encode()).decode().rstrip("="),
        "clean": f"{MASK} and nothing else",
    }

    places = [(where, text.encode()) for where, text in planted.items()]

    leaks = find_leaks(places, canaries.planted())

    assert {leak.split(":")[0] for leak in leaks} == set(planted) - {"clean"}
