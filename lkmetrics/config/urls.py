"""URLs the user types, checked whole, and the credentials a URL may carry kept out of every
message and record."""

from __future__ import annotations

import re

from lkmetrics.errors import UsageError

_USERINFO_RE = re.compile(r"(?i)\b([a-z][a-z0-9+.\-]*://)[^/\s@]*@")


def mask_userinfo(text: str) -> str:
    """``scheme://user:password@host`` -> ``scheme://***@host``, wherever it appears."""
    return _USERINFO_RE.sub(r"\1***@", text)


def parse_url(option: str, url: str, schemes: tuple[str, ...], example: str) -> str:
    """A URL checked whole: one of ``schemes``, a host, no spaces, a valid port.

    Every message masks the userinfo (``user:password@``) of what it echoes.
    """
    from urllib.parse import urlsplit

    from lkmetrics.safety import add_url

    add_url(url)  # its credentials are masked wherever they come back
    shown = mask_userinfo(url)
    allowed = ", ".join(f"{s}://" for s in schemes)
    problem = None
    if any(c.isspace() or ord(c) < 32 for c in url):
        problem = "must not hold a space or a control character"
    else:
        try:
            parts = urlsplit(url)
            port = parts.port  # raises ValueError for a port that is not a number in range
        except ValueError as e:
            problem = f"must have a valid port ({e})"
        else:
            if parts.scheme.lower() not in schemes:
                problem = f"must be an {allowed.replace('://, ', ':// or ')} URL"
            elif not parts.hostname:
                problem = "must name a host"
            elif port == 0:
                problem = "must not use port 0"
    if problem:
        raise UsageError(f"{option} {problem}, e.g. {example} (got {shown!r}).")
    return url


def check_base_url(url: str | None) -> str | None:
    if url is None:
        return None
    parse_url("--llm-base-url", url, ("http", "https"), "http://127.0.0.1:8080/v1")
    return url.rstrip("/")


def strip_userinfo(url: str | None) -> str | None:
    """The URL without ``user:password@``: records never carry credentials."""
    if url is None:
        return None
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urlunsplit(parts._replace(netloc=host))
