"""``simulate --scenario FILE``: each turn's own steps happen at their injected timings on the
scripted pipeline (and only on their turn), and every bad scenario is one line, exit 2."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.helpers.common import subprocess_env
from tests.helpers.fakes import RATE, tone, tone_wav
from tests.helpers.llm_server import LLMServer
from tests.helpers.sessions import voice_session

pytestmark = pytest.mark.timeout(180)

FRAME = 0.02
MIN_INTERRUPTION = 0.5  # LiveKit's default min_interruption_duration
SCHEDULING = 0.06  # what the loop may add between a frame and what it triggers
DEFAULT_PAUSE = 0.3  # voice_session's --pause


def turns(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [r for r in records if r["kind"] == "turn"]


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def scenario_lines(path: Path) -> list[Any]:
    from lkmetrics.simulate.caller import lines_of
    from lkmetrics.simulate.scenario import load_scenario
    from lkmetrics.simulate.script import scenario_utterances

    return lines_of(scenario_utterances(load_scenario(path)))


def test_each_turns_steps_happen_on_that_turn_at_their_times(llm_server: LLMServer,
                                                             tmp_path: Path) -> None:
    (tmp_path / "audio").mkdir()
    for name, seconds in (("a", 1.2), ("b", 1.2), ("c", 0.8), ("d", 1.6)):
        tone_wav(tmp_path / "audio" / f"{name}.wav", seconds)
    path = write(tmp_path / "talk.toml", """\
# every step once, each on its own turn
[[turn]]
wav = "audio/a.wav"
words = "First line"
barge_in = 1.0

[[turn]]
wav = "audio/b.wav"   # said over the first reply
words = "Second line"
pause = 2.0

[[turn]]
wav = "audio/c.wav"
words = "Third line"
backchannel = 1.0

[[turn]]
wav = "audio/d.wav"
words = "What is the capital"
pause_mid = 1.5
""")
    llm_server.script.text = "word " * 60  # 300 characters: 3 s of scripted TTS audio
    records, results, _ = asyncio.run(voice_session(
        llm_server, ["First line", "Second line", "Third line", "", "What is", "the capital"],
        lines=scenario_lines(path), llm_ttft=0.1, backchannel=tone(0.7, freq=180.0),
        timeout=40))
    assert [r.ok for r in results] == [True] * 4
    # turn 4's first half is answered on its own: five replies for four lines
    one, two, three, early, four = turns(records)
    # turn 1: the barge-in, 1.0 s into its reply, with turn 2's line; nothing else
    assert one["interrupted"] is True and one["yielded"] is True
    assert MIN_INTERRUPTION - FRAME <= one["time_to_yield"] <= (
        MIN_INTERRUPTION + FRAME + SCHEDULING)
    assert "backchannels" not in one and "eot_mispredictions" not in one
    # turn 2: heard in full, then 2.0 s of silence before turn 3's line (turn 3 waits the
    # default): from a reply's end to the next reply is the pause, the (first part of the)
    # next line, and that reply's e2e latency
    assert two["interrupted"] is False and "time_to_yield" not in two
    gap = three["started_speaking_at"] - two["stopped_speaking_at"]
    assert gap - 0.8 - three["e2e_latency"] == pytest.approx(2.0, abs=0.15)
    from lkmetrics.local.speech import read_wav_pcm16_mono
    from lkmetrics.simulate.script import split_in_two

    half, _ = split_in_two(read_wav_pcm16_mono(tmp_path / "audio" / "d.wav", RATE))
    gap = early["started_speaking_at"] - three["stopped_speaking_at"]
    assert gap - len(half) / RATE - early["e2e_latency"] == pytest.approx(DEFAULT_PAUSE,
                                                                           abs=0.15)
    # turn 3: one backchannel 1.0 s into its reply; the agent paused for it and resumed
    assert three["backchannels"] == 1 and three["false_interruptions"] == 1
    assert three["resumed"] is True and three["interrupted"] is False
    assert MIN_INTERRUPTION - FRAME <= three["talk_over"] <= (
        MIN_INTERRUPTION + FRAME + SCHEDULING)
    assert "time_to_yield" not in three and "eot_mispredictions" not in three
    # turn 4: said in two halves 1.5 s apart, the first half answered on its own
    assert results[3].dynamics["eot_mispredictions"] == 1
    assert early["user_text"] == "What is" and early["interrupted"] is True
    assert "backchannels" not in four and "time_to_yield" not in four
    assert results[3].dynamics["stt_text"] == "What is the capital"
    assert four["stt_wer"] == 0.0


def test_a_turns_own_step_wins_over_the_flag(tmp_path: Path) -> None:
    from lkmetrics.simulate.scenario import load_scenario
    from lkmetrics.simulate.script import Behaviour

    path = write(tmp_path / "s.toml", '[[turn]]\nsay = "One."\npause_mid = 0.4\n'
                                      '[[turn]]\nsay = "Two."\n')
    first, second = load_scenario(path)
    flags = Behaviour(backchannel=0.8, pause_mid=0.6)
    assert first.behaviour.over(flags) == Behaviour(backchannel=0.8, pause_mid=0.4)
    assert second.behaviour.over(flags) == flags


def test_a_byte_order_mark_is_not_part_of_the_scenario(tmp_path: Path) -> None:
    # Windows editors (Notepad) start UTF-8 files with one; TOML itself does not allow it
    from lkmetrics.simulate.scenario import load_scenario

    path = tmp_path / "bom.toml"
    path.write_bytes(b'\xef\xbb\xbf[[turn]]\nsay = "Hi there."\n')
    [turn] = load_scenario(path)
    assert turn.text == "Hi there."


WAV = 'wav = "there.wav"\n'


@pytest.mark.parametrize(("text", "message"), [
    ('[[turn]]\nsay = "Hi.\n', ":2: not valid TOML"),
    ('[[turn]]\nsay = "Hi."\nbarge = 1.0\n', ":3: unknown key 'barge' in a turn"),
    ('title = "x"\n[[turn]]\nsay = "Hi."\n', ":1: unknown key 'title'"),
    ('[[turn]]\nsay = "Hi."\n\n[[turn]]\nsay = "Yo."\npause_mid = -1\n',
     ":6: pause_mid takes seconds above 0"),
    ('[[turn]]\nsay = "Hi."\nbackchannel = 0\n', ":3: backchannel takes seconds above 0"),
    ('[[turn]]\nsay = "Hi."\nbackchannel = nan\n', ":3: backchannel takes seconds above 0"),
    ('[[turn]]\nsay = "Hi."\npause_mid = 1e9\n', ":3: pause_mid takes seconds above 0"),
    ('[[turn]]\nsay = "Hi."\npause = inf\n', ":3: pause takes seconds at least 0"),
    ('[[turn]]\nsay = "Hi."\npause_mid = "1s"\n', ":3: pause_mid takes seconds, a number"),
    ('[[turn]]\nsay = "Hi."\n[[turn]]\nsay = "Yo."\nbarge_in = 1.0\n',
     ":5: barge_in on the last turn"),
    ('[[turn]]\n' + WAV + 'words = "hello"\n', ":2: no such WAV file 'there.wav'"),
    ('[[turn]]\nsay = "Hi."\n' + WAV, ":1: a turn needs exactly one of say"),
    ('[[turn]]\nbarge_in = 1.0\n', ":1: a turn needs exactly one of say"),
    ('[[turn]]\nsay = ""\n', ":2: say takes some words"),
    ('[[turn]]\nsay = "Hi."\nbarge_in = 1\npause = 2\n[[turn]]\nsay = "Yo."\n',
     ":4: pause with barge_in"),
    ('# nothing\n', "no turns"),
])
def test_bad_scenario_is_one_line_with_file_and_line(tmp_path: Path, text: str,
                                                     message: str) -> None:
    path = write(tmp_path / "bad.toml", text)
    proc = run_simulate(["--scenario", str(path)])
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"Error: --scenario {path}"), lines
    assert message in lines[0], lines
    assert proc.stdout == ""


def test_the_wav_is_found_beside_the_scenario_not_in_the_working_directory(
        tmp_path: Path) -> None:
    from lkmetrics.simulate.scenario import load_scenario

    (tmp_path / "sub").mkdir()
    tone_wav(tmp_path / "sub" / "there.wav", 0.3)
    [turn] = load_scenario(write(tmp_path / "sub" / "s.toml",
                                 '[[turn]]\n' + WAV + 'words = "hi there"\n'))
    assert turn.wav == (tmp_path / "sub" / "there.wav").resolve() and turn.text == "hi there"
    from lkmetrics.local.speech import read_wav_pcm16_mono

    assert len(read_wav_pcm16_mono(turn.wav, RATE)) == int(0.3 * RATE) + RATE // 2


@pytest.mark.parametrize(("args", "message"), [
    (["--say", "Hello."], "--scenario and --say both say what the caller says"),
    (["--turns", "2"], "--scenario and --turns both say what the caller says"),
])
def test_scenario_with_say_or_turns_is_one_line(tmp_path: Path, args: list[str],
                                                message: str) -> None:
    path = write(tmp_path / "s.toml", '[[turn]]\nsay = "Hi."\n')
    proc = run_simulate(["--scenario", str(path), *args])
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: ") and message in lines[0], lines


def test_missing_or_binary_scenario_file_is_one_line(tmp_path: Path) -> None:
    empty = write(tmp_path / "b.toml", "")
    for path, message in ((tmp_path / "none.toml", "no such file"),
                          (tmp_path, "not a regular file"), (empty, "no turns")):
        proc = run_simulate(["--scenario", str(path)])
        lines = proc.stderr.strip().splitlines()
        assert proc.returncode == 2 and len(lines) == 1 and message in lines[0], lines
    (tmp_path / "c.toml").write_bytes(b'[[turn]]\nsay = "\xff"\n')
    proc = run_simulate(["--scenario", str(tmp_path / "c.toml")])
    assert proc.returncode == 2 and ":2: not UTF-8 text" in proc.stderr


def run_simulate(args: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "lkmetrics", "simulate", "--local", *args],
                          capture_output=True, text=True, env=subprocess_env(), timeout=60)
