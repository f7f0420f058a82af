"""URL rules: https only (loopback excepted, for the emulator and tests), no user info,
a host that DNS could know and a port that exists — checked before anything is sent."""

from __future__ import annotations

import ipaddress
import re
import urllib.parse

import httpx2

from owf_runner.redaction import quoted

_LABEL = r"[A-Za-z0-9_]([A-Za-z0-9_-]*[A-Za-z0-9_])?"
_HOST_NAME = re.compile(rf"{_LABEL}(\.{_LABEL})*\.?")
HOST_RULE = "ASCII letters, digits, -, _ and . only; an international name in its xn-- form"


def url_problem(url: str) -> str | None:
    try:
        split = urllib.parse.urlsplit(url)
        host, port = split.hostname, split.port
        httpx2.URL(url)
    except (ValueError, httpx2.InvalidURL) as exc:
        return f"invalid URL {quoted(url)}: {exc}"
    if split.username is not None or split.password is not None:
        return "URLs with user info (user@host) are refused: credentials belong in `credentials`"
    if port == 0:
        return f"invalid URL {quoted(url)}: port 0"
    if host and not _is_host(host):
        return f"invalid URL {quoted(url)}: {quoted(host)} is not a host name ({HOST_RULE})"
    if split.scheme == "https" and host:
        return None
    if split.scheme == "http" and host and is_loopback(host):
        return None
    return f"expected an https URL, found {quoted(url)}"


def emulator_url_problem(url: str) -> str | None:
    """An emulator URL is http(s) on loopback: a real client assertion never leaves the host."""
    try:
        parsed = urllib.parse.urlsplit(url)
        host, port = parsed.hostname, parsed.port
    except ValueError as exc:
        return f"is not a valid URL ({exc}): {url!r}"
    if parsed.scheme not in {"http", "https"} or port == 0 or "@" in parsed.netloc:
        return f"must be an http URL like http://127.0.0.1:8080, not {url!r}"
    if not host or not is_loopback(host):
        return f"must be a loopback URL (127.0.0.1, ::1, localhost), not {host or ''!r}"
    return None


def _is_host(host: str) -> bool:
    """An IP address or an ASCII DNS name.

    International names are refused as written: the token URL is the assertion's
    audience, and Okta compares it with the xn-- form it knows itself by.
    """
    try:
        ipaddress.ip_address(host)
        return True
    except ValueError:
        return _HOST_NAME.fullmatch(host) is not None


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def flow_id_of(url: str) -> str | None:
    """The flow id (or alias) in ``.../api/flo/{id}/invoke``."""
    parts = urllib.parse.urlsplit(url).path.split("/")
    if len(parts) >= 4 and parts[-1] == "invoke" and parts[-3] == "flo":
        return parts[-2]
    return None
