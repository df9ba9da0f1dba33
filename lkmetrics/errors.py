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


def exception_chain(err: BaseException | None, limit: int | None = None) -> list[BaseException]:
    """``err`` and the exceptions it was raised from (``raise ... from``, or while handling),
    outermost first; a cycle ends it, and so does ``limit``. An exception group raised from
    nothing goes on with its first exception: anyio's "All connection attempts failed" is
    raised from a group of the real ``OSError`` s (e.g. EMFILE when no socket could be made)."""
    out: list[BaseException] = []
    seen: set[int] = set()
    while err is not None and id(err) not in seen and (limit is None or len(out) < limit):
        seen.add(id(err))
        out.append(err)
        nxt = err.__cause__ or err.__context__
        group = getattr(err, "exceptions", None)  # an exception group (or its backport)
        if nxt is None and isinstance(group, tuple | list) and group \
                and isinstance(group[0], BaseException):
            nxt = group[0]
        err = nxt
    return out


def root_cause(err: BaseException) -> BaseException:
    """The innermost exception ``err`` was raised from (``raise ... from``, or while handling)."""
    return exception_chain(err)[-1]


def cause_first(err: BaseException, text: str) -> str:
    """``text`` (a wrapper's message, e.g. "Connection error.") with the real cause named
    first: "malformed response stream (JSONDecodeError: ...)", "Too many open files (EMFILE)
    ...". Unchanged when ``err`` is its own root cause or the text already names it."""
    import errno as errnos
    import json

    root = root_cause(err)
    if root is err:
        return text
    if isinstance(root, json.JSONDecodeError | UnicodeDecodeError):
        cause = f"malformed response stream from the server ({type(root).__name__}: {root})"
    elif isinstance(root, OSError) and root.errno is not None:
        name = errnos.errorcode.get(root.errno, str(root.errno))
        cause = f"{root.strerror or root} ({name})"
    else:
        cause = " ".join(f"{type(root).__name__}: {root}".split())
    if cause in text:
        return text
    return f"{cause}; {text.split(' (caused by ')[0]}" if text else cause


class Stopped(Exception):
    """Internal, never shown: :meth:`lkmetrics.background.QueueThread.get` reached the stop mark
    (everything put before it has been handled)."""
