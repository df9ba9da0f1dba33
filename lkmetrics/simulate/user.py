"""``simulate --agent``: the user's entrypoint run in this process under a fake job (LiveKit's
``testing.fake_job_context``), its first AgentSession talked to by the scripted caller.

The caller's microphone and speaker take the room's place (:class:`lkmetrics.agent.hooks.Hooks`
drops ``room=``); the user's setup (prewarm), shutdown callbacks and ``on_session_end`` run as
LiveKit would run them.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from lkmetrics.agent.capture import Capture
from lkmetrics.agent.hooks import Hooks, activated_here
from lkmetrics.agent.user import (
    UserAgent,
    UserCodeError,
    describe_failure,
    load_reporting,
    print_traceback,
)
from lkmetrics.config.settings import AgentSettings
from lkmetrics.errors import LkmetricsError
from lkmetrics.pipeline import Pipeline
from lkmetrics.safety import printable
from lkmetrics.simulate.caller import Caller, Line, PacedAudioInput, RealtimeSpeaker, TurnResult
from lkmetrics.simulate.run import as_lines, audio_saver, make_caller
from lkmetrics.simulate.script import Behaviour

START_TIMEOUT = 30.0  # seconds for the entrypoint to start its AgentSession
GREETING_GRACE = 1.0  # seconds for an agent that speaks first to begin


def fail(exc: BaseException, spec: str, what: str) -> UserCodeError:
    """The user's traceback on stderr, and the error that says where it came from."""
    print_traceback(exc)
    return UserCodeError(describe_failure(spec, what))


async def simulate_user(
    settings: AgentSettings,
    user: UserAgent,
    userdata: dict[Any, Any],
    pipeline: Pipeline,
    utterances: Sequence[np.ndarray | Line],
    *,
    behaviour: Behaviour | None = None,
    backchannel: np.ndarray | None = None,
    pause: float = 1.0,
    timeout: float = 60.0,
    record_dir: Path | None = None,
    info: Mapping[str, Any] | None = None,
    on_turn: Callable[[TurnResult], None] | None = None,
    start_timeout: float = START_TIMEOUT,
    say: Callable[[str], None] | None = None,
) -> list[TurnResult]:
    """Run the user's entrypoint and speak each utterance to its first session.

    The hooks act in this task only (so several callers can run on one loop); ``say`` prints
    the override lines (default: stderr, once per line).

    Raises :class:`UserCodeError` (after printing the user's traceback) when the user's code
    fails, and LkmetricsError when no session starts within ``start_timeout``."""
    from livekit.agents.testing import fake_job_context

    from lkmetrics.agent import quiet
    from lkmetrics.simulate.room import SimulatedRoom

    quiet.install(reported=True)  # the caller names a failed request
    mic = PacedAudioInput()
    speaker = RealtimeSpeaker()
    speaker.keep_frames = record_dir is not None
    loop = asyncio.get_running_loop()
    first: asyncio.Future[tuple[Any, Capture]] = loop.create_future()
    ios = iter([(mic, speaker)])

    def io() -> tuple[Any, Any]:  # the caller for the first session, silence for the others
        return next(ios, (PacedAudioInput(), RealtimeSpeaker()))

    def on_session(session: Any, capture: Capture) -> None:
        if not first.done():
            first.set_result((session, capture))

    hooks = Hooks(settings, userdata, lambda: pipeline, resolved=user.resolved, io=io,
                  on_session=on_session, info=dict(info or {}), say=say)
    results: list[TurnResult] = []
    task: asyncio.Task[Any] | None = None
    failure: BaseException | None = None
    try:
        with activated_here(hooks), fake_job_context(room=SimulatedRoom()) as ctx:
            try:
                if user.setup is not None:
                    user.setup(ctx.proc)
            except Exception as e:
                raise fail(e, settings.agent or "", "the setup (prewarm) function") from None
            task = asyncio.ensure_future(user.entrypoint(ctx))
            await asyncio.wait({first, task}, timeout=start_timeout,
                               return_when=asyncio.FIRST_COMPLETED)
            if not first.done():
                if task.done() and not task.cancelled() and task.exception() is not None:
                    failure = task.exception()
                else:
                    raise LkmetricsError(
                        f"--agent {settings.agent}: the entrypoint started no AgentSession "
                        f"within {start_timeout:.0f} s" + (" (it returned)" if task.done() else "")
                        + ".")
            else:
                session, capture = first.result()
                caller = make_caller(session, capture, mic, speaker, settings, behaviour,
                                     backchannel)
                results = await _talk(caller, utterances, pause=pause, timeout=timeout,
                                      record_dir=record_dir, on_turn=on_turn)
            if task.done() and not task.cancelled() and task.exception() is not None:
                failure = task.exception()
            await _close(hooks, ctx, user, task)
            task = None
    finally:
        mic.close()
        if task is not None:
            task.cancel()
            with contextlib.suppress(BaseException):
                await task
            for session in hooks.sessions:
                with contextlib.suppress(Exception):
                    await close_session(session, user)
        hooks.end_all()
    if isinstance(failure, LkmetricsError):  # lkmetrics' own refusal (e.g. prompt too long)
        raise failure
    if failure is not None:
        raise fail(failure, settings.agent or "", "the entrypoint") from None
    return results


load_user = load_reporting


async def _talk(caller: Caller, utterances: Sequence[np.ndarray | Line], *, pause: float,
                timeout: float, record_dir: Path | None,
                on_turn: Callable[[TurnResult], None] | None) -> list[TurnResult]:
    """The scripted caller's turns with the session (after any greeting of its own)."""
    await caller.settle(GREETING_GRACE, timeout)
    caller.speaker.take_frames()
    return await caller.converse(as_lines(utterances), timeout, pause, on_turn=on_turn,
                                 on_audio=audio_saver(record_dir, caller.mic.sample_rate))


async def _close(hooks: Hooks, ctx: Any, user: UserAgent, task: asyncio.Task[Any]) -> None:
    """End the job as LiveKit does: close the sessions, then on_session_end and the shutdown
    callbacks (the user's, e.g. logging usage), then stop a still-running entrypoint."""
    for session in hooks.sessions:
        await close_session(session, user)
    if user.on_session_end is not None and hooks.sessions:  # none started: no session to end
        await _user_hook("on_session_end", user.on_session_end, ctx)
    for callback in list(getattr(ctx, "_shutdown_callbacks", [])):
        await _user_hook("shutdown callback", callback, "simulation ended")
    if not task.done():
        task.cancel()
    with contextlib.suppress(BaseException):  # its failure was taken before
        await task


# how long a session may take to close: LiveKit's drain waits for the agent's code (e.g. an
# on_user_turn_completed awaiting a future nothing resolves), and would wait forever
CLOSE_TIMEOUT = 10.0


async def close_session(session: Any, user: UserAgent, timeout: float = CLOSE_TIMEOUT) -> None:
    """``session.aclose()``, for at most ``timeout`` seconds: a session the agent's own code
    keeps open is left (one line naming where that code waits), as LiveKit ends a job that
    does not stop; the run's records are kept."""
    try:
        await asyncio.wait_for(session.aclose(), timeout)
    except asyncio.TimeoutError:
        waiting = waiting_in(user)
        print(printable(f"lkmetrics: the agent's session did not close within {timeout:.0f} s"
                        + (f": its code still waits in {', '.join(waiting)}" if waiting else "")
                        + "; it was stopped"), file=sys.stderr, flush=True)


def waiting_in(user: UserAgent) -> list[str]:
    """Where the agent's own code waits, in the tasks of this loop: ``function (file:line)``
    for the innermost frame of each task that is in the agent's folder."""
    folder = Path(user.target.path).resolve().parent if user.target.path else None
    found: list[str] = []
    for task in asyncio.all_tasks():
        if task is asyncio.current_task():
            continue
        mine = [f for f in _frames(task) if folder is not None and _inside(
            f.f_code.co_filename, folder)]
        if mine:
            frame = mine[-1]
            where = (f"{frame.f_code.co_qualname} ({Path(frame.f_code.co_filename).name}:"
                     f"{frame.f_lineno})")
            if where not in found:
                found.append(where)
    return found


def _frames(task: asyncio.Task[Any]) -> list[Any]:
    """The frames of a suspended task, outermost first, down the chain of awaits
    (``Task.get_stack()`` gives only the outermost one)."""
    frames = []
    coro: Any = task.get_coro()
    while coro is not None:
        frame = (getattr(coro, "cr_frame", None) or getattr(coro, "gi_frame", None)
                 or getattr(coro, "ag_frame", None))
        if frame is None:
            break
        frames.append(frame)
        coro = (getattr(coro, "cr_await", None) or getattr(coro, "gi_yieldfrom", None)
                or getattr(coro, "ag_await", None))
    return frames


def _inside(filename: str, folder: Path) -> bool:
    path = Path(filename)
    return path.is_absolute() and folder in path.parents and "site-packages" not in path.parts


async def _user_hook(what: str, fn: Callable[..., Any], *args: Any) -> None:
    """Call one of the user's end-of-job functions; if it raises, its traceback and one line
    (as LiveKit logs it), and the job ends as it would: the records are kept."""
    try:
        await _maybe_await(fn(*args))
    except Exception as e:
        print_traceback(e)
        print(f"lkmetrics: the agent's {what} {getattr(fn, '__name__', '')} raised "
              f"{type(e).__name__} (the traceback above is from the agent's code)",
              file=sys.stderr, flush=True)


async def _maybe_await(value: Any) -> None:
    if asyncio.iscoroutine(value) or isinstance(value, asyncio.Future):
        await value


def run(settings: AgentSettings, user: UserAgent, userdata: dict[Any, Any], pipeline: Pipeline,
        utterances: Sequence[np.ndarray | Line], *, pause: float, timeout: float,
        record_dir: Path | None, behaviour: Behaviour | None = None,
        backchannel: np.ndarray | None = None) -> list[TurnResult]:
    """Run :func:`simulate_user` on a fresh event loop (blocking)."""
    return asyncio.run(simulate_user(settings, user, userdata, pipeline, utterances,
                                     pause=pause, timeout=timeout, record_dir=record_dir,
                                     behaviour=behaviour, backchannel=backchannel))
