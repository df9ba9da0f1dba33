"""One line per failed LLM, STT or TTS request instead of LiveKit's tracebacks and retry notes.

An unreachable ``--llm-base-url`` makes LiveKit log a warning per retry and a traceback when it
gives up, for every turn. The failure itself is still recorded (an ``error`` record, from the
session's ``error`` event); on stderr a request that failed is one line, naming the error.
"""

from __future__ import annotations

import logging
from typing import Any

# the loggers LiveKit reports provider failures on
LOGGERS = ("livekit.agents", "livekit.plugins.openai")
# what LiveKit logs when it gives up on a session after repeated failures
CLOSING = "AgentSession is closing due to unrecoverable error"


def _api_error(exc: BaseException | None) -> BaseException | None:
    """The LiveKit API error in ``exc`` or its causes (a failed request), or None."""
    from livekit.agents import APIError

    seen = 0
    while exc is not None and seen < 10:
        if isinstance(exc, APIError):
            return exc
        exc = exc.__cause__ or exc.__context__
        seen += 1
    return None


class OneLineApiErrors(logging.Filter):
    """Drops LiveKit's per-retry warnings and turns a failed request's traceback into one line;
    with ``reported`` (simulate, bench voice: the caller names the failure itself) drops it."""

    reported = False

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if record.levelno == logging.WARNING and "retrying in" in message and (
                message.startswith("failed to")):
            return False  # the final failure is reported once, below
        if self.reported and message.startswith(CLOSING):
            return False
        exc = record.exc_info[1] if record.exc_info else None
        api = _api_error(exc)
        if api is None:
            return True
        if self.reported:
            return False
        from lkmetrics.agent.failures import cause

        record.msg = f"{message.rstrip('.')}: {cause(api)}"
        record.args = ()
        record.exc_info = None
        record.exc_text = None
        return True


_FILTER = OneLineApiErrors()


def install(loggers: Any = LOGGERS, *, reported: bool = False) -> None:
    """Attach the filter to LiveKit's loggers (idempotent; in every process that runs a
    session). ``reported``: the caller reports failed requests, so LiveKit's lines about them
    are dropped."""
    _FILTER.reported = reported
    for name in loggers:
        logger = logging.getLogger(name)
        if _FILTER not in logger.filters:
            logger.addFilter(_FILTER)
