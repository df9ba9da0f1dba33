"""LiveKit's notes that do not apply to an lkmetrics run are dropped, the others explained
(issue 20): the console deprecation banner, the turn detector's "LIVEKIT_INFERENCE_URL is set"
when it is not, and the adaptive interruption detector's failure without credentials."""

from __future__ import annotations

import io
import logging

import pytest

from lkmetrics.agent import quiet


def emit(msg: str, *args: object, level: int = logging.WARNING) -> list[logging.LogRecord]:
    """Log through the real ``livekit.agents`` logger with the filters installed; what a
    handler on it receives."""
    quiet.install()
    seen: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            seen.append(record)

    logger = logging.getLogger("livekit.agents")
    handler = Keep(logging.DEBUG)
    logger.addHandler(handler)
    try:
        logger.log(level, msg, *args)
    finally:
        logger.removeHandler(handler)
    return seen


def test_turn_detector_fallback_is_explained_not_misreported() -> None:
    (record,) = emit("LIVEKIT_INFERENCE_URL is set but %s missing; falling back to the "
                     "turn-detector-v1-mini model", "LIVEKIT_INFERENCE_URL, LIVEKIT_API_KEY")
    text = record.getMessage()
    assert "is set" not in text and record.levelno == logging.INFO
    assert text == ("turn detection uses the local turn-detector-v1-mini model (LiveKit "
                    "Inference's needs LIVEKIT_INFERENCE_URL, LIVEKIT_API_KEY)")


def test_adaptive_interruption_failure_is_an_info_note() -> None:
    (record,) = emit("failed to create AdaptiveInterruptionDetector")
    assert record.levelno == logging.INFO
    assert record.getMessage().startswith("interruptions are detected by the VAD")


def test_other_livekit_warnings_pass_unchanged() -> None:
    (record,) = emit("something else %d", 3)
    assert record.getMessage() == "something else 3" and record.levelno == logging.WARNING


def test_console_deprecation_banner_is_dropped(monkeypatch: pytest.MonkeyPatch) -> None:
    from livekit.agents.cli import _legacy

    console = _legacy.AgentsConsole.get_instance()
    buf = io.StringIO()
    monkeypatch.setattr(console.console, "file", buf)
    monkeypatch.setattr(console, "print", console.print)  # undone after the test
    quiet.quiet_console()
    quiet.quiet_console()  # idempotent
    console.print("console mode is deprecated and will be removed in a future release.",
                  tag="Deprecated")
    console.print("Starting console mode", tag="Agents")
    out = buf.getvalue()
    assert "deprecated" not in out and "Starting console mode" in out
