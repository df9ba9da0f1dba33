"""A turn's latency stage by stage (issue 14), through LiveKit's real pipeline: a scripted LLM
streams a first sentence of N pieces at a scripted gap, a scripted TTS answers after its
first-byte delay, and the stages must add up to LiveKit's own e2e latency."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from lkmetrics.records import STAGE_NAMES, Record, turn_stages
from tests.helpers.llm_server import LLMServer
from tests.helpers.sessions import voice_session

pytestmark = pytest.mark.timeout(120)

TTFT = 0.2
GAP = 0.06
FIRST = ["Paris ", "is ", "the ", "capital ", "of ", "France. "]  # the first sentence
REST = ["It ", "has ", "the ", "Eiffel ", "tower."]
TTS_TTFB = 0.1


async def _session(server: LLMServer) -> list[Record]:
    server.script.gap = GAP
    server.script.pieces = FIRST + REST
    records, results, _ = await voice_session(
        server, ["What is the capital of France?", "Tell me more."], llm_ttft=TTFT,
        stt_delay=0.1, tts_ttfb=TTS_TTFB, speech_seconds=0.6)
    assert all(r.ok for r in results), results
    return records


def test_stages_add_up_to_livekits_e2e(llm_server: LLMServer) -> None:
    turns = [r for r in asyncio.run(_session(llm_server)) if r["kind"] == "turn"]
    assert len(turns) == 2
    for t in turns:
        stages = t["stages"]
        assert set(stages) == {*STAGE_NAMES, "overlap", "delivery"}
        # the sentence's last piece arrives (len(FIRST) - 1) gaps after the first token, but
        # LiveKit's sentence tokenizer hands it to the TTS only when the next piece shows
        # that it has ended: one gap more
        wait = len(FIRST) * GAP
        assert stages["first_sentence"] == pytest.approx(wait, abs=0.02), stages
        assert stages["llm_ttft"] == pytest.approx(t["llm_node_ttft"])
        assert stages["tts_ttfb"] >= TTS_TTFB
        assert stages["tools"] is None  # no function tools here
        parts = sum(stages[name] or 0.0 for name in STAGE_NAMES) - stages["overlap"]
        assert parts == pytest.approx(t["e2e_latency"], abs=0.005)
        assert stages["unexplained"] < 0.02, stages
        # LiveKit's default preemptive generation starts the LLM at the final transcript,
        # before the end of the turn is decided: that head start is the overlap
        head_start = t["end_of_turn_delay"] - t["transcription_delay"]
        assert stages["overlap"] == pytest.approx(max(0.0, head_start), abs=0.03), stages


def test_turn_stages_name_what_is_missing_and_show_overlap() -> None:
    # a typed turn: no end of turn, no e2e, so nothing is left to explain
    typed = turn_stages({"llm_node_ttft": 0.2, "llm_node_ttfs": 0.5, "tts_node_ttfb": 0.1})
    assert typed["end_of_turn"] is None and typed["unexplained"] is None
    assert typed["first_sentence"] == pytest.approx(0.3)
    # no TTS: LiveKit reports no ttfs nor ttfb
    no_tts = turn_stages({"llm_node_ttft": 0.2, "end_of_turn_delay": 0.5})
    assert no_tts["first_sentence"] is None and no_tts["tts_ttfb"] is None
    # preemptive generation: the LLM started before the turn was decided
    early: dict[str, Any] = {"e2e_latency": 1.0, "end_of_turn_delay": 0.6,
                             "llm_node_ttft": 0.3, "llm_node_ttfs": 0.5, "tts_node_ttfb": 0.2,
                             "playback_latency": 0.0}
    stages = turn_stages(early, heard_latency=1.04)
    assert stages["unexplained"] == 0.0
    assert stages["overlap"] == pytest.approx(0.3)
    assert stages["delivery"] == pytest.approx(0.04)


def test_a_first_sentence_budget_breaks_and_holds(tmp_path: Any) -> None:
    from lkmetrics.figures import FIGURES_BY_NAME, describe, figure_value
    from tests.helpers.store import run, session_records, write_jsonl

    recs = list(session_records("s_stages", turns=12, seed=2))
    assert run("import", str(write_jsonl(tmp_path / "s.jsonl", recs))).exit_code == 0
    figure = FIGURES_BY_NAME["turn.first_sentence"]
    p95 = describe([v for r in recs if (v := figure_value(figure, r)) is not None])["p95"]
    assert isinstance(p95, float) and p95 > 0
    held = run("report", "--fail-over", f"turn.first_sentence.p95={p95 * 1000 + 1:.0f}ms")
    assert held.exit_code == 0, held.stderr
    broken = run("report", "--fail-over", f"turn.first_sentence.p95={p95 * 1000 - 1:.0f}ms")
    assert broken.exit_code == 1
    assert "turn.first_sentence.p95" in broken.stderr.splitlines()[-1]
