"""Resolve every credential of a job up front, before anything is sent.

A problem is reported at the line of the secret reference and never quotes
the secret's value.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import cast

import httpx2

from owf_runner.auth import (
    BearerAuth,
    ClientAssertion,
    ClientTokenAuth,
    TokenKey,
    TokenSource,
)
from owf_runner.errors import JobError
from owf_runner.loader import LoadedJob
from owf_runner.model import ClientTokenCredential, PrivateKeyJwtCredential
from owf_runner.problems import in_file_order
from owf_runner.secrets import PrivateKey, SecretError, load_private_key, resolve_secret


@dataclass(frozen=True)
class ClientToken:
    token: str


Resolved = ClientAssertion | ClientToken | None
# In emulation a credential whose secret is missing gets a stand-in; the
# callback returns it, or None to report the problem as usual.
Fallback = Callable[[str, PrivateKeyJwtCredential | ClientTokenCredential], Resolved]


def resolve_credentials(loaded: LoadedJob, fallback: Fallback | None = None) -> dict[str, Resolved]:
    resolved: dict[str, Resolved] = {}
    problems: list[str] = []
    for name in _used_credentials(loaded):
        try:
            resolved[name] = _resolve(loaded, name)
        except SecretError as exc:
            stand_in = fallback(name, _credential(loaded, name)) if fallback else None
            if stand_in is None:
                problems.append(_problem(loaded, name, str(exc)))
            resolved[name] = stand_in
    if problems:
        raise JobError(in_file_order(problems))
    return resolved


def _used_credentials(loaded: LoadedJob) -> list[str]:
    """Credentials of orgs some step uses: an unused org's key need not be at hand."""
    orgs = {step.org for step in loaded.job.steps}
    names = {loaded.job.orgs[org].credential for org in orgs if org in loaded.job.orgs}
    return sorted(names)


def _credential(loaded: LoadedJob, name: str) -> PrivateKeyJwtCredential | ClientTokenCredential:
    credential = loaded.job.credentials[name]
    # Only credentials with a secret can fail to resolve.
    return cast(PrivateKeyJwtCredential | ClientTokenCredential, credential)


def _resolve(loaded: LoadedJob, name: str) -> Resolved:
    credential = loaded.job.credentials[name]
    base = loaded.path.parent
    if isinstance(credential, PrivateKeyJwtCredential):
        key = load_private_key(resolve_secret(credential.private_key, base))
        return _assertion(credential, key)
    if isinstance(credential, ClientTokenCredential):
        return ClientToken(resolve_secret(credential.token, base))
    return None


def _assertion(credential: PrivateKeyJwtCredential, key: PrivateKey) -> ClientAssertion:
    algorithm = credential.algorithm or key.default_algorithm()
    if not key.fits(algorithm):
        raise SecretError(
            f"algorithm {algorithm} does not fit this key (use {key.default_algorithm()})"
        )
    key_id = credential.key_id or key.kid
    if not key_id:
        raise SecretError("no `key_id`, and the key is not a JWK with a kid; Okta needs the kid")
    return ClientAssertion(credential.client_id, key_id, algorithm, key.key)


def _problem(loaded: LoadedJob, name: str, message: str) -> str:
    credential = loaded.job.credentials[name]
    field = "token" if isinstance(credential, ClientTokenCredential) else "private_key"
    at = ("credentials", name, field)
    return f"{loaded.where(at)}: credentials.{name}.{field}: {message}"


def build_auths(
    loaded: LoadedJob, resolved: dict[str, Resolved], client: httpx2.AsyncClient
) -> dict[str, httpx2.Auth]:
    """One auth flow per org; orgs agreeing on (token URL, client, scopes) share a token."""
    sources: dict[TokenKey, TokenSource] = {}
    auths: dict[str, httpx2.Auth] = {}
    for org_name, org in loaded.job.orgs.items():
        value = resolved.get(org.credential)
        credential = loaded.job.credentials.get(org.credential)
        if isinstance(value, ClientAssertion) and isinstance(credential, PrivateKeyJwtCredential):
            key = TokenKey(org.resolved_token_url, value.client_id, credential.scopes)
            source = sources.setdefault(key, TokenSource(client, key, value))
            auths[org_name] = BearerAuth(source)
        elif isinstance(value, ClientToken):
            auths[org_name] = ClientTokenAuth(value.token)
        else:
            auths[org_name] = httpx2.Auth()  # the base flow sends the request as is
    return auths
