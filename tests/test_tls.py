"""`ca_bundle`: extra trust anchors, checked up front, never a way to turn verification off."""

from __future__ import annotations

import datetime
import ssl
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from owf_runner.errors import JobError
from owf_runner.http import tls_context
from owf_runner.loader import load_job


def write_ca(path: Path, common_name: str = "owf test corporate CA") -> Path:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return path


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


def test_a_missing_bundle_is_a_job_error(tmp_path: Path) -> None:
    path = job_with_bundle(tmp_path, "nope.pem")

    with pytest.raises(JobError) as raised:
        load_job(path)

    assert raised.value.problems == [
        f"{path}:2:53: orgs.acme.ca_bundle: no such file: {tmp_path / 'nope.pem'}"
    ]


def test_a_bundle_that_is_not_pem_is_a_job_error(tmp_path: Path) -> None:
    (tmp_path / "junk.pem").write_text("not a certificate\n")
    path = job_with_bundle(tmp_path, "junk.pem")

    with pytest.raises(JobError) as raised:
        load_job(path)

    [problem] = raised.value.problems
    assert problem.startswith(
        f"{path}:2:53: orgs.acme.ca_bundle: not a PEM file of CA certificates: "
    )
