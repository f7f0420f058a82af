"""Secret references, the redactor, and private key loading."""

from __future__ import annotations

import base64
import json
import logging
import os
import sys
import urllib.parse
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa as crypto_rsa
from joserfc.jwk import ECKey, RSAKey

import owf_runner.secrets
from owf_runner.model import CommandSecret, EnvSecret, FileSecret, SecretRef
from owf_runner.redaction import MASK, Redactor
from owf_runner.secrets import (
    PrivateKey,
    SecretError,
    SecretMissing,
    load_private_key,
    resolve_secret,
)
from tests.conftest import ec_key, pem, rsa_key, write_key

SECRET = 'p@ss w/rd"+\\canary-91f3'
PRINT_ARGUMENT = "import sys; sys.stdout.buffer.write(sys.argv[1].encode())"  # as is, no newline


@pytest.fixture(scope="module")
def rsa() -> RSAKey:
    return rsa_key()


@pytest.fixture(autouse=True)
def fresh_redactor(monkeypatch: pytest.MonkeyPatch) -> Redactor:
    """resolve_secret registers every value; keep this module's canaries out of the global."""
    redactor = Redactor()
    monkeypatch.setattr(owf_runner.secrets, "REDACTOR", redactor)
    return redactor


# -- Redactor ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "form",
    [
        SECRET,
        urllib.parse.quote(SECRET, safe=""),
        urllib.parse.quote_plus(SECRET),
        json.dumps(SECRET)[1:-1],
        base64.b64encode(SECRET.encode()).decode(),
        base64.urlsafe_b64encode(SECRET.encode()).decode(),
    ],
    ids=["raw", "url", "url-plus", "json", "base64", "urlsafe-base64"],
)
def test_redactor_masks_secret_and_its_encodings(form: str) -> None:
    redactor = Redactor()
    redactor.add(SECRET)

    out = redactor.redact(f"before {form} after")

    assert form.rstrip("=") not in out
    assert out.startswith(f"before {MASK}")
    assert out.endswith(" after")


def test_redactor_masks_json_dumped_payload() -> None:
    redactor = Redactor()
    redactor.add(SECRET)

    out = redactor.redact(json.dumps({"token": SECRET}))

    assert out == json.dumps({"token": MASK})


def test_redactor_masks_long_pem_lines(rsa: RSAKey) -> None:
    text = pem(rsa)
    redactor = Redactor()
    redactor.add(text)
    body_lines = [line for line in text.splitlines() if len(line) >= 16]
    assert len(body_lines) > 5
    middle = body_lines[len(body_lines) // 2]

    out = redactor.redact(f"log line: {middle}\n")

    assert out == f"log line: {MASK}\n"
    assert redactor.redact(text).count(MASK) >= 1
    assert all(line not in redactor.redact(text) for line in body_lines)


def test_redactor_masks_a_6_char_secret() -> None:
    redactor = Redactor()
    redactor.add("sixsix")

    assert redactor.redact("x sixsix y") == f"x {MASK} y"


def test_redactor_leaves_unrelated_text_alone() -> None:
    redactor = Redactor()
    redactor.add(SECRET)

    assert redactor.redact("nothing secret here") == "nothing secret here"


def test_redactor_strips_surrounding_whitespace_of_secret() -> None:
    redactor = Redactor()
    redactor.add("  trimmed-secret\n")

    assert redactor.redact("[trimmed-secret]") == f"[{MASK}]"


# -- resolve_secret ----------------------------------------------------------------


def test_env_secret_is_resolved_and_registered(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, fresh_redactor: Redactor
) -> None:
    monkeypatch.setenv("OWF_TEST_SECRET_ENV", "env-value-7781")

    assert resolve_secret(EnvSecret(env="OWF_TEST_SECRET_ENV"), tmp_path) == "env-value-7781"
    assert fresh_redactor.redact("x=env-value-7781") == f"x={MASK}"


@pytest.mark.parametrize("value", [None, ""])
def test_missing_env_secret_names_the_variable(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, value: str | None
) -> None:
    if value is None:
        monkeypatch.delenv("OWF_TEST_MISSING", raising=False)
    else:
        monkeypatch.setenv("OWF_TEST_MISSING", value)

    with pytest.raises(SecretMissing) as info:
        resolve_secret(EnvSecret(env="OWF_TEST_MISSING"), tmp_path)

    assert isinstance(info.value, SecretError)
    assert str(info.value) == (
        "environment variable OWF_TEST_MISSING is not set (to rehearse: --emulate)"
    )


def test_file_secret_is_relative_to_base_dir(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (tmp_path / "keys").mkdir()
    write_key(tmp_path / "keys" / "token.txt", "file-value-5521\n")

    with caplog.at_level(logging.WARNING, logger="owf_runner.secrets"):
        value = resolve_secret(FileSecret(file="keys/token.txt"), tmp_path)

    assert value == "file-value-5521"  # the newline `echo` or an editor adds is not the secret
    assert caplog.records == []


def test_missing_file_secret(tmp_path: Path) -> None:
    with pytest.raises(SecretMissing) as info:
        resolve_secret(FileSecret(file="nope.pem"), tmp_path)

    assert str(info.value) == f"cannot read {tmp_path / 'nope.pem'}: No such file or directory"


def test_a_file_secret_that_cannot_be_read_is_not_missing(tmp_path: Path) -> None:
    (tmp_path / "adir").mkdir()

    with pytest.raises(SecretError) as info:
        resolve_secret(FileSecret(file="adir"), tmp_path)

    assert not isinstance(info.value, SecretMissing)  # no stand-in for it under --emulate
    assert (
        str(info.value) == f"{tmp_path / 'adir'}: secret file is not a regular file (a directory)"
    )


def test_a_file_secret_that_is_not_text_is_not_missing(tmp_path: Path) -> None:
    path = tmp_path / "key.der"
    path.write_bytes(b"-----BEGIN\n\xff\xfe\x00binary")
    path.chmod(0o600)

    with pytest.raises(SecretError) as info:
        resolve_secret(FileSecret(file="key.der"), tmp_path)

    assert not isinstance(info.value, SecretMissing)
    assert str(info.value) == f"{path}:2:1: secret file is not UTF-8"


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o660])
def test_group_or_other_readable_file_logs_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, mode: int
) -> None:
    path = tmp_path / "open.pem"
    path.write_text("open-secret-value")
    os.chmod(path, mode)

    with caplog.at_level(logging.WARNING, logger="owf_runner.secrets"):
        value = resolve_secret(FileSecret(file="open.pem"), tmp_path)

    assert value == "open-secret-value"
    [record] = caplog.records
    assert record.levelno == logging.WARNING
    assert record.getMessage() == f"{path} is readable by group/others; chmod 600 it"
    assert "open-secret-value" not in caplog.text


def test_command_secret_strips_one_trailing_newline(tmp_path: Path) -> None:
    ref = CommandSecret(command=[sys.executable, "-c", "print('cmd-value-3391 ')"])

    assert resolve_secret(ref, tmp_path) == "cmd-value-3391 "


def test_command_never_goes_through_a_shell(tmp_path: Path) -> None:
    argument = "a; echo pwned $HOME `id` | cat"
    ref = CommandSecret(command=[sys.executable, "-c", "import sys; print(sys.argv[1])", argument])

    assert resolve_secret(ref, tmp_path) == argument


def test_command_failure_does_not_leak_its_output(tmp_path: Path) -> None:
    script = "import sys; print('leaked-cmd-secret'); sys.stderr.write('err'); sys.exit(3)"
    ref = CommandSecret(command=[sys.executable, "-c", script])

    with pytest.raises(SecretError) as info:
        resolve_secret(ref, tmp_path)

    assert str(info.value) == f"command {sys.executable} exited with status 3"
    assert "leaked-cmd-secret" not in str(info.value)
    assert not isinstance(info.value, SecretMissing)


def test_command_not_found(tmp_path: Path) -> None:
    ref = CommandSecret(command=[str(tmp_path / "no-such-owf-command"), "arg"])

    with pytest.raises(SecretError) as info:
        resolve_secret(ref, tmp_path)

    assert str(info.value) == f"command not found: {tmp_path / 'no-such-owf-command'}"
    assert not isinstance(info.value, SecretMissing)  # a missing tool is not a missing secret


def test_command_printing_nothing_is_an_error(tmp_path: Path) -> None:
    ref = CommandSecret(command=[sys.executable, "-c", "print()"])

    with pytest.raises(SecretError, match="printed nothing"):
        resolve_secret(ref, tmp_path)


def refusal(ref: SecretRef, base_dir: Path) -> str:
    """The message of the SecretError that resolving ``ref`` raises (and not SecretMissing)."""
    with pytest.raises(SecretError) as info:
        resolve_secret(ref, base_dir)
    assert not isinstance(info.value, SecretMissing)
    return str(info.value)


# -- values are checked: newline dropped, empty and control characters refused -------


@pytest.mark.parametrize(
    ("written", "value"),
    [
        ("tok-value-8812\n", "tok-value-8812"),
        ("tok-value-8812\r\n", "tok-value-8812"),
        ("tok-value-8812", "tok-value-8812"),
        (" tok-value-8812 ", " tok-value-8812 "),  # only a newline is not the secret's
    ],
    ids=["lf", "crlf", "none", "spaces-kept"],
)
def test_one_trailing_newline_is_dropped_from_every_source(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, written: str, value: str
) -> None:
    write_key(tmp_path / "token.txt", "")
    (tmp_path / "token.txt").write_bytes(written.encode())
    monkeypatch.setenv("OWF_TEST_TOKEN", written)
    printer = CommandSecret(command=[sys.executable, "-c", PRINT_ARGUMENT, written])

    assert resolve_secret(FileSecret(file="token.txt"), tmp_path) == value
    assert resolve_secret(EnvSecret(env="OWF_TEST_TOKEN"), tmp_path) == value
    assert resolve_secret(printer, tmp_path) == value


def test_an_env_secret_of_only_a_newline_is_not_set(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OWF_TEST_TOKEN", "\n")

    with pytest.raises(SecretMissing) as info:
        resolve_secret(EnvSecret(env="OWF_TEST_TOKEN"), tmp_path)

    assert (
        str(info.value) == "environment variable OWF_TEST_TOKEN is not set (to rehearse: --emulate)"
    )


@pytest.mark.parametrize("content", ["", "\n", "  \n", "\r\n"])
def test_an_empty_secret_file_is_refused_not_missing(tmp_path: Path, content: str) -> None:
    path = write_key(tmp_path / "token.txt", content)

    # Present but unusable: refused, not missing (so no stand-in under --emulate either).
    assert refusal(FileSecret(file="token.txt"), tmp_path) == f"{path} is empty"


@pytest.mark.parametrize(
    ("device", "what"),
    [("/dev/null", "a character device"), ("/dev/zero", "a character device")],
)
def test_a_device_as_secret_file_is_refused(tmp_path: Path, device: str, what: str) -> None:
    message = refusal(FileSecret(file=device), tmp_path)

    assert message == f"{device}: secret file is not a regular file ({what})"


def test_a_fifo_as_secret_file_is_refused_without_waiting_for_a_writer(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "pipe")

    message = refusal(FileSecret(file="pipe"), tmp_path)

    assert message == f"{tmp_path / 'pipe'}: secret file is not a regular file (a FIFO)"


def test_a_secret_file_over_1_mib_is_refused(tmp_path: Path) -> None:
    path = write_key(tmp_path / "big.pem", "")
    with path.open("wb") as handle:
        handle.truncate(1024 * 1024 + 1)

    message = refusal(FileSecret(file="big.pem"), tmp_path)

    assert message == f"{path}: secret file is larger than the 1 MiB limit"


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("tok\x1b[31mvalue-5521", "holds a control character (U+001B)"),
        ("tok\x00value-5521", "holds a control character (U+0000)"),
        ("tok\tvalue-5521", "holds a control character (U+0009)"),
        ("tok\x85value-5521", "holds a control character (U+0085)"),
        ("tok-value\n5521", "holds more than one line (only a PEM or JWK key may)"),
        ("tok-value\r5521", "holds more than one line (only a PEM or JWK key may)"),
        ("tok-value-5521\n\n", "holds more than one line (only a PEM or JWK key may)"),
        ("-----BEGIN PRIVATE KEY-----\n\x07\n", "holds a control character (U+0007)"),
    ],
    ids=["ESC", "NUL", "TAB", "NEL", "LF", "CR", "two-newlines", "BEL-in-PEM"],
)
def test_a_value_with_control_characters_is_refused_without_quoting_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, value: str, problem: str
) -> None:
    (tmp_path / "token.txt").write_bytes(value.encode())
    (tmp_path / "token.txt").chmod(0o600)

    message = refusal(FileSecret(file="token.txt"), tmp_path)

    assert message == f"{tmp_path / 'token.txt'} {problem}"
    assert "5521" not in message


def test_an_env_value_with_a_control_character_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OWF_TEST_TOKEN", "tok\x07value-5521")

    message = refusal(EnvSecret(env="OWF_TEST_TOKEN"), tmp_path)

    assert message == "environment variable OWF_TEST_TOKEN holds a control character (U+0007)"


def test_key_text_may_span_lines_with_crlf_and_tabs(tmp_path: Path, rsa: RSAKey) -> None:
    windows_pem = pem(rsa).replace("\n", "\r\n")
    pretty_jwk = json.dumps(rsa.as_dict(private=True), indent="\t") + "\n"
    write_key(tmp_path / "key.pem", "")
    (tmp_path / "key.pem").write_bytes(windows_pem.encode())
    write_key(tmp_path / "key.jwk", pretty_jwk)

    pem_text = resolve_secret(FileSecret(file="key.pem"), tmp_path)
    jwk_text = resolve_secret(FileSecret(file="key.jwk"), tmp_path)

    assert pem_text == windows_pem.removesuffix("\r\n")
    assert isinstance(load_private_key(pem_text).key, RSAKey)
    assert isinstance(load_private_key(jwk_text).key, RSAKey)


def test_a_command_printing_bytes_that_are_not_utf8_is_refused(tmp_path: Path) -> None:
    script = "import sys; sys.stdout.buffer.write(b'tok-\\xff-5521')"
    ref = CommandSecret(command=[sys.executable, "-c", script])

    message = refusal(ref, tmp_path)

    assert message == f"command {sys.executable} printed something that is not UTF-8"


def test_a_command_that_is_a_directory_cannot_be_run(tmp_path: Path) -> None:
    ref = CommandSecret(command=[str(tmp_path)])

    assert refusal(ref, tmp_path) == f"command {tmp_path} cannot be run: it is a directory"


def test_a_command_that_is_not_executable_cannot_be_run(tmp_path: Path) -> None:
    script = tmp_path / "get-token.sh"
    script.write_text("#!/bin/sh\necho token\n")
    script.chmod(0o600)

    message = refusal(CommandSecret(command=[str(script)]), tmp_path)

    assert message == f"command {script} cannot be run: Permission denied"


def test_a_command_argument_with_a_nul_cannot_be_run(tmp_path: Path) -> None:
    ref = CommandSecret(command=[sys.executable, "a\x00b"])

    assert refusal(ref, tmp_path) == f"command {sys.executable} cannot be run: embedded null byte"


def test_a_command_name_too_long_to_run_is_cut_in_the_message(tmp_path: Path) -> None:
    ref = CommandSecret(command=["x" * 5000])

    assert refusal(ref, tmp_path) == "command " + "x" * 500 + "… cannot be run: File name too long"


@pytest.mark.parametrize(
    ("setting", "value", "script", "problem"),
    [
        (
            "MAX_COMMAND_OUTPUT",
            100_000,
            "import sys\nwhile True: sys.stdout.write('y' * 4096)",
            "printed more than 100000 bytes; stopped it",
        ),
        (
            "COMMAND_TIMEOUT",
            0.3,
            "import os, time; print('tok-5521', flush=True); os.close(1); time.sleep(5)",
            "timed out after 0.3s",
        ),
    ],
    ids=["printing-forever", "output-closed-still-running"],
)
def test_a_command_is_stopped_at_its_output_cap_or_deadline(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    setting: str,
    value: float,
    script: str,
    problem: str,
) -> None:
    monkeypatch.setattr(owf_runner.secrets, setting, value)
    ref = CommandSecret(command=[sys.executable, "-c", script])

    assert refusal(ref, tmp_path) == f"command {sys.executable} {problem}"


# -- private keys -----------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["pkcs8", "pkcs1"])
def test_rsa_pem(rsa: RSAKey, fmt: str) -> None:
    key = load_private_key(pem(rsa, fmt))

    assert isinstance(key.key, RSAKey)
    assert key.kid is None
    assert key.key.as_dict(private=False)["n"] == rsa.as_dict(private=False)["n"]
    assert key.default_algorithm() == "RS256"
    assert key.fits("RS256")
    assert key.fits("RS512")
    assert not key.fits("ES256")


@pytest.mark.parametrize(
    ("curve", "fmt", "algorithm"),
    [
        ("P-256", "sec1", "ES256"),
        ("P-384", "sec1", "ES384"),
        ("P-521", "sec1", "ES512"),
        ("P-256", "pkcs8", "ES256"),
    ],
)
def test_ec_pem(curve: str, fmt: str, algorithm: str) -> None:
    original = ec_key(curve)

    key = load_private_key(pem(original, fmt))

    assert isinstance(key.key, ECKey)
    assert key.key.as_dict(private=False)["x"] == original.as_dict(private=False)["x"]
    assert key.default_algorithm() == algorithm
    assert key.fits(key.default_algorithm())
    assert not key.fits("RS256")
    assert not key.fits("ES256" if algorithm != "ES256" else "ES384")


def test_pem_with_surrounding_whitespace(rsa: RSAKey) -> None:
    assert isinstance(load_private_key("\n\n  " + pem(rsa) + "\n\n").key, RSAKey)


def test_jwk_with_kid(rsa: RSAKey) -> None:
    jwk = {**rsa.as_dict(private=True), "kid": "my-kid"}

    key = load_private_key(json.dumps(jwk))

    assert isinstance(key, PrivateKey)
    assert key.kid == "my-kid"
    assert key.default_algorithm() == "RS256"


def test_ec_jwk_without_kid() -> None:
    original = ec_key("P-384")
    jwk = {k: v for k, v in original.as_dict(private=True).items() if k != "kid"}

    key = load_private_key(json.dumps(jwk))

    assert key.kid is None
    assert key.default_algorithm() == "ES384"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("garbage", "not a PEM private key (or it is encrypted)"),
        ("", "not a PEM private key (or it is encrypted)"),
        ("{not json", "not a JWK: invalid JSON"),
        (
            '{"kty": "OKP", "d": "x"}',
            "not a private JWK: need kty RSA or EC and the private part 'd'",
        ),
    ],
)
def test_bad_keys_are_secret_errors(text: str, message: str) -> None:
    with pytest.raises(SecretError) as info:
        load_private_key(text)

    assert str(info.value) == message


@pytest.mark.parametrize("part", ["dmp1", "dmq1", "iqmp", "d"])
def test_a_pem_whose_rsa_parts_disagree_is_refused(rsa: RSAKey, part: str) -> None:
    """A damaged key never signs: one wrong CRT part would give its factors away."""
    numbers = rsa.private_key.private_numbers()
    damaged = {name: getattr(numbers, name) for name in ("p", "q", "d", "dmp1", "dmq1", "iqmp")}
    damaged[part] += 2
    key = crypto_rsa.RSAPrivateNumbers(
        **damaged, public_numbers=numbers.public_numbers
    ).private_key(unsafe_skip_rsa_key_validation=True)
    text = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()

    with pytest.raises(SecretError) as info:
        load_private_key(text)

    assert str(info.value) == (
        "not a valid RSA private key: its parts do not agree (is it damaged?)"
    )


def test_public_jwk_is_refused() -> None:
    public = json.dumps(ec_key().as_dict(private=False))

    with pytest.raises(SecretError, match="private part 'd'"):
        load_private_key(public)


def test_unsupported_curve_is_refused() -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    data = ec.generate_private_key(ec.SECP256K1()).private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )

    with pytest.raises(SecretError, match="unsupported key type"):
        load_private_key(data.decode())


@pytest.mark.parametrize(
    "jwk",
    [
        '{"kty": "RSA", "d": "AQAB"}',
        '{"kty": "EC", "crv": "P-999", "x": "AA", "y": "AA", "d": "AA"}',
    ],
    ids=["rsa-missing-n", "ec-unknown-crv"],
)
def test_malformed_jwk_is_a_secret_error(jwk: str) -> None:
    with pytest.raises(SecretError):
        load_private_key(jwk)


@pytest.mark.parametrize("value", ["abc", "1234567", ":", " short7 "])
def test_a_value_too_short_to_be_a_token_or_key_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    monkeypatch.setenv("OWF_TEST_TOKEN", value)

    assert refusal(EnvSecret(env="OWF_TEST_TOKEN"), tmp_path) == (
        "environment variable OWF_TEST_TOKEN is shorter than 8 characters: "
        "not a client token or key"
    )


def test_an_env_value_that_is_not_utf8_is_refused_and_nothing_crashes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OWF_TEST_TOKEN", "tok\udcffen123456")  # how Python hands over b"\xff"

    assert refusal(EnvSecret(env="OWF_TEST_TOKEN"), tmp_path) == (
        "environment variable OWF_TEST_TOKEN is not UTF-8 text"
    )
