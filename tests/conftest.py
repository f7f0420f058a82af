"""Shared fixtures: keys, a running emulator, job files and the in-process CLI."""

from __future__ import annotations

import base64
import json
import os
import urllib.parse
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx2
import pytest
from cryptography.hazmat.primitives import serialization
from joserfc.jwk import ECKey, RSAKey

from owf_runner.cli import main
from owf_runner.emulator import Emulator
from owf_runner.redaction import REDACTOR
from tests.fakes import FakeClock

DATA = Path(__file__).parent / "data"


@dataclass(frozen=True)
class Cli:
    code: int
    out: str
    err: str


@pytest.fixture
def emulator() -> Iterator[Emulator]:
    emu = Emulator()
    with emu.running():
        yield emu


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str]) -> Callable[..., Cli]:
    """Runs `owf-run ARGS` in this process, as the console script would."""

    def invoke(*args: str) -> Cli:
        capsys.readouterr()
        try:
            code = main(list(args))
        except SystemExit as exc:
            code = exc.code
        captured = capsys.readouterr()
        return Cli(int(code or 0), captured.out, captured.err)

    return invoke


@pytest.fixture(autouse=True)
def _isolated_state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("OWF_STATE_DIR", str(tmp_path / "state"))
    yield
    # The one redactor lives as long as the process; in a test run that is every test, and a
    # short secret one test registers would mask words in the next one's output.
    REDACTOR.__init__()  # type: ignore[misc]


def rsa_key() -> RSAKey:
    return RSAKey.generate_key(2048)


def ec_key(curve: str = "P-256") -> ECKey:
    return ECKey.generate_key(curve)


def pem(key: RSAKey | ECKey, fmt: str = "pkcs8") -> str:
    formats = {
        "pkcs8": serialization.PrivateFormat.PKCS8,
        "pkcs1": serialization.PrivateFormat.TraditionalOpenSSL,  # PKCS#1 for RSA
        "sec1": serialization.PrivateFormat.TraditionalOpenSSL,  # SEC1 for EC
    }
    raw = key.private_key
    assert raw is not None
    data = raw.private_bytes(serialization.Encoding.PEM, formats[fmt], serialization.NoEncryption())
    return data.decode()


def write_key(path: Path, text: str) -> Path:
    path.write_text(text)
    os.chmod(path, 0o600)
    return path


def jwt_segments(assertion: str) -> tuple[dict[str, object], dict[str, object]]:
    def decode(segment: str) -> dict[str, object]:
        padded = segment + "=" * (-len(segment) % 4)
        value: dict[str, object] = json.loads(base64.urlsafe_b64decode(padded))
        return value

    header, claims, _ = assertion.split(".")
    return decode(header), decode(claims)


def encoded_forms(secret: str) -> dict[str, str]:
    """Every form a secret takes on its way out that the redactor promises to mask, by name."""
    raw = secret.encode()
    forms = {
        "raw": secret,
        "json": json.dumps(secret)[1:-1],
        "json-unicode": json.dumps(secret, ensure_ascii=False)[1:-1],
        "quote": urllib.parse.quote(secret, safe=""),
        "quote-path": urllib.parse.quote(secret, safe="/"),
        "quote-plus": urllib.parse.quote_plus(secret),
    }
    if secret.isprintable():  # httpx2 refuses control characters in a URL
        forms["httpx2-params"] = str(httpx2.URL("https://h/", params={"q": secret})).split("q=")[1]
        forms["httpx2-path"] = str(httpx2.URL(f"https://h/a/{secret}/b"))[len("https://h/a/") : -2]
        forms["httpx2-query"] = str(httpx2.URL(f"https://h/a?q={secret}")).split("q=", 1)[1]
    for name, encode in (("base64", base64.b64encode), ("base64url", base64.urlsafe_b64encode)):
        forms[name] = encode(raw).decode()
        forms[f"{name}-unpadded"] = encode(raw).decode().rstrip("=")
    return forms


def encodings(secret: str) -> set[str]:
    """Every form of the secret and of its long lines (a PEM key leaks line by line)."""
    pieces = [secret, *(line for line in secret.splitlines() if len(line) >= 16)]
    return {form for piece in pieces for form in encoded_forms(piece).values()}


def assert_not_leaked(result: Cli, *secrets: str) -> None:
    printed = result.out + result.err
    for secret in secrets:
        for form in encodings(secret):
            assert form not in printed


@pytest.fixture
def fake_clock() -> FakeClock:
    """Virtual time: sleeps are recorded, never slept (see tests/fakes.py)."""
    return FakeClock()


@pytest.fixture
def timed_emulator(fake_clock: FakeClock) -> Iterator[Emulator]:
    """A running emulator on ``fake_clock``: rate limits, resets and `received_at` in fake time."""
    emu = Emulator(clock=fake_clock.time)
    with emu.running():
        yield emu


@pytest.fixture
def hostile() -> Iterator[object]:
    """A running ``tests.hostile.HostileServer``: the test scripts its every answer."""
    from tests.hostile import HostileServer  # here: tests.hostile imports this module

    with HostileServer().running() as server:
        yield server
