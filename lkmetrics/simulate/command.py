"""``lkmetrics simulate`` end to end: validate, load the models, run the scripted session,
report each turn's outcome and record the exit status. Imports livekit only when it runs."""

from __future__ import annotations

import contextlib
import signal
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lkmetrics.agent import signals
from lkmetrics.config.options import AgentOptions, OutputOptions
from lkmetrics.config.prepare import prepare
from lkmetrics.config.settings import AgentSettings
from lkmetrics.errors import UsageError
from lkmetrics.simulate.script import Behaviour

if TYPE_CHECKING:
    from lkmetrics.simulate.scenario import ScenarioTurn

MAX_TURNS = 100_000  # each turn holds its utterance's audio in memory
MAX_SECONDS = 86_400.0  # NaN fails every comparison, so it is refused too


@dataclass(frozen=True)
class Script:
    """What the caller says and how: ``--say``, ``--turns``, ``--pause``, ``--timeout``."""

    say: tuple[str, ...] = ()
    turns: int = 1
    pause: float = 1.0
    timeout: float = 60.0
    record_audio: Path | None = None
    behaviour: Behaviour = Behaviour()
    scenario: Path | None = None  # --scenario FILE: the lines and their steps


def refuse_silent_agent(settings: AgentSettings) -> None:
    """The simulated caller waits for a reply it hears: an agent without a TTS never speaks,
    so every turn would only time out. Refused, before anything loads."""
    if settings.tts is None and (settings.agent is None or "tts" in settings.replace):
        raise UsageError(
            "--tts none cannot be simulated: the simulated caller measures the reply it hears, "
            "and without a TTS the agent never speaks. Give a TTS (e.g. --tts local), or use "
            "`lkmetrics console --tts none` for text replies.")


def run_simulation(script: Script, agent: AgentOptions, out: OutputOptions) -> int:
    """0 when every turn got a reply, 1 when any timed out or failed, 130 on Ctrl-C."""
    if not 1 <= script.turns <= MAX_TURNS:
        raise UsageError(f"--turns must be from 1 to {MAX_TURNS:,} (got {script.turns}).")
    if not (0 < script.timeout <= MAX_SECONDS and 0 <= script.pause <= MAX_SECONDS):
        raise UsageError(f"--timeout must be above 0 and --pause at least 0, both at most "
                         f"{MAX_SECONDS:,} seconds (got {script.timeout}, {script.pause}).")
    from lkmetrics.simulate.scenario import checked_script

    turns = checked_script(script.scenario, script.say, script.turns, script.behaviour)
    settings = prepare("simulate", agent, out.show)
    refuse_silent_agent(settings)
    if settings.stt is None:
        settings.turn_detection = "vad"  # nothing to detect turns from but the audio
    from lkmetrics.fleet import check_fleet_options

    settings.otlp_url = check_fleet_options(out.prometheus_port, out.otlp)
    from lkmetrics.safety import console

    err = console(stderr=True)
    code = 1
    # SIGTERM does what Ctrl-C does; Ctrl-C stays asyncio's (it cancels the session's task)
    with signals.recorded(signals.ctrl_c, (signal.SIGTERM,)) as stop, \
            contextlib.ExitStack() as stack:
        try:
            return _simulate(script, turns, settings, out, err, stack, stop)
        except KeyboardInterrupt:  # before the session started: nothing to close
            return stop.exit_code or 130
    return code


def _simulate(script: Script, turns: list[ScenarioTurn] | None, settings: AgentSettings,
              out: OutputOptions, err: Any, stack: contextlib.ExitStack,
              stop: signals.Stop) -> int:
    from lkmetrics.agent.output import open_output

    with err.status("Loading LiveKit and the models..."):
        from lkmetrics.simulate import run as sim
        from lkmetrics.simulate.caller import lines_of
        from lkmetrics.simulate.script import (
            backchannel_pcm,
            load_utterances,
            scenario_utterances,
        )

        utterances = (scenario_utterances(turns) if turns is not None
                      else load_utterances(script.say, script.turns))
        lines = lines_of(utterances)
        backchannel = backchannel_pcm(utterances, script.behaviour)
    if settings.llm == "local":
        from lkmetrics.local.llm_server import start_local_llm

        settings.llm_base_url, settings.llm_model = start_local_llm(stack)
    with err.status("Loading LiveKit and the models..."):
        from lkmetrics.agent.server import build_components, load_models

        userdata: dict[Any, Any] = {}
        load_models(settings, userdata)
        components = build_components(settings, userdata) if settings.agent is None else None
    user = None
    if settings.agent is not None:
        from lkmetrics.simulate.user import load_user

        user = load_user(settings.agent)
    output = open_output(out, settings.show)
    from lkmetrics.pipeline import FirstError

    first_error = FirstError()  # a turn that got no reply names the component that failed
    output.writers.append(first_error)
    pipeline = output.pipeline()
    if settings.otlp_url:
        from lkmetrics.fleet import start_livekit_tracing

        stack.callback(start_livekit_tracing(settings.otlp_url))
    code = 1
    status = None
    try:
        if user is not None:
            from lkmetrics.simulate import user as user_sim

            results = user_sim.run(settings, user, userdata, pipeline, lines,
                                   pause=script.pause, timeout=script.timeout,
                                   record_dir=script.record_audio,
                                   behaviour=script.behaviour, backchannel=backchannel)
        else:
            assert components is not None
            results = sim.run(settings, components, pipeline, lines, pause=script.pause,
                              timeout=script.timeout, record_dir=script.record_audio,
                              behaviour=script.behaviour, backchannel=backchannel)
        failed = [r for r in results if not r.ok]
        missing = len(utterances) - len(results)
        from lkmetrics.safety import text

        pipeline.flush()
        for r in failed:  # one line each, however narrow the terminal
            why = first_error.explain(r.error or "") if r.timed_out else r.error
            err.print(text(f"turn {r.index} ({utterances[r.index - 1].label}): {why}", "red"),
                      soft_wrap=True)
        if missing:
            err.print(text(f"{missing} turn(s) not run after the failure", "red"))
        code = 1 if failed or missing else 0
        if any(r.timed_out for r in failed):
            status = "timeout"
    except KeyboardInterrupt:
        code = 130
    finally:
        with signals.quiet(stop):  # SIGTERM (or Ctrl-C) as well as the end of the script
            code = stop.exit_code or code
            output.close(pipeline, code, status=None if stop.signal else status)
    return code
