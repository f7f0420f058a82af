"""A rehearsal: the job wired to the built-in emulator (``--emulate``, ``owf-run emulate``).

Each credential's public key is registered with the emulator; a credential whose
secret is not set gets a fresh stand-in, and nothing else is forgiven, so a
rehearsal refuses what a run refuses. A stub's security level follows how the
job calls that flow unless the stub says otherwise.
"""

from __future__ import annotations

import dataclasses
import secrets
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import httpx2
from joserfc.jwk import ECKey, RSAKey

from owf_runner.auth import ClientAssertion
from owf_runner.credentials import ClientToken, Resolved, SecretCredential, resolve_credentials
from owf_runner.emulator import Emulator, FlowStub, load_stub_file
from owf_runner.http import EmulatorTransport, real_transport
from owf_runner.model import ClientTokenCredential, PrivateKeyJwtCredential
from owf_runner.plan import AuthKind, Plan
from owf_runner.redaction import REDACTOR
from owf_runner.templating import Constant
from owf_runner.urls import flow_id_of

OKTA_FLOW_RATE = 10  # invocations per second per flow
_CURVES = {"ES256": "P-256", "ES384": "P-384", "ES512": "P-521"}


def new_emulator() -> Emulator:
    emulator = Emulator()
    emulator.rate_limit = OKTA_FLOW_RATE  # rehearse with Okta's throttling, as users meet it
    return emulator


@contextmanager
def rehearsal(
    plan: Plan, stubs: Path | None
) -> Iterator[tuple[Mapping[str, Resolved], httpx2.AsyncBaseTransport]]:
    """Credentials (stand-ins for missing secrets) and a transport to a fresh emulator."""
    emulator = new_emulator()
    resolved = resolve_credentials(plan, stand_in)
    prepare(emulator, plan, resolved, stubs)
    with emulator.running() as base_url:
        yield resolved, EmulatorTransport(base_url, real_transport())


def stand_in(name: str, credential: SecretCredential) -> Resolved:
    """A fresh key (or client token) for a credential whose secret is not set."""
    if isinstance(credential, ClientTokenCredential):
        token = secrets.token_urlsafe(24)
        REDACTOR.add(token)
        return ClientToken(token)
    algorithm = credential.algorithm or "RS256"
    key: RSAKey | ECKey
    if algorithm in _CURVES:
        key = ECKey.generate_key(_CURVES[algorithm])
    else:
        key = RSAKey.generate_key(2048)
    kid = credential.key_id or f"emulated-{name}"
    return ClientAssertion(credential.client_id, kid, algorithm, key)


def default_stubs_path(job_path: Path) -> Path:
    return job_path.parent / "stubs" / f"{job_path.stem}.yaml"


def prepare(
    emulator: Emulator,
    plan: Plan,
    resolved: Mapping[str, Resolved],
    stubs: Path | None,
) -> None:
    """Register the job's credentials; set stubs from the file, with the job's security.

    ``stubs`` given must exist; without it, ``stubs/<job file name>`` is read if it is there.
    """
    for name, value in resolved.items():
        _register(emulator, plan, name, value)
    default = default_stubs_path(plan.document.path)
    loaded = load_stub_file(stubs or default) if stubs or default.is_file() else {}
    for flow_id, security in _securities(plan).items():
        stub = loaded.get(flow_id, FlowStub())
        if stub.security is None:
            loaded[flow_id] = dataclasses.replace(stub, security=security)
    for flow_id, stub in loaded.items():
        emulator.set_stub(flow_id, stub)


def _register(emulator: Emulator, plan: Plan, name: str, value: Resolved) -> None:
    credential = plan.credentials[name]
    if isinstance(value, ClientAssertion) and isinstance(credential, PrivateKeyJwtCredential):
        public = value.key.as_dict(private=False)
        emulator.register_client(value.client_id, value.key_id, public, credential.scopes)
    elif isinstance(value, ClientToken):
        emulator.register_client_token(value.token)


def _securities(plan: Plan) -> dict[str, AuthKind]:
    """How the job calls each flow whose URL is written out: oauth2, client_token or none."""
    found: dict[str, AuthKind] = {}
    for step in plan.steps:
        flow_id = flow_id_of(step.flow.written) if isinstance(step.flow.value, Constant) else None
        if flow_id:
            found[flow_id] = step.org.auth
    return found
