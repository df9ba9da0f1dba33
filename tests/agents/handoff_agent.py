"""A handoff: the Receptionist's tool returns the Specialist, who answers from then on."""

from __future__ import annotations

import scripted
from livekit.agents import (
    Agent,
    AgentServer,
    AgentSession,
    JobContext,
    RunContext,
    cli,
    function_tool,
    inference,
)


class Specialist(Agent):
    def __init__(self) -> None:
        super().__init__(instructions="You are the fruit specialist.")


class Receptionist(Agent):
    def __init__(self) -> None:
        super().__init__(instructions="You are the receptionist.")

    @function_tool
    async def transfer_to_specialist(self, context: RunContext[None]) -> tuple[Agent, str]:
        """Transfer the caller to the fruit specialist."""
        return Specialist(), "Transferring you now."


server = AgentServer()


@server.rtc_session()
async def entrypoint(ctx: JobContext) -> None:
    session: AgentSession[None] = AgentSession(
        stt=scripted.stt(), llm=inference.LLM(model="openai/gpt-4.1-mini"), tts=scripted.tts(),
        vad=scripted.vad())
    await session.start(agent=Receptionist(), room=ctx.room)


if __name__ == "__main__":
    cli.run_app(server)
