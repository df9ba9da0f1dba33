"""`simulate --agent` on agents shaped like public LiveKit examples (tests/agent/fixtures/):
the drive-thru's multi-file AgentServer with runtime-built tools raising ToolError and a
BackgroundAudioPlayer; the starter template's WorkerOptions under ``__main__`` with prewarm
userdata, ``ctx.wait_for_participant()``, room RPC and an ``on_enter`` greeting. Scripted
components; the measured values are held to the injected ones."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.agent.test_user_agent import AGENTS, LLM_TTFT, TOOL_SECONDS, added_up, records, simulate
from tests.agent.test_user_agent import wav as wav  # noqa: F401 (the fixture)
from tests.helpers.common import subprocess_env
from tests.helpers.llm_server import LLMServer

pytestmark = pytest.mark.timeout(180)


def test_drive_thru_shape_tools_errors_and_background_audio(llm_server: LLMServer, wav: Path,
                                                            tmp_path: Path) -> None:
    llm_server.script.ttft = LLM_TTFT
    llm_server.script.tool_calls = ["list_order", "order_item"]  # the second: no item_id
    report = tmp_path / "report.jsonl"
    result = simulate(llm_server, "--agent", str(AGENTS / "drive" / "agent.py"), "--say",
                      str(wav), "--say", str(wav), FIXTURE_REPORT=str(report))
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    assert "BackgroundAudioPlayer plays to no one" in result.stderr
    recs = records(result.stdout)
    (session,) = [r for r in recs if r["kind"] == "session"]
    assert session["agent_target"] == "agent:server"
    assert session["tools"] == ["list_order", "order_item"]
    ok, failed = [r for r in recs if r["kind"] == "tool"]
    assert ok["name"] == "list_order" and ok["ok"] is True
    assert TOOL_SECONDS <= ok["duration"] < TOOL_SECONDS + 0.1
    assert failed["name"] == "order_item" and failed["ok"] is False  # the ToolError
    assert failed["duration"] < 0.1
    turns = {t["turn"]: t for t in recs if t["kind"] == "turn"}
    first, second = turns[ok["turn"]], turns[failed["turn"]]
    assert TOOL_SECONDS + LLM_TTFT <= first["stages"]["tools"] < TOOL_SECONDS + LLM_TTFT + 0.2
    assert LLM_TTFT <= second["stages"]["tools"] < LLM_TTFT + 0.15  # a failing tool: no wait
    for turn in turns.values():
        assert turn["agent"] == "Attendant"
        assert added_up(turn) == pytest.approx(turn["e2e_latency"], abs=1e-6)
    # on_session_end ran and LiveKit's session report could be built
    (line,) = [json.loads(x) for x in report.read_text().splitlines()]
    assert "chat_history" in line["report"]


def test_starter_shape_main_block_prewarm_rpc_greeting(llm_server: LLMServer,
                                                       wav: Path) -> None:
    llm_server.script.ttft = LLM_TTFT
    result = simulate(llm_server, "--agent", str(AGENTS / "rpc_agent.py"), "--say", str(wav))
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    recs = records(result.stdout)
    (session,) = [r for r in recs if r["kind"] == "session"]
    assert session["agent_target"] == "rpc_agent:__main__"  # cli.run_app(WorkerOptions(...))
    greeting, answer = [r for r in recs if r["kind"] == "turn"]
    # on_enter's session.say: the scripted TTS's 0.1 s to the first byte, no LLM, no e2e
    assert greeting["e2e_latency"] is None and greeting["stages"]["llm_ttft"] is None
    assert 0.1 <= greeting["stages"]["tts_ttfb"] < 0.2
    assert LLM_TTFT <= answer["stages"]["llm_ttft"] < LLM_TTFT + 0.15
    assert added_up(answer) == pytest.approx(answer["e2e_latency"], abs=1e-6)


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_prompt_longer_than_local_context_is_one_line(tmp_path: Path) -> None:
    """A drive-thru-sized menu in the instructions: SmolLM2's 2,048 tokens cannot hold it."""
    agent = tmp_path / "menu_agent.py"
    menu = " ".join(f"Item {i} costs {i} dollars and comes in three sizes." for i in range(400))
    agent.write_text(
        "from livekit.agents import Agent, AgentServer, AgentSession, JobContext, inference\n"
        "server = AgentServer()\n\n"
        "@server.rtc_session()\n"
        "async def entry(ctx: JobContext) -> None:\n"
        "    session = AgentSession(stt=inference.STT('deepgram/nova-3'),\n"
        "                           llm=inference.LLM('openai/gpt-4.1'),\n"
        "                           tts=inference.TTS('cartesia/sonic-3'))\n"
        f"    await session.start(agent=Agent(instructions={menu!r}), room=ctx.room)\n")
    result = subprocess.run(
        [sys.executable, "-m", "lkmetrics", "simulate", "--local", "--agent", str(agent),
         "--say", "Hello."], capture_output=True, text=True, env=subprocess_env(), timeout=290)
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("Error: Agent's instructions are ") and "holds 2,048" in last, last
    tokens = int(last.split("are ", 1)[1].split(" tokens")[0].replace(",", ""))
    assert tokens > 2048


FILLER = AGENTS / "filler_agent.py"


def test_an_llm_the_agents_code_calls_itself_is_measured(llm_server: LLMServer,
                                                         wav: Path) -> None:
    # the fast-preresponse shape: per turn, the filler model's request and the main one's
    # (twice: LiveKit's preemptive request is dropped, as the filler changes the context)
    llm_server.script.ttft = LLM_TTFT
    result = simulate(llm_server, "--agent", str(FILLER), "--say", str(wav))
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr and "replaced" not in result.stderr
    recs = records(result.stdout)
    asked = [body["model"] for body in llm_server.script.requests]
    assert asked.count("openai/gpt-4.1-nano") == 1 and set(asked) == {
        "openai/gpt-4.1-mini", "openai/gpt-4.1-nano"}
    llms = [r for r in recs if r["kind"] == "llm"]
    assert len(llms) == len(asked)  # every request measured, the filler's too
    for rec in llms:
        assert LLM_TTFT <= rec["ttft"] < LLM_TTFT + 0.15


def test_an_llm_the_agents_code_calls_itself_is_replaced_too(llm_server: LLMServer,
                                                             wav: Path) -> None:
    result = simulate(llm_server, "--agent", str(FILLER), "--say", str(wav), "--llm",
                      "test/model-x", "--llm-base-url", llm_server.url)
    assert result.returncode == 0, result.stderr
    lines = [line for line in result.stderr.splitlines() if "replaced by" in line]
    assert lines == [  # the session has no LLM: nothing is said of it
        "lkmetrics: Filler's LLM openai/gpt-4.1-mini replaced by test/model-x at "
        f"{llm_server.url} (--llm)",
        "lkmetrics: an LLM the agent's code calls itself, openai/gpt-4.1-nano, replaced by "
        f"test/model-x at {llm_server.url} (--llm)"]
    assert {body["model"] for body in llm_server.script.requests} == {"model-x"}
    assert len([r for r in records(result.stdout) if r["kind"] == "llm"]) == len(
        llm_server.script.requests)


def test_a_session_the_agents_code_keeps_open_is_stopped_with_where_it_waits(
        llm_server: LLMServer, wav: Path) -> None:
    # the filler model fails for good: the agent's on_user_turn_completed then awaits a
    # future nothing resolves, and LiveKit's session close would wait for it forever
    llm_server.script.status = 500
    result = simulate(llm_server, "--agent", str(FILLER), "--say", str(wav), "--timeout", "5")
    assert result.returncode == 1, result.stderr
    assert ("lkmetrics: the agent's session did not close within 10 s: its code still waits "
            "in Filler.on_user_turn_completed (filler_agent.py:") in result.stderr


def test_a_fallback_adapters_requests_are_recorded_once(llm_server: LLMServer,
                                                        wav: Path) -> None:
    # the adapter re-emits the metrics of the model that answered; both are captured
    result = simulate(llm_server, "--agent", str(AGENTS / "fallback_agent.py"), "--say",
                      str(wav))
    assert result.returncode == 0, result.stderr
    asked = [body["model"] for body in llm_server.script.requests]
    assert asked and set(asked) == {"openai/gpt-4.1-mini"}  # the first model answered
    llms = [r for r in records(result.stdout) if r["kind"] == "llm"]
    assert len(llms) == len(asked)
