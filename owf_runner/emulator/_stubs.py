"""Reading flow stubs from a YAML file (`flows: {flow_id_or_alias: {...}}`)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from ._models import SECURITY_LEVELS, Fault, FlowStub

_TOP_KEYS = ("flows",)
_STUB_KEYS = ("status", "headers", "body", "echo", "security", "faults")
_FAULT_KEYS = ("times", "status", "headers", "body", "drop", "delay")


def load_stub_file(path: Path) -> dict[str, FlowStub]:
    """Every stub in the file, by flow id; any problem is a ValueError naming file and key."""
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as error:
        raise ValueError(f"{path}: not valid YAML: {error}") from error
    top = _mapping(document if document is not None else {}, f"{path}")
    _known_keys(top, _TOP_KEYS, f"{path}")
    flows = _mapping(top.get("flows") or {}, f"{path}: flows")
    return {
        str(flow_id): _stub(spec, f"{path}: flows.{flow_id}") for flow_id, spec in flows.items()
    }


def _stub(spec: Any, where: str) -> FlowStub:
    fields = _mapping(spec if spec is not None else {}, where)
    _known_keys(fields, _STUB_KEYS, where)
    security = fields.get("security", "oauth2")
    if security not in SECURITY_LEVELS:
        raise ValueError(
            f"{where}.security: must be one of {', '.join(SECURITY_LEVELS)}, not {security!r}"
        )
    faults = fields.get("faults") or []
    if not isinstance(faults, list):
        raise ValueError(f"{where}.faults: must be a list of faults")
    status = _int(fields.get("status", 200), f"{where}.status")
    headers = _headers(fields.get("headers") or {}, f"{where}.headers")
    echo = _bool(fields.get("echo", True), f"{where}.echo")
    parsed_faults = tuple(_fault(item, f"{where}.faults[{i}]") for i, item in enumerate(faults))
    try:
        return FlowStub(status, headers, fields.get("body"), echo, security, parsed_faults)
    except ValueError as error:  # the dataclass's own checks do not know the file
        raise ValueError(f"{where}: {error}") from error


def _fault(spec: Any, where: str) -> Fault:
    fields = _mapping(spec, where)
    _known_keys(fields, _FAULT_KEYS, where)
    status = fields.get("status")
    delay = fields.get("delay", 0.0)
    if isinstance(delay, bool) or not isinstance(delay, int | float):
        raise ValueError(f"{where}.delay: must be a number of seconds, not {delay!r}")
    times = _int(fields.get("times", 1), f"{where}.times")
    code = None if status is None else _int(status, f"{where}.status")
    headers = _headers(fields.get("headers") or {}, f"{where}.headers")
    drop = _bool(fields.get("drop", False), f"{where}.drop")
    try:
        return Fault(times, code, headers, fields.get("body"), drop, float(delay))
    except ValueError as error:  # the dataclass's own checks do not know the file
        raise ValueError(f"{where}: {error}") from error


def _mapping(value: Any, where: str) -> Mapping[Any, Any]:
    if not isinstance(value, Mapping):
        raise ValueError(f"{where}: must be a mapping, not {type(value).__name__}")
    return value


def _known_keys(fields: Mapping[Any, Any], known: tuple[str, ...], where: str) -> None:
    unknown = [str(key) for key in fields if key not in known]
    if unknown:
        raise ValueError(
            f"{where}: unknown key {', '.join(map(repr, unknown))} "
            f"(expected one of: {', '.join(known)})"
        )


def _headers(value: Any, where: str) -> dict[str, str]:
    # YAML reads `X-Rate-Limit-Remaining: 0` as an int; header values are text.
    return {str(name): str(item) for name, item in _mapping(value, where).items()}


def _int(value: Any, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{where}: must be an integer, not {value!r}")
    return value


def _bool(value: Any, where: str) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"{where}: must be true or false, not {value!r}")
    return value
