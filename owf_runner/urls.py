"""URL rules: https only (loopback excepted, for the emulator and tests), no user info."""

from __future__ import annotations

import ipaddress
import urllib.parse


def url_problem(url: str) -> str | None:
    try:
        split = urllib.parse.urlsplit(url)
        host = split.hostname
    except ValueError as exc:
        return f"invalid URL {url!r}: {exc}"
    if split.username is not None or split.password is not None:
        return "URLs with user info (user@host) are refused: credentials belong in `credentials`"
    if split.scheme == "https" and host:
        return None
    if split.scheme == "http" and host and is_loopback(host):
        return None
    return f"expected an https URL, found {url!r}"


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
