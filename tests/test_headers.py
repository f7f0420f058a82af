"""Header rules: names are ASCII tokens; values printable ASCII, tabs inside, no padding."""

from __future__ import annotations

import pytest

from owf_runner.headers import header_problem
from owf_runner.redaction import REDACTOR

NAME = "(ASCII letters, digits and !#$%&'*+-.^_`|~ only)"


@pytest.mark.parametrize(
    ("name", "value"),
    [("X-Team", "core"), ("x_a.b~c!", "a\tb"), ("X-Empty", ""), ("X-Any", None)],
)
def test_headers_http_can_carry(name: str, value: str | None) -> None:
    assert header_problem(name, value) is None


@pytest.mark.parametrize(
    ("name", "value", "problem"),
    [
        ("Xя", "1", f"not a valid HTTP header name: 'Xя' {NAME}"),
        ("X Team", None, f"not a valid HTTP header name: 'X Team' {NAME}"),
        ("X-Team:", "1", f"not a valid HTTP header name: 'X-Team:' {NAME}"),
        ("", "1", f"not a valid HTTP header name: '' {NAME}"),
        ("X\r\nY", "1", f"not a valid HTTP header name: 'X\\r\\nY' {NAME}"),
        (
            "X-A",
            "a\r\nSet-Cookie: x",
            "a header value cannot hold control characters or line breaks: 'a\\r\\nSet-Cookie: x'",
        ),
        (
            "X-A",
            "\x1b[2J",
            "a header value cannot hold control characters or line breaks: '\\x1b[2J'",
        ),
        ("X-A", "café", "a header value must be ASCII: 'café'"),
        ("X-A", " a", "a header value cannot start or end with a space: ' a'"),
        ("X-A", "a\t", "a header value cannot start or end with a space: 'a\\t'"),
    ],
)
def test_headers_http_cannot_carry(name: str, value: str | None, problem: str) -> None:
    assert header_problem(name, value) == problem


def test_a_long_value_is_cut_in_the_message() -> None:
    value = "x" * 59 + "é" + "x" * 40

    assert header_problem("X-A", value) == "a header value must be ASCII: '" + "x" * 59 + "é'..."


def test_a_refused_value_is_redacted_before_it_is_quoted() -> None:
    # repr would turn the BEL into four characters that none of the secret's masked forms match.
    secret = "hdr-canary\x07-value"
    REDACTOR.add(secret)

    problem = header_problem("X-Echo", secret)

    assert problem == ("a header value cannot hold control characters or line breaks: '********'")
