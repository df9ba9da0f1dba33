"""A tool-calling AgentServer agent: `lkmetrics simulate --agent examples/agents/weather_agent.py`.

Run it as LiveKit would (`python weather_agent.py console`), or measured by lkmetrics:
`lkmetrics console --agent examples/agents/weather_agent.py`; offline: add `--local`.
"""

from __future__ import annotations

import asyncio

from livekit.agents import (
    Agent,
    AgentServer,
    AgentSession,
    JobContext,
    JobProcess,
    RunContext,
    cli,
    function_tool,
    inference,
)
from livekit.plugins import silero


class WeatherAgent(Agent):
    def __init__(self) -> None:
        super().__init__(instructions="You are a weather assistant. Answer in one short "
                         "sentence. Use lookup_weather for any question about the weather.")

    async def on_enter(self) -> None:
        self.session.generate_reply(instructions="Greet the user briefly.")

    @function_tool
    async def lookup_weather(self, context: RunContext, location: str) -> str:
        """Look up the current weather in a location.

        Args:
            location: The city, e.g. Paris.
        """
        await asyncio.sleep(0.2)  # a weather service's round trip
        return f"It is sunny and 21 degrees in {location}."


server = AgentServer()


def prewarm(proc: JobProcess) -> None:
    proc.userdata["vad"] = silero.VAD.load()


server.setup_fnc = prewarm


@server.rtc_session()
async def weather(ctx: JobContext) -> None:
    session: AgentSession[None] = AgentSession(
        stt=inference.STT(model="deepgram/nova-3"),
        llm=inference.LLM(model="openai/gpt-4.1-mini"),
        tts=inference.TTS(model="cartesia/sonic-3", voice="9626c31c-bec5-4cca-baa8-f8ba9e84c8bc"),
        vad=ctx.proc.userdata["vad"],
    )
    await session.start(agent=WeatherAgent(), room=ctx.room)
    await ctx.connect()


if __name__ == "__main__":
    cli.run_app(server)
