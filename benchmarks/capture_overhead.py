"""Loop-side cost of capturing a metric event: lkmetrics vs LiveKit's recipe.

The recipe builds and prints a Rich table inside the ``metrics_collected`` handler, on the
agent's event loop. lkmetrics only enqueues there; a separate thread renders. This prints the
median time each handler keeps the loop busy, their ratio, and the CLI start-up time; and for a
user's agent calling ``lkmetrics.instrument(session)``, what the LLM's own ``metrics_collected``
emit costs with the capture attached, beside the same emit with a listener that does nothing
(LiveKit's emitter inspects each listener's signature on every emit: that part is not ours).

    python benchmarks/capture_overhead.py [--events 5000]
"""

from __future__ import annotations

import argparse
import io
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

from lkmetrics.pipeline import Pipeline


def make_metric(i: int):  # type: ignore[no-untyped-def]
    from livekit.agents.metrics import LLMMetrics

    return LLMMetrics(label="livekit.agents.inference.llm.LLM", request_id=f"req-{i}",
                      timestamp=time.time(), duration=0.9, ttft=0.31, cancelled=False,
                      completion_tokens=20, prompt_tokens=30, prompt_cached_tokens=0,
                      total_tokens=50, tokens_per_second=22.2)


def time_handler(handler, events) -> list[float]:  # type: ignore[no-untyped-def]
    costs = []
    for ev in events:
        t0 = time.perf_counter_ns()
        handler(ev)
        costs.append((time.perf_counter_ns() - t0) / 1000)
    return costs


def recipe_handler() -> Callable[[Any], None]:
    """LiveKit's LLM Metrics recipe: a Rich table built and printed on the loop."""
    from datetime import datetime

    from rich import box
    from rich.console import Console
    from rich.table import Table

    console = Console(file=io.StringIO(), width=100, force_terminal=True)

    def handler(m: Any) -> None:
        table = Table(title="[bold blue]LLM Metrics Report[/bold blue]", box=box.ROUNDED,
                      highlight=True, show_header=True, header_style="bold cyan")
        table.add_column("Metric", style="bold green")
        table.add_column("Value", style="yellow")
        ts = datetime.fromtimestamp(m.timestamp).strftime("%Y-%m-%d %H:%M:%S")
        for name, value in (("Type", str(m.type)), ("Label", str(m.label)),
                            ("Request ID", str(m.request_id)), ("Timestamp", ts),
                            ("Duration", f"[white]{m.duration:.4f}[/white]s"),
                            ("Time to First Token", f"[white]{m.ttft:.4f}[/white]s"),
                            ("Cancelled", "✓" if m.cancelled else "✗"),
                            ("Completion Tokens", str(m.completion_tokens)),
                            ("Prompt Tokens", str(m.prompt_tokens)),
                            ("Total Tokens", str(m.total_tokens)),
                            ("Tokens/Second", f"{m.tokens_per_second:.2f}")):
            table.add_row(name, value)
        console.print("\n")
        console.print(table)
        console.print("\n")

    return handler


def ours() -> tuple[Callable[[Any], None], Pipeline]:
    from rich.console import Console

    from lkmetrics.agent.capture import Capture
    from lkmetrics.render.jsonl import JsonlWriter
    from lkmetrics.render.live import TableWriter

    console = Console(file=io.StringIO(), width=100, force_terminal=True)
    pipeline = Pipeline([TableWriter(console), JsonlWriter(io.StringIO())])
    capture = Capture(pipeline)
    return capture._on_metrics, pipeline


class NoOp:
    def handler(self, ev: Any) -> None:
        pass


def user_agent(out: str) -> tuple[Callable[[Any], None], Callable[[Any], None], Any]:
    """A user's session with ``lkmetrics.instrument`` on it, as LiveKit sees it started: the
    LLM's emit with the capture listening, another LLM's emit to a listener doing nothing, and
    the session."""
    from livekit.agents import AgentSession, inference
    from livekit.agents.voice.events import AgentStateChangedEvent

    import lkmetrics

    key, secret = "bench-key", "bench-secret-0123456789abcdef0123456789"  # no request is made
    llm = inference.LLM("openai/gpt-4.1-mini", api_key=key, api_secret=secret)
    session: AgentSession[None] = AgentSession(llm=llm)
    lkmetrics.instrument(session, output=out, record=False)
    # what session.start() emits once it is up: instrument attaches to the components here
    session.emit("agent_state_changed",
                 AgentStateChangedEvent(old_state="initializing", new_state="listening"))
    bare = inference.LLM("openai/gpt-4.1-mini", api_key=key, api_secret=secret)
    bare.on("metrics_collected", NoOp().handler)  # a bound method, as Capture's handler is
    return (lambda m: llm.emit("metrics_collected", m),
            lambda m: bare.emit("metrics_collected", m), session)


def startup(argv: list[str], runs: int = 5) -> float:
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=5000)
    args = ap.parse_args()
    events = [make_metric(i) for i in range(args.events)]

    handler, pipeline = ours()
    time_handler(handler, events[:200])  # warm up
    our_costs = time_handler(handler, events)
    pipeline.close(timeout=120)
    recipe = recipe_handler()
    time_handler(recipe, events[:20])
    recipe_costs = time_handler(recipe, events[: max(200, args.events // 10)])

    ours_med = statistics.median(our_costs)
    recipe_med = statistics.median(recipe_costs)
    print(f"events: {len(our_costs)} (lkmetrics), {len(recipe_costs)} (recipe)")
    print(f"lkmetrics loop-side cost per event: median {ours_med:.2f} us, "
          f"p99 {statistics.quantiles(our_costs, n=100)[98]:.2f} us (target <= 20 us)")
    print(f"recipe loop-side cost per event:    median {recipe_med:.0f} us")
    print(f"ratio recipe / lkmetrics: {recipe_med / ours_med:.0f}x (target >= 100x)")
    import tempfile

    from lkmetrics.agent.instrument import close_all

    with tempfile.TemporaryDirectory() as tmp:
        emit, bare_emit, _session = user_agent(f"{tmp}/metrics.jsonl")
        time_handler(emit, events[:200])
        time_handler(bare_emit, events[:200])
        user_costs = time_handler(emit, events)
        bare_costs = time_handler(bare_emit, events)
        close_all()
        with open(f"{tmp}/metrics.jsonl") as f:
            written = sum(1 for _ in f)
    user_med, bare_med = statistics.median(user_costs), statistics.median(bare_costs)
    print(f"user agent with lkmetrics.instrument: LLM metrics_collected emit median "
          f"{user_med:.2f} us (p99 {statistics.quantiles(user_costs, n=100)[98]:.2f} us), "
          f"to a no-op listener {bare_med:.2f} us: instrument adds {user_med - bare_med:.2f} us "
          f"per event ({written} lines written)")
    help_s = startup([sys.executable, "-m", "lkmetrics", "--help"])
    lk_s = startup([sys.executable, "-c", "import livekit.agents"], runs=3)
    print(f"start-up: `lkmetrics --help` {help_s * 1000:.0f} ms; "
          f"`import livekit.agents` alone {lk_s * 1000:.0f} ms")


if __name__ == "__main__":
    main()
