"""Conversation dynamics measured at the caller against known injected timings: a barge-in's
time to yield, backchannels and false interruptions, premature ends of turn on a paused line,
talk-over, and the word error rate of a known transcript."""

from __future__ import annotations

import asyncio
from typing import Any

import numpy as np
import pytest

from lkmetrics.simulate.script import Behaviour
from tests.helpers.fakes import tone
from tests.helpers.llm_server import LLMServer
from tests.helpers.sessions import voice_session

pytestmark = pytest.mark.timeout(120)

FRAME = 0.02
MIN_INTERRUPTION = 0.5  # LiveKit's default min_interruption_duration: speech before it stops
SCHEDULING = 0.06  # what the loop may add between a frame and the pause it triggers


def turns(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [r for r in records if r["kind"] == "turn"]


def silence(seconds: float) -> np.ndarray:
    return np.zeros(int(seconds * 16000), dtype=np.int16)


def test_barge_in_yields_after_livekits_interruption_delay(llm_server: LLMServer) -> None:
    llm_server.script.text = "word " * 60  # 300 characters: 3 s of scripted TTS audio
    speech = [np.concatenate([tone(1.2), silence(0.25)]) for _ in range(2)]
    records, results, _ = asyncio.run(voice_session(
        llm_server, ["First line.", "Second line."], speech=speech, llm_ttft=0.1,
        behaviour=Behaviour(barge_in=1.0), timeout=30))
    first, second = turns(records)[:2]
    # the caller started its next line 1.0 s into a 3 s reply; LiveKit pauses the agent once
    # it has heard MIN_INTERRUPTION of speech (a frame at a time), then interrupts it
    assert first["interrupted"] is True and first["yielded"] is True
    assert MIN_INTERRUPTION - FRAME <= first["time_to_yield"] <= (
        MIN_INTERRUPTION + FRAME + SCHEDULING)
    assert results[0].dynamics["time_to_yield"] == first["time_to_yield"]
    # the caller talked over the agent from its onset until the agent went quiet
    assert first["talk_over"] == pytest.approx(first["time_to_yield"], abs=0.03)
    # the last line has no next line to barge in with: its reply is heard in full
    assert second["interrupted"] is False and "time_to_yield" not in second
    assert [r.ok for r in results] == [True, True]


def test_reply_shorter_than_the_barge_in_delay_is_no_barge_in(llm_server: LLMServer) -> None:
    llm_server.script.text = "Short reply here."  # 17 characters: 0.17 s of audio
    records, results, _ = asyncio.run(voice_session(
        llm_server, ["One.", "Two."], llm_ttft=0.1, behaviour=Behaviour(barge_in=1.0)))
    first = turns(records)[0]
    assert first["interrupted"] is False
    assert first.get("time_to_yield") is None and "yielded" not in first
    assert first["barge_in"] == "no barge-in (reply ended at 0.2 s)"
    assert [r.ok for r in results] == [True, True]


def test_wer_of_a_known_wrong_transcript(llm_server: LLMServer) -> None:
    records, _, _ = asyncio.run(voice_session(
        llm_server, ["what is the capitol of France", "Hello, world!"],
        spoken=["What is the capital of France?", "hello world"], llm_ttft=0.1))
    first, second = turns(records)
    from jiwer import wer

    assert first["stt_wer"] == pytest.approx(
        wer("what is the capital of france", "what is the capitol of france"))
    assert first["stt_wer"] == pytest.approx(1 / 6)
    assert second["stt_wer"] == 0.0  # case and punctuation do not count
    assert first["spoken_text"] == "What is the capital of France?"
    assert first["stt_text"] == "what is the capitol of France"


def test_wer_reaches_the_summary_and_the_live_line(llm_server: LLMServer) -> None:
    from lkmetrics.render.turns import dynamics_note

    records, _, _ = asyncio.run(voice_session(
        llm_server, ["what is the capitol of France", "Hello, world!"],
        spoken=["What is the capital of France?", "hello world"], llm_ttft=0.1))
    summary = records[-1]
    assert summary["figures"]["stt.wer"]["count"] == 2
    assert summary["figures"]["stt.wer"]["mean"] == pytest.approx(1 / 12)
    assert dynamics_note(turns(records)[0]) == "stt wer 0.167"  # the registry's name, 1/6


def test_backchannel_that_pauses_the_agent_is_a_false_interruption_it_resumes(
        llm_server: LLMServer) -> None:
    llm_server.script.text = "word " * 100  # 5 s of scripted TTS audio
    backchannel = tone(0.7, freq=180.0)  # long enough (>= 0.5 s) for LiveKit to pause
    records, results, _ = asyncio.run(voice_session(
        llm_server, ["First line.", ""], llm_ttft=0.1,  # the backchannel transcribes to ""
        behaviour=Behaviour(backchannel=1.0), backchannel=backchannel, timeout=30))
    [turn] = turns(records)
    assert turn["backchannels"] == 1
    # the agent paused once it had heard MIN_INTERRUPTION of it, then resumed when no words
    # came (LiveKit's resume_false_interruption), and said so in its own event
    assert turn["false_interruptions"] == 1 and turn["resumed"] is True
    assert turn["livekit_false_interruptions"] == 1 and turn["livekit_resumed"] is True
    assert turn["interrupted"] is False
    assert MIN_INTERRUPTION - FRAME <= turn["talk_over"] <= MIN_INTERRUPTION + FRAME + SCHEDULING
    assert results[0].dynamics["backchannels"] == 1
    from lkmetrics.render.turns import dynamics_note

    assert dynamics_note(turn) == "1 backchannel, agent stopped and resumed"


@pytest.mark.parametrize(("pause", "early"), [(0.2, 0), (1.5, 1)])
def test_a_long_mid_line_pause_is_answered_early(llm_server: LLMServer, pause: float,
                                                  early: int) -> None:
    # a 0.2 s pause is shorter than the fake VAD's 0.3 s silence: one utterance; a 1.5 s one
    # ends the turn (0.3 s of silence, then LiveKit's 0.5 s endpointing) before the rest comes
    transcripts = ["What is the capital"] if early == 0 else ["What is", "the capital"]
    records, results, _ = asyncio.run(voice_session(
        llm_server, transcripts, speech=[np.concatenate([tone(1.6), silence(0.25)])],
        spoken=["What is the capital?"], llm_ttft=0.1,
        behaviour=Behaviour(pause_mid=pause), timeout=30))
    assert results[0].ok
    assert results[0].dynamics["eot_mispredictions"] == early
    assert sum(t.get("eot_mispredictions") or 0 for t in turns(records)) == early
    assert turns(records)[-1]["stt_wer"] == 0.0  # both halves heard, joined


@pytest.mark.parametrize(("args", "message"), [
    (["--barge-in", "-1"], "--barge-in takes seconds above 0"),
    (["--barge-in", "0"], "--barge-in takes seconds above 0"),
    (["--backchannel", "nan"], "--backchannel takes seconds above 0"),
    (["--pause-mid", "1e9"], "--pause-mid takes seconds above 0"),
    (["--barge-in", "1", "--say", "Hello there."], "the script has one line"),
])
def test_bad_behaviour_is_one_line_and_exit_2(args: list[str], message: str) -> None:
    import subprocess
    import sys

    from tests.helpers.common import subprocess_env

    proc = subprocess.run([sys.executable, "-m", "lkmetrics", "simulate", "--local", *args],
                          capture_output=True, text=True, env=subprocess_env(), timeout=60)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: ") and message in lines[0], lines
    assert proc.stdout == ""
