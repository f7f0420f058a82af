"""The redactor: every form a secret takes on its way out is masked; short secrets as words."""

from __future__ import annotations

import base64
import json
import urllib.parse
from typing import Any

import pytest

from owf_runner.redaction import MASK, Redactor, TooDeep, escape_controls, printable
from tests.conftest import encoded_forms

TOKEN = 'p@ss w/rd"+\\canary-91f3?x=1&y#z'
NON_ASCII = "pässwörd/✓ ключ-canary"


@pytest.mark.parametrize("secret", [TOKEN, NON_ASCII], ids=["ascii", "non-ascii"])
@pytest.mark.parametrize("form", list(encoded_forms(TOKEN)))
def test_every_encoding_of_a_secret_is_masked(secret: str, form: str) -> None:
    redactor = Redactor()
    redactor.add(secret)

    assert redactor.redact(f"before {encoded_forms(secret)[form]} after") == f"before {MASK} after"


SECRET_OUTPUT = {
    "token": "tok-ünïcode-canary-1",
    "nested": {"list": ["deep-canary-2", 424242, True, None], "name": "名前-canary-3"},
}


def renderings(value: Any) -> list[str]:
    styles: list[dict[str, Any]] = [{"separators": (",", ":")}, {}, {"indent": 2}]
    return [str(value)] + [
        json.dumps(value, ensure_ascii=ascii_only, **style)
        for style in styles
        for ascii_only in (True, False)
    ]


@pytest.mark.parametrize(
    "text",
    [
        *renderings(SECRET_OUTPUT),
        *renderings(SECRET_OUTPUT["nested"]),
        *renderings(SECRET_OUTPUT["nested"]["list"]),
        urllib.parse.quote(json.dumps(SECRET_OUTPUT)),
    ],
)
def test_a_secret_output_is_masked_whole_in_every_rendering(text: str) -> None:
    redactor = Redactor()
    redactor.add_value(SECRET_OUTPUT)

    assert redactor.redact(f"<{text}>") == f"<{MASK}>"


@pytest.mark.parametrize(
    ("leaf", "shown"),
    [
        ("tok-ünïcode-canary-1", MASK),
        ("tok-\\u00fcn\\u00efcode-canary-1", MASK),
        ("名前-canary-3", MASK),
        ("\\u540d\\u524d-canary-3", MASK),
        ("424242", MASK),
        ("deep-canary-2", MASK),
        ("true", "true"),  # a boolean alone is no secret; see the module's docstring
    ],
)
def test_each_leaf_of_a_secret_output_is_masked_on_its_own(leaf: str, shown: str) -> None:
    redactor = Redactor()
    redactor.add_value(SECRET_OUTPUT)

    assert redactor.redact(f"sent {leaf} later") == f"sent {shown} later"


def test_a_secret_of_four_characters_is_masked_even_inside_a_word() -> None:
    redactor = Redactor()
    redactor.add("k9Zq")

    assert redactor.redact("k9Zq xk9Zqx") == f"{MASK} x{MASK}x"


@pytest.mark.parametrize("short", ["a", "ab", "1-2", "  ab  "])
def test_a_shorter_secret_is_masked_only_as_a_whole_word(short: str) -> None:
    redactor = Redactor()
    redactor.add(short)
    word = short.strip()

    text = f"{word} x{word}y {word}9 ({word}), {word}"

    assert redactor.redact(text) == f"{MASK} x{word}y {word}9 ({MASK}), {MASK}"


@pytest.mark.parametrize("value", [7, 1.5, "7"])
def test_a_short_secret_output_is_masked_as_a_word(value: Any) -> None:
    redactor = Redactor()
    redactor.add_value(value)
    text = json.dumps(value).strip('"')

    assert redactor.redact(f"pin {text}, not 17") == f"pin {MASK}, not 17"


def test_nothing_registered_nothing_changed() -> None:
    redactor = Redactor()
    redactor.add("   ")
    redactor.add_value(None)

    assert redactor.redact("a b c") == "a b c"


def test_the_longest_secret_at_a_place_wins() -> None:
    redactor = Redactor()
    redactor.add("canary-prefix")
    redactor.add("canary-prefix-and-more")

    assert redactor.redact("x canary-prefix-and-more y") == f"x {MASK} y"


def test_secrets_registered_between_redactions_are_all_masked() -> None:
    redactor = Redactor()
    secrets = [f"secret-number-{n:03}" for n in range(40)]
    for secret in secrets:  # one compiled tier each, merged as they pile up
        redactor.add(secret)
        assert redactor.redact(secret) == MASK

    assert redactor.redact(" ".join(secrets)) == " ".join([MASK] * 40)


def test_overlapping_secrets_registered_apart_are_one_mask() -> None:
    redactor = Redactor()
    redactor.add("alpha-secret-1")
    redactor.redact("")  # compiled: the next one goes to another tier
    redactor.add("secret-1-beta")

    assert redactor.redact("<alpha-secret-1-beta>") == f"<{MASK}>"


def test_secrets_nested_as_prefixes_of_each_other_still_mask() -> None:
    # Each is a prefix of the next: the trie-shaped pattern would nest a group per secret,
    # beyond what the regex compiler takes; a plain alternation stands in.
    redactor = Redactor()
    for n in range(4, 600):
        redactor.add("q" * n)

    assert redactor.redact("<" + "q" * 700 + ">") == f"<{MASK}>"


def test_the_long_lines_of_a_multi_line_secret_are_masked_alone() -> None:
    redactor = Redactor()
    redactor.add("-----BEGIN KEY-----\nMIIEvQIBADANBgkqhkiG9w0B\nshort\n-----END KEY-----\n")

    assert redactor.redact("line MIIEvQIBADANBgkqhkiG9w0B short") == f"line {MASK} short"


def test_printable_redacts_then_escapes_all_control_characters_but_newlines() -> None:
    redactor_text = "a\x1b[31mred\x07\r\u202eevil\tx\nnext"

    assert printable(redactor_text) == "a\\x1b[31mred\\x07\\r\\u202eevil\\tx\nnext"


def test_escape_controls_leaves_printable_text_alone() -> None:
    assert escape_controls("plain ✓ text") == "plain ✓ text"
    assert escape_controls("two\nlines") == "two\\nlines"


def test_a_secret_output_nested_too_deep_is_refused_whole() -> None:
    redactor = Redactor()
    shallow: Any = "canary-at-the-bottom"
    for _ in range(64):
        shallow = [shallow]
    redactor.add_value(shallow)  # as deep as a response may be: fine

    with pytest.raises(TooDeep, match=r"^a secret output nested more than 64 levels deep$"):
        Redactor().add_value([shallow, "canary-beside"])

    assert redactor.redact("canary-at-the-bottom") == MASK


def test_a_secret_that_is_not_utf8_is_masked_in_the_forms_its_bytes_take() -> None:
    redactor = Redactor()
    redactor.add("tok\udcffen123456")

    assert redactor.redact("raw tok\udcffen123456") == f"raw {MASK}"
    assert redactor.redact("quoted tok%FFen123456") == f"quoted {MASK}"
    assert redactor.redact("b64 " + base64.b64encode(b"tok\xffen123456").decode()) == f"b64 {MASK}"


@pytest.mark.parametrize("secret", [":", "-", "..", "{}"])
def test_a_short_secret_with_no_letter_or_digit_is_not_masked_alone(secret: str) -> None:
    redactor = Redactor()
    redactor.add(secret)

    assert redactor.redact(f"a {secret} b: c-d") == f"a {secret} b: c-d"


def test_a_secret_json_encoded_twice_shows_none_of_its_long_runs() -> None:
    secret = "ünï-UN92abcdefghijklmnop+/0cbcQRSTUVWXYZ012345-çødé"
    redactor = Redactor()
    redactor.add(secret)
    twice = json.dumps(json.dumps(secret))  # tojson in a template, then echoed and printed

    shown = redactor.redact(f"HTTP 200 {twice}")

    assert "UN92abcdefghijklmnop" not in shown
    assert "0cbcQRSTUVWXYZ012345" not in shown
    assert (
        shown == f'HTTP 200 "\\"\\\\u00fcn\\\\u00ef-{MASK}+/{MASK}-\\\\u00e7\\\\u00f8d\\\\u00e9\\""'
    )


# -- past COMPILED_NEEDLES: the index --------------------------------------------------


@pytest.mark.parametrize("secret", [TOKEN, NON_ASCII], ids=["ascii", "non-ascii"])
@pytest.mark.parametrize("form", list(encoded_forms(TOKEN)))
def test_the_index_masks_every_encoding_of_a_secret(secret: str, form: str) -> None:
    redactor = Redactor(compiled_needles=0)
    redactor.add(secret)

    assert redactor.redact(f"before {encoded_forms(secret)[form]} after") == f"before {MASK} after"


def test_the_index_masks_the_longest_secret_at_a_place_and_merges_overlaps() -> None:
    redactor = Redactor(compiled_needles=0)
    for secret in ["canary-prefix", "canary-prefix-and-more", "alpha-secret-1", "secret-1-beta"]:
        redactor.add(secret)

    assert redactor.redact("x canary-prefix-and-more y") == f"x {MASK} y"
    assert redactor.redact("<alpha-secret-1-beta> canary-prefix!") == f"<{MASK}> {MASK}!"


def test_a_short_secret_past_the_limit_is_still_masked_only_as_a_word() -> None:
    redactor = Redactor(compiled_needles=0)
    redactor.add("ab1")

    assert redactor.redact("ab1 cab1 ab12 (ab1)") == f"{MASK} cab1 ab12 ({MASK})"


def test_secrets_in_patterns_and_in_the_index_overlapping_are_one_mask() -> None:
    redactor = Redactor(compiled_needles=20)
    redactor.add("alpha-secret-1")  # its forms fill the compiled patterns
    redactor.add("secret-1-beta")  # indexed

    assert redactor.redact("<alpha-secret-1-beta>") == f"<{MASK}>"


def test_thousands_of_secret_outputs_are_each_masked() -> None:
    """A `secret: true` output per item of a large foreach: past the limit none is compiled."""
    redactor = Redactor(compiled_needles=64)
    tokens = [f"tok_{n:06}_{'k' * 12}" for n in range(3_000)]
    for token in tokens:
        redactor.add_value({"token": token})

    line = f"item 2999: {{'token': '{tokens[-1]}'}}, then {tokens[1234]}, tok_0x"
    assert redactor.redact(line) == f"item 2999: {MASK}, then {MASK}, tok_0x"
