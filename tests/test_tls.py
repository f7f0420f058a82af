"""`ca_bundle`: extra trust anchors, checked up front, never a way to turn verification off."""

from __future__ import annotations

import datetime
import ipaddress
import ssl
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from owf_runner.commands import load_plan
from owf_runner.emulator import Emulator, FlowStub
from owf_runner.errors import JobError
from owf_runner.http import tls_context
from owf_runner.loader import load_job
from tests.conftest import Cli


def _certificate(
    subject: str,
    key: ec.EllipticCurvePrivateKey,
    issuer: tuple[x509.Name, ec.EllipticCurvePrivateKey] | None,
) -> x509.Certificate:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
    issuer_name, signer = issuer or (name, key)
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(issuer_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
    )
    if issuer is None:
        builder = builder.add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
    else:
        san = x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))])
        builder = builder.add_extension(san, critical=False)
    return builder.sign(signer, hashes.SHA256())


def write_ca(path: Path, common_name: str = "owf test corporate CA") -> Path:
    key = ec.generate_private_key(ec.SECP256R1())
    cert = _certificate(common_name, key, None)
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return path


def server_context(tmp_path: Path) -> tuple[ssl.SSLContext, Path]:
    """A server context for 127.0.0.1 signed by a fresh CA, and the CA's PEM file."""
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = _certificate("owf test CA", ca_key, None)
    key = ec.generate_private_key(ec.SECP256R1())
    cert = _certificate("127.0.0.1", key, (ca.subject, ca_key))
    (tmp_path / "ca.pem").write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    (tmp_path / "server.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    (tmp_path / "server.key").write_bytes(key_pem)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(tmp_path / "server.pem", tmp_path / "server.key")
    return context, tmp_path / "ca.pem"


def job_with_bundle(tmp_path: Path, bundle: str) -> Path:
    path = tmp_path / "job.yaml"
    path.write_text(
        "version: 1\n"
        f"orgs: {{acme: {{domain: acme.okta.com, credential: c, ca_bundle: {bundle}}}}}\n"
        "credentials: {c: {type: none}}\n"
        "steps:\n  - id: s\n    flow: https://acme.workflows.okta.com/api/flo/f/invoke\n"
    )
    return path


def test_a_bundle_adds_its_ca_and_keeps_verification_on(tmp_path: Path) -> None:
    bundle = write_ca(tmp_path / "corp.pem")

    context = tls_context([bundle])

    subjects = [dict(entry[0] for entry in cert["subject"]) for cert in context.get_ca_certs()]
    assert {"commonName": "owf test corporate CA"} in subjects
    assert context.verify_mode == ssl.CERT_REQUIRED
    assert context.check_hostname


def test_a_valid_bundle_relative_to_the_job_file_loads(tmp_path: Path) -> None:
    write_ca(tmp_path / "corp.pem")

    assert load_job(job_with_bundle(tmp_path, "corp.pem")).job.orgs["acme"].ca_bundle == "corp.pem"


def test_the_plan_gives_each_bundle_relative_to_the_job_file(tmp_path: Path) -> None:
    write_ca(tmp_path / "corp.pem")

    plan = load_plan(job_with_bundle(tmp_path, "corp.pem"))

    assert plan.orgs["acme"].ca_bundle == Path("corp.pem")
    assert plan.ca_bundles() == [tmp_path / "corp.pem"]


def test_a_missing_bundle_is_a_job_error(tmp_path: Path) -> None:
    path = job_with_bundle(tmp_path, "nope.pem")

    with pytest.raises(JobError) as raised:
        load_job(path)

    assert [str(problem) for problem in raised.value.problems] == [
        f"{path}:2:53: orgs.acme.ca_bundle: no such file: {tmp_path / 'nope.pem'}"
    ]


def test_a_bundle_that_is_not_pem_is_a_job_error(tmp_path: Path) -> None:
    (tmp_path / "junk.pem").write_text("not a certificate\n")
    path = job_with_bundle(tmp_path, "junk.pem")

    with pytest.raises(JobError) as raised:
        load_job(path)

    [problem] = raised.value.problems
    assert str(problem).startswith(
        f"{path}:2:53: orgs.acme.ca_bundle: not a PEM file of CA certificates: "
    )


@pytest.fixture
def https_emulator(tmp_path: Path) -> Iterator[tuple[Emulator, Path]]:
    context, ca = server_context(tmp_path)
    emulator = Emulator()
    emulator.set_stub("f", FlowStub(security="none"))
    emulator.start(tls=context)
    try:
        yield emulator, ca
    finally:
        emulator.stop()


def direct_job(tmp_path: Path, base_url: str, org_extra: str) -> Path:
    path = tmp_path / "direct.yaml"
    path.write_text(
        "version: 1\n"
        f"orgs: {{local: {{token_url: {base_url}/oauth2/v1/token, credential: c{org_extra}}}}}\n"
        "credentials: {c: {type: none}}\n"
        "steps:\n"
        f"  - id: s\n    flow: {base_url}/api/flo/f/invoke\n    retry: {{attempts: 1}}\n"
    )
    return path


def test_an_unknown_ca_fails_the_handshake_and_sends_nothing(
    tmp_path: Path, https_emulator: tuple[Emulator, Path], cli: Callable[..., Cli]
) -> None:
    emulator, _ = https_emulator

    result = cli(str(direct_job(tmp_path, emulator.base_url, "")))

    assert result.code == 1
    assert "CERTIFICATE_VERIFY_FAILED" in result.out
    assert emulator.calls == []


def test_the_org_ca_bundle_makes_the_server_trusted(
    tmp_path: Path, https_emulator: tuple[Emulator, Path], cli: Callable[..., Cli]
) -> None:
    emulator, ca = https_emulator

    result = cli(str(direct_job(tmp_path, emulator.base_url, f", ca_bundle: {ca.name}")))

    assert result.code == 0, result.out
    assert [call.status for call in emulator.invocations()] == [200]
