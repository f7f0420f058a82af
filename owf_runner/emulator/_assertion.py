"""Client-assertion (private_key_jwt) checks, in the order and wording Okta uses."""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import ECKey, RSAKey

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
MAX_LIFETIME = 3600  # Okta refuses assertions whose exp is more than an hour after iat
CLOCK_SKEW = 5  # seconds an iat may lie in the future before Okta calls it invalid

_RSA_ALGS = frozenset({"RS256", "RS384", "RS512"})
_EC_ALG_CURVES = {"ES256": "P-256", "ES384": "P-384", "ES512": "P-521"}

PublicKey = RSAKey | ECKey


class OAuthError(Exception):
    """An answer in Okta's error shape: {"error": ..., "error_description": ...}."""

    def __init__(self, error: str, description: str, status: int = 400) -> None:
        super().__init__(f"{error}: {description}")
        self.error = error
        self.description = description
        self.status = status


def invalid_client(description: str) -> OAuthError:
    return OAuthError("invalid_client", description, 401)


@dataclass(frozen=True)
class VerifiedAssertion:
    client_id: str
    jti: str
    claims: dict[str, Any]


def to_public_key(key: RSAKey | ECKey | Mapping[str, Any]) -> PublicKey:
    """A registered key, reduced to its public half (a JWK dict names its type in kty)."""
    if isinstance(key, RSAKey | ECKey):
        key = key.as_dict(private=False)
    jwk = dict(key)
    for private_member in ("d", "p", "q", "dp", "dq", "qi", "oth"):
        jwk.pop(private_member, None)
    if jwk.get("kty") == "RSA":
        return RSAKey.import_key(jwk)
    if jwk.get("kty") == "EC":
        return ECKey.import_key(jwk)
    raise ValueError(f"public key must be an RSA or EC JWK, not kty={jwk.get('kty')!r}")


def peek(assertion: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """Header and claims of a compact JWT, unverified (to find the key, and to record)."""
    parts = assertion.split(".")
    if len(parts) != 3:
        raise invalid_client("The client_assertion is not a valid JWT.")
    return _segment(parts[0]), _segment(parts[1])


def _segment(segment: str) -> dict[str, Any]:
    try:
        raw = base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
        value = json.loads(raw)
    except (binascii.Error, ValueError) as error:
        raise invalid_client("The client_assertion is not a valid JWT.") from error
    if not isinstance(value, dict):
        raise invalid_client("The client_assertion is not a valid JWT.")
    return value


def verify(
    assertion: str,
    token_url: str,
    keys_by_client: Mapping[str, Mapping[str, PublicKey]],
    now: float,
) -> VerifiedAssertion:
    """Signature and claims of a client assertion; raises OAuthError on the first problem.

    The jti is returned, not consumed: single use is the caller's job under its lock.
    """
    header, claims = peek(assertion)
    kid = header.get("kid")
    if not isinstance(kid, str) or not kid:
        raise invalid_client("The client_assertion JWT kid is invalid.")
    client_id = claims.get("iss")
    if not isinstance(client_id, str) or client_id not in keys_by_client:
        raise invalid_client("The client_assertion 'iss' claim does not name a known client.")
    key = keys_by_client[client_id].get(kid)
    if key is None:
        raise invalid_client("The client_assertion JWT kid is invalid.")
    _check_signature(assertion, header.get("alg"), key)
    _check_claims(claims, client_id, token_url, now)
    return VerifiedAssertion(client_id=client_id, jti=claims["jti"], claims=claims)


def _check_signature(assertion: str, alg: object, key: PublicKey) -> None:
    if not isinstance(alg, str) or not _alg_fits_key(alg, key):
        raise invalid_client(f"The client_assertion JWT alg {alg!r} is invalid for the key.")
    try:
        jwt.decode(assertion, key, algorithms=[alg])
    except JoseError as error:
        raise invalid_client("The client_assertion signature is invalid.") from error


def _alg_fits_key(alg: str, key: PublicKey) -> bool:
    if isinstance(key, RSAKey):
        return alg in _RSA_ALGS
    return _EC_ALG_CURVES.get(alg) == key.curve_name


def _check_claims(claims: dict[str, Any], client_id: str, token_url: str, now: float) -> None:
    if claims.get("sub") != client_id:
        raise invalid_client("The client_assertion 'iss' and 'sub' claims must be the client_id.")
    aud = claims.get("aud")
    if not (aud == token_url or (isinstance(aud, list) and token_url in aud)):
        raise invalid_client(
            "The audience claim for client_assertion must be the endpoint invoked "
            f"for the request: {token_url}"
        )
    exp = _number(claims, "exp")
    iat = _number(claims, "iat")
    if exp <= now:
        raise invalid_client("The client_assertion token is expired.")
    if exp - iat > MAX_LIFETIME:
        raise invalid_client(
            "The client_assertion token has an expiration too far into the future."
        )
    if iat > now + CLOCK_SKEW:
        raise invalid_client("The client_assertion token has an issued at time in the future.")
    jti = claims.get("jti")
    if not isinstance(jti, str) or not jti:
        raise invalid_client("The client_assertion token must contain a 'jti' claim.")


def _number(claims: dict[str, Any], name: str) -> float:
    value = claims.get(name)
    # bool is an int in Python, but `true` is no timestamp.
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise invalid_client(f"The client_assertion token must contain a numeric {name!r} claim.")
    return float(value)
