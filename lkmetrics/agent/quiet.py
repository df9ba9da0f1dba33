"""One line per failed LLM, STT or TTS request instead of LiveKit's tracebacks and retry notes;
LiveKit's notes that do not apply to an lkmetrics run dropped, the others explained.

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


class LiveKitNotes(logging.Filter):
    """LiveKit's notes that do not apply to an lkmetrics run, dropped, and those that do, said
    in words that explain them (at info level: they are not problems)."""

    def filter(self, record: logging.LogRecord) -> bool:
        msg = str(record.msg)
        if msg.startswith("failed to create AdaptiveInterruptionDetector"):
            # no LiveKit Inference credentials: interruptions come from the VAD, as intended
            record.msg = ("interruptions are detected by the VAD (adaptive interruption "
                          "detection needs LiveKit Inference credentials)")
            record.args = ()
            record.levelno, record.levelname = logging.INFO, "INFO"
        elif msg.startswith("LIVEKIT_INFERENCE_URL is set but"):
            # said whether or not the URL is set: what happens is the local model is used
            record.msg = ("turn detection uses the local turn-detector-v1-mini model (LiveKit "
                          "Inference's needs %s)")
            record.levelno, record.levelname = logging.INFO, "INFO"
        return True


_FILTER = OneLineApiErrors()
_NOTES = LiveKitNotes()
DEPRECATED_CONSOLE = "console mode is deprecated"


def quiet_console() -> None:
    """Drop LiveKit's "console mode is deprecated, use lk agent console" banner: lkmetrics
    runs LiveKit's console on purpose, ``lk agent console`` would not measure anything."""
    try:
        from livekit.agents.cli import _legacy

        console = _legacy.AgentsConsole.get_instance()
    except Exception:  # a LiveKit release without it: nothing to quiet
        return
    shown = console.print
    if getattr(shown, "lkmetrics_quiet", False):
        return

    def print_(child: Any, **kw: Any) -> None:
        if isinstance(child, str) and child.startswith(DEPRECATED_CONSOLE):
            return
        shown(child, **kw)

    print_.lkmetrics_quiet = True  # type: ignore[attr-defined]
    console.print = print_  # type: ignore[method-assign]


def install(loggers: Any = LOGGERS, *, reported: bool = False) -> None:
    """Attach the filter to LiveKit's loggers (idempotent; in every process that runs a
    session). ``reported``: the caller reports failed requests, so LiveKit's lines about them
    are dropped."""
    _FILTER.reported = reported
    for name in loggers:
        logger = logging.getLogger(name)
        for f in (_FILTER, _NOTES):
            if f not in logger.filters:
                logger.addFilter(f)
