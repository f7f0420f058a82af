"""Property: whatever shape a valid job gives its secrets, `owf-run JOB -v` never prints one.

Hypothesis writes valid jobs over two orgs (a private key, a client token, both planted
canaries in the environment) against the real emulator on loopback. The first step
mints secrets: its flow answers with canary strings (ASCII, non-ASCII, inside dicts and
lists) and the step declares some of them `secret: true` outputs — whole, a nested dict,
a list. Later steps send those on in every way a job can: whole or nested in payloads,
inside longer strings, `| tojson`, `| urlencode`, in query parameters and headers, in
the flow URL's path, as foreach items; through `when`, `continue_on_error` and a flow
that fails. The emulator's flows mirror back everything they receive (body, query,
headers — the bearer token and client token included), which `-v` prints.

Asserted: the run ends 0 or 1 (never 70), and no secret — the private key, the client
token, the access tokens and client assertions the emulator saw, every string inside a
secret output — appears in stdout or stderr in any encoding, nor 16 characters of one.
The same holds for `owf-run plan` and a secret environment value used in templates.
"""

from __future__ import annotations

import base64
import hashlib
import itertools
import json
import urllib.parse
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from owf_runner.emulator import Emulator, FlowStub
from owf_runner.redaction import REDACTOR, printable, shown
from tests.conftest import Cli, ec_key, encodings, pem

RunCli = Callable[..., Cli]
KEY = ec_key("P-256")
PRIVATE_KEY = pem(KEY)
FRAGMENT = 16
_numbers = itertools.count()


def canary(kind: str) -> str:
    """A fresh, deterministic secret; `+` and `/` make its URL encodings differ from it."""
    digest = hashlib.sha256(f"run-{kind}-{next(_numbers)}".encode()).hexdigest()
    return f"{kind[:2].upper()}{digest[:18]}+/{digest[18:36]}"


class Minted:
    """What the `mint` flow answers: canary strings in every shape a body can hold them."""

    def __init__(self) -> None:
        self.password = canary("password")
        self.key, self.deep = canary("key"), canary("deep")
        self.listed = canary("listed")
        self.unicode = f"ünï-{canary('unicode')}-çødé"
        self.ctrl = canary("ctrl").replace("+/", "\x07")  # a BEL inside: escaped when shown
        self.pin = int(hashlib.sha256(self.password.encode()).hexdigest()[:15], 16)  # 18 digits

    def body(self) -> dict[str, Any]:
        return {
            "password": self.password,
            "profile": {"key": self.key, "n": 123456789, "deep": {"list": [self.deep]}},
            "names": [self.listed, "ok"],
            "uni": self.unicode,
            "pin": self.pin,
            "ctrl": self.ctrl,
            "plain": "public-value",
        }

    def inside(self, field: str) -> list[str]:
        """The canaries a secret output of ``field`` holds (short values are no secret)."""
        return {
            "password": [self.password],
            "profile": [self.key, self.deep],
            "profile.deep": [self.deep],
            "names": [self.listed],
            "uni": [self.unicode],
            "pin": [str(self.pin)],
            "ctrl": [self.ctrl, *self.ctrl.split("\x07")],  # each half is 18 characters
        }[field]


SECRET_FIELDS = ["password", "profile", "profile.deep", "names", "uni", "pin", "ctrl"]
MIRROR = {
    "body": "{{ request.body }}",
    "query": "{{ request.query }}",
    "headers": "{{ request.headers }}",
    "path": "{{ request.path }}",
}
FLOWS = {  # flow id → (org, how the emulator answers)
    "mint": ("acme", FlowStub(body=None, security="oauth2")),
    "mirror": ("acme", FlowStub(body=MIRROR, security="oauth2")),
    "fail": ("acme", FlowStub(status=500, body=MIRROR, security="oauth2")),
    "ct-mirror": ("hook", FlowStub(body=MIRROR, security="client_token")),
    "ct-fail": ("hook", FlowStub(status=500, body=MIRROR, security="client_token")),
}


def flow_url(flow_id: str) -> str:
    return f"https://{FLOWS[flow_id][0]}.workflows.okta.com/api/flo/{flow_id}/invoke"


# -- valid jobs ---------------------------------------------------------------------------


def uses(output: str) -> list[str]:
    """Ways a template can pass a secret output on."""
    ref = f"steps.mint.outputs.{output}"
    return [
        f"{{{{ {ref} }}}}",
        f"{{{{ {ref} | tojson }}}}",
        f"before-{{{{ {ref} }}}}-after",
        f"{{{{ {ref} | string | urlencode }}}}",
        f"{{{{ {{'wrapped': {ref}}} }}}}",
        f"{{{{ [{ref}, 1] }}}}",
        f"{{{{ {ref} | string }}}}",
        f"{{{{ {{}}[{ref} | string] }}}}",  # fails: the error names the missing key
    ]


@st.composite
def mint_step(draw: st.DrawFn) -> tuple[dict[str, Any], list[str]]:
    """The first step and the names of its secret outputs."""
    fields = draw(st.lists(st.sampled_from(SECRET_FIELDS), min_size=1, max_size=3, unique=True))
    outputs: dict[str, Any] = {"plain": "{{ response.body.plain }}"}
    for field in fields:
        outputs[field.replace(".", "_")] = {
            "value": f"{{{{ response.body.{field} }}}}",
            "secret": True,
        }
    step = {"id": "mint", "flow": flow_url("mint"), "payload": {"n": 1}, "outputs": outputs}
    return step, fields


@st.composite
def later_step(draw: st.DrawFn, index: int, outputs: list[str]) -> dict[str, Any]:
    output = draw(st.sampled_from(outputs))
    use = st.sampled_from(uses(output))
    flow_id = draw(st.sampled_from(["mirror", "fail", "ct-mirror", "ct-fail"]))
    step: dict[str, Any] = {"id": f"s{index}", "flow": flow_url(flow_id)}
    step["payload"] = draw(
        st.one_of(
            use,
            st.dictionaries(st.sampled_from(["a", "b", "c"]), use, min_size=1, max_size=3),
            st.lists(use, min_size=1, max_size=3),
        )
    )
    if draw(st.booleans()):
        step["query"] = {"q": draw(use)}
    if draw(st.booleans()):
        step["headers"] = {"X-Echo": draw(use)}
    if draw(st.booleans()):
        ref = f"steps.mint.outputs.{output} | string" + draw(st.sampled_from(["", " | urlencode"]))
        step["flow"] = f"https://acme.workflows.okta.com/api/flo/p-{{{{ {ref} }}}}/invoke"
    if draw(st.booleans()):
        step["foreach"] = draw(use.filter(lambda u: u.startswith("{{ [")) | st.just(use_list()))
        step["concurrency"] = draw(st.integers(1, 3))
        step["payload"] = {"item": "{{ item }}", "index": "{{ index }}"}
    if draw(st.booleans()):
        step["when"] = draw(
            st.sampled_from(
                [
                    "{{ false }}",
                    "{{ steps.mint.status == 'succeeded' }}",
                    f"{{{{ steps.mint.outputs.{output} is defined }}}}",
                ]
            )
        )
    step["continue_on_error"] = draw(st.booleans())
    return step


def use_list() -> str:
    return "{{ steps.mint.outputs.values() | list }}"


@st.composite
def jobs(draw: st.DrawFn) -> tuple[dict[str, Any], list[str]]:
    mint, fields = draw(mint_step())
    outputs = [field.replace(".", "_") for field in fields]
    later = [draw(later_step(i, outputs)) for i in range(1, draw(st.integers(1, 4)) + 1)]
    for step in later:
        if "/api/flo/ct-" in step["flow"]:
            step["org"] = "hook"
    return {**base_job(), "steps": [mint, *later]}, fields


def base_job() -> dict[str, Any]:
    """Two orgs: `acme` signs client assertions with the planted key, `hook` has a client token."""
    return {
        "version": 1,
        "orgs": {
            "acme": {"domain": "acme.okta.com", "credential": "jwt"},
            "hook": {"domain": "hook.okta.com", "credential": "ct"},
        },
        "credentials": {
            "jwt": {
                "type": "private_key_jwt",
                "client_id": "0oaRUNFUZZ",
                "key_id": "run-fuzz",
                "private_key": {"env": "OWF_RUNFUZZ_KEY"},
            },
            "ct": {"type": "client_token", "token": {"env": "OWF_RUNFUZZ_CT"}},
        },
        "defaults": {"org": "acme", "rate_limit": "1000/s", "retry": {"attempts": 1}},
    }


# -- running one --------------------------------------------------------------------------


@pytest.fixture
def prepared(emulator: Emulator) -> Emulator:
    emulator.register_client("0oaRUNFUZZ", "run-fuzz", KEY.as_dict(private=False))
    for flow_id, (_, stub) in FLOWS.items():
        emulator.set_stub(flow_id, stub)
    return emulator


def forms(secret: str) -> Iterator[str]:
    yield from encodings(secret)
    yield urllib.parse.quote(secret)  # Jinja's urlencode keeps `/`


def assert_never_printed(printed: str, secrets: list[str]) -> None:
    for secret in secrets:
        for form in forms(secret):
            assert form not in printed, f"printed {form!r}"


def assert_no_fragment(printed: str, secrets: list[str]) -> None:
    """A cut before redaction would print most of a value: 16 characters count as a leak."""
    for secret in secrets:
        for form in forms(secret):
            windows = {form[i : i + FRAGMENT] for i in range(len(form) - FRAGMENT + 1)}
            pieces = sorted(w for w in windows if w in printed)
            assert not pieces, f"printed part of {secret!r}: {pieces[:3]}"


def seen_by_emulator(emulator: Emulator, since: tuple[int, int]) -> tuple[list[str], list[str]]:
    """The access tokens and client assertions that went over the wire in this run."""
    invocations, token_requests = emulator.invocations(), emulator.token_requests()
    bearers = {
        call.headers.get("authorization", "").removeprefix("Bearer ")
        for call in invocations[since[0] :]
    }
    assertions = [
        dict(urllib.parse.parse_qsl(call.body.decode())).get("client_assertion", "")
        for call in token_requests[since[1] :]
    ]
    return sorted(b for b in bearers if b), [a for a in assertions if a]


@settings(
    max_examples=30,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    phases=[Phase.explicit, Phase.generate, Phase.shrink],
)
@given(case=jobs())
def test_secrets_of_any_shape_never_show_in_a_verbose_run(
    case: tuple[dict[str, Any], list[str]],
    prepared: Emulator,
    cli: RunCli,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    job, fields = case
    minted, client_token = Minted(), canary("client")
    prepared.set_stub("mint", FlowStub(body=minted.body(), security="oauth2"))
    prepared.register_client_token(client_token)
    monkeypatch.setenv("OWF_RUNFUZZ_KEY", PRIVATE_KEY)
    monkeypatch.setenv("OWF_RUNFUZZ_CT", client_token)
    path = tmp_path / "job.yaml"
    path.write_text(yaml.safe_dump(job, allow_unicode=True, sort_keys=False), "utf-8")

    since = len(prepared.invocations()), len(prepared.token_requests())

    result = cli(str(path), "--emulator", prepared.base_url, "-v")

    printed = result.out + result.err
    assert result.code in (0, 1), printed
    access_tokens, assertions = seen_by_emulator(prepared, since)
    opaque = [client_token, *access_tokens]
    opaque += [value for field in fields for value in minted.inside(field)]
    assert_never_printed(printed, [PRIVATE_KEY, *assertions, *opaque])
    assert_no_fragment(printed, opaque)


def test_a_non_ascii_secret_sent_through_tojson_and_echoed_is_masked(
    prepared: Emulator, cli: RunCli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first case the property found: JSON inside JSON, its backslashes escaped again."""
    minted, client_token = Minted(), canary("client")
    prepared.set_stub("mint", FlowStub(body=minted.body(), security="oauth2"))
    monkeypatch.setenv("OWF_RUNFUZZ_KEY", PRIVATE_KEY)
    monkeypatch.setenv("OWF_RUNFUZZ_CT", client_token)
    mint = {
        "id": "mint",
        "flow": flow_url("mint"),
        "outputs": {"uni": {"value": "{{ response.body.uni }}", "secret": True}},
    }
    send = {
        "id": "send",
        "flow": flow_url("mirror"),
        "query": {"q": "{{ steps.mint.outputs.uni | tojson }}"},
    }
    job = {**base_job(), "steps": [mint, send]}
    path = tmp_path / "job.yaml"
    path.write_text(yaml.safe_dump(job, allow_unicode=True, sort_keys=False), "utf-8")

    result = cli(str(path), "--emulator", prepared.base_url, "-v")

    assert result.code == 0, result.err
    assert_never_printed(result.out + result.err, [minted.unicode])
    assert_no_fragment(result.out + result.err, [minted.unicode])


# -- plan: the values of secret environment variables, however a template uses them -----------


@st.composite
def env_uses(draw: st.DrawFn) -> dict[str, Any]:
    """A step that uses the client token's environment variable in templates."""
    use = st.sampled_from([text.replace("steps.mint.outputs.", "env.") for text in uses("CT")])
    step: dict[str, Any] = {"id": "s", "org": "hook", "flow": flow_url("ct-mirror")}
    step["payload"] = draw(use | st.dictionaries(st.sampled_from(["a", "b"]), use, min_size=1))
    if draw(st.booleans()):
        step["query"] = {"q": draw(use)}
    if draw(st.booleans()):
        step["headers"] = {"X-Echo": draw(use)}
    if draw(st.booleans()):
        step["flow"] = "https://hook.workflows.okta.com/api/flo/p-{{ env.CT | urlencode }}/invoke"
    if draw(st.booleans()):
        step["foreach"] = "{{ [env.CT, 'x'] }}"
    return step


@settings(
    max_examples=30,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(step=env_uses())
def test_plan_never_shows_a_secret_environment_value(
    step: dict[str, Any], cli: RunCli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    client_token = canary("plan")
    monkeypatch.setenv("CT", client_token)
    monkeypatch.setenv("OWF_RUNFUZZ_KEY", PRIVATE_KEY)
    job = base_job()
    job["credentials"]["ct"]["token"] = {"env": "CT"}
    job["steps"] = [step]
    path = tmp_path / "job.yaml"
    path.write_text(yaml.safe_dump(job, allow_unicode=True, sort_keys=False), "utf-8")

    result = cli("plan", str(path))

    assert result.code == 0, result.err
    assert_never_printed(result.out + result.err, [client_token])
    assert_no_fragment(result.out + result.err, [client_token])


CTRL_IN_PATH = flow_url("mirror").replace("mirror", "p-{{ steps.mint.outputs.ctrl }}")


@pytest.mark.parametrize(
    "use",
    [
        pytest.param({"flow": CTRL_IN_PATH}, id="flow path"),
        pytest.param({"headers": {"X-Echo": "{{ steps.mint.outputs.ctrl }}"}}, id="header"),
    ],
)
def test_a_secret_with_a_control_character_is_masked_in_the_message_that_refuses_it(
    prepared: Emulator,
    cli: RunCli,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    use: dict[str, Any],
) -> None:
    """The step fails before sending (a URL or header cannot carry a BEL); its message quotes
    the rendered value with the BEL escaped — the secret must be masked all the same."""
    minted = Minted()
    prepared.set_stub("mint", FlowStub(body=minted.body(), security="oauth2"))
    monkeypatch.setenv("OWF_RUNFUZZ_KEY", PRIVATE_KEY)
    monkeypatch.setenv("OWF_RUNFUZZ_CT", canary("client"))
    mint = {
        "id": "mint",
        "flow": flow_url("mint"),
        "outputs": {"ctrl": {"value": "{{ response.body.ctrl }}", "secret": True}},
    }
    job = {**base_job(), "steps": [mint, {"id": "send", "flow": flow_url("mirror"), **use}]}
    path = tmp_path / "job.yaml"
    path.write_text(yaml.safe_dump(job, allow_unicode=True, sort_keys=False), "utf-8")

    result = cli(str(path), "--emulator", prepared.base_url, "-v")

    assert result.code == 1, result.err
    assert_never_printed(result.out + result.err, minted.inside("ctrl"))
    assert_no_fragment(result.out + result.err, minted.inside("ctrl"))


# -- the sinks themselves: any secret, in any form the redactor promises, in any text ----------

PROMISED_FORMS: dict[str, Callable[[str], str]] = {
    "raw": lambda s: s,
    "quote": lambda s: urllib.parse.quote(s, safe=""),
    "quote_plus": urllib.parse.quote_plus,
    "json": lambda s: json.dumps(s)[1:-1],
    "json, non-ASCII kept": lambda s: json.dumps(s, ensure_ascii=False)[1:-1],
    "base64": lambda s: base64.b64encode(s.encode()).decode().rstrip("="),
    "base64url": lambda s: base64.urlsafe_b64encode(s.encode()).decode().rstrip("="),
}


@settings(max_examples=300, deadline=None, derandomize=True, database=None)
@given(
    secret=st.text(min_size=8, max_size=40).filter(lambda s: s == s.strip()),
    before=st.text(max_size=300),
    after=st.text(max_size=20),
    form=st.sampled_from(sorted(PROMISED_FORMS)),
    limit=st.none() | st.integers(0, 400),
    sink=st.sampled_from(["shown", "printable"]),
)
def test_a_registered_secret_never_survives_a_sink_in_a_promised_form(
    secret: str, before: str, after: str, form: str, limit: int | None, sink: str
) -> None:
    REDACTOR.add(secret)
    text = before + PROMISED_FORMS[form](secret) + after

    out = shown(text, limit) if sink == "shown" else printable(text)

    for name, encode in PROMISED_FORMS.items():
        assert encode(secret) not in out, f"the {name} form of {secret!r} survived: {out!r}"
