"""One exception tree; the CLI maps it to a one-line message and an exit code."""

from __future__ import annotations


class LkmetricsError(Exception):
    """An error the user can act on. ``str(err)`` is the whole message, one line."""

    exit_code = 1


class UsageError(LkmetricsError):
    """Bad input on the command line, in the environment or in .env (exit code 2)."""

    exit_code = 2


class StoreError(LkmetricsError):
    """The metrics database cannot be opened, read or written."""

    exit_code = 1


class NotFoundError(LkmetricsError):
    """A session or model asked for does not exist in the store."""

    exit_code = 1


class MissingExtraError(LkmetricsError):
    """An optional dependency is not installed; the message says what to install."""

    exit_code = 2


class Interrupted(StoreError):
    """Ctrl-C during an import or export; what an import committed stays (exit code 130)."""

    exit_code = 130


class StoppedBySignal(LkmetricsError):
    """A run stopped by Ctrl-C (exit code 130) or SIGTERM (143); what it recorded stays."""

    def __init__(self, message: str, exit_code: int = 130) -> None:
        super().__init__(message)
        self.exit_code = exit_code


class BudgetExceeded(LkmetricsError):
    """One or more budgets are broken (exit code 1); the message names each."""

    exit_code = 1


class BenchFailed(LkmetricsError):
    """A bench's requests or turns failed, or a budget broke (exit code 1); the message says
    which."""

    exit_code = 1


class LocalModelError(LkmetricsError):
    """A local model (the llama.cpp server, Whisper, Piper) failed to start or run."""

    exit_code = 1


class Stopped(Exception):
    """Internal, never shown: :meth:`lkmetrics.background.QueueThread.get` reached the stop mark
    (everything put before it has been handled)."""
