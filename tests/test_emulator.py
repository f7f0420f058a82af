"""The Okta emulator, over real loopback sockets."""

from __future__ import annotations

import base64
import json
import re
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx2
import pytest
from joserfc import jwt
from joserfc.jwk import ECKey, RSAKey

from owf_runner.emulator import INVOKE_SCOPE, Emulator, Fault, FlowStub, serve_forever
from owf_runner.errors import JobError

CLIENT_ID = "0oa2781yr7ajUaJfd0h8"
RSA_KID = "rsa-kid"
EC_KID = "ec-kid"
FLOW = "d71da429cdb0b4ef4dc23a1bb1ed9d1b"
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
OTHER_SCOPE = "okta.users.read"


class Clock:
    """A clock the tests move by hand, so expiry needs no sleeping."""

    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


@pytest.fixture(scope="module")
def rsa_key() -> RSAKey:
    return RSAKey.generate_key(2048)


@pytest.fixture(scope="module")
def ec_key() -> ECKey:
    return ECKey.generate_key("P-256")


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def emu(rsa_key: RSAKey, ec_key: ECKey, clock: Clock) -> Iterator[Emulator]:
    emulator = Emulator(token_lifetime=300, clock=clock)
    emulator.register_client(CLIENT_ID, RSA_KID, rsa_key)  # a private key: only its public half
    emulator.register_client(CLIENT_ID, EC_KID, ec_key.as_dict(private=False))
    with emulator.running():
        yield emulator


@pytest.fixture(scope="module")
def http() -> Iterator[httpx2.Client]:
    # One client for the module: building one loads the CA bundle (~0.1 s each).
    with httpx2.Client(timeout=5) as shared:
        yield shared


@pytest.fixture
def client(http: httpx2.Client, emu: Emulator) -> httpx2.Client:
    http.base_url = httpx2.URL(emu.base_url)
    return http


def sign(
    key: RSAKey | ECKey,
    aud: str,
    now: float,
    *,
    kid: str | None = RSA_KID,
    alg: str = "RS256",
    **claims: Any,
) -> str:
    """A client assertion; a claim passed as None is left out."""
    header: dict[str, Any] = {"alg": alg}
    if kid is not None:
        header["kid"] = kid
    body: dict[str, Any] = {
        "iss": CLIENT_ID,
        "sub": CLIENT_ID,
        "aud": aud,
        "iat": int(now),
        "exp": int(now) + 300,
        "jti": uuid.uuid4().hex,
    }
    body.update(claims)
    return jwt.encode(header, {k: v for k, v in body.items() if v is not None}, key, [alg])


def token_form(assertion: str, scope: str = INVOKE_SCOPE) -> dict[str, str]:
    return {
        "grant_type": "client_credentials",
        "scope": scope,
        "client_assertion_type": ASSERTION_TYPE,
        "client_assertion": assertion,
    }


def token_url(emu: Emulator) -> str:
    return f"{emu.base_url}/oauth2/v1/token"


def get_token(client: httpx2.Client, emu: Emulator, key: RSAKey, clock: Clock) -> str:
    response = client.post("/oauth2/v1/token", data=token_form(sign(key, token_url(emu), clock())))
    assert response.status_code == 200, response.text
    token: str = response.json()["access_token"]
    return token


# -- token endpoint ----------------------------------------------------------------------


def test_rsa_assertion_gets_a_bearer_token(
    emu: Emulator, client: httpx2.Client, rsa_key: RSAKey, clock: Clock
) -> None:
    assertion = sign(rsa_key, token_url(emu), clock(), jti="jti-rsa-1")
    response = client.post("/oauth2/v1/token", data=token_form(assertion))

    assert response.status_code == 200
    body = response.json()
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 300
    assert body["scope"] == INVOKE_SCOPE
    assert len(body["access_token"]) >= 32
    assert response.headers["cache-control"] == "no-store"
    [call] = emu.token_requests()
    assert (call.status, call.client_id, call.jti, call.error) == (
        200,
        CLIENT_ID,
        "jti-rsa-1",
        None,
    )
    assert call.claims is not None
    assert call.claims["aud"] == token_url(emu)


@pytest.mark.parametrize("alg", ["ES256"])
def test_ec_assertion_gets_a_bearer_token(
    emu: Emulator, client: httpx2.Client, ec_key: ECKey, clock: Clock, alg: str
) -> None:
    assertion = sign(ec_key, token_url(emu), clock(), kid=EC_KID, alg=alg)
    response = client.post("/oauth2/v1/token", data=token_form(assertion))

    assert response.status_code == 200, response.text
    assert response.json()["token_type"] == "Bearer"


def with_header(token: str, header: dict[str, Any]) -> str:
    """The token with its header segment swapped (the signature no longer matches)."""
    segment = base64.urlsafe_b64encode(json.dumps(header).encode()).rstrip(b"=").decode()
    return ".".join([segment, *token.split(".")[1:]])


BadAssertion = Callable[[RSAKey, ECKey, str, float], str]

REFUSED_ASSERTIONS: list[tuple[str, BadAssertion, str]] = [
    (
        "missing kid",
        lambda rsa, ec, aud, now: sign(rsa, aud, now, kid=None),
        "The client_assertion JWT kid is invalid.",
    ),
    (
        "unknown kid",
        lambda rsa, ec, aud, now: sign(rsa, aud, now, kid="nope"),
        "The client_assertion JWT kid is invalid.",
    ),
    (
        "unknown client",
        lambda rsa, ec, aud, now: sign(rsa, aud, now, iss="0oaUNKNOWN", sub="0oaUNKNOWN"),
        "The client_assertion 'iss' claim does not name a known client.",
    ),
    (
        "sub differs from iss",
        lambda rsa, ec, aud, now: sign(rsa, aud, now, sub="someone-else"),
        "The client_assertion 'iss' and 'sub' claims must be the client_id.",
    ),
    (
        "bad signature",
        lambda rsa, ec, aud, now: sign(RSAKey.generate_key(2048), aud, now),
        "The client_assertion signature is invalid.",
    ),
    (
        "alg that does not fit the key",
        lambda rsa, ec, aud, now: sign(ec, aud, now, kid=RSA_KID, alg="ES256"),
        "The client_assertion JWT alg 'ES256' is invalid for the key.",
    ),
    (
        "HS256",
        lambda rsa, ec, aud, now: with_header(
            sign(rsa, aud, now), {"alg": "HS256", "kid": RSA_KID}
        ),
        "The client_assertion JWT alg 'HS256' is invalid for the key.",
    ),
    (
        "wrong aud",
        lambda rsa, ec, aud, now: sign(rsa, "https://acme.okta.com/oauth2/default/v1/token", now),
        "The audience claim for client_assertion must be the endpoint invoked for the request: ",
    ),
    (
        "expired",
        lambda rsa, ec, aud, now: sign(rsa, aud, now, iat=int(now) - 600, exp=int(now) - 1),
        "The client_assertion token is expired.",
    ),
    (
        "exp more than an hour after iat",
        lambda rsa, ec, aud, now: sign(rsa, aud, now, exp=int(now) + 3601),
        "The client_assertion token has an expiration too far into the future.",
    ),
    (
        "iat in the future",
        lambda rsa, ec, aud, now: sign(rsa, aud, now, iat=int(now) + 60, exp=int(now) + 300),
        "The client_assertion token has an issued at time in the future.",
    ),
    (
        "no exp",
        lambda rsa, ec, aud, now: sign(rsa, aud, now, exp=None),
        "The client_assertion token must contain a numeric 'exp' claim.",
    ),
    (
        "no jti",
        lambda rsa, ec, aud, now: sign(rsa, aud, now, jti=None),
        "The client_assertion token must contain a 'jti' claim.",
    ),
]


@pytest.mark.parametrize(
    ("make", "description"),
    [case[1:] for case in REFUSED_ASSERTIONS],
    ids=[case[0] for case in REFUSED_ASSERTIONS],
)
def test_refused_assertions_get_invalid_client(
    emu: Emulator,
    client: httpx2.Client,
    rsa_key: RSAKey,
    ec_key: ECKey,
    clock: Clock,
    make: BadAssertion,
    description: str,
) -> None:
    assertion = make(rsa_key, ec_key, token_url(emu), clock())
    response = client.post("/oauth2/v1/token", data=token_form(assertion))

    assert response.status_code == 401
    assert response.json()["error"] == "invalid_client"
    assert response.json()["error_description"].startswith(description)
    assert [call.error for call in emu.token_requests()] == ["invalid_client"]


def test_iat_within_five_seconds_of_skew_is_accepted(
    emu: Emulator, client: httpx2.Client, rsa_key: RSAKey, clock: Clock
) -> None:
    assertion = sign(rsa_key, token_url(emu), clock(), iat=int(clock()) + 4)
    response = client.post("/oauth2/v1/token", data=token_form(assertion))

    assert response.status_code == 200, response.text


def test_reused_jti_is_refused(
    emu: Emulator, client: httpx2.Client, rsa_key: RSAKey, clock: Clock
) -> None:
    assertion = sign(rsa_key, token_url(emu), clock())
    first = client.post("/oauth2/v1/token", data=token_form(assertion))
    second = client.post("/oauth2/v1/token", data=token_form(assertion))

    assert first.status_code == 200
    assert second.status_code == 401
    assert second.json() == {
        "error": "invalid_client",
        "error_description": "The client_assertion token has already been used.",
    }
    assert [call.status for call in emu.token_requests()] == [200, 401]


def test_ungranted_scope_is_invalid_scope(
    emu: Emulator, client: httpx2.Client, rsa_key: RSAKey, clock: Clock
) -> None:
    assertion = sign(rsa_key, token_url(emu), clock())
    response = client.post(
        "/oauth2/v1/token", data=token_form(assertion, f"{INVOKE_SCOPE} {OTHER_SCOPE}")
    )

    assert response.status_code == 400
    assert response.json() == {
        "error": "invalid_scope",
        "error_description": f"The following scopes are not granted to the client: {OTHER_SCOPE}",
    }


def test_wrong_grant_type_and_assertion_type(
    emu: Emulator, client: httpx2.Client, rsa_key: RSAKey, clock: Clock
) -> None:
    form = token_form(sign(rsa_key, token_url(emu), clock()))
    wrong_grant = client.post("/oauth2/v1/token", data={**form, "grant_type": "password"})
    wrong_type = client.post("/oauth2/v1/token", data={**form, "client_assertion_type": "x"})
    no_assertion = client.post("/oauth2/v1/token", data={**form, "client_assertion": ""})

    assert (wrong_grant.status_code, wrong_grant.json()["error"]) == (400, "unsupported_grant_type")
    assert (wrong_type.status_code, wrong_type.json()["error"]) == (401, "invalid_client")
    assert (no_assertion.status_code, no_assertion.json()["error"]) == (401, "invalid_client")


def test_required_dpop_is_reported_like_okta(
    emu: Emulator, client: httpx2.Client, rsa_key: RSAKey, clock: Clock
) -> None:
    emu.require_dpop = True
    response = client.post(
        "/oauth2/v1/token", data=token_form(sign(rsa_key, token_url(emu), clock()))
    )

    assert response.status_code == 400
    assert response.json() == {
        "error": "invalid_dpop_proof",
        "error_description": "The DPoP proof JWT header is missing.",
    }


def test_aud_is_the_forwarded_https_url_of_the_original_host(
    emu: Emulator, client: httpx2.Client, rsa_key: RSAKey, clock: Clock
) -> None:
    forwarded = {"Host": "acme.okta.com", "X-Forwarded-Proto": "https"}
    okta_aud = sign(rsa_key, "https://acme.okta.com/oauth2/v1/token", clock())
    loopback_aud = sign(rsa_key, token_url(emu), clock())

    accepted = client.post("/oauth2/v1/token", data=token_form(okta_aud), headers=forwarded)
    refused = client.post("/oauth2/v1/token", data=token_form(loopback_aud), headers=forwarded)

    assert accepted.status_code == 200, accepted.text
    assert refused.status_code == 401
    assert emu.token_requests()[0].host == "acme.okta.com"


# -- invoke: security --------------------------------------------------------------------


def test_invoke_with_token_echoes_and_records_the_client(
    emu: Emulator, client: httpx2.Client, rsa_key: RSAKey, clock: Clock
) -> None:
    token = get_token(client, emu, rsa_key, clock)
    response = client.post(
        f"/api/flo/{FLOW}/invoke",
        json={"firstName": "Ada", "groups": ["eng"]},
        headers={"Authorization": f"Bearer {token}"},
    )

    assert response.status_code == 200
    assert response.json() == {"firstName": "Ada", "groups": ["eng"]}
    [call] = emu.invocations(FLOW)
    assert (call.kind, call.method, call.flow_id, call.client_id) == (
        "invoke",
        "POST",
        FLOW,
        CLIENT_ID,
    )
    assert call.headers["authorization"] == f"Bearer {token}"
    assert call.body == b'{"firstName":"Ada","groups":["eng"]}'


@pytest.mark.parametrize(
    ("authorization", "description"),
    [
        (None, "The access token is missing."),
        ("Bearer not-a-token-we-issued", "The access token is invalid."),
        ("Basic dXNlcjpwYXNz", "The access token is missing."),
    ],
)
def test_invoke_without_a_valid_token_is_401(
    emu: Emulator, client: httpx2.Client, authorization: str | None, description: str
) -> None:
    headers = {} if authorization is None else {"Authorization": authorization}
    response = client.post(f"/api/flo/{FLOW}/invoke", json={}, headers=headers)

    assert response.status_code == 401
    assert response.json() == {"error": "invalid_token", "error_description": description}
    assert response.headers["www-authenticate"].startswith('Bearer error="invalid_token"')
    assert [(c.status, c.error) for c in emu.invocations()] == [(401, "invalid_token")]


def test_expired_token_is_401(
    emu: Emulator, client: httpx2.Client, rsa_key: RSAKey, clock: Clock
) -> None:
    token = get_token(client, emu, rsa_key, clock)
    clock.now += 300  # the emulator's token_lifetime
    response = client.post(
        f"/api/flo/{FLOW}/invoke", json={}, headers={"Authorization": f"Bearer {token}"}
    )

    assert response.status_code == 401
    assert response.json()["error_description"] == "The access token is expired."


def test_token_without_the_invoke_scope_is_403(
    emu: Emulator, client: httpx2.Client, rsa_key: RSAKey, clock: Clock
) -> None:
    emu.register_client(CLIENT_ID, RSA_KID, rsa_key, scopes=[INVOKE_SCOPE, OTHER_SCOPE])
    form = token_form(sign(rsa_key, token_url(emu), clock()), OTHER_SCOPE)
    token = client.post("/oauth2/v1/token", data=form).json()["access_token"]
    response = client.post(
        f"/api/flo/{FLOW}/invoke", json={}, headers={"Authorization": f"Bearer {token}"}
    )

    assert response.status_code == 403
    assert response.json()["error"] == "insufficient_scope"


def test_client_token_security(emu: Emulator, client: httpx2.Client) -> None:
    emu.register_client_token("hook-secret")
    emu.set_stub(FLOW, FlowStub(security="client_token"))
    good = client.post(
        f"/api/flo/{FLOW}/invoke", json={"a": 1}, headers={"x-api-client-token": "hook-secret"}
    )
    bad = client.post(
        f"/api/flo/{FLOW}/invoke", json={"a": 1}, headers={"x-api-client-token": "guess"}
    )
    missing = client.post(f"/api/flo/{FLOW}/invoke", json={"a": 1})

    assert (good.status_code, good.json()) == (200, {"a": 1})
    assert [bad.status_code, missing.status_code] == [401, 401]
    assert "www-authenticate" not in bad.headers


def test_stub_without_security_asks_for_oauth2(emu: Emulator, client: httpx2.Client) -> None:
    emu.set_stub(FLOW, FlowStub(status=201))  # security None: the emulator's default applies
    response = client.post(f"/api/flo/{FLOW}/invoke", json={})

    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith('Bearer error="invalid_token"')


def test_public_flow_needs_nothing(emu: Emulator, client: httpx2.Client) -> None:
    emu.set_stub("public", FlowStub(security="none"))
    response = client.get("/api/flo/public/invoke", params={"q": "x", "n": "2"})

    assert response.status_code == 200
    assert response.json() == {"q": "x", "n": "2"}  # GET echoes its query
    assert emu.invocations("public")[0].query == {"q": "x", "n": "2"}


# -- invoke: stubs and faults ------------------------------------------------------------


def test_templated_stub_body(emu: Emulator, client: httpx2.Client) -> None:
    emu.set_stub(
        FLOW,
        FlowStub(
            status=201,
            headers={"X-Flow": "{{ request.method }}"},
            body={
                "id": "00u{{ uuid4()[:8] }}",
                "firstName": "{{ request.body.firstName }}",
                "groups": "{{ request.body.groups }}",
                "greeting": "Hello {{ request.body.firstName }}!",
            },
            security="none",
        ),
    )
    response = client.post(f"/api/flo/{FLOW}/invoke", json={"firstName": "Ada", "groups": ["a"]})

    assert response.status_code == 201
    assert response.headers["x-flow"] == "POST"
    body = response.json()
    assert re.fullmatch(r"00u[0-9a-f]{8}", body["id"])
    assert body["groups"] == ["a"]  # a lone expression keeps its type
    assert (body["firstName"], body["greeting"]) == ("Ada", "Hello Ada!")


def test_stub_template_error_is_a_500_naming_it(emu: Emulator, client: httpx2.Client) -> None:
    emu.set_stub(FLOW, FlowStub(body={"x": "{{ request.body.missing }}"}, security="none"))
    response = client.post(f"/api/flo/{FLOW}/invoke", json={"firstName": "Ada"})

    assert response.status_code == 500
    assert response.json()["error"] == "stub_template_error"
    assert "missing" in response.json()["error_description"]


def test_two_429_faults_then_success(emu: Emulator, client: httpx2.Client, clock: Clock) -> None:
    throttled = Fault(
        times=2,
        status=429,
        headers={"X-Rate-Limit-Remaining": "0", "X-Rate-Limit-Reset": "{{ epoch() + 1 }}"},
    )
    emu.set_stub(FLOW, FlowStub(body={"ok": True}, security="none", faults=(throttled,)))
    answers = [client.post(f"/api/flo/{FLOW}/invoke", json={}) for _ in range(3)]

    assert [r.status_code for r in answers] == [429, 429, 200]
    assert answers[0].headers["x-rate-limit-remaining"] == "0"
    assert int(answers[0].headers["x-rate-limit-reset"]) == int(clock.now) + 1
    assert answers[2].json() == {"ok": True}
    assert "x-rate-limit-reset" not in answers[2].headers
    assert [c.status for c in emu.invocations(FLOW)] == [429, 429, 200]


def test_faults_are_consumed_in_order_per_flow(emu: Emulator, client: httpx2.Client) -> None:
    faults = (Fault(times=1, status=503), Fault(times=1, status=500, body={"why": "boom"}))
    emu.set_stub("a", FlowStub(security="none", faults=faults))
    emu.set_stub("b", FlowStub(security="none", faults=faults))
    a = [client.post("/api/flo/a/invoke", json={}) for _ in range(3)]
    b = client.post("/api/flo/b/invoke", json={})

    assert [r.status_code for r in a] == [503, 500, 200]
    assert a[1].json() == {"why": "boom"}
    assert b.status_code == 503  # flow b counts its own calls


def test_dropped_connection(emu: Emulator, client: httpx2.Client) -> None:
    emu.set_stub(FLOW, FlowStub(security="none", faults=(Fault(times=1, drop=True),)))
    with pytest.raises(httpx2.RemoteProtocolError):
        client.post(f"/api/flo/{FLOW}/invoke", json={"n": 1})
    after = client.post(f"/api/flo/{FLOW}/invoke", json={"n": 2})

    assert after.json() == {"n": 2}
    assert [(c.status, c.body) for c in emu.invocations(FLOW)] == [
        (0, b'{"n":1}'),
        (200, b'{"n":2}'),
    ]


def test_delay_fault_answers_normally_after_the_delay(emu: Emulator, client: httpx2.Client) -> None:
    emu.set_stub(FLOW, FlowStub(security="none", faults=(Fault(times=1, delay=0.2),)))
    started = time.monotonic()
    response = client.post(f"/api/flo/{FLOW}/invoke", json={"n": 1})

    assert time.monotonic() - started >= 0.2
    assert (response.status_code, response.json()) == (200, {"n": 1})


def test_rate_limit_answers_429_with_okta_headers(
    emu: Emulator, client: httpx2.Client, clock: Clock
) -> None:
    emu.rate_limit = 2
    emu.set_stub(FLOW, FlowStub(security="none"))
    statuses = [client.post(f"/api/flo/{FLOW}/invoke", json={}) for _ in range(3)]
    clock.now += 1.0  # the window has passed
    later = client.post(f"/api/flo/{FLOW}/invoke", json={})

    assert [r.status_code for r in statuses] == [200, 200, 429]
    assert statuses[2].headers["x-rate-limit-limit"] == "2"
    assert int(statuses[2].headers["x-rate-limit-reset"]) >= int(clock.now)
    assert later.status_code == 200


# -- the rest ----------------------------------------------------------------------------


def test_unknown_path_is_404_json(emu: Emulator, client: httpx2.Client) -> None:
    response = client.get("/api/v1/users")

    assert response.status_code == 404
    assert response.json()["error"] == "not_found"
    assert emu.calls == []


def test_calls_are_recorded_in_order_with_counts(
    emu: Emulator, client: httpx2.Client, rsa_key: RSAKey, clock: Clock
) -> None:
    token = get_token(client, emu, rsa_key, clock)
    auth = {"Authorization": f"Bearer {token}"}
    for _ in range(3):
        client.post(f"/api/flo/{FLOW}/invoke", json={}, headers=auth)
    client.post("/api/flo/other/invoke", json={}, headers=auth)

    assert [c.kind for c in emu.calls] == ["token", "invoke", "invoke", "invoke", "invoke"]
    assert len(emu.token_requests()) == 1
    assert len(emu.invocations(FLOW)) == 3
    assert len(emu.invocations()) == 4


def test_load_stubs_from_yaml(emu: Emulator, client: httpx2.Client, tmp_path: Path) -> None:
    stubs = tmp_path / "stubs.yaml"
    stubs.write_text(
        "flows:\n"
        f"  {FLOW}:\n"
        "    security: none\n"
        '    body: {id: "00u{{ uuid4()[:8] }}", firstName: "{{ request.body.firstName }}"}\n'
        "    faults: [{times: 1, status: 429, headers: {X-Rate-Limit-Remaining: 0}}]\n"
        "  some_alias: {status: 204, security: none}\n"
    )
    emu.load_stubs(stubs)
    assert emu.stub("never-set") is None
    assert emu.stub("some_alias") == FlowStub(status=204, security="none")
    first = client.post(f"/api/flo/{FLOW}/invoke", json={"firstName": "Ada"})
    second = client.post(f"/api/flo/{FLOW}/invoke", json={"firstName": "Ada"})
    alias = client.post("/api/flo/some_alias/invoke", json={"x": 1})

    assert (first.status_code, first.headers["x-rate-limit-remaining"]) == (429, "0")
    assert second.json()["firstName"] == "Ada"
    assert (alias.status_code, alias.content) == (204, b"")  # no body, though it echoes


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("flows:\n  f: {bdy: 1}\n", "2:7: flows.f.bdy: unknown key 'bdy'; did you mean 'body'?"),
        ("flow: {}\n", "1:1: flow: unknown key 'flow'; did you mean 'flows'?"),
        (
            "flows:\n  f: {faults: [{times: 0, status: 429}]}\n",
            "2:17: flows.f.faults[0].times: expected at least 1, found 0",
        ),
        (
            "flows:\n  f: {security: basic}\n",
            "2:7: flows.f.security: expected 'oauth2', 'client_token' or 'none', found 'basic'",
        ),
    ],
)
def test_load_stubs_rejects_bad_files(tmp_path: Path, text: str, problem: str) -> None:
    stubs = tmp_path / "stubs.yaml"
    stubs.write_text(text)

    with pytest.raises(JobError) as caught:
        Emulator().load_stubs(stubs)
    assert [str(p) for p in caught.value.problems] == [f"{stubs}:{problem}"]


def test_stop_closes_the_server(http: httpx2.Client) -> None:
    emulator = Emulator()
    assert not emulator.is_running
    with emulator.running() as base_url:
        assert emulator.is_running
        assert http.get(f"{base_url}/api/flo/x/invoke").status_code == 401  # kept alive
    with pytest.raises(httpx2.ConnectError):
        http.get(f"{base_url}/api/flo/x/invoke")
    emulator.stop()  # stopping twice is harmless


def test_serve_forever_blocks_until_stopped(http: httpx2.Client) -> None:
    emulator = Emulator()
    statuses: list[int] = []

    def ready(base_url: str) -> None:
        # Runs in this thread before serve_forever blocks; the helper thread ends the wait.
        def use_then_stop() -> None:
            statuses.append(http.get(f"{base_url}/nowhere").status_code)
            emulator.stop()

        threading.Thread(target=use_then_stop).start()

    serve_forever(emulator, ready=ready)

    assert statuses == [404]
    with pytest.raises(RuntimeError, match="not running"):
        _ = emulator.base_url
