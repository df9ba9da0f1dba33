"""lkmetrics' AgentServer hosting the user's agent (``console``/``run``/``dev``/``connect``
``--agent``): its setup loads the user's module in the job process and calls the user's
setup (prewarm), its entrypoint calls the user's, and every AgentSession that code starts is
captured (:mod:`lkmetrics.agent.hooks`) into this process's pipeline (a relay in a job
process). The user's ``on_request`` and ``on_session_end`` are called through functions of
this module, so job processes never unpickle the user's functions.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from livekit.agents import AgentServer, JobContext, JobProcess, JobRequest

from lkmetrics.agent import server
from lkmetrics.agent.hooks import Hooks, activate, active
from lkmetrics.agent.user import UserAgent, describe_failure, load_reporting, print_traceback
from lkmetrics.config.settings import AgentSettings
from lkmetrics.errors import LkmetricsError

log = logging.getLogger("lkmetrics")
START_TIMEOUT = 30.0  # seconds: an entrypoint that starts no AgentSession by then is named

_user: UserAgent | None = None
_models: dict[Any, Any] = {}  # lkmetrics' replacement models, apart from the user's userdata


def user_agent(settings: AgentSettings) -> UserAgent:
    """The user's agent, imported once per process (a failure: its traceback, and
    :class:`~lkmetrics.agent.user.UserCodeError` naming it)."""
    global _user
    if _user is None:
        assert settings.agent is not None
        _user = load_reporting(settings.agent)
    return _user


def setup(proc: JobProcess) -> None:
    server.setup_process(proc, _models)
    settings = AgentSettings.from_env()
    user = user_agent(settings)
    activate(Hooks(settings, _models, server.process_pipeline, resolved=user.resolved))
    if user.setup is not None:
        user.setup(proc)


async def entrypoint(ctx: JobContext) -> None:
    settings = AgentSettings.from_env()
    user = user_agent(settings)
    hooks = active()
    pipeline = server.process_pipeline()

    async def _flush(reason: str) -> None:
        if hooks is not None:
            hooks.end_all()
        await asyncio.to_thread(pipeline.flush)

    ctx.add_shutdown_callback(_flush)
    watch = asyncio.ensure_future(_watch_start(hooks, settings))
    try:
        await user.entrypoint(ctx)
    except LkmetricsError as e:  # lkmetrics' own refusal (e.g. a prompt too long for --local)
        log.error("Error: %s", e)
        raise
    except Exception as e:
        print_traceback(e)
        log.error(describe_failure(settings.agent or "", "the entrypoint"))
        raise
    finally:
        if not watch.done() and (hooks is None or hooks.sessions):
            watch.cancel()


async def _watch_start(hooks: Hooks | None, settings: AgentSettings) -> None:
    await asyncio.sleep(START_TIMEOUT)
    if hooks is not None and not hooks.sessions:
        log.warning("--agent %s: the entrypoint started no AgentSession within %.0f s",
                    settings.agent, START_TIMEOUT)


async def on_request(req: JobRequest) -> None:
    user = user_agent(AgentSettings.from_env())
    if user.on_request is not None:
        await user.on_request(req)
    else:
        await req.accept()


async def on_session_end(ctx: JobContext) -> None:
    user = user_agent(AgentSettings.from_env())
    if user.on_session_end is not None:
        result = user.on_session_end(ctx)
        if asyncio.iscoroutine(result):
            await result


def build_server(settings: AgentSettings) -> AgentServer:
    """The server LiveKit's ``cli.run_app`` runs for ``--agent``: the user's agent name,
    request and session-end functions; lkmetrics' setup and entrypoint around the user's."""
    user = user_agent(settings)
    agent_server = AgentServer(setup_fnc=setup)
    agent_server.rtc_session(entrypoint, agent_name=user.agent_name, on_request=on_request,
                             on_session_end=on_session_end)
    return agent_server
