"""The template budget: every render bounded in time, iterations and memory; values are JSON."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Any

import pytest

from owf_runner import template_budget
from owf_runner.template_budget import MAX_ITEMS, MAX_STRING, json_size, render_budget
from owf_runner.templating import TemplateError, as_json, check_syntax, compile_value, render_value

OVER = "template exceeded its budget: "
STRING = OVER + "a string over 1 MiB"
LIST = OVER + "a list over 1,048,576 items"
DIGITS = OVER + "a number of more than 4,000 digits"
ITERATIONS = OVER + "more than 1,000,000 loop iterations"
BIG = "'x' * 1000000"  # a string just under the cap: the building block of the bombs below


def frozen() -> float:
    """A clock that never moves: only the iteration and size limits can trip."""
    return 0.0


def ticking(step: float) -> Callable[[], float]:
    """A clock that moves ``step`` seconds each time it is read."""
    readings = itertools.count()
    return lambda: next(readings) * step


def failure(template: Any, clock: Callable[[], float] = frozen) -> str:
    with pytest.raises(TemplateError) as raised, render_budget(clock):
        render_value(template, {})
    return str(raised.value)


@pytest.mark.parametrize(
    ("template", "message"),
    [
        ("{{ 'a'.ljust(10**10) }}", STRING),
        ("{{ 'a'.rjust(10**10) }}", STRING),
        ("{{ 'a'.center(10**10) }}", STRING),
        ("{{ 'a'.zfill(10**10) }}", STRING),
        ("{{ '\\t'.expandtabs(10**10) }}", STRING),
        ("{{ 'aaaa'.translate({97: " + BIG + "}) }}", STRING),
        ("{{ ('x' * 1000).replace('x', " + BIG + ") }}", STRING),
        ("{{ '{:>10000000000}'.format(1) }}", STRING),
        ("{{ '{0}{0}{0}'.format('x' * 500000) }}", STRING),
        ("{{ '{!r}'.format([[" + BIG + "]] * 1000) }}", STRING),
        ("{{ '%*s' % (10**10, 'x') }}", STRING),
        ("{{ '%10000000000s' % 'x' }}", STRING),
        ("{{ '%.10000000000f' % 1 }}", STRING),
        ("{{ '%(a)s%(a)s' % {'a': 'x' * 600000} }}", STRING),
        ("{{ '%s' % ([[" + BIG + "]] * 1000,) }}", STRING),
        ("{{ ','.join([" + BIG + "] * 1000) }}", STRING),
        ("{{ 'a' | center(10000000000) }}", STRING),
        ("{{ 'a\\nb' | indent(10000000000) }}", STRING),
        ("{{ ('x' * 100000) | wordwrap(1, wrapstring='y' * 100000) }}", STRING),
        ("{{ ([" + BIG + "] * 1000) | join(',') }}", STRING),
        ("{{ (" + BIG + ") | replace('x', 'yy') }}", STRING),
        ("{{ '%*s' | format(10**10, 'x') }}", STRING),
        ("{{ 'x' | truncate(10, end=" + BIG + " * 2) }}", STRING),
        ("{{ ([[" + BIG + "]] * 1000) | string }}", STRING),
        ("{{ [1] | batch(10**10, 'x') | list }}", LIST),
        ("{{ [1, 2] | slice(10**9) | list }}", LIST),
        ("{{ [1] | tojson(indent=10**9) }}", OVER + "an indent over 64"),
        ("{{ " + BIG + " + " + BIG + " }}", STRING),
        ("{{ 'x' * (1024 * 1024 + 1) }}", STRING),
        ("{{ [0] * (1024 * 1024 + 1) }}", LIST),
        ("{{ (" + BIG + ")[1:] ~ (" + BIG + ")[1:] }}", STRING),
        ("{{ (10**1024) ** 5 }}", DIGITS),
        ("{{ 2 ** 100000000 }}", DIGITS),
        ("{{ (10**3000) * (10**3000) }}", DIGITS),
        ("x{{ [[" + BIG + "]] * 1000 }}", STRING),
    ],
)
def test_what_would_build_past_the_caps_fails_before_it_is_built(
    template: str, message: str
) -> None:
    assert failure(template) == message


@pytest.mark.parametrize(
    "template",
    [
        "{% set ns = namespace(s='x') %}{% for i in range(64) %}"
        "{% set ns.s = ns.s ~ ns.s %}{% endfor %}",
        "{% set ns = namespace(s='x') %}{% for i in range(64) %}"
        "{% set ns.s = ns.s + ns.s %}{% endfor %}",
        "{% for i in range(64) %}{{ 'x' * 20000 }}{% endfor %}",
        "{% macro m() %}{{ 'x' * 600000 }}{% endmacro %}{{ m() }}{{ m() }}",
    ],
    ids=["~ doubling", "+ doubling", "output", "macro output"],
)
def test_a_string_growing_in_a_loop_stops_at_the_cap(template: str) -> None:
    assert failure(template) == STRING


def test_building_many_strings_is_capped_in_total() -> None:
    template = (
        "{% set ns = namespace(n=0) %}{% for i in range(100000) %}"
        "{% if (" + BIG + ")[i:] %}{% set ns.n = ns.n + 1 %}{% endif %}{% endfor %}"
    )

    assert failure(template) == OVER + "built more than 32 MiB"


@pytest.mark.parametrize(
    "template",
    [
        "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}",
        "{% for a in " + BIG + " %}{% for b in " + BIG + " %}{% endfor %}{% endfor %}",
        "{% for i in range(100000) %}{% for j in range(100000) if false %}{% endfor %}{% endfor %}",
        "{% for i in range(100000) %}{{ range(100000) | select | list | length }}{% endfor %}",
    ],
    ids=["nested range", "nested string", "filtered", "lazy filter"],
)
def test_loop_iterations_are_capped_per_render(template: str) -> None:
    assert failure(template) == ITERATIONS


def test_the_inner_iterations_of_a_recursive_loop_count_too(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(template_budget, "MAX_ITERATIONS", 1000)
    template = (
        "{% for x in range(10) recursive %}"
        "{% if loop.depth < 3 %}{{ loop(range(10)) }}{% endif %}{% endfor %}"
    )

    assert failure(template) == OVER + "more than 1,000 loop iterations"


def test_the_iterations_of_one_value_share_one_budget() -> None:
    loop = "{% for i in range(600) %}{% for j in range(1000) %}{% endfor %}{% endfor %}"
    payload = compile_value({"a": loop, "b": [loop]})

    with pytest.raises(TemplateError) as raised, render_budget(frozen):
        payload.render({})

    assert (str(raised.value), raised.value.path) == (ITERATIONS, ("b", 0))


@pytest.mark.parametrize(
    "template",
    [
        "{% macro f(n) %}{% if n < 60 %}{{ f(n + 1) }}{{ f(n + 1) }}{% endif %}{% endmacro %}"
        "{{ f(0) }}",
        "{% for i in range(1000) %}{% for j in range(1000) %}{% endfor %}{% endfor %}",
    ],
    ids=["exponential macro", "loops"],
)
def test_a_render_has_one_second(template: str) -> None:
    assert failure(template, ticking(0.01)) == OVER + "took longer than 1 s"


def test_a_macro_calling_itself_forever_is_too_deep() -> None:
    assert failure("{% macro f() %}{{ f() }}{% endmacro %}{{ f() }}", frozen) == (
        "template nested too deeply"
    )


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("{{ ('x' * (1024 * 1024)) | length }}", MAX_STRING),
        ("{{ ([0] * (1024 * 1024)) | length }}", MAX_ITEMS),
        ("{{ 'a'.ljust(5, '.') }}", "a...."),
        ("{{ '{:>5}'.format(1) }}", "    1"),
        ("{{ '{0}-{0}'.format('ab') }}", "ab-ab"),
        ("{{ '%5s|%-3d|%.2f' % ('a', 7, 2.5) }}", "    a|7  |2.50"),
        ("{{ '%(a)s' % {'a': 1} }}", "1"),
        ("{{ ', '.join(['a', 'b']) }}", "a, b"),
        ("{{ ['a', 'b'] | join('-') }}", "a-b"),
        ("{{ [{'n': 'a'}, {'n': 'b'}] | join(',', attribute='n') }}", "a,b"),
        ("{{ 'a b' | replace(' ', '_') }}", "a_b"),
        ("{{ 'x' | center(5) }}", "  x  "),
        ("{{ 'a\\nb' | indent(2) }}", "a\n  b"),
        ("{{ {'b': 1, 'a': [2]} | tojson }}", '{"a": [2], "b": 1}'),
        ("{{ {'a': 1} | tojson(2) }}", '{\n  "a": 1\n}'),
        ("{{ [[1], [2, 3]] | sum(start=[]) }}", [1, 2, 3]),
        ("{{ [1, 2] | sum }}", 3),
        ("{{ [1, 2, 3] | batch(2, 0) | list }}", [[1, 2], [3, 0]]),
        ("{{ range(3) | map('string') | list }}", ["0", "1", "2"]),
        (
            "{% for x in [1, [2, [3]]] recursive %}"
            "{{ loop(x) if x is iterable else x }}{% endfor %}",
            "123",
        ),
        ("{% for i in range(3) %}{{ loop.index }}/{{ loop.length }} {% endfor %}", "1/3 2/3 3/3 "),
        ("{{ 'a' ~ 1 ~ [2] ~ none }}", "a1[2]None"),
        ("{{ 10**100 * 10**100 == 10**200 }}", True),
        ("{{ (1, 2) + (3,) }}", (1, 2, 3)),
        ("{{ '%d%%' % 5 }}", "5%"),
    ],
)
def test_ordinary_templates_are_untouched(template: str, expected: Any) -> None:
    assert render_value(template, {}) == expected


@pytest.mark.parametrize(
    ("template", "message"),
    [
        ("{{ range(3) }}", "a range (add `| list`)"),
        ("{{ [1, 2] | map('string') }}", "a generator (add `| list`)"),
        ("{{ {'a': 1}.keys() }}", "a dict_keys (add `| list`)"),
        ("{{ 'nan' | float }}", "nan (JSON has no NaN or infinity)"),
        ("{{ '-inf' | float }}", "-inf (JSON has no NaN or infinity)"),
        ("{{ {1: 2} }}", "a mapping with a key that is not a string (1)"),
        ("{{ [{none: 2}] }}", "a mapping with a key that is not a string (None)"),
        ("{{ now }}", "a function (call it?)"),
        ("{{ namespace(a=1) }}", "a Namespace"),
        ("{{ 'x'.encode() }}", "a bytes"),
        ("x{{ range(3) }}", "a range (add `| list`)"),
        ("{{ 'a' ~ range(3) }}", "a range (add `| list`)"),
    ],
)
def test_a_value_json_cannot_carry_fails_with_what_it_is(template: str, message: str) -> None:
    assert failure(template) == f"not a JSON value: {message}"


def test_a_value_over_64_mib_as_json_fails_even_when_built_of_shared_parts() -> None:
    template = "{{ {}.fromkeys(range(1000) | map('string'), 'x' * 100000) }}"

    assert failure(template) == OVER + "a value over 64 MiB"


def test_json_size_counts_shared_parts_in_full_and_quickly() -> None:
    row = ["x" * 1000] * 1000
    table = [row] * 1000  # a gigabyte of JSON in a few kilobytes of memory

    assert json_size(row) == 2 + 1000 * len('"' + "x" * 1000 + '",')
    with pytest.raises(Exception, match="a value over 64 MiB"):
        json_size(table)


def test_as_json_refuses_what_a_request_cannot_carry() -> None:
    with pytest.raises(TemplateError, match=r"^not a JSON value: a set \(add `\| list`\)$"):
        as_json({"a": {1, 2}})
    with pytest.raises(TemplateError, match=r"^too large: a value over 64 MiB$"):
        as_json([["x" * 1000] * 1000] * 1000)


@pytest.mark.parametrize(
    ("template", "message"),
    [
        (
            "{{ 1e400 }}",
            "template syntax error: a number too large for JSON (it would be infinite)",
        ),
        (
            "{{ " + "9" * 5000 + " }}",
            "template syntax error: Exceeds the limit (4300 digits) for integer string "
            "conversion: value has 5000 digits",
        ),
        ("{{ 'x' | urlize }}", "template syntax error: No filter named 'urlize'."),
        ("{{ {} | xmlattr }}", "template syntax error: No filter named 'xmlattr'."),
        ("{{ {} | pprint }}", "template syntax error: No filter named 'pprint'."),
        (
            "{% include 'other.j2' %}",
            "template syntax error: {% include %} is not supported: "
            "a template cannot load other templates",
        ),
        (
            "{% from 'x' import y %}",
            "template syntax error: {% from %} is not supported: "
            "a template cannot load other templates",
        ),
    ],
)
def test_what_can_never_render_is_a_syntax_error(template: str, message: str) -> None:
    with pytest.raises(TemplateError) as raised:
        check_syntax(template)

    assert str(raised.value) == message


def test_constants_are_not_folded_at_compile_time() -> None:
    """Jinja's optimizer would run `center(10**10)` while compiling, outside any budget."""
    check_syntax("{{ 'a' | center(10000000000) }}x")

    assert failure("{{ 'a' | center(10000000000) }}x") == STRING


def test_lipsum_is_not_offered() -> None:
    assert failure("{{ lipsum(10**9) }}") == "undefined: 'lipsum' is undefined"
