"""Property: however a valid job is mangled, `validate` answers 0 or 3, never a traceback.

Starting from the sample jobs, random mutations (deleted keys, values of another
type, unknown or misspelt keys, Jinja fragments, duplicated or reordered steps,
other versions) are written to a file and validated. Every problem printed must
have the FILE:LINE:COL: key.path: message shape.

Hostile scalars (non-finite and 5000-digit numbers, control characters, non-ASCII
header names, ports out of range, empty `expect.status`, huge `concurrency`, deep
nesting, aliases, long strings) are spliced into the YAML text as written. A job that
`validate` accepts must then `plan` and run (`--emulate`, on a virtual clock) to a
documented exit code, and never be refused up front (exit 3) by either: `validate`
saying ok promises that. Jinja bombs run the same commands in a child process under
a memory limit and a timeout, so that no bomb can hang or swamp the suite.

Hostile files — foreach sources, a vars file, a stubs file, a secret file: random or
special bytes, or a directory, FIFO, /dev/zero, dangling link in their place — and
values from the shell that are not UTF-8 (--var, environment variables, a client token)
must end with 0, 1 or 3, print no raw control character, and never print the token.
Every value the fuzz found failing is also pinned as a plain case.
"""

from __future__ import annotations

import contextlib
import copy
import io
import json
import os
import re
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

import pytest
import yaml
from hypothesis import HealthCheck, Phase, event, given, settings
from hypothesis import strategies as st
from joserfc.jwk import RSAKey

from owf_runner import boundary, commands, emulation, runcmd
from owf_runner.emulator import Emulator
from owf_runner.errors import ExitCode
from owf_runner.http import real_transport
from owf_runner.report import ConsoleReporter
from owf_runner.runcmd import RunOptions
from tests.conftest import rsa_key
from tests.fakes import FakeClock
from tests.hostile import hard_limit

ROOT = Path(__file__).parent.parent
SURROGATES: tuple[Literal["Cs"]] = ("Cs",)  # no text file can hold one
BASES = [
    yaml.safe_load((ROOT / "tests" / "data" / "two_orgs.yaml").read_text(encoding="utf-8")),
    yaml.safe_load((ROOT / "jobs" / "onboarding.yaml").read_text(encoding="utf-8")),
]
PROBLEM_LINE = re.compile(r"^.+:\d+:\d+: .+: .+$")
JINJA = [
    "{{",
    "}}",
    "{{ steps.nope.x }}",
    "{% if %}",
    "{% endif %}",
    "{{ ''.__class__ }}",
    "{{ ''.__class__.__mro__[1].__subclasses__() }}",
    "{{ vars.nope }}",
    "{{ item }}",
    "{{ response.body }}",
    "{{ steps.create_user.outputs.user_id }}",
    "{% for x in %}",
    "{#",
    "{{ vars | tojson }}",
    "{{ 1/0 }}",
    "{% set vars = 1 %}",
]
VERSIONS = [2, 0, -1, "1", "one", 1.0, 1.5, True, None, [1], {"v": 1}]
KEYS = ["steps", "orgs", "vars", "payload", "flow", "id", "retry", "zzz", "", "a b", "é", "0"]

scalars = st.one_of(
    st.text(max_size=12),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.booleans(),
    st.none(),
)
# Mapping keys of any character, control characters and line breaks included: key paths
# print them escaped (test_control_characters_in_keys_do_not_break_problem_lines).
keys = st.text(st.characters(blacklist_categories=SURROGATES), max_size=6)
values = st.recursive(
    scalars,
    lambda children: st.lists(children, max_size=3) | st.dictionaries(keys, children, max_size=3),
    max_leaves=6,
)

Path_ = tuple[Any, ...]


def paths(node: Any, prefix: Path_ = ()) -> list[Path_]:
    """Every path below ``node`` (not the root itself)."""
    found: list[Path_] = []
    if isinstance(node, dict):
        items: list[tuple[Any, Any]] = list(node.items())
    elif isinstance(node, list):
        items = list(enumerate(node))
    else:
        return found
    for key, child in items:
        found.append((*prefix, key))
        found += paths(child, (*prefix, key))
    return found


def get(node: Any, path: Path_) -> Any:
    for part in path:
        node = node[part]
    return node


def typo(key: str, data: st.DataObject) -> str:
    if not key:
        return "x"
    i = data.draw(st.integers(0, len(key) - 1))
    edits = [
        key[:i] + key[i + 1 :],  # drop a letter
        key[:i] + key[i] * 2 + key[i:],  # double one
        key[:i] + key[i + 1 : i + 2] + key[i : i + 1] + key[i + 2 :],  # swap two
        key + "s",
        key.upper(),
    ]
    return data.draw(st.sampled_from(edits))


def mutate(doc: Any, data: st.DataObject) -> Any:
    """One random mutation of ``doc`` (which it may change in place); returns the new doc."""
    kind = data.draw(
        st.sampled_from(
            ["delete", "replace", "add_key", "rename", "jinja", "steps", "version", "root"]
        )
    )
    everywhere = paths(doc)
    if kind == "root":
        return data.draw(values)
    if kind == "version" and isinstance(doc, dict):
        doc["version"] = copy.deepcopy(data.draw(st.sampled_from(VERSIONS)))
        return doc
    if kind == "steps" and isinstance(doc, dict) and isinstance(doc.get("steps"), list):
        steps = doc["steps"]
        if steps and data.draw(st.booleans()):
            steps.insert(
                data.draw(st.integers(0, len(steps))),
                copy.deepcopy(data.draw(st.sampled_from(steps))),
            )
        else:
            doc["steps"] = data.draw(st.permutations(steps))
        return doc
    if not everywhere:
        return data.draw(values)
    path = data.draw(st.sampled_from(everywhere))
    parent, last = get(doc, path[:-1]), path[-1]
    if kind == "delete":
        del parent[last]
    elif kind == "replace":
        parent[last] = data.draw(values)
    elif kind == "add_key":
        target = parent if isinstance(parent, dict) else get(doc, path)
        if isinstance(target, dict):
            target[data.draw(st.sampled_from(KEYS) | keys)] = data.draw(values)
    elif kind == "rename" and isinstance(parent, dict):
        parent[typo(str(last), data)] = parent.pop(last)
    elif kind == "jinja":
        fragment = data.draw(st.sampled_from(JINJA))
        value = parent[last]
        if isinstance(value, str):
            at = data.draw(st.integers(0, len(value)))
            parent[last] = value[:at] + fragment + value[at:]
        else:
            parent[last] = fragment
    return doc


@settings(
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    max_examples=300,
    deadline=None,
    derandomize=True,
    database=None,
)
@given(data=st.data())
def test_mutated_jobs_are_accepted_or_refused_never_a_crash(
    data: st.DataObject, capsys: pytest.CaptureFixture[str]
) -> None:
    doc = copy.deepcopy(data.draw(st.sampled_from(BASES)))
    for _ in range(data.draw(st.integers(1, 4))):
        doc = mutate(doc, data)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "job.yaml"
        path.write_text(yaml.safe_dump(doc, allow_unicode=True, sort_keys=False), "utf-8")

        validated(path, capsys)


def validated(path: Path, capsys: pytest.CaptureFixture[str]) -> int:
    """`owf-run validate PATH`: 0 and `PATH: ok`, or 3 and nothing but problem lines."""
    capsys.readouterr()
    code = boundary.call(lambda: commands.validate([path], [], None))
    out, err = capsys.readouterr()
    assert code in (ExitCode.OK, ExitCode.INVALID_JOB), err
    if code == ExitCode.OK:
        assert (out, err) == (f"{path}: ok\n", "")
        return code
    assert out == ""
    assert err.endswith("\n")
    for line in err.removesuffix("\n").split("\n"):  # problems are joined with "\n"
        assert line.startswith(f"{path}:"), err
        assert PROBLEM_LINE.match(line), line
        assert line.isprintable(), line
    return code


def test_control_characters_in_keys_do_not_break_problem_lines(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    doc = copy.deepcopy(BASES[0])
    doc["steps"][0]["outputs"] = {"a\nb": 0}
    doc["steps"][1]["paylod\x1b[31m"] = 1
    path = tmp_path / "job.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False), "utf-8")

    code = boundary.call(lambda: commands.validate([path], [], None))

    err = capsys.readouterr().err
    assert code == ExitCode.INVALID_JOB
    lines = err.removesuffix("\n").split("\n")
    assert len(lines) == 2, err
    assert all(PROBLEM_LINE.match(line) for line in lines), err
    assert "\x1b" not in err


# -- hostile scalars, spliced into the YAML text ----------------------------------------

PLACEHOLDER = "__HOSTILE__"
HOSTILE_SCALARS = [
    ".nan", ".NaN", ".inf", "-.inf", "1e400", "1.0e+400", "-1.0e+400", "1.0e-400",
    "1" + "0" * 5000, "-" + "9" * 5000, "0x" + "f" * 5000, "0", "-1", "99999", "65536",
    "~", "[]", "{}", "''", '"\\a"', '"\\0"', '"\\e[31m"', '"\\x85"', '"\\u202e"', '"\\t"',
    '"a\\nb"', "\x07", "a\x00b", "\x1b[31m", "Ж", '"\\u0416x"', "'" + "x" * 100_000 + "'",
    "[" * 60 + "]" * 60, "[" * 100 + "]" * 100, "{a: " * 70 + "1" + "}" * 70,
    "&x [*x]", "*nowhere", "!!python/object/apply:os.system ['true']", "!!binary aGVsbG8=",
    "2001-12-14", "!!set {a, b}", "!custom 1", "<<: {a: 1}", "|\n  text", "\ufeff", "\ud7ff",
]  # fmt: skip
# Settings with a meaning, each given a value a run would refuse or choke on.
TARGETED = [
    (("steps", 0, "flow"), "https://acme.workflows.okta.com:99999/api/flo/x/invoke"),
    (("steps", 0, "flow"), "https://acme.workflows.okta.com:0/api/flo/x/invoke"),
    (("steps", 0, "flow"), "'https://[::1/api/flo/x/invoke'"),
    (("steps", 0, "flow"), "https://acme.workflows.okta.com/api/flo/\x1b[31m/invoke"),
    (("steps", 0, "flow"), "https://user:pw@acme.workflows.okta.com/api/flo/x/invoke"),
    (("steps", 0, "expect"), "{status: []}"),
    (("steps", 0, "expect"), "{status: [99999]}"),
    (("steps", 0, "expect"), "{status: [.nan]}"),
    (("steps", 0, "concurrency"), "1" + "0" * 30),
    (("steps", 0, "concurrency"), "1000000"),
    (("steps", 0, "timeout"), ".inf"),
    (("steps", 0, "timeout"), ".nan"),
    (("steps", 0, "timeout"), "1e-300"),
    (("steps", 0, "max_response_bytes"), "1e400"),
    (("steps", 0, "max_response_bytes"), "1"),
    (("steps", 0, "retry"), "{attempts: 1000000000}"),
    (("steps", 0, "retry"), "{max_wait: .nan}"),
    (("steps", 0, "retry"), "{backoff: {initial: .inf, max: 1e400}}"),
    (("steps", 0, "rate_limit"), "0/s"),
    (("steps", 0, "rate_limit"), "99999999999999999999999/s"),
    (("steps", 0, "headers"), "{Жx: a}"),
    (("steps", 0, "headers"), '{"X a": b}'),
    (("steps", 0, "headers"), '{"X-\\a": b}'),
    (("steps", 0, "headers"), '{X-Ok: "a\\nb"}'),
    (("steps", 0, "headers"), '{X-Ok: "\\x7f"}'),
    (("steps", 0, "query"), '{"\\0": "\\0"}'),
    (("steps", 0, "id"), '"a\\x07"'),
    (("steps", 0, "payload"), "{n: .nan}"),
    (("steps", 0, "payload"), "{n: 1e400}"),
    (("vars",), "{n: .inf}"),
    (("vars",), "{n: 1" + "0" * 5000 + "}"),
    (("orgs", "acme", "domain"), "acme.okta.com:99999"),
    (("orgs", "acme", "domain"), "'" + "a" * 300 + ".com'"),
    (("orgs", "acme", "domain"), "ацме.okta.com"),
    (("orgs", "acme", "token_url"), "https://acme.okta.com:70000/oauth2/v1/token"),
    (("defaults", "timeout"), "-.inf"),
    (("defaults", "retry"), "{attempts: 0}"),
]  # fmt: skip
# The sample jobs, each in a folder of its own next to what it refers to.
RUNNABLE = {
    "onboarding": (ROOT / "jobs" / "onboarding.yaml", ROOT / "jobs" / "stubs"),
    "two_orgs": (ROOT / "tests" / "data" / "two_orgs.yaml", None),
}


def splice(doc: Any, data: st.DataObject) -> tuple[Any, str]:
    """The document with one hostile value (or key) in place, and the raw YAML for it."""
    if data.draw(st.booleans()):
        path, raw = data.draw(st.sampled_from(TARGETED))
        parent = get_or_make(doc, path[:-1])
        parent[path[-1]] = PLACEHOLDER
        return doc, raw
    raw = data.draw(st.sampled_from(HOSTILE_SCALARS))
    path = data.draw(st.sampled_from(paths(doc)))
    parent, last = get(doc, path[:-1]), path[-1]
    if isinstance(parent, dict) and data.draw(st.booleans()):
        parent[PLACEHOLDER] = parent.pop(last)  # as a key
    else:
        parent[last] = PLACEHOLDER
    return doc, raw


def get_or_make(node: Any, path: Path_) -> Any:
    for part in path:
        if isinstance(node, dict) and not isinstance(node.get(part), dict | list):
            node[part] = {}
        node = node[part]
    return node


def written(doc: Any, raw: str) -> str:
    return yaml.safe_dump(doc, allow_unicode=True, sort_keys=False).replace(PLACEHOLDER, raw)


CACHED_KEY = rsa_key()


@contextlib.contextmanager
def rehearsal_on(clock: FakeClock) -> Iterator[None]:
    """`--emulate` on ``clock`` (runner and emulator), with one cached stand-in RSA key."""

    def new_emulator() -> Emulator:
        emulator = Emulator(clock=clock.time)
        emulator.rate_limit = emulation.OKTA_FLOW_RATE
        return emulator

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(emulation, "new_emulator", new_emulator)
        patch.setattr(emulation, "real_transport", lambda: clock.track(real_transport()))
        patch.setattr(RSAKey, "generate_key", lambda *args, **kwargs: CACHED_KEY)
        yield


def plan_and_run(
    path: Path, capsys: pytest.CaptureFixture[str], *options: Any
) -> tuple[int, int, str]:
    """`owf-run plan PATH` and `owf-run PATH --emulate -v`: their exit codes and output.

    ``options``: --var pairs, --vars-file and --stubs, as runcmd.run takes them.
    """
    var, vars_file, stubs = options or ([], None, None)
    capsys.readouterr()
    planned = boundary.call(lambda: commands.plan(path, var, vars_file))
    clock, out = FakeClock(), io.StringIO()
    reporter = ConsoleReporter(stream=out, verbose=True)
    with rehearsal_on(clock):
        ran = boundary.call(
            lambda: runcmd.run(path, reporter, RunOptions(var, vars_file, True, None, stubs), clock)
        )
    captured = capsys.readouterr()
    return planned, ran, captured.out + captured.err + out.getvalue()


def assert_validated_means_it_runs(path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Once validate said ok, neither plan nor the run may refuse the job up front (3), nor
    crash (70)."""
    with hard_limit(30):
        if validated(path, capsys) != ExitCode.OK:
            return
        planned, ran, printed = plan_and_run(path, capsys)
    assert planned == ExitCode.OK, printed
    assert ran in (ExitCode.OK, ExitCode.STEP_FAILED), printed


def all_three(
    job: Path, capsys: pytest.CaptureFixture[str], *options: Any
) -> tuple[int, int, int, str]:
    """validate, then — when it says ok — plan and run; their exit codes and what they printed.

    ``options``: --var pairs, --vars-file and --stubs, as runcmd.run takes them.
    """
    var, vars_file, _ = options
    with hard_limit(30):
        capsys.readouterr()
        checked = boundary.call(lambda: commands.validate([job], var, vars_file))
        printed = capsys.readouterr().err
        if checked != ExitCode.OK:
            return checked, ExitCode.OK, ExitCode.OK, printed
        return checked, *plan_and_run(job, capsys, *options)


@settings(
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    max_examples=60,
    deadline=None,
    derandomize=True,
    database=None,
    phases=[Phase.explicit, Phase.generate, Phase.shrink],  # explaining re-runs whole jobs
)
@given(data=st.data(), base=st.sampled_from(sorted(RUNNABLE)))
def test_hostile_scalars_are_refused_up_front_or_run_to_a_documented_end(
    data: st.DataObject, base: str, capsys: pytest.CaptureFixture[str]
) -> None:
    source, stubs = RUNNABLE[base]
    doc, raw = splice(yaml.safe_load(source.read_text(encoding="utf-8")), data)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / source.name
        path.write_text(written(doc, raw), "utf-8")
        if stubs is not None:
            (Path(folder) / "stubs").symlink_to(stubs)
        assert_validated_means_it_runs(path, capsys)


# -- Jinja bombs, each in a child process with a memory limit and a timeout ----------------

BOMBS = [
    "{{ 'a'.ljust(10**10) }}",
    "{{ 'a'.center(10**10) }}",
    "{{ '%*s' % (10**10, 'a') }}",
    "{{ '{:>10000000000}'.format('a') }}",
    "{{ 'a\\nb' | indent(10**10) }}",
    "{{ dict(a=1) | tojson(indent=10**9) }}",
    "{{ lipsum(10**7) }}",
    "{{ range(10**9) | list }}",
    "{{ range(10**9) | sum }}",
    "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}",
    "{{ (10**1024) ** 5 }}",
    "{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}",
    "{% set a = 'x' * 1000000 %}" + "{% set a = a ~ a %}" * 12 + "{{ a | length }}",
    "{{ 'a' " + "| replace('a', 'aaaaaaaaaa') " * 10 + "}}",
    "{{ range(3) }}",
]
# One child runs every bomb: validate, plan and `--emulate -v` each, in turn. Its address
# space is capped, so a bomb that allocates fails fast instead of swamping CI; an alarm
# ends a bomb that spins; the parent's timeout ends a child that hangs in C.
CHILD = """
import contextlib, io, json, resource, signal, sys
resource.setrlimit(resource.RLIMIT_AS, (MEMORY, MEMORY))
from owf_runner.cli import main

class Hung(BaseException):
    pass

def expire(signum, frame):
    raise Hung()

signal.signal(signal.SIGALRM, expire)
results = {}
for case, job in json.loads(sys.argv[1]).items():
    codes, printed = [], io.StringIO()
    signal.alarm(SECONDS)
    try:
        with contextlib.redirect_stdout(printed), contextlib.redirect_stderr(printed):
            for args in (["validate", job], ["plan", job], [job, "--emulate", "-v"]):
                try:
                    main(args)
                except SystemExit as exc:
                    codes.append(int(exc.code or 0))
                if codes[-1] != 0 and args[0] == "validate":
                    break
    except Hung:
        codes.append("hung")
    signal.alarm(0)
    results[case] = {"codes": codes, "printed": printed.getvalue()[-2000:]}
with open(sys.argv[2], "w") as out:
    json.dump(results, out)
"""
CHILD_MEMORY = 1 << 30  # 1 GiB of address space
BOMB_SECONDS = 10  # for each bomb's three commands; with the budget, each takes well under 1 s


def bomb_job(folder: Path, where: str, bomb: str) -> Path:
    """A one-step job (no credentials to make) with ``bomb`` in ``where``."""
    step: dict[str, Any] = {"id": "s", "flow": "https://acme.workflows.okta.com/api/flo/f/invoke"}
    if where == "payload":
        step["payload"] = {"x": bomb}
    elif where == "when":
        step["when"] = bomb
    elif where == "outputs":
        step["outputs"] = {"x": bomb}
    else:
        step["foreach"] = bomb
    job = {
        "version": 1,
        "orgs": {"acme": {"domain": "acme.okta.com", "credential": "open"}},
        "credentials": {"open": {"type": "none"}},
        "steps": [step],
    }
    folder.mkdir()
    path = folder / "job.yaml"
    path.write_text(yaml.safe_dump(job, sort_keys=False), "utf-8")
    return path


BOMB_CASES = (
    [("payload", bomb) for bomb in BOMBS]
    + [(where, BOMBS[0]) for where in ("when", "outputs", "foreach")]
    + [(where, BOMBS[9]) for where in ("when", "foreach")]
)
Outcomes = dict[str, dict[str, Any]]


@pytest.fixture(scope="module")
def bomb_outcomes(tmp_path_factory: pytest.TempPathFactory) -> Outcomes:
    folder = tmp_path_factory.mktemp("bombs")
    jobs = {
        f"{where}: {bomb}": str(bomb_job(folder / str(n), where, bomb))
        for n, (where, bomb) in enumerate(BOMB_CASES)
    }
    code = CHILD.replace("MEMORY", str(CHILD_MEMORY)).replace("SECONDS", str(BOMB_SECONDS))
    results = folder / "results.json"
    try:
        done = subprocess.run(
            [sys.executable, "-c", code, json.dumps(jobs), str(results)],
            capture_output=True,
            text=True,
            timeout=BOMB_SECONDS * len(jobs) + 30,
            check=False,
            cwd=folder,
            # Module fixtures set up before conftest's per-test state dir: name one here.
            env={**os.environ, "OWF_STATE_DIR": str(folder / "state")},
        )
    except subprocess.TimeoutExpired:
        pytest.fail("the bombs' child hung past every alarm (a bomb stuck in C code?)")
    assert results.is_file(), f"the bombs' child died: {done.stderr[-3000:]}"
    outcomes: Outcomes = json.loads(results.read_text(encoding="utf-8"))
    return outcomes


@pytest.mark.parametrize(("where", "bomb"), BOMB_CASES)
def test_template_bombs_end_with_a_documented_exit_code_soon(
    bomb_outcomes: Outcomes, where: str, bomb: str
) -> None:
    outcome = bomb_outcomes[f"{where}: {bomb}"]
    codes, printed = outcome["codes"], outcome["printed"]

    assert "hung" not in codes, f"over {BOMB_SECONDS}s (no template budget?): {printed}"
    validate, *then = codes
    assert validate in (ExitCode.OK, ExitCode.INVALID_JOB), printed
    if validate == ExitCode.OK:
        plan, run = then
        # Validate said ok: plan shows the failure (or refuses), the run fails the step.
        assert plan in (ExitCode.OK, ExitCode.STEP_FAILED), printed
        assert run == ExitCode.STEP_FAILED, printed


# The hostile values the property found (issue 8), pinned so that each one stays
# tested by name: the property reports only the first of those that fail on the same line.
PINNED = [
    (("orgs", "acme", "domain"), "ацме.okta.com"),
    (("orgs", "acme", "domain"), '"\\a"'),
    (("orgs", "acme", "domain"), "'" + "x" * 100_000 + "'"),
    (("orgs", "acme", "domain"), "\ufeff"),
    (("vars", "first_name"), "0x" + "f" * 5000),
]


@pytest.mark.parametrize(
    ("where", "raw"),
    [pytest.param(w, r, id=f"{'.'.join(map(str, w))}={r[:16]!r}") for w, r in PINNED],
)
def test_a_hostile_value_is_refused_up_front_or_runs_to_a_documented_end(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], where: Path_, raw: str
) -> None:
    source = RUNNABLE["onboarding"][0]
    doc = yaml.safe_load(source.read_text(encoding="utf-8"))
    get_or_make(doc, where[:-1])[where[-1]] = PLACEHOLDER
    path = tmp_path / source.name
    path.write_text(written(doc, raw), "utf-8")
    (tmp_path / "stubs").symlink_to(ROOT / "jobs" / "stubs")

    assert_validated_means_it_runs(path, capsys)


# -- hostile files: foreach sources, a vars file, a secret file ------------------------------

FILES_JOB = """\
version: 1
vars: {{greeting: hi}}
orgs: {{acme: {{domain: acme.okta.com, credential: ct}}}}
credentials: {{ct: {{type: client_token, token: {{file: token.txt}}}}}}
steps:
  - id: s
    flow: https://acme.workflows.okta.com/api/flo/f/invoke
    foreach: {{{kind}: items.{kind}}}
    concurrency: 2
    payload: {{item: "{{{{ item }}}}", greeting: "{{{{ vars.greeting }}}}"}}
"""
TOKEN_CANARY = "TOKENfuzz4d2a9c61e0b7+/35f8e2a1c9d0b6"
text_cells = st.text(st.characters(blacklist_categories=SURROGATES), max_size=12)
json_data = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | text_cells,
    lambda children: st.lists(children, max_size=3) | st.dictionaries(text_cells, children),
    max_leaves=8,
)
SPECIAL_CONTENTS = [
    b"",
    b"\xef\xbb\xbf",
    b"\xff\xfe\x00a",
    b"\x00" * 64,
    b"a" * 200_000,
    b"a,b\n" + b"x" * 200_000 + b",y\n",
    b"[" * 100_000,
    b'"' * 7,
    b"\x1b[31mred\x07\n\x85\n",
]


def csv_text(rows: list[list[str]]) -> bytes:
    lines = [",".join(f'"{cell}"' if '"' not in cell else cell for cell in row) for row in rows]
    return "\n".join(lines).encode("utf-8", "surrogatepass")


@st.composite
def source_contents(draw: st.DrawFn, kind: str) -> bytes:
    shape = draw(st.sampled_from(["structured", "binary", "special"]))
    if shape == "binary":
        return draw(st.binary(max_size=300))
    if shape == "special":
        return draw(st.sampled_from(SPECIAL_CONTENTS))
    if kind == "csv":
        rows = draw(st.lists(st.lists(text_cells, min_size=1, max_size=3), max_size=4))
        return draw(st.sampled_from([b"", b"\xef\xbb\xbf"])) + csv_text([["a", "b"], *rows])
    if kind == "jsonl":
        lines = draw(st.lists(json_data, max_size=4))
        return "\n".join(json.dumps(line) for line in lines).encode()
    return json.dumps(draw(json_data)).encode()


@st.composite
def stub_contents(draw: st.DrawFn) -> bytes:
    """An emulator stub file: flows answered with hostile statuses, headers and bodies."""
    if draw(st.booleans()):
        return draw(source_contents("json"))
    odd = st.sampled_from([99, 1000, "x", None])  # now and then, a status no server sends
    names = st.sampled_from(["Retry-After", "X-Rate-Limit-Reset", "Content-Type"]) | text_cells
    stub = {
        "status": draw(st.sampled_from([200, 201, 404, 500]) | odd),
        "headers": draw(st.dictionaries(names, text_cells | st.integers(), max_size=2)),
        "body": draw(json_data | st.just("{{ request.headers }}") | st.just("{{ 1/0 }}")),
    }
    document = {"flows": {"f": stub}} if draw(st.integers(0, 3)) else {"f": stub}
    return yaml.safe_dump(document, allow_unicode=True).encode("utf-8", "surrogatepass")


TOKEN_DECORATIONS = ["", "\n", "\r\n", "\n\n", " ", "\x00", "\x07", "\ufeff", "\nsecond"]


@st.composite
def token_contents(draw: st.DrawFn) -> bytes:
    if draw(st.integers(0, 4)) == 0:
        return draw(st.binary(max_size=40) | st.sampled_from(SPECIAL_CONTENTS))
    if draw(st.integers(0, 3)) != 0:
        return (TOKEN_CANARY + draw(st.sampled_from(["", "\n"]))).encode()  # a usable token
    before = draw(st.sampled_from(["", "\ufeff", " "]))
    return (before + TOKEN_CANARY + draw(st.sampled_from(TOKEN_DECORATIONS))).encode()


@st.composite
def vars_contents(draw: st.DrawFn) -> bytes:
    if draw(st.booleans()):
        return draw(source_contents("json"))
    mapping = {"greeting": draw(text_cells), "extra": draw(json_data)}
    return yaml.safe_dump(mapping, allow_unicode=True).encode("utf-8", "surrogatepass")


def place(path: Path, content: bytes, how: str) -> None:
    """``content`` at ``path`` — or, in its place, something that is not a regular file."""
    if how == "directory":
        path.mkdir()
    elif how == "fifo":
        os.mkfifo(path)  # opening it for reading would wait for a writer forever
    elif how == "dev/zero":
        path.symlink_to("/dev/zero")
    elif how == "dangling link":
        path.symlink_to(path.parent / "nowhere")
    else:
        path.write_bytes(content)


placements = st.sampled_from(["file"] * 6 + ["directory", "fifo", "dev/zero", "dangling link"])


@settings(
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    max_examples=80,
    deadline=None,
    derandomize=True,
    database=None,
    phases=[Phase.explicit, Phase.generate, Phase.shrink],
)
@given(data=st.data(), kind=st.sampled_from(["csv", "jsonl", "json"]))
def test_hostile_files_end_with_a_documented_exit_code_and_print_safely(
    data: st.DataObject, kind: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with tempfile.TemporaryDirectory() as name:
        folder = Path(name)
        job = folder / "job.yaml"
        job.write_text(FILES_JOB.format(kind=kind), "utf-8")
        place(folder / f"items.{kind}", data.draw(source_contents(kind)), data.draw(placements))
        token_placement = data.draw(st.just("file") | placements)
        place(folder / "token.txt", data.draw(token_contents()), token_placement)
        vars_file = stubs = None
        if data.draw(st.booleans()):
            vars_file = folder / "vars.yaml"
            place(vars_file, data.draw(vars_contents()), data.draw(placements))
        if data.draw(st.booleans()):
            stubs = folder / "stubs.yaml"
            place(stubs, data.draw(stub_contents()), data.draw(placements))
        var = [f"greeting={data.draw(text_cells)}"] if data.draw(st.booleans()) else []
        checked, planned, ran, printed = all_three(job, capsys, var, vars_file, stubs)
    event(f"validate {checked}, plan {planned}, run {ran}")  # --hypothesis-show-statistics
    assert checked in (ExitCode.OK, ExitCode.INVALID_JOB), printed
    assert planned in (ExitCode.OK, ExitCode.STEP_FAILED, ExitCode.INVALID_JOB), printed
    assert ran in (ExitCode.OK, ExitCode.STEP_FAILED, ExitCode.INVALID_JOB), printed
    unsafe = sorted({ch for ch in printed if not ch.isprintable() and ch != "\n"})
    assert not unsafe, f"printed raw control characters {unsafe}: {printed[-2000:]}"
    assert TOKEN_CANARY not in printed


# -- a hostile environment: bytes that are not UTF-8 in --var values and environment variables --


def from_shell(raw: bytes) -> str:
    """How Python hands a program its argv and environment: undecodable bytes as surrogates."""
    return raw.decode("utf-8", "surrogateescape")


shell_bytes = st.binary(min_size=1, max_size=12).filter(lambda b: b"\x00" not in b) | st.just(
    b"tok\xffen123456"
)
ENV_JOB = """\
version: 1
orgs: {hook: {domain: hook.okta.com, credential: ct}}
credentials: {ct: {type: client_token, token: {env: OWF_FUZZ_ENV_CT}}}
steps:
  - id: s
    flow: https://hook.workflows.okta.com/api/flo/f/invoke
    payload: {env: "{{ env.OWF_FUZZ_ENV_VALUE }}", var: "{{ vars.name }}"}
"""


@settings(
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    max_examples=30,
    deadline=None,
    derandomize=True,
    database=None,
    phases=[Phase.explicit, Phase.generate, Phase.shrink],
)
@given(token=shell_bytes, value=shell_bytes, var=shell_bytes)
def test_values_from_the_shell_that_are_not_utf8_never_crash(
    token: bytes, value: bytes, var: bytes, capsys: pytest.CaptureFixture[str]
) -> None:
    codes = assert_handled_from_the_shell(token, value, var, capsys)
    event("validate {}, plan {}, run {}".format(*codes))  # see --hypothesis-show-statistics


# The cases that found it (issue 8: exit 70 on each), by name.
@pytest.mark.parametrize(
    ("token", "value", "var", "codes"),
    [
        pytest.param(b"goodtoken123456", b"ok", b"\xff\xfe", (2, 0, 0), id="--var name=\\xff\\xfe"),
        pytest.param(b"goodtoken123456", b"\xff", b"ok", (0, 0, 1), id="env value \\xff"),
        pytest.param(
            b"tok\xffen123456", b"ok", b"ok", (0, 0, 3), id="client token tok\\xffen123456"
        ),
    ],
)
def test_a_value_from_the_shell_that_is_not_utf8_is_refused_or_sent(
    token: bytes,
    value: bytes,
    var: bytes,
    codes: tuple[int, int, int],
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert assert_handled_from_the_shell(token, value, var, capsys) == codes


def assert_handled_from_the_shell(
    token: bytes, value: bytes, var: bytes, capsys: pytest.CaptureFixture[str]
) -> tuple[int, int, int]:
    """The client token, a templated environment variable and a --var, as a shell gives them:
    validate, plan and `--emulate` end with documented codes (0, 1, 3), never 70."""
    with tempfile.TemporaryDirectory() as name, pytest.MonkeyPatch.context() as patch:
        job = Path(name) / "job.yaml"
        job.write_text(ENV_JOB, "utf-8")
        patch.setenv("OWF_FUZZ_ENV_CT", from_shell(token))
        patch.setenv("OWF_FUZZ_ENV_VALUE", from_shell(value))
        var_pairs = [f"name={from_shell(var)}"]
        checked, planned, ran, printed = all_three(job, capsys, var_pairs, None, None)
    assert checked in (ExitCode.OK, ExitCode.USAGE, ExitCode.INVALID_JOB), printed
    assert planned in (ExitCode.OK, ExitCode.STEP_FAILED, ExitCode.INVALID_JOB), printed
    assert ran in (ExitCode.OK, ExitCode.STEP_FAILED, ExitCode.INVALID_JOB), printed
    return checked, planned, ran
