"""Typer wiring of ``lkmetrics bench``: options in, a call into the core, output out.

Registers itself on the main app (``app.add_typer(bench_app, name="bench")``). Nothing here
imports livekit; the driver is imported once the options are valid.
"""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Annotated

import typer

from lkmetrics.cli.app import app
from lkmetrics.cli.options import (
    FLEET_OPTIONS,
    BackchannelOpt,
    BargeInOpt,
    PauseMidOpt,
    ScenarioOpt,
    format_option,
    given_on_command_line,
    inherited,
    resolve_format,
    with_options,
)
from lkmetrics.config.defaults import (
    DEFAULT_INSTRUCTIONS,
    DEFAULT_LLM,
    DEFAULT_STT,
    DEFAULT_TTS,
    DEFAULT_VOICE,
    OutputFormat,
)
from lkmetrics.config.options import FleetOptions
from lkmetrics.figures import REQUEST_FIGURES

bench_app = typer.Typer(
    name="bench",
    help="Benchmark agent components through LiveKit's own classes: an LLM endpoint (bench "
    "llm), or whole voice stacks with simulated callers (bench voice).",
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode="rich",
)

# the figures of bench llm, shown in its help by the names its table gives them
_TTFT, _TPOT, _ITL, _LATENCY = (f.shown for f in REQUEST_FIGURES)
DEFINITIONS = (
    "Definitions (the table's names), with the names vLLM's benchmark_serving and NVIDIA "
    f"AIPerf give them: {_TTFT} = time from sending the request to the first streamed "
    f"chunk with content (vLLM ttft, AIPerf time_to_first_token); {_ITL} = the gaps between "
    f"consecutive content chunks (vLLM itl, AIPerf inter_chunk_latency); {_TPOT} = "
    f"({_LATENCY} - {_TTFT}) / (output tokens - 1), per request with more than one output "
    f"token (vLLM tpot, AIPerf inter_token_latency); {_LATENCY} = time from sending the "
    "request to the end of the stream, after the usage chunk and [DONE] (vLLM e2el; AIPerf's "
    "request_latency ends at the last content chunk instead); output tokens from the usage "
    "chunk (completion_tokens), else one per content chunk; output tokens/s and requests/s "
    "over the run's wall time (first request sent to last one done), counting successful "
    "requests. Each figure: mean, p50, p90, p95, p99, max."
)


BENCH_FORMATS = (OutputFormat.table, OutputFormat.json)
# bench voice's agent options (parameter -> the name --agent's override rules know it by)
TYPED = {"stt": "stt", "llm": "llm", "tts": "tts", "voice_id": "voice",
         "instructions": "instructions", "greet": "greet", "llm_base_url": "llm_base_url",
         "local": "local"}


@bench_app.command("llm")
@with_options(FLEET_OPTIONS)
def llm(
    ctx: typer.Context,
    fleet: FleetOptions,
    model: Annotated[list[str] | None, typer.Option(
        "--llm", metavar="MODEL",
        help=f"PROVIDER/MODEL (LiveKit Inference, default {DEFAULT_LLM}), or 'local' "
        "(SmolLM2 on llama.cpp). Repeatable: every model is benchmarked in turn.",
        show_default=False)] = None,
    llm_base_url: Annotated[str | None, typer.Option(
        "--llm-base-url", metavar="URL",
        help="Any OpenAI-compatible endpoint (vLLM, Ollama, llama.cpp, a gateway) through "
        "LiveKit's OpenAI plugin; the model sent is the part of --llm after the first '/'. "
        "Key from OPENAI_API_KEY (may be empty).")] = None,
    requests: Annotated[int, typer.Option(
        "--requests", "-n", metavar="N",
        help="Requests per model and concurrency (warm-up not counted).")] = 20,
    concurrency: Annotated[list[str] | None, typer.Option(
        "--concurrency", "-c", metavar="C",
        help="Requests in flight at once: repeatable or a comma list (1,4,16), one run per "
        "value. Default 1.", show_default=False)] = None,
    prompt: Annotated[str | None, typer.Option(
        "--prompt", metavar="TEXT", help="The user message to send.")] = None,
    prompts: Annotated[Path | None, typer.Option(
        "--prompts", metavar="FILE", dir_okay=False,
        help="Prompts, one a line, used in turn: plain text, or a JSON list of chat "
        'messages ([{"role": "user", "content": "..."}]).')] = None,
    max_tokens: Annotated[int, typer.Option(
        "--max-tokens", metavar="N",
        help="The output cap of each request (max_completion_tokens; max_tokens for "
        "--llm local).")] = 128,
    warmup: Annotated[int, typer.Option(
        "--warmup", metavar="N",
        help="Requests sent before each run (by each worker process) and not counted or "
        "recorded.")] = 1,
    request_timeout: Annotated[float | None, typer.Option(
        "--request-timeout", metavar="SECONDS",
        help="The deadline of each whole request (a request past it is an error); default "
        "30 s plus 0.25 s per --max-tokens token.", show_default=False)] = None,
    workers: Annotated[str, typer.Option(
        "--workers", metavar="N|auto",
        help="Worker processes each run's in-flight requests are spread over, each with its "
        "own event loop, so the client's own CPU does not delay the chunks it measures. auto: "
        "one per 8 requests in flight, at most one per CPU (1 up to --concurrency 8).")
    ] = "auto",
    fail_over: Annotated[list[str] | None, typer.Option(
        "--fail-over", metavar="FIGURE.STAT=LIMIT",
        help="A budget over LiveKit's LLM metrics, as in report: llm.ttft, llm.duration or "
        "llm.decode_rate; STAT mean, p50, p90, p95, p99, max; e.g. llm.ttft.p95=500ms. "
        "Repeatable; checked per run.", show_default=False)] = None,
    fmt: Annotated[str | None, format_option(BENCH_FORMATS)] = None,
    db: Annotated[Path | None, typer.Option(
        "--db", metavar="PATH", dir_okay=False,
        help="Record the runs into this SQLite file (default: $LKMETRICS_HOME/metrics.db).",
        show_default=False)] = None,
    no_record: Annotated[bool, typer.Option(
        "--no-record", help="Do not record the runs in the database.")] = False,
) -> None:
    """Benchmark LLM endpoints through LiveKit's own LLM classes.

    For each model and concurrency: TTFT, TPOT, ITL and request latency (mean, p50, p90,
    p95, p99, max), output tokens/s, requests/s and errors. Retries are off, so a failed
    request counts as an error. Each run is recorded as a session (command `bench llm`) with
    LiveKit's LLMMetrics as its llm records, for report, compare and budgets; all the runs of
    one invocation share a bench id (`lkmetrics report --bench ID`). Exit 0 when every request
    succeeded and every budget held, else 1.
    """
    from lkmetrics.bench.llm import core
    from lkmetrics.bench.llm.command import run_llm_bench
    from lkmetrics.config.envfile import load_env_file
    from lkmetrics.errors import UsageError

    out_format = resolve_format(ctx, fmt, BENCH_FORMATS, OutputFormat.table, parent_env=False)
    if inherited(ctx, "output", None, parent_env=False) is not None:
        raise UsageError("--output does not apply to `lkmetrics bench llm`; its records go "
                         "to the store (lkmetrics export reads them back).")
    load_env_file(inherited(ctx, "env_file", None, parent_env=False))
    config = core.make_config(
        models=model, base_url=llm_base_url, requests=requests, concurrency=concurrency,
        prompt=prompt, prompts_file=prompts, max_tokens=max_tokens, warmup=warmup,
        fail_over=fail_over, default_model=DEFAULT_LLM, workers=workers,
        request_timeout=request_timeout)
    run_llm_bench(config, json_out=out_format is OutputFormat.json, db=db,
                  record=not no_record, fleet=fleet)


llm.__doc__ = f"{inspect.cleandoc(llm.__doc__ or '')}\n\n{DEFINITIONS}"


@bench_app.command("voice")
@with_options(FLEET_OPTIONS)
def voice(
    ctx: typer.Context,
    fleet: FleetOptions,
    agent: Annotated[str | None, typer.Option(
        "--agent", metavar="TARGET",
        help="Your own agent instead of the built-in one: agent.py, agent.py:NAME or "
        "package.module:NAME (an AgentServer, WorkerOptions or entrypoint). Every caller runs "
        "it with its instructions and tools; its own STT/LLM/TTS are used unless --stt/--llm/"
        "--tts/--voice/--llm-base-url/--local is typed, which replace that stage in every "
        "session (one stderr line each).", show_default=False)] = None,
    stt: Annotated[list[str] | None, typer.Option(
        "--stt", metavar="MODEL",
        help=f"STT as PROVIDER/MODEL (LiveKit Inference, default {DEFAULT_STT}) or 'local' "
        "(Whisper). Repeatable: every STT x LLM x TTS combination runs.",
        show_default=False)] = None,
    llm: Annotated[list[str] | None, typer.Option(
        "--llm", metavar="MODEL",
        help=f"LLM as PROVIDER/MODEL (default {DEFAULT_LLM}) or 'local' (SmolLM2). "
        "Repeatable.", show_default=False)] = None,
    tts: Annotated[list[str] | None, typer.Option(
        "--tts", metavar="MODEL",
        help=f"TTS as PROVIDER/MODEL (default {DEFAULT_TTS}) or 'local' (Piper). Repeatable.",
        show_default=False)] = None,
    local: Annotated[bool, typer.Option(
        "--local", help="'local' is the default of every stage not given (needs "
        "lkmetrics\\[local]; no keys, no network).")] = False,
    voice_id: Annotated[str, typer.Option(
        "--voice", metavar="ID", help="TTS voice id.")] = DEFAULT_VOICE,
    instructions: Annotated[str, typer.Option(
        "--instructions", help="The agent's instructions.")] = DEFAULT_INSTRUCTIONS,
    greet: Annotated[bool, typer.Option(
        "--greet/--no-greet", help="Let each agent greet its caller first (not measured).")
    ] = False,
    llm_base_url: Annotated[str | None, typer.Option(
        "--llm-base-url", metavar="URL",
        help="Any OpenAI-compatible endpoint for the --llm models (not 'local'); key from "
        "OPENAI_API_KEY (may be empty).")] = None,
    say: Annotated[list[str] | None, typer.Option(
        "--say", metavar="WAV|TEXT",
        help="An utterance: a WAV file or text spoken with the local Piper voice. "
        "Repeatable. Default: the three built-in spoken questions.")] = None,
    repeat: Annotated[int, typer.Option(
        "--repeat", metavar="N", help="Each caller says the utterances N times.")] = 1,
    concurrency: Annotated[list[str] | None, typer.Option(
        "--concurrency", "-c", metavar="N",
        help="Simulated callers at once, each its own AgentSession sharing the loaded "
        "models: repeatable or a comma list (1,2,4,8), one run per value. Default 1.",
        show_default=False)] = None,
    timeout: Annotated[float, typer.Option(
        "--timeout", metavar="SECONDS", help="Seconds a caller waits for each reply.")] = 60.0,
    fail_over: Annotated[list[str] | None, typer.Option(
        "--fail-over", metavar="FIGURE.STAT=LIMIT",
        help="A budget, as in report (e.g. e2e.p95=1.5s, heard.p95=2s, llm.ttft.p50=500ms); "
        "checked per run; the load curve reports the highest concurrency at which every "
        "budget held. Repeatable.", show_default=False)] = None,
    fmt: Annotated[str | None, format_option(BENCH_FORMATS)] = None,
    db: Annotated[Path | None, typer.Option(
        "--db", metavar="PATH", dir_okay=False,
        help="Record the sessions into this SQLite file (default: $LKMETRICS_HOME/metrics.db).",
        show_default=False)] = None,
    no_record: Annotated[bool, typer.Option(
        "--no-record", help="Do not record the sessions in the database.")] = False,
    barge_in: BargeInOpt = None,
    backchannel: BackchannelOpt = None,
    pause_mid: PauseMidOpt = None,
    scenario: ScenarioOpt = None,
    sweep: Annotated[str | None, typer.Option(
        "--sweep", metavar="NAME=V1,V2,...",
        help="Run each stack once per value of one of LiveKit's settings, in seconds: "
        "min_endpointing_delay, max_endpointing_delay (the session's endpointing) or "
        "min_silence_duration (the Silero VAD's, loaded with it); prints per value e2e p50/p95 "
        "against premature ends of turn per line (with --pause-mid) and turns answered.",
        show_default=False)] = None,
) -> None:
    """Benchmark voice stacks end to end with simulated callers, in process.

    Every STT x LLM x TTS combination runs the same utterances (--say, --repeat) through
    LiveKit's real pipeline, as `simulate` does, at each --concurrency: N callers talking at
    once, each with its own paced microphone and speaker. The combinations are ranked by e2e
    p50; one table shows e2e p50/p95, heard latency p50/p95 and failed turns, the next the p50
    of each stage (end of utterance, transcription, LLM TTFT, TTS TTFB); with several
    concurrencies, the load curve and the highest concurrency that kept every --fail-over
    budget. Heard latency is the caller's own clock: its speech end to the first audible
    sample of the reply. Each caller is a session (command `bench voice`) under one bench id:
    `lkmetrics report --bench ID`.

    With --agent, every caller talks to your agent (an AgentServer, WorkerOptions or
    entrypoint) instead, with the components the flags name replacing its own.
    --barge-in, --backchannel, --pause-mid and --scenario make the callers talk like people
    (as in simulate) and add a table of each stack's time to yield, false interruptions,
    premature ends of turn and STT WER; --sweep runs each stack once per value of an endpointing
    setting, showing e2e latency against premature ends of turn.
    Exit 0 when every turn got a reply and every budget held, else 1.
    """
    from lkmetrics.bench.voice import core
    from lkmetrics.bench.voice.command import run_voice_bench
    from lkmetrics.config.envfile import load_env_file
    from lkmetrics.simulate.script import Behaviour

    out_format = resolve_format(ctx, fmt, BENCH_FORMATS, OutputFormat.table, parent_env=False)
    load_env_file(inherited(ctx, "env_file", None, parent_env=False))
    typed = frozenset(name for param, name in TYPED.items()
                      if given_on_command_line(ctx, param))
    config = core.make_config(
        stt=stt, llm=llm, tts=tts, local=local, voice=voice_id, instructions=instructions,
        greet=greet, llm_base_url=llm_base_url, say=tuple(say or ()), repeat=repeat,
        concurrency=concurrency, timeout=timeout, fail_over=fail_over, agent=agent,
        typed=typed, behaviour=Behaviour(barge_in, backchannel, pause_mid), scenario=scenario,
        sweep=sweep)
    run_voice_bench(config, json_out=out_format is OutputFormat.json, db=db,
                    record=not no_record, fleet=fleet)


app.add_typer(bench_app, name="bench")
