"""Secret references → values, private keys, and the one redactor.

Every secret value is registered with :data:`REDACTOR` the moment it is
resolved, before anything could print it.
"""

from __future__ import annotations

import json
import logging
import os
import stat
import subprocess
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from joserfc.errors import JoseError
from joserfc.jwk import ECKey, RSAKey

from owf_runner.model import Algorithm, CommandSecret, EnvSecret, FileSecret, SecretRef
from owf_runner.redaction import REDACTOR

COMMAND_TIMEOUT = 30.0
log = logging.getLogger(__name__)
SigningKey = RSAKey | ECKey
_EC_ALGORITHMS: dict[str, Algorithm] = {"P-256": "ES256", "P-384": "ES384", "P-521": "ES512"}


class SecretError(Exception):
    """A reference could not be resolved; the message never contains the value."""


class SecretMissing(SecretError):
    """The secret is not set here (no such variable or file): a rehearsal may stand in for it."""


def resolve_secret(ref: SecretRef, base_dir: Path) -> str:
    if isinstance(ref, EnvSecret):
        value = _from_env(ref.env)
    elif isinstance(ref, FileSecret):
        value = _from_file(base_dir / ref.file)
    else:
        value = _from_command(ref)
    REDACTOR.add(value)
    return value


def _from_env(name: str) -> str:
    value = os.environ.get(name)
    if not value:
        raise SecretMissing(f"environment variable {name} is not set (to rehearse: --emulate)")
    return value


def _from_file(path: Path) -> str:
    try:
        mode = path.stat().st_mode
        value = path.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise SecretMissing(f"cannot read {path}: {exc.strerror}") from None
    except OSError as exc:
        raise SecretError(f"cannot read {path}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise SecretError(f"{path} is not a text file") from None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        log.warning("%s is readable by group/others; chmod 600 it", path)
    return value


def _from_command(ref: CommandSecret) -> str:
    try:
        done = subprocess.run(
            ref.command, capture_output=True, text=True, timeout=COMMAND_TIMEOUT, check=False
        )
    except FileNotFoundError:
        raise SecretError(f"command not found: {ref.command[0]}") from None
    except subprocess.TimeoutExpired:
        raise SecretError(
            f"command {ref.command[0]} timed out after {COMMAND_TIMEOUT:g}s"
        ) from None
    if done.returncode != 0:
        raise SecretError(f"command {ref.command[0]} exited with status {done.returncode}")
    value = done.stdout.removesuffix("\n")
    if not value:
        raise SecretError(f"command {ref.command[0]} printed nothing")
    return value


# -- private keys ---------------------------------------------------------------


@dataclass(frozen=True)
class PrivateKey:
    key: SigningKey
    kid: str | None  # from a JWK, when it carries one

    def default_algorithm(self) -> Algorithm:
        if isinstance(self.key, RSAKey):
            return "RS256"
        return _EC_ALGORITHMS[self.key.curve_name]

    def fits(self, algorithm: Algorithm) -> bool:
        if isinstance(self.key, RSAKey):
            return algorithm.startswith("RS")
        return algorithm == self.default_algorithm()


def load_private_key(text: str) -> PrivateKey:
    """A PEM (PKCS#8, PKCS#1, SEC1) or JWK private key, RSA or EC P-256/384/521."""
    stripped = text.strip()
    if stripped.startswith("{"):
        return _load_jwk(stripped)
    return PrivateKey(_load_pem(stripped.encode()), kid=None)


def _load_pem(data: bytes) -> SigningKey:
    try:
        loaded = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError):
        raise SecretError("not a PEM private key (or it is encrypted)") from None
    if isinstance(loaded, rsa.RSAPrivateKey):
        return RSAKey.import_key(loaded)
    if isinstance(loaded, ec.EllipticCurvePrivateKey) and loaded.curve.name in _CURVES:
        return ECKey.import_key(loaded)
    raise SecretError("unsupported key type: use an RSA or EC P-256/P-384/P-521 key")


_CURVES = {"secp256r1", "secp384r1", "secp521r1"}


def _load_jwk(text: str) -> PrivateKey:
    try:
        jwk = json.loads(text)
    except json.JSONDecodeError:
        raise SecretError("not a JWK: invalid JSON") from None
    kty = jwk.get("kty") if isinstance(jwk, dict) else None
    if kty not in {"RSA", "EC"} or "d" not in jwk:
        raise SecretError("not a private JWK: need kty RSA or EC and the private part 'd'")
    key_class = RSAKey if kty == "RSA" else ECKey
    try:
        key = key_class.import_key(jwk)
    except (ValueError, KeyError, TypeError, JoseError) as exc:
        detail = str(exc) or "missing or malformed key parameters"
        raise SecretError(f"invalid JWK: {type(exc).__name__}: {detail}") from None
    return PrivateKey(key, kid=jwk.get("kid"))
