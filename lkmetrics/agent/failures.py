"""A provider failure in one line: which provider (the endpoint, when there is one) and why.

LiveKit reports a request that failed for good as an ``error`` event on the session
(``ErrorEvent`` whose ``error`` is an ``LLMError``/``STTError``/``TTSError`` with
``recoverable=False``, after its retries). :func:`describe` turns it into
``LLM at http://127.0.0.1:18999/v1: connection refused`` or
``LLM at https://api.example.com/v1: HTTP 404 Not Found: The model `x` does not exist``.
"""

from __future__ import annotations

import errno
import http
import os
import socket
from typing import Any

from lkmetrics.errors import exception_chain

KINDS = {"llm_error": "LLM", "stt_error": "STT", "tts_error": "TTS",
         "realtime_model_error": "LLM"}
MAX_DETAIL = 160


def _status_detail(exc: BaseException, code: int) -> str:
    """``HTTP 401 Unauthorized: <the provider's message>``."""
    try:
        phrase = http.HTTPStatus(code).phrase
    except ValueError:
        phrase = ""
    body = getattr(exc, "body", None)
    message = body.get("message") if isinstance(body, dict) else None
    if not isinstance(message, str) or not message:
        message = str(getattr(exc, "message", "") or "")
        prefix = f"Error code: {code}"
        if message.startswith(prefix):
            message = message[len(prefix):].lstrip(" -:")
    head = f"HTTP {code} {phrase}".rstrip()
    if code in (401, 403):
        head += " (check the API key)"
    message = " ".join(message.split())
    return f"{head}: {message}" if message else head


def cause(exc: BaseException | None) -> str:
    """Why a request failed, in a few words: ``connection refused``, ``HTTP 404 Not Found: ...``,
    ``timed out``, ``host not found``, else the innermost error's type and message."""
    chain = exception_chain(exc, limit=12)
    for e in chain:
        code = getattr(e, "status_code", None)
        if isinstance(code, int) and code >= 400:
            return _status_detail(e, code)[:MAX_DETAIL]
    for e in chain:
        if isinstance(e, ConnectionRefusedError):
            return "connection refused"
        if isinstance(e, socket.gaierror):
            return "host not found"
        if isinstance(e, TimeoutError) or type(e).__name__ in ("APITimeoutError",
                                                                "ConnectTimeout", "ReadTimeout"):
            return "timed out"
    for e in reversed(chain):  # a system error (EMFILE, ENOMEM, ...): the cause, named
        if isinstance(e, OSError) and e.errno is not None:
            return os_error(e)
    for e in reversed(chain):  # the innermost error that says something
        text = str(e).strip()
        if text:
            return f"{type(e).__name__}: {' '.join(text.split())}"[:MAX_DETAIL]
    return type(chain[0]).__name__ if chain else "unknown error"


def os_error(e: OSError) -> str:
    """``Too many open files (EMFILE): raise the limit (ulimit -n) or run fewer at once``."""
    assert e.errno is not None
    name = errno.errorcode.get(e.errno, str(e.errno))
    text = f"{e.strerror or os.strerror(e.errno)} ({name})"
    if e.errno in (errno.EMFILE, errno.ENFILE):
        text += ": raise the limit of open files (ulimit -n) or run fewer at once"
    return text


def endpoint(source: Any) -> str | None:
    """The base URL a provider object talks to (the OpenAI plugin's client), if it shows one."""
    client = getattr(source, "_client", None)
    url = getattr(client, "base_url", None)
    return str(url).rstrip("/") if url else None


def who(kind: str, source: Any, base_url: str | None = None) -> str:
    """``LLM at URL`` when the endpoint is known, else ``LLM provider/model`` or ``LLM``."""
    url = (base_url or "").rstrip("/") or endpoint(source)
    if url:
        return f"{kind} at {url}"
    model, provider = getattr(source, "model", None), getattr(source, "provider", None)
    name = f"{provider}/{model}" if model and provider else (model or provider)
    return f"{kind} {name}" if name else kind


def describe(event: Any, base_urls: dict[str, str | None] | None = None) -> str:
    """One line for a LiveKit ``ErrorEvent``; ``base_urls`` maps ``LLM``/``STT``/``TTS`` to the
    endpoint the user gave (it wins over the one the provider object shows)."""
    err = event.error
    kind = KINDS.get(str(getattr(err, "type", "")), "provider")
    inner = getattr(err, "error", err)
    return f"{who(kind, event.source, (base_urls or {}).get(kind))}: {cause(inner)}"


def is_final(event: Any) -> bool:
    """True when LiveKit gave up on the request (no more retries): ``recoverable`` is False."""
    return getattr(event.error, "recoverable", True) is False
