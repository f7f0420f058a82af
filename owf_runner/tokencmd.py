"""`owf-run token ORG --job JOB`: one access token for ORG, printed for Postman or curl.

The one command that prints a token. It is fetched exactly as a run fetches it (the same
credentials, client, retries and refusals); nothing else is sent. Standard output carries the
token and nothing else, so that ``$(owf-run token acme --job j.yaml)`` is the token; the
token is written there as it is, past the redactor, which masks it everywhere else
(standard error, crash logs).
"""

from __future__ import annotations

import dataclasses
import difflib
import sys
from collections.abc import Sequence
from pathlib import Path

from owf_runner.auth import BearerAuth, TokenEndpointUnreachable
from owf_runner.boundary import point_at_devnull, run_async, to_stderr
from owf_runner.clock import SYSTEM_CLOCK, Clock
from owf_runner.commands import load_plan, parse_vars
from owf_runner.credentials import build_auths
from owf_runner.errors import ExitCode, StepError, UsageError
from owf_runner.http import EmulatorTransport, build_client
from owf_runner.plan import OrgPlan, Plan
from owf_runner.redaction import quoted
from owf_runner.report import ConsoleReporter
from owf_runner.runcmd import Wiring, check_target, wire

MAX_ORG_NAME = 100  # characters of an unknown org's name quoted back
MAX_LISTED_ORGS = 20
EMULATED_NOTE = (
    "this token is valid only for the emulator that issued it, which stopped with this command; "
    "for Postman, serve one with `owf-run emulate --job JOB` and pass its URL with --emulator"
)


@dataclasses.dataclass(frozen=True)
class TokenOptions:
    """`owf-run token`'s options, as plain values."""

    header: bool = False  # print `Authorization: Bearer TOKEN` rather than the token alone
    var: Sequence[str] = ()
    vars_file: Path | None = None
    emulate: bool = False
    emulator_url: str | None = None
    stubs: Path | None = None


def token(
    job: Path, org: str, options: TokenOptions = TokenOptions(), clock: Clock = SYSTEM_CLOCK
) -> int:
    """Print one access token for ``org`` of ``job`` on standard output; exit code 0."""
    check_target(options.emulate, options.emulator_url, options.stubs)
    plan = load_plan(job, parse_vars(options.var, options.vars_file))
    chosen = _oauth_org(plan, job, org)
    narrowed = _only(plan, chosen)
    stderr = ConsoleReporter(stream=sys.stderr)  # the emulator's notice; stdout is the token's
    with wire(narrowed, stderr, options.emulate, options.emulator_url, options.stubs) as wired:
        access_token = run_async(_fetch(narrowed, chosen, wired, clock))
    _print_token(f"Authorization: Bearer {access_token}" if options.header else access_token)
    if options.emulate:
        to_stderr(f"owf-run: note: {EMULATED_NOTE}")
    return ExitCode.OK


def _oauth_org(plan: Plan, job: Path, name: str) -> OrgPlan:
    """The org named, if it has access tokens at all (UsageError: what to do instead)."""
    org = plan.orgs.get(name)
    if org is None:
        raise UsageError(_unknown_org(plan, job, name))
    credential = f"(credential {org.credential!r})"
    if org.auth == "client_token":
        raise UsageError(
            f"org {name!r} calls its flows with a client token, not an access token: in "
            f"Postman, send its client token {credential} in the header x-api-client-token, "
            "with no Authorization header"
        )
    if org.auth == "none":
        raise UsageError(
            f"org {name!r} calls its flows without authentication {credential}, so there is "
            "no token: in Postman, send no Authorization header"
        )
    return org


def _unknown_org(plan: Plan, job: Path, name: str) -> str:
    names = sorted(plan.orgs)
    where = f"no org {quoted(name, MAX_ORG_NAME)} in {job}"
    close = difflib.get_close_matches(name, names, n=1)
    if close:
        return f"{where}; did you mean {close[0]!r}?"
    listed = ", ".join(names[:MAX_LISTED_ORGS]) + (", …" if len(names) > MAX_LISTED_ORGS else "")
    return f"{where}; its orgs: {listed}"


def _only(plan: Plan, org: OrgPlan) -> Plan:
    """The plan cut down to ``org``: its credential is the only one resolved (a key another
    org needs may be missing) and the only one an emulator learns of.

    An org no step uses gets one step lent to it: a plan's credentials are those its steps use.
    """
    own = next((step for step in plan.steps if step.org.name == org.name), None)
    step = own or dataclasses.replace(plan.steps[0], org=org)
    return dataclasses.replace(plan, orgs={org.name: org}, steps=(step,))


async def _fetch(plan: Plan, org: OrgPlan, wiring: Wiring, clock: Clock) -> str:
    """One token, through the auth flow a run would use (AuthError: exit 4)."""
    resolved, transport = wiring
    redirected = isinstance(transport, EmulatorTransport)
    async with build_client(transport, redirected=redirected) as client:
        auth = build_auths(plan, resolved, client, clock)[org.name]
        assert isinstance(auth, BearerAuth)  # noqa: S101 - _oauth_org let only OAuth orgs by
        try:
            return await auth.source.token()
        except TokenEndpointUnreachable as exc:
            raise StepError(str(exc)) from None


def _print_token(line: str) -> None:
    """Past the redactor: the token is the output. It is a bearer token (auth.py checked its
    characters), so it cannot carry a control character to the terminal."""
    stream = sys.stdout
    if stream is None:  # started with it closed (`>&-`)
        raise StepError("cannot write the token: standard output is closed")
    try:
        stream.write(line + "\n")
        stream.flush()
    except (OSError, ValueError) as exc:
        point_at_devnull(stream)  # or Python's flush at exit turns the exit code into 120
        raise StepError(f"cannot write the token to standard output ({exc})") from None
