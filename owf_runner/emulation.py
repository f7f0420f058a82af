"""Wires a job to the built-in emulator (``owf-run JOB --emulate``).

Each credential's public key is registered with the emulator; a credential
whose secret is not at hand gets a fresh stand-in so a new user can rehearse
a job with no Okta org. The job's URLs stay untouched: the HTTP transport
sends them to loopback (see ``http.EmulatorTransport``).
"""

from __future__ import annotations

import secrets
import urllib.parse
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

from joserfc.jwk import ECKey, RSAKey

from owf_runner.auth import ClientAssertion
from owf_runner.credentials import ClientToken, Resolved
from owf_runner.emulator import Emulator, FlowStub, load_stub_file
from owf_runner.errors import JobError
from owf_runner.loader import LoadedJob
from owf_runner.model import ClientTokenCredential, PrivateKeyJwtCredential
from owf_runner.redaction import REDACTOR

_CURVES = {"ES256": "P-256", "ES384": "P-384", "ES512": "P-521"}


def stand_in(name: str, credential: PrivateKeyJwtCredential | ClientTokenCredential) -> Resolved:
    """A fresh key (or client token) for a credential whose secret is missing."""
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
    emulator: Emulator, loaded: LoadedJob, resolved: Mapping[str, Resolved], stubs: Path | None
) -> None:
    for name, value in resolved.items():
        _register(emulator, loaded, name, value)
    for flow_id, stub in _load_stubs(stubs).items():
        emulator.set_stub(flow_id, stub)
    for flow_id, stub in _default_stubs(loaded).items():
        if emulator.stub(flow_id) is None:  # the caller's or the stub file's come first
            emulator.set_stub(flow_id, stub)


def _register(emulator: Emulator, loaded: LoadedJob, name: str, value: Resolved) -> None:
    credential = loaded.job.credentials[name]
    if isinstance(value, ClientAssertion) and isinstance(credential, PrivateKeyJwtCredential):
        public = value.key.as_dict(private=False)
        emulator.register_client(value.client_id, value.key_id, public, credential.scopes)
    elif isinstance(value, ClientToken):
        emulator.register_client_token(value.token)


def _load_stubs(path: Path | None) -> dict[str, FlowStub]:
    if path is None or not path.exists():
        return {}
    try:
        return load_stub_file(path)
    except ValueError as exc:
        raise JobError([str(exc)]) from None


def _default_stubs(loaded: LoadedJob) -> dict[str, FlowStub]:
    """Echo stubs whose security matches the credential each flow is called with."""
    stubs: dict[str, FlowStub] = {}
    for step in loaded.job.steps:
        flow_id = flow_id_of(step.flow)
        credential = loaded.job.credentials.get(loaded.job.orgs[step.org or ""].credential)
        if flow_id and credential is not None:
            security = {"private_key_jwt": "oauth2"}.get(credential.type, credential.type)
            stubs[flow_id] = FlowStub(security=security)  # type: ignore[arg-type]
    return stubs


def flow_id_of(url: str) -> str | None:
    parts = urllib.parse.urlsplit(url).path.split("/")
    if len(parts) >= 4 and parts[-1] == "invoke" and parts[-3] == "flo":
        return parts[-2]
    return None


@contextmanager
def serving(emulator: Emulator) -> Iterator[str]:
    """The emulator's base URL, starting it for the run if the caller has not."""
    if emulator.is_running:
        yield emulator.base_url
    else:
        with emulator.running() as base_url:
            yield base_url
