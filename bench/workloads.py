"""The generated inputs: a client key, job files and a CSV, all in one temporary folder.

Every job calls the emulator's `echo` (0 ms) or `slow` (50 ms) flow with OAuth 2.0
(private_key_jwt), as a real onboarding job does; the plain loops (bench/baselines.py)
send the same payloads.
"""

from __future__ import annotations

import csv
import json
import secrets
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx2
import yaml
from joserfc import jwt
from joserfc.jwk import RSAKey

CLIENT_ID = "0oabench0000000000"
KEY_ID = "bench-key"
UNPACED = "100000/s"  # owf-run's pacing out of the way where the workload is not about it
_ORG = "bench"
_DEPARTMENTS = ("Engineering", "Sales", "Support", "Finance", "People")


def flow_url(flow: str) -> str:
    return f"https://{_ORG}.workflows.okta.com/api/flo/{flow}/invoke"


@dataclass(frozen=True)
class ClientKey:
    """The benchmark's one OAuth client: its private key for owf-run, its public key for the
    emulator."""

    private_pem: Path
    public_jwk: Path
    key: RSAKey

    @classmethod
    def create(cls, folder: Path) -> ClientKey:
        key = RSAKey.generate_key(2048)
        private_pem = folder / "bench-key.pem"
        private_pem.write_bytes(key.as_pem(private=True))
        private_pem.chmod(0o600)  # owf-run warns about a key file others can read
        public_jwk = folder / "bench-key.pub.json"
        public_jwk.write_text(json.dumps(key.as_dict(private=False)))
        return cls(private_pem, public_jwk, key)

    def bearer_token(self, emulator_url: str) -> str:
        """A token for the plain loops, fetched the way Okta wants (private_key_jwt)."""
        token_url = f"{emulator_url}/oauth2/v1/token"
        form = {
            "grant_type": "client_credentials",
            "scope": "okta.workflows.invoke.manage",
            "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            "client_assertion": self._assertion(token_url),
        }
        response = httpx2.post(token_url, data=form)
        response.raise_for_status()
        token: str = response.json()["access_token"]
        return token

    def _assertion(self, token_url: str) -> str:
        now = int(time.time())
        claims = {
            "iss": CLIENT_ID,
            "sub": CLIENT_ID,
            "aud": token_url,
            "iat": now,
            "exp": now + 300,
            "jti": secrets.token_urlsafe(16),
        }
        return jwt.encode({"alg": "RS256", "kid": KEY_ID}, claims, self.key)


def _job(
    name: str,
    steps: list[dict[str, Any]],
    rate_limit: str | None = UNPACED,
    variables: dict[str, Any] | None = None,
) -> str:
    defaults: dict[str, Any] = {"org": _ORG}
    if rate_limit is not None:
        defaults["rate_limit"] = rate_limit
    job: dict[str, Any] = {"version": 1, "name": name}
    if variables:
        job["vars"] = variables
    job |= {
        "orgs": {_ORG: {"domain": f"{_ORG}.okta.com", "credential": "invoker"}},
        "credentials": {
            "invoker": {
                "type": "private_key_jwt",
                "client_id": CLIENT_ID,
                "key_id": KEY_ID,
                "private_key": {"file": "bench-key.pem"},
            }
        },
        "defaults": defaults,
        "steps": steps,
    }
    return yaml.safe_dump(job, sort_keys=False, width=1000)


def chain_job(folder: Path, steps: int) -> Path:
    """`steps` steps, each sending the previous step's output: no step can start early."""
    path = folder / f"chain-{steps}.yaml"
    path.write_text(_job("bench-chain", [_chain_step(n) for n in range(1, steps + 1)]))
    return path


def _chain_step(n: int) -> dict[str, Any]:
    previous = "{{ steps.s%d.outputs.value }}" % (n - 1) if n > 1 else 0  # noqa: UP031
    return {
        "id": f"s{n}",
        "flow": flow_url("echo"),
        "payload": {"step": n, "prev": previous},
        "outputs": {"value": "{{ response.body.step }}"},
    }


def foreach_job(
    folder: Path, flow: str, count: int, concurrency: int, rate_limit: str | None = UNPACED
) -> Path:
    """One foreach step over a list of `count` numbers."""
    path = folder / f"foreach-{flow}-{count}-{concurrency}.yaml"
    step = {
        "id": "items",
        "flow": flow_url(flow),
        "foreach": "{{ vars.numbers }}",
        "concurrency": concurrency,
        "payload": {"n": "{{ item }}"},
    }
    numbers = {"numbers": list(range(count))}
    path.write_text(_job("bench-foreach", [step], rate_limit, numbers))
    return path


CSV_FIELDS = ("email", "first_name", "last_name", "department")


def csv_job(folder: Path, rows: int, concurrency: int) -> tuple[Path, Path]:
    """A foreach over a CSV export of `rows` new hires; returns (job, csv)."""
    data = folder / f"hires-{rows}.csv"
    _write_hires(data, rows)
    step = {
        "id": "hires",
        "flow": flow_url("echo"),
        "foreach": {"csv": data.name},
        "concurrency": concurrency,
        "payload": {field: "{{ item.%s }}" % field for field in CSV_FIELDS},  # noqa: UP031
    }
    job = folder / f"csv-{rows}.yaml"
    job.write_text(_job("bench-csv", [step]))
    return job, data


def _write_hires(path: Path, rows: int) -> None:
    with path.open("w", newline="", encoding="utf-8") as stream:
        writer = csv.writer(stream)
        writer.writerow(CSV_FIELDS)
        for n in range(rows):
            department = _DEPARTMENTS[n % len(_DEPARTMENTS)]
            writer.writerow((f"user{n}@example.com", f"First{n}", f"Last{n}", department))
