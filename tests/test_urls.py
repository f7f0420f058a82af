"""URL rules: https (loopback excepted), no user info, a real host name and port."""

from __future__ import annotations

import pytest

from owf_runner.urls import url_problem

RULE = "ASCII letters, digits, -, _ and . only; an international name in its xn-- form"


@pytest.mark.parametrize(
    "url",
    [
        "https://acme.workflows.okta.com/api/flo/abc/invoke",
        "https://acme.workflows.okta.com:443/api/flo/abc/invoke",
        "https://a_b.example.com/x",
        "https://xn--mnchen-3ya.example/api",
        "https://192.0.2.1:8443/x",
        "http://127.0.0.1:8080/x",
        "http://[::1]:80/x",
        "http://localhost:1/x",
    ],
)
def test_urls_the_run_can_send_to(url: str) -> None:
    assert url_problem(url) is None


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("https://x:99999/a", "invalid URL 'https://x:99999/a': Port out of range 0-65535"),
        ("https://x:0/a", "invalid URL 'https://x:0/a': port 0"),
        (
            "https://x:abc/a",
            "invalid URL 'https://x:abc/a': Port could not be cast to integer value as 'abc'",
        ),
        ("https://a..b/", f"invalid URL 'https://a..b/': 'a..b' is not a host name ({RULE})"),
        (
            "https://münchen.example/",
            "invalid URL 'https://münchen.example/': "
            f"'münchen.example' is not a host name ({RULE})",
        ),
        (
            "https://exa mple.com/",
            f"invalid URL 'https://exa mple.com/': 'exa mple.com' is not a host name ({RULE})",
        ),
        ("https://-a.com/", f"invalid URL 'https://-a.com/': '-a.com' is not a host name ({RULE})"),
        (
            "https://a\nb.com/",
            "invalid URL 'https://a\\nb.com/': Invalid non-printable ASCII character in URL, "
            "'\\n' at position 9.",
        ),
        ("https://[::1/", "invalid URL 'https://[::1/': Invalid IPv6 URL"),
        ("https:///p", "expected an https URL, found 'https:///p'"),
        ("http://example.com/", "expected an https URL, found 'http://example.com/'"),
        (
            "https://user:pw@example.com/",
            "URLs with user info (user@host) are refused: credentials belong in `credentials`",
        ),
    ],
)
def test_urls_the_run_would_refuse(url: str, problem: str) -> None:
    assert url_problem(url) == problem
