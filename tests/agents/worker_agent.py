"""The older WorkerOptions shape: entrypoint_fnc and prewarm_fnc, TurnHandlingOptions, a
greeting said with session.say after start."""

from __future__ import annotations

import scripted
from livekit.agents import (
    Agent,
    AgentSession,
    JobContext,
    JobProcess,
    WorkerOptions,
    cli,
    inference,
)


def prewarm(proc: JobProcess) -> None:
    proc.userdata["vad"] = scripted.vad()


async def entrypoint(ctx: JobContext) -> None:
    await ctx.connect()
    session: AgentSession[None] = AgentSession(
        stt=scripted.stt(),
        llm=inference.LLM(model="openai/gpt-4.1-mini"),
        tts=scripted.tts(),
        vad=ctx.proc.userdata["vad"],
        turn_handling={"turn_detection": "vad", "endpointing": {"min_delay": 0.2}},
    )
    await session.start(agent=Agent(instructions="You are terse."), room=ctx.room)


opts = WorkerOptions(entrypoint_fnc=entrypoint, prewarm_fnc=prewarm)

if __name__ == "__main__":
    cli.run_app(opts)
