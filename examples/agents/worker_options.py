"""The older WorkerOptions shape: `entrypoint_fnc` and `prewarm_fnc`.

`lkmetrics simulate --agent examples/agents/worker_options.py --local`
"""

from __future__ import annotations

from livekit.agents import Agent, AgentSession, JobContext, JobProcess, WorkerOptions, cli
from livekit.plugins import silero


def prewarm(proc: JobProcess) -> None:
    proc.userdata["vad"] = silero.VAD.load()


async def entrypoint(ctx: JobContext) -> None:
    await ctx.connect()
    session: AgentSession[None] = AgentSession(
        stt="deepgram/nova-3", llm="openai/gpt-4.1-mini", tts="cartesia/sonic-3",
        vad=ctx.proc.userdata["vad"],
        turn_handling={"endpointing": {"min_delay": 0.4}},
    )
    await session.start(agent=Agent(instructions="You are a helpful, brief assistant."),
                        room=ctx.room)
    await session.say("Hello, how can I help?")


opts = WorkerOptions(entrypoint_fnc=entrypoint, prewarm_fnc=prewarm)

if __name__ == "__main__":
    cli.run_app(opts)
