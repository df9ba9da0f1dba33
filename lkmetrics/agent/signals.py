"""SIGTERM handled like Ctrl-C: which signal stopped a run, and a cleanup nothing interrupts.

LiveKit's ``cli.run_app`` owns the signals of the console and room modes: ``console`` and
``run``/``dev`` install handlers that shut down gracefully on SIGINT and SIGTERM alike, while
``connect`` installs none (Ctrl-C then ends in ``os._exit``, SIGTERM kills at once). So
:func:`recorded` installs handlers that stop LiveKit's CLI the way its own first signal does
(its ``_ExitCli``, a SystemExit), and wraps whatever handlers LiveKit installs in their place,
so each run knows which signal ended it (exit 130 or 143) whoever handled it.
:func:`quiet` then notes but ignores both while the summary and the store are written.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Callable, Iterator
from types import FrameType
from typing import Any

HANDLED = (signal.SIGINT, signal.SIGTERM)
EXIT_CODE = {signal.SIGINT: 130, signal.SIGTERM: 143}

Handler = Callable[[int, FrameType | None], Any]


class Stop:
    """The first signal that arrived (None: none did)."""

    def __init__(self) -> None:
        self.signal: int | None = None

    def note(self, sig: int) -> None:
        if self.signal is None:
            self.signal = sig

    @property
    def exit_code(self) -> int | None:
        return None if self.signal is None else EXIT_CODE[signal.Signals(self.signal)]


def status_of(error: BaseException, stop: Stop | None) -> str:
    """The exit status of a session that ``error`` ended: ``terminated`` after SIGTERM,
    ``interrupted`` after Ctrl-C (or the cancellation it causes), else ``error``."""
    import asyncio

    if stop is not None and stop.signal == signal.SIGTERM:
        return "terminated"
    if isinstance(error, KeyboardInterrupt | asyncio.CancelledError) or stop is not None \
            and stop.signal is not None:
        return "interrupted"
    return "error"


@contextlib.contextmanager
def stop_like_ctrl_c(what: str) -> Iterator[Stop]:
    """SIGTERM stops the block as Ctrl-C does; either ends it with
    :class:`~lkmetrics.errors.StoppedBySignal` (exit 130 or 143) naming ``what``, once the
    block has kept what it recorded."""
    from lkmetrics.errors import StoppedBySignal

    with recorded(ctrl_c, (signal.SIGTERM,)) as stop:
        try:
            yield stop
        except KeyboardInterrupt:
            how = ("terminated (SIGTERM)" if stop.signal == signal.SIGTERM
                   else "interrupted (SIGINT)")
            raise StoppedBySignal(f"{what} {how}; the unfinished run's session keeps what it "
                          "recorded.", stop.exit_code or 130) from None


def ctrl_c() -> None:
    """Act as Ctrl-C does: call the SIGINT handler in place (asyncio.run's cancels its main
    task), or raise KeyboardInterrupt when there is none but ours."""
    handler = signal.getsignal(signal.SIGINT)
    if not callable(handler) or getattr(handler, "lkmetrics_first", False):
        raise KeyboardInterrupt
    handler(signal.SIGINT, None)


@contextlib.contextmanager
def recorded(on_first: Callable[[], None],
             install: tuple[signal.Signals, ...] = HANDLED) -> Iterator[Stop]:
    """Note which of SIGINT/SIGTERM arrives and call ``on_first()`` on the first (it may
    raise) of ``install``, unless the code inside installs handlers of its own: those are
    wrapped so the signal is noted too."""
    stop = Stop()
    if threading.current_thread() is not threading.main_thread():
        yield stop
        return
    saved = {sig: signal.getsignal(sig) for sig in HANDLED}
    real_signal = signal.signal

    def ours(sig: int, frame: FrameType | None) -> None:
        first = stop.signal is None
        stop.note(sig)
        if first:
            on_first()

    ours.lkmetrics_first = True  # type: ignore[attr-defined]

    def wrap(handler: Handler) -> Handler:
        def noted(sig: int, frame: FrameType | None) -> Any:
            stop.note(sig)
            return handler(sig, frame)

        return noted

    def spy(sig: int, handler: Any) -> Any:
        if sig in HANDLED and callable(handler):
            handler = wrap(handler)
        return real_signal(sig, handler)

    for sig in install:
        real_signal(sig, ours)
    signal.signal = spy  # type: ignore[assignment]
    try:
        yield stop
    finally:
        signal.signal = real_signal
        for sig, handler in saved.items():
            real_signal(sig, handler)


@contextlib.contextmanager
def quiet(stop: Stop) -> Iterator[None]:
    """SIGINT and SIGTERM noted but ignored while the block runs (the cleanup of a run: the
    summary, the store's exit status, temp dirs and children must not be cut short)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    saved = {sig: signal.getsignal(sig) for sig in HANDLED}
    for sig in HANDLED:
        signal.signal(sig, lambda sig, frame: stop.note(sig))
    try:
        yield
    finally:
        for sig, handler in saved.items():
            signal.signal(sig, handler)
