"""Sandboxed Jinja over data: native lone expressions, strict undefined, static analysis."""

from __future__ import annotations

import dataclasses
import datetime
import re
import uuid
from typing import Any

import pytest

from owf_runner.templating import (
    Constant,
    MappingValue,
    Reference,
    SequenceValue,
    Template,
    TemplateError,
    check_syntax,
    compile_value,
    free_names,
    is_template,
    locally_bound,
    references,
    render_string,
    render_value,
    template_strings,
    truthy,
)

CONTEXT: dict[str, Any] = {
    "vars": {
        "groups": ["eng", "ops"],
        "meta": {"team": "core"},
        "count": 3,
        "active": True,
        "nothing": None,
        "name": "Ada",
    }
}


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("{{ vars.groups }}", ["eng", "ops"]),
        ("{{ vars.meta }}", {"team": "core"}),
        ("{{ vars.count }}", 3),
        ("{{ vars.active }}", True),
        ("{{ vars.nothing }}", None),
        ("{{ none }}", None),
        ("  {{ vars.count }}\n", 3),
        ("{{vars.count+1}}", 4),
        ("{{ vars.groups | length }}", 2),
        ("{{ {'n': vars.count} }}", {"n": 3}),
        ("{{ 2.5 }}", 2.5),
    ],
)
def test_lone_expression_keeps_native_type(template: str, expected: object) -> None:
    value = render_value(template, CONTEXT)

    assert value == expected
    assert type(value) is type(expected)


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("n={{ vars.count }}", "n=3"),
        ("{{ vars.active }}!", "True!"),
        ("{{ vars.name }} {{ vars.count }}", "Ada 3"),
        ("{% if vars.active %}on{% endif %}", "on"),
        ("plain text", "plain text"),
        ("{{ '{{' }}", "{{"),
    ],
)
def test_mixed_strings_render_to_str(template: str, expected: str) -> None:
    assert render_value(template, CONTEXT) == expected


def test_emulator_render_contract_two_expressions_make_a_string() -> None:
    assert render_value("{{ 1 }} and {{ 2 }}", {}) == "1 and 2"


def test_structures_recurse_and_keep_non_strings() -> None:
    value = {
        "{{ vars.name }}_key": ["{{ vars.count }}", {"inner": "{{ vars.groups }}"}],
        "literal": 5,
        "flag": False,
        "none": None,
        "tuple": ("{{ vars.active }}",),
    }

    assert render_value(value, CONTEXT) == {
        "Ada_key": [3, {"inner": ["eng", "ops"]}],
        "literal": 5,
        "flag": False,
        "none": None,
        "tuple": [True],
    }


def test_render_does_not_mutate_input() -> None:
    value = {"a": ["{{ vars.count }}"]}

    render_value(value, CONTEXT)

    assert value == {"a": ["{{ vars.count }}"]}


@pytest.mark.parametrize(
    "template",
    ["{{ vars.missing }}", "x{{ vars.missing }}y", "{{ nope }}", "{{ vars.groups[5] }}"],
)
def test_undefined_is_an_error_not_an_empty_string(template: str) -> None:
    with pytest.raises(TemplateError, match=r"^undefined: "):
        render_value(template, CONTEXT)


def test_undefined_inside_a_structure_is_an_error() -> None:
    with pytest.raises(TemplateError, match="undefined"):
        render_value({"a": [{"b": "{{ vars.missing }}"}]}, CONTEXT)


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("{{ vars.missing is defined }}", False),
        ("{{ vars.name is defined }}", True),
        ("{{ vars.missing is undefined }}", True),
        ("{{ vars.missing | default('dflt') }}", "dflt"),
        ("{{ vars.missing | d(5) }}", 5),
        ("{{ vars.name | default('dflt') }}", "Ada"),
        ("hi {{ vars.missing | default('you') }}", "hi you"),
    ],
)
def test_defined_and_default_still_work(template: str, expected: object) -> None:
    assert render_value(template, CONTEXT) == expected


def test_default_on_a_chained_missing_var_renders_the_default() -> None:
    assert render_value("{{ vars.opt.sub | default('x') }}", {"vars": {}}) == "x"


@pytest.mark.parametrize(
    "template",
    [
        "{{ ''.__class__ }}",
        "{{ ''.__class__.__mro__[1].__subclasses__() }}",
        "{{ vars.groups.append(1) }}",
        "{{ vars.meta.update({'x': 1}) }}",
        "{{ vars.groups.pop() }}",
        "x {{ vars.meta.clear() }}",
    ],
)
def test_sandbox_refuses_unsafe_access_and_mutation(template: str) -> None:
    context = {"vars": {"groups": [1, 2], "meta": {"a": 1}}}

    with pytest.raises(TemplateError, match="not allowed"):
        render_value(template, context)

    assert context == {"vars": {"groups": [1, 2], "meta": {"a": 1}}}


def test_list_append_from_the_brief_is_refused() -> None:
    with pytest.raises(TemplateError, match="not allowed"):
        render_value("{{ vars.l.append(1) }}", {"vars": {"l": []}})


def test_syntax_error_is_a_template_error() -> None:
    with pytest.raises(TemplateError, match=r"^template syntax error: "):
        render_value("{{ vars.name ", CONTEXT)
    with pytest.raises(TemplateError, match=r"^template syntax error: "):
        check_syntax("{% if x %}")


def test_check_syntax_accepts_valid_templates() -> None:
    check_syntax("{{ vars.a }} {% for i in x %}{{ i }}{% endfor %}")


def test_runtime_errors_become_template_errors() -> None:
    with pytest.raises(TemplateError, match=r"^ZeroDivisionError: "):
        render_value("{{ 1 / 0 }}", {})


def test_now_is_iso_8601_utc_ending_in_z() -> None:
    value = render_value("{{ now() }}", {})

    assert isinstance(value, str)
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", value)
    parsed = datetime.datetime.fromisoformat(value.replace("Z", "+00:00"))
    assert parsed.utcoffset() == datetime.timedelta(0)
    now = datetime.datetime.now(datetime.UTC)
    assert abs((now - parsed).total_seconds()) < 300


def test_uuid4_is_a_fresh_uuid_string() -> None:
    first = render_value("{{ uuid4() }}", {})
    second = render_value("{{ uuid4() }}", {})

    assert isinstance(first, str)
    assert uuid.UUID(first).version == 4
    assert first != second


def test_render_string_passes_non_templates_through() -> None:
    assert render_string("no braces here", {}) == "no braces here"


@pytest.mark.parametrize(
    ("text", "expected"),
    [("{{ x }}", True), ("{% if x %}{% endif %}", True), ("{# c #}", True), ("a { b }", False)],
)
def test_is_template(text: str, expected: bool) -> None:
    assert is_template(text) is expected


def test_references_finds_roots_and_first_attribute() -> None:
    text = (
        "{{ steps.a.outputs.x }} {{ vars['y'] }} {{ vars.z is defined }} "
        "{{ vars.w | default(1) }} {{ env }} {{ item.app }}"
    )

    assert references(text) == [
        Reference("steps", "a", guarded=False),
        Reference("vars", "y", guarded=False),
        Reference("vars", "z", guarded=True),
        Reference("vars", "w", guarded=True),
        Reference("env", None, guarded=False),
        Reference("item", "app", guarded=False),
    ]


def test_references_of_dynamic_subscript_has_no_name() -> None:
    assert references("{{ vars[key] }}")[0] == Reference("vars", None, guarded=False)


def test_references_of_plain_text_is_empty() -> None:
    assert references("no template") == []


def test_references_include_function_names() -> None:
    roots = {ref.root for ref in references("{{ now() }} {{ uuid4() }}")}

    assert roots == {"now", "uuid4"}


def test_locally_bound_names() -> None:
    text = "{% set q = 1 %}{% for i, j in vars.pairs %}{{ i }}{{ j }}{% endfor %}{{ vars.a }}"

    assert locally_bound(text) == {"q"}  # loop variables are scoped by references()
    assert locally_bound("{{ vars.a }}") == set()
    assert locally_bound("plain") == set()


def test_template_strings_yields_every_string_with_its_path() -> None:
    value = {"a": ["x", {"b": "y"}], "n": 1}

    assert list(template_strings(value)) == [
        (("a",), "a"),
        (("a", 0), "x"),
        (("a", 1, "b"), "b"),
        (("a", 1, "b"), "y"),
        (("n",), "n"),
    ]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("", False),
        ("false", False),
        ("False", False),
        (" no ", False),
        ("0", False),
        ("none", False),
        ("null", False),
        ("yes", True),
        ("anything", True),
        (0, False),
        (1, True),
        ([], False),
        ([0], True),
        ({}, False),
        (None, False),
        (False, False),
        (True, True),
    ],
)
def test_truthy(value: object, expected: bool) -> None:
    assert truthy(value) is expected


@pytest.mark.parametrize(
    ("template", "message"),
    [
        ("{{ 'x' * 10**10 }}", "template exceeded its budget: a string over 1 MiB"),
        ("{{ [0] * 10**9 }}", "template exceeded its budget: a list over 1,048,576 items"),
        (
            "{{ 2 ** 100000000 }}",
            "template exceeded its budget: a number of more than 4,000 digits",
        ),
        ("{{ " + "(" * 3000 + "1" + ")" * 3000 + " }}", "template nested too deeply"),
    ],
)
def test_memory_and_recursion_bombs_are_refused(template: str, message: str) -> None:
    with pytest.raises(TemplateError) as raised:
        render_value(template, {})

    assert str(raised.value) == message


def test_small_repetition_still_works() -> None:
    assert render_value("{{ 'ab' * 3 }}", {}) == "ababab"
    assert render_value("{{ 2 ** 10 }}", {}) == 1024


# -- compiled values -------------------------------------------------------------------


@pytest.mark.parametrize("value", ["plain text", "a { b }", 5, 2.5, True, None])
def test_values_without_templates_compile_to_constants(value: object) -> None:
    compiled = compile_value(value)

    assert compiled == Constant(value)
    assert compiled.names == frozenset()
    assert compiled.render({}) == value


def test_a_template_string_compiles_once_and_knows_its_names() -> None:
    compiled = compile_value("{{ vars.count }}")

    assert compiled == Template("{{ vars.count }}", frozenset({"vars"}))
    assert isinstance(compiled, Template)
    assert compiled.is_lone_expression
    assert compiled.expression == "vars.count"
    assert compiled.render(CONTEXT) == 3


def test_a_mixed_template_is_not_a_lone_expression() -> None:
    compiled = compile_value("n={{ vars.count }}")

    assert isinstance(compiled, Template)
    assert not compiled.is_lone_expression
    assert compiled.expression == "n={{ vars.count }}"
    assert compiled.render(CONTEXT) == "n=3"


def test_structures_compile_to_mappings_and_sequences_with_all_their_names() -> None:
    value = {
        "{{ vars.name }}_key": ["{{ item.x }}", {"inner": "{{ steps.a.outputs.b }}"}],
        "literal": 5,
        "tuple": ("{{ index }}",),
    }

    compiled = compile_value(value)

    assert isinstance(compiled, MappingValue)
    assert isinstance(compiled.items[0][1], SequenceValue)
    assert compiled.names == {"vars", "item", "steps", "index"}
    context = {**CONTEXT, "item": {"x": 1}, "index": 0, "steps": {"a": {"outputs": {"b": "B"}}}}
    assert compiled.render(context) == {
        "Ada_key": [1, {"inner": "B"}],
        "literal": 5,
        "tuple": [0],
    }
    assert compiled.render(context) == render_value(value, context)


def test_a_syntax_error_is_found_when_compiling() -> None:
    with pytest.raises(TemplateError, match=r"^template syntax error: "):
        compile_value({"a": ["{{ vars.name "]})


def test_a_render_error_names_where_in_the_structure_it_happened() -> None:
    compiled = compile_value({"a": [{"b": "ok"}, {"c": "{{ vars.missing }}"}]})

    with pytest.raises(TemplateError, match=r"^undefined: ") as raised:
        compiled.render(CONTEXT)

    assert raised.value.path == ("a", 1, "c")


def test_compiled_values_render_again_with_another_context() -> None:
    compiled = compile_value({"n": "{{ vars.count }}"})

    assert compiled.render(CONTEXT) == {"n": 3}
    assert compiled.render({"vars": {"count": 4}}) == {"n": 4}


@pytest.mark.parametrize(
    ("text", "names"),
    [
        ("plain", set()),
        ("{{ vars.a }} {{ env.HOME }}", {"vars", "env"}),
        ("{% set q = 1 %}{{ q }}{{ job.name }}", {"job"}),
        ("{% for i in vars.list %}{{ i }}{{ loop.index }}{% endfor %}", {"vars"}),
        ("{{ vars.x if vars.x is defined else item }}", {"vars", "item"}),
        ("{{ now() }} {{ uuid4() }}", {"now", "uuid4"}),
    ],
)
def test_free_names(text: str, names: set[str]) -> None:
    assert free_names(text) == names


@pytest.mark.parametrize(
    "expression",
    ["vars.a", " steps.first.outputs.id ", "x.true.if", "_a1.B_2"],
)
def test_an_attribute_chain_is_the_tree_jinja_would_parse(expression: str) -> None:
    from jinja2.parser import Parser

    from owf_runner import templating

    lone, tree = templating._parse("{{" + expression + "}}")

    assert lone
    assert tree == Parser(templating.ENV, expression, state="variable").parse_expression()


@pytest.mark.parametrize(
    ("template", "context"),
    [
        ("{{ vars.items }}", {"vars": {"items": [1]}}),  # the dict method wins, as in Jinja
        ("{{ vars.missing }}", {"vars": {}}),
        ("{{ vars.name.first }}", {"vars": {"name": "Ada"}}),
        ("{{ vars.n }}", {"vars": {"n": float("nan")}}),
        ("{{ now.x }}", {}),
    ],
)
def test_a_plain_lookup_fails_as_jinja_does(template: str, context: dict[str, Any]) -> None:
    fast = compile_value(template)
    with pytest.raises(TemplateError) as looked_up:
        fast.render(context)
    slow = Template(template, fast.names, dataclasses.replace(fast.form, lookup=None))  # type: ignore[attr-defined]
    with pytest.raises(TemplateError) as rendered:
        slow.render(context)

    assert str(looked_up.value) == str(rendered.value)


def test_a_plain_lookup_returns_the_value_itself() -> None:
    groups = ["eng", "ops"]

    assert (
        compile_value("{{ vars.team.groups }}").render({"vars": {"team": {"groups": groups}}})
        is groups
    )


@pytest.mark.parametrize("text", ["{{ vars.a }}", "{{ steps.first.outputs.id }}", "{{ x.y.z.w }}"])
def test_a_lookup_has_the_references_a_walk_of_its_tree_finds(text: str) -> None:
    from owf_runner import templating

    form = templating._form(text)

    assert form.refs == tuple(templating._walk(form.tree, frozenset()))
    assert form.bound == frozenset()
