"""A handoff between two agents: the Greeter's tool hands the caller to the Booking agent.
Each turn record names the agent that answered.

`lkmetrics simulate --agent examples/agents/handoff.py --local`
"""

from __future__ import annotations

from dataclasses import dataclass

from livekit.agents import (
    Agent,
    AgentServer,
    AgentSession,
    JobContext,
    RunContext,
    cli,
    function_tool,
)
from livekit.plugins import silero


@dataclass
class Caller:
    name: str | None = None


class Booking(Agent):
    def __init__(self) -> None:
        super().__init__(instructions="You book tables at the restaurant. Be brief.")

    async def on_enter(self) -> None:
        self.session.generate_reply(instructions="Ask for the time of the booking.")


class Greeter(Agent):
    def __init__(self) -> None:
        super().__init__(instructions="You greet callers of a restaurant. When they want a "
                         "table, call start_booking. Be brief.")

    @function_tool
    async def start_booking(self, context: RunContext[Caller]) -> Agent:
        """Hand the caller to the booking agent when they want to book a table."""
        return Booking()


server = AgentServer()


@server.rtc_session()
async def restaurant(ctx: JobContext) -> None:
    session: AgentSession[Caller] = AgentSession(
        userdata=Caller(), stt="deepgram/nova-3", llm="openai/gpt-4.1-mini",
        tts="cartesia/sonic-3", vad=silero.VAD.load())
    await session.start(agent=Greeter(), room=ctx.room)


if __name__ == "__main__":
    cli.run_app(server)
