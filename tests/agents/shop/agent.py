"""A multi-file AgentServer agent: prewarm, userdata, a function tool from a sibling module,
an on_enter greeting, its own metrics_collected handler, a shutdown callback and
on_session_end. Written like a user's agent; the models are the test's scripted ones."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from dotenv import load_dotenv
from inventory import ShopData, count
from livekit.agents import (
    Agent,
    AgentServer,
    AgentSession,
    JobContext,
    JobProcess,
    MetricsCollectedEvent,
    RunContext,
    cli,
    function_tool,
    inference,
)

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import scripted  # noqa: E402

load_dotenv()
REPORT = os.environ.get("FIXTURE_REPORT")


class Shopkeeper(Agent):
    def __init__(self) -> None:
        super().__init__(instructions="You are a shopkeeper. Answer in one short sentence.")

    async def on_enter(self) -> None:
        self.session.generate_reply(instructions="Greet the customer.")

    @function_tool
    async def lookup_stock(self, context: RunContext[ShopData]) -> str:
        """Look up how many apples are in stock."""
        context.userdata.lookups.append("apples")
        return f"{await count('apples', scripted.TOOL_SECONDS)} apples"


server = AgentServer()


def prewarm(proc: JobProcess) -> None:
    proc.userdata["vad"] = scripted.vad()


server.setup_fnc = prewarm


async def session_ended(ctx: JobContext) -> None:
    if REPORT:
        with open(REPORT, "a", encoding="utf-8") as f:
            f.write(json.dumps({"on_session_end": True}) + "\n")


@server.rtc_session(on_session_end=session_ended)
async def shop(ctx: JobContext) -> None:
    seen: list[str] = []
    session: AgentSession[ShopData] = AgentSession(
        userdata=ShopData(),
        stt=scripted.stt(),
        llm=inference.LLM(model="openai/gpt-4.1-mini"),
        tts=scripted.tts(),
        vad=ctx.proc.userdata["vad"],
    )

    @session.on("metrics_collected")
    def _on_metrics(ev: MetricsCollectedEvent) -> None:
        seen.append(ev.metrics.type)

    async def write_report(reason: str) -> None:
        if REPORT:
            with open(REPORT, "a", encoding="utf-8") as f:
                f.write(json.dumps({"metrics": seen, "lookups": session.userdata.lookups})
                        + "\n")

    ctx.add_shutdown_callback(write_report)
    await session.start(agent=Shopkeeper(), room=ctx.room)
    await ctx.connect()


if __name__ == "__main__":
    cli.run_app(server)
