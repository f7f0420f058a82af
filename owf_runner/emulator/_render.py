"""Minimal stand-in for `owf_runner.templating.render_value` (same contract).

A string that is exactly one `{{ expression }}` yields the expression's native
value; any other string renders to a string; dicts and lists recurse.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from functools import lru_cache
from typing import Any

from jinja2 import StrictUndefined, Template, Undefined
from jinja2.environment import TemplateExpression
from jinja2.sandbox import ImmutableSandboxedEnvironment

_ENV = ImmutableSandboxedEnvironment(undefined=StrictUndefined, autoescape=False)
_LONE_EXPRESSION = re.compile(r"\A\s*\{\{(?P<expr>.*)\}\}\s*\Z", re.DOTALL)
_MARKERS = ("{{", "{%", "{#")


def render_value(value: Any, context: Mapping[str, Any]) -> Any:
    if isinstance(value, str):
        return _render_string(value, context)
    if isinstance(value, Mapping):
        return {key: render_value(item, context) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [render_value(item, context) for item in value]
    return value


def _render_string(text: str, context: Mapping[str, Any]) -> Any:
    if not any(marker in text for marker in _MARKERS):
        return text
    expression = _lone_expression(text)
    if expression is None:
        return _template(text).render(**context)
    result = _expression(expression)(**context)
    if isinstance(result, Undefined):
        # StrictUndefined raises on str(); that is the error we want the caller to see.
        str(result)
    return result


def _lone_expression(text: str) -> str | None:
    match = _LONE_EXPRESSION.match(text)
    if match is None:
        return None
    expr = match["expr"]
    # "{{ a }} and {{ b }}" also matches the pattern; it is two expressions, not one.
    if "{{" in expr or "}}" in expr:
        return None
    return expr.strip()


@lru_cache(maxsize=256)
def _template(text: str) -> Template:
    return _ENV.from_string(text)


@lru_cache(maxsize=256)
def _expression(expression: str) -> TemplateExpression:
    return _ENV.compile_expression(expression, undefined_to_none=False)
