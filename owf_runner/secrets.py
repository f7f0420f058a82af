"""Secret references → values, private keys, and the one redactor.

Every secret value is registered with :data:`REDACTOR` the moment it is
resolved, before anything could print it.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import re
import selectors
import stat
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from joserfc.errors import JoseError
from joserfc.jwk import ECKey, RSAKey

from owf_runner.files import (
    SECRET_FILE,
    CannotOpen,
    FileMissing,
    UnreadableFile,
    is_utf8,
    read_text,
    size_text,
)
from owf_runner.model import Algorithm, CommandSecret, EnvSecret, FileSecret, SecretRef
from owf_runner.redaction import REDACTOR, escape_controls

COMMAND_TIMEOUT = 30.0
MAX_COMMAND_OUTPUT = SECRET_FILE.cap  # a command printing forever is stopped here
MAX_NAME_SHOWN = 500  # characters of a path, variable or command name in a message
log = logging.getLogger(__name__)
SigningKey = RSAKey | ECKey
_EC_ALGORITHMS: dict[str, Algorithm] = {"P-256": "ES256", "P-384": "ES384", "P-521": "ES512"}
_KEY_TEXT_STARTS = ("-----BEGIN ", "{")  # PEM, JWK: the only secrets that may span lines
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")  # Unicode's category Cc: C0, DEL and C1
# A PEM or pretty-printed JWK has line ends (\n, \r\n) and may be indented with tabs.
_CONTROL_BUT_LINES = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")


class SecretError(Exception):
    """A reference could not be resolved; the message never contains the value."""


class SecretMissing(SecretError):
    """The secret is not set here (no such variable or file): a rehearsal may stand in for it."""


def resolve_secret(ref: SecretRef, base_dir: Path) -> str:
    """The value, its one trailing newline dropped; SecretError when unusable (never quoted)."""
    if isinstance(ref, EnvSecret):
        value, source = _from_env(ref.env), f"environment variable {_name(ref.env)}"
    elif isinstance(ref, FileSecret):
        path = base_dir / ref.file
        value, source = _from_file(path), _name(str(path))
    else:
        value, source = _from_command(ref), f"command {_name(ref.command[0])}"
    REDACTOR.add(value)
    _check_value(value, source)
    return value


MIN_LENGTH = 8  # Okta's client tokens are 40+ characters, keys hundreds


def _check_value(value: str, source: str) -> None:
    """Refuse what would be sent broken: an empty token, a stray escape code, a second line."""
    if not value.strip():
        raise SecretError(f"{source} is empty")
    if len(value.strip()) < MIN_LENGTH:
        message = f"is shorter than {MIN_LENGTH} characters: not a client token or key"
        raise SecretError(f"{source} {message}")
    if not is_utf8(value):
        raise SecretError(f"{source} is not UTF-8 text")
    key_text = value.lstrip().startswith(_KEY_TEXT_STARTS)
    found = (_CONTROL_BUT_LINES if key_text else _CONTROL).search(value)
    if found and found.group() in "\n\r":
        raise SecretError(f"{source} holds more than one line (only a PEM or JWK key may)")
    if found:
        raise SecretError(f"{source} holds a control character (U+{ord(found.group()):04X})")


def _without_newline(value: str) -> str:
    # `echo token > file` and most secret tools end their output with a newline.
    return value.removesuffix("\r\n") if value.endswith("\r\n") else value.removesuffix("\n")


def _from_env(name: str) -> str:
    value = _without_newline(os.environ.get(name, ""))
    if not value:
        message = f"environment variable {_name(name)} is not set (to rehearse: --emulate)"
        raise SecretMissing(message)
    return value


def _from_file(path: Path) -> str:
    try:
        value = read_text(path, SECRET_FILE)
    except FileMissing as exc:
        raise SecretMissing(f"cannot read {_name(str(path))}: {exc.strerror}") from None
    except CannotOpen as exc:
        raise SecretError(f"cannot read {_name(str(path))}: {exc.strerror}") from None
    except UnreadableFile as exc:
        raise SecretError(str(exc)) from None
    if _open_to_others(path):
        log.warning("%s is readable by group/others; chmod 600 it", _name(str(path)))
    return _without_newline(value)


def _open_to_others(path: Path) -> bool:
    try:
        return bool(path.stat().st_mode & (stat.S_IRWXG | stat.S_IRWXO))
    except OSError:  # gone since it was read: nothing left to warn about
        return False


def _name(text: str) -> str:
    """A name from the job file (a path, a variable, a command), safe to print in a message.

    Escaped and cut, not redacted: the error boundary redacts every line that goes out.
    """
    safe = escape_controls(text)
    return safe[:MAX_NAME_SHOWN] + "…" if len(safe) > MAX_NAME_SHOWN else safe


def _from_command(ref: CommandSecret) -> str:
    name = _name(ref.command[0])
    output = _command_output(ref.command, name)
    try:
        value = output.decode("utf-8")
    except UnicodeDecodeError:
        raise SecretError(f"command {name} printed something that is not UTF-8") from None
    value = _without_newline(value)
    if not value:
        raise SecretError(f"command {name} printed nothing")
    return value


def _command_output(argv: list[str], name: str) -> bytes:
    """Its stdout, at most MAX_COMMAND_OUTPUT bytes within COMMAND_TIMEOUT; stderr is dropped."""
    try:
        process = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL
        )
    except FileNotFoundError:
        raise SecretError(f"command not found: {name}") from None
    except (OSError, ValueError) as exc:  # not executable, a directory, a NUL in an argument
        raise SecretError(f"command {name} cannot be run: {_why(exc, argv[0])}") from None
    with process:
        try:
            output = _read_capped(process, name, time.monotonic() + COMMAND_TIMEOUT)
        finally:
            process.kill()  # a no-op once it has exited; never left running behind us
    if process.returncode != 0:
        raise SecretError(f"command {name} exited with status {process.returncode}")
    return output


def _why(exc: OSError | ValueError, program: str) -> str:
    if not isinstance(exc, OSError):
        return str(exc)
    if exc.errno == errno.EACCES and os.path.isdir(program):  # isdir: False on any error
        return "it is a directory"
    return exc.strerror or type(exc).__name__


def _read_capped(process: subprocess.Popen[bytes], name: str, deadline: float) -> bytes:
    """Reads until end of output and exit; past the deadline or the cap, SecretError."""
    assert process.stdout is not None  # noqa: S101 - stdout=PIPE
    chunks: list[bytes] = []
    size = 0
    with selectors.DefaultSelector() as selector:
        selector.register(process.stdout, selectors.EVENT_READ)
        while chunk := _next_chunk(selector, process.stdout.fileno(), name, deadline):
            size += len(chunk)
            if size > MAX_COMMAND_OUTPUT:
                limit = size_text(MAX_COMMAND_OUTPUT)
                raise SecretError(f"command {name} printed more than {limit}; stopped it")
            chunks.append(chunk)
    try:
        process.wait(max(0.0, deadline - time.monotonic()))
    except subprocess.TimeoutExpired:
        raise _timed_out(name) from None
    return b"".join(chunks)


def _next_chunk(selector: selectors.BaseSelector, fd: int, name: str, deadline: float) -> bytes:
    remaining = deadline - time.monotonic()
    if remaining <= 0 or not selector.select(remaining):
        raise _timed_out(name)
    return os.read(fd, 65536)


def _timed_out(name: str) -> SecretError:
    return SecretError(f"command {name} timed out after {COMMAND_TIMEOUT:g}s")


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
        # cryptography's own RSA check tests p and q for primality: 27 ms, a tenth of a
        # chained run's start. The check that matters is the cheap one below.
        loaded = serialization.load_pem_private_key(
            data, password=None, unsafe_skip_rsa_key_validation=True
        )
    except (ValueError, TypeError):
        raise SecretError("not a PEM private key (or it is encrypted)") from None
    if isinstance(loaded, rsa.RSAPrivateKey):
        _check_consistent(loaded.private_numbers())
        return RSAKey.import_key(loaded)
    if isinstance(loaded, ec.EllipticCurvePrivateKey) and loaded.curve.name in _CURVES:
        return ECKey.import_key(loaded)
    raise SecretError("unsupported key type: use an RSA or EC P-256/P-384/P-521 key")


_CURVES = {"secp256r1", "secp384r1", "secp521r1"}


def _check_consistent(key: rsa.RSAPrivateNumbers) -> None:
    """A damaged key whose parts disagree must never sign: a signature made with a wrong CRT
    part gives away the key's factors to whoever sees it (the token endpoint, a log)."""
    p, q, d, e = key.p, key.q, key.d, key.public_numbers.e
    agree = (
        p * q == key.public_numbers.n
        and key.dmp1 == d % (p - 1)
        and key.dmq1 == d % (q - 1)
        and e * key.dmp1 % (p - 1) == 1
        and e * key.dmq1 % (q - 1) == 1
        and key.iqmp * q % p == 1
    )
    if not agree:
        raise SecretError("not a valid RSA private key: its parts do not agree (is it damaged?)")


_PRIVATE_MEMBERS = ("d", "p", "q", "dp", "dq", "qi", "k")


def _mask_private_members(jwk: object) -> None:
    """A JWK's private parts masked one by one: the parsed key prints them apart from the
    JSON text registered whole (a traceback's ``{'kty': 'EC', 'd': '...'}``)."""
    if not isinstance(jwk, dict):
        return
    others = jwk.get("oth")
    for member in (jwk, *(others if isinstance(others, list) else ())):
        for name in _PRIVATE_MEMBERS if isinstance(member, dict) else ():
            if isinstance(member.get(name), str):
                REDACTOR.add(member[name])


def _load_jwk(text: str) -> PrivateKey:
    try:
        jwk = json.loads(text)
    except json.JSONDecodeError:
        raise SecretError("not a JWK: invalid JSON") from None
    kty = jwk.get("kty") if isinstance(jwk, dict) else None
    _mask_private_members(jwk)
    if kty not in {"RSA", "EC"} or "d" not in jwk:
        raise SecretError("not a private JWK: need kty RSA or EC and the private part 'd'")
    key_class = RSAKey if kty == "RSA" else ECKey
    try:
        key = key_class.import_key(jwk)
    except (ValueError, KeyError, TypeError, JoseError) as exc:
        detail = str(exc) or "missing or malformed key parameters"
        raise SecretError(f"invalid JWK: {type(exc).__name__}: {detail}") from None
    return PrivateKey(key, kid=jwk.get("kid"))
