"""Resolve every credential a plan uses, up front, before anything is sent; build auth flows.

A problem is reported at the line of the secret reference and never quotes
the secret's value.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import httpx2

from owf_runner.auth import (
    BearerAuth,
    ClientAssertion,
    ClientTokenAuth,
    TokenKey,
    TokenSource,
)
from owf_runner.clock import Clock
from owf_runner.errors import JobError
from owf_runner.model import (
    ClientTokenCredential,
    Credential,
    EnvSecret,
    PrivateKeyJwtCredential,
    SecretRef,
)
from owf_runner.plan import Plan
from owf_runner.problems import Problem, in_file_order
from owf_runner.redaction import REDACTOR
from owf_runner.secrets import (
    PrivateKey,
    SecretError,
    SecretMissing,
    load_private_key,
    resolve_secret,
)


@dataclass(frozen=True)
class ClientToken:
    token: str


Resolved = ClientAssertion | ClientToken | None
SecretCredential = PrivateKeyJwtCredential | ClientTokenCredential
# A rehearsal stands in for a secret that is not set; nothing else is forgiven.
StandIn = Callable[[str, SecretCredential], Resolved]


def resolve_credentials(plan: Plan, stand_in: StandIn | None = None) -> dict[str, Resolved]:
    resolved: dict[str, Resolved] = {}
    problems: list[Problem] = []
    for name in plan.used_credentials():
        try:
            resolved[name] = _resolve(plan, name)
        except SecretMissing as exc:
            if stand_in is None:
                problems.append(_problem(plan, name, str(exc)))
            else:
                resolved[name] = stand_in(name, _secret_credential(plan, name))
        except SecretError as exc:
            problems.append(_problem(plan, name, str(exc)))
    if problems:
        raise JobError(in_file_order(problems))
    return resolved


def _secret_credential(plan: Plan, name: str) -> SecretCredential:
    credential = plan.credentials[name]
    # Only credentials with a secret can miss it.
    assert isinstance(credential, SecretCredential)  # noqa: S101
    return credential


def _resolve(plan: Plan, name: str) -> Resolved:
    credential = plan.credentials[name]
    if isinstance(credential, PrivateKeyJwtCredential):
        key = load_private_key(resolve_secret(credential.private_key, plan.base_dir))
        return _assertion(credential, key)
    if isinstance(credential, ClientTokenCredential):
        return ClientToken(resolve_secret(credential.token, plan.base_dir))
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


def _problem(plan: Plan, name: str, message: str) -> Problem:
    credential = plan.credentials[name]
    field = "token" if isinstance(credential, ClientTokenCredential) else "private_key"
    return plan.problem(("credentials", name, field), message)


def build_auths(
    plan: Plan, resolved: Mapping[str, Resolved], client: httpx2.AsyncClient, clock: Clock
) -> dict[str, httpx2.Auth]:
    """One auth flow per org; orgs agreeing on (token URL, client, scopes) share a token."""
    sources: dict[TokenKey, TokenSource] = {}
    auths: dict[str, httpx2.Auth] = {}
    for org in plan.orgs.values():
        value = resolved.get(org.credential)
        credential = plan.credentials[org.credential]
        if isinstance(value, ClientAssertion) and isinstance(credential, PrivateKeyJwtCredential):
            key = TokenKey(org.token_url, value.client_id, credential.scopes)
            source = sources.setdefault(key, TokenSource(client, key, value, clock))
            auths[org.name] = BearerAuth(source)
        elif isinstance(value, ClientToken):
            auths[org.name] = ClientTokenAuth(value.token)
        else:
            auths[org.name] = httpx2.Auth()  # the base flow sends the request as is
    return auths


def mask_env_secrets(plan: Plan) -> None:
    """An environment variable a credential takes its secret from is masked, even where a
    template prints it (``{{ env.CT }}``). File and command secrets are not read: a plan runs
    nothing, and a template cannot print them."""
    for credential in plan.credentials.values():
        ref = _secret_ref(credential)
        value = os.environ.get(ref.env) if isinstance(ref, EnvSecret) else None
        if value:
            REDACTOR.add(value)


def _secret_ref(credential: Credential) -> SecretRef | None:
    if isinstance(credential, PrivateKeyJwtCredential):
        return credential.private_key
    return credential.token if isinstance(credential, ClientTokenCredential) else None
