"""A production-style LiveKit agent that records its own metrics with ``lkmetrics.instrument``.

Run it with LiveKit's own CLI, as any agent:

    python examples/agents/instrumented.py console --text    # or: dev, start

Every session appends its records (component metrics, turns with stages, usage, cost, errors
and a closing summary) to ``$AGENT_METRICS_FILE`` (default ``agent-metrics.jsonl``) and records
them in lkmetrics' store, so ``lkmetrics report last`` summarises the last one.
"""

from __future__ import annotations

import os

from dotenv import load_dotenv
from livekit.agents import (
    Agent,
    AgentServer,
    AgentSession,
    JobContext,
    JobProcess,
    cli,
    inference,
)
from livekit.plugins import silero

import lkmetrics

load_dotenv()


class Assistant(Agent):
    def __init__(self) -> None:
        super().__init__(instructions="You are a helpful voice assistant. Keep replies short.")


def prewarm(proc: JobProcess) -> None:
    proc.userdata["vad"] = silero.VAD.load()


server = AgentServer(setup_fnc=prewarm)


@server.rtc_session()
async def entrypoint(ctx: JobContext) -> None:
    session: AgentSession[None] = AgentSession(
        stt=inference.STT("deepgram/nova-3"),
        llm=inference.LLM("openai/gpt-4.1-mini"),
        tts=inference.TTS("cartesia/sonic-3"),
        vad=ctx.proc.userdata["vad"],
    )
    lkmetrics.instrument(session, output=os.environ.get("AGENT_METRICS_FILE",
                                                        "agent-metrics.jsonl"))
    await session.start(agent=Assistant(), room=ctx.room)


if __name__ == "__main__":
    cli.run_app(server)
