"""``bench llm``'s core: validated options, prompts, per-request results and the run figures.

Pure: no livekit, no I/O but reading the prompts file. The requests themselves are made by
:mod:`lkmetrics.bench.llm.driver` through LiveKit's LLM classes; this module turns what it measured
into the figures vLLM's ``benchmark_serving`` and NVIDIA AIPerf report, with the same
definitions (see :data:`lkmetrics.cli.bench.DEFINITIONS`).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lkmetrics.analysis.budgets import Budget, BudgetResult, check_budgets, parse_budget
from lkmetrics.analysis.report import FigureRow, Report
from lkmetrics.bench.shared import MAX_COUNT, parse_concurrency, raise_failures
from lkmetrics.errors import UsageError
from lkmetrics.figures import FIGURES, REQUEST_FIGURES, SPREAD_STATS, describe, figure_value
from lkmetrics.records import Record
from lkmetrics.safety import check_depth, read_text

SCHEMA = 1
KIND = "bench_llm"
STATS = SPREAD_STATS
FIGURE_NAMES = tuple(f.name for f in REQUEST_FIGURES)  # ttft, tpot, itl, latency
DEFAULT_PROMPT = "Explain in three sentences why the sky is blue."
ROLES = ("system", "developer", "user", "assistant")

Message = tuple[str, str]  # (role, content)
Prompt = tuple[Message, ...]


# -- options ----------------------------------------------------------------------------------


# bounds where an argument reaches an allocator or a loop: far above any real bench
MAX_WORKERS = 64  # processes, each with LiveKit imported (~100 MB)
PER_WORKER = 8  # --workers auto: one process per this many requests in flight


def parse_workers(value: str | None) -> int | None:
    """``--workers N`` (1..MAX_WORKERS) or ``auto`` (None, the default)."""
    text = "auto" if value is None else value.strip().lower()
    if text == "auto":
        return None
    try:
        n = int(text)
    except ValueError:
        raise UsageError(f"--workers expects a whole number or auto (got {value!r}).") from None
    if n < 1:
        raise UsageError(f"--workers must be at least 1 (got {n}).")
    if n > MAX_WORKERS:
        raise UsageError(f"--workers must be at most {MAX_WORKERS} (got {n}).")
    return n


def auto_workers(concurrency: int, cpus: int | None) -> int:
    """One process per PER_WORKER requests in flight, at most one per CPU."""
    return max(1, min(cpus or 1, -(-concurrency // PER_WORKER)))


def _messages_of(value: Any) -> Prompt | None:
    """A prompt from a JSON line: a list of {"role", "content"} objects, an object with a
    ``messages`` list, or a JSON string (one user message). None when it is none of these."""
    if isinstance(value, str):
        return (("user", value),) if value.strip() else None
    if isinstance(value, dict) and "messages" in value:
        value = value["messages"]
    if not isinstance(value, list) or not value:
        return None
    messages: list[Message] = []
    for m in value:
        if not isinstance(m, dict):
            return None
        role, content = m.get("role"), m.get("content")
        if role not in ROLES or not isinstance(content, str):
            return None
        messages.append((role, content))
    return tuple(messages)


def parse_prompts_text(text: str, name: str) -> list[Prompt]:
    """Prompts from a file's text: one per line, plain text or a JSON line of chat messages.

    Blank lines are skipped. A line that starts with ``[`` or ``{`` must be valid: a bad one is
    a usage error naming ``FILE:LINE``."""
    prompts: list[Prompt] = []
    for lineno, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line:
            continue
        if line[0] in "[{\"":
            where = f"{name}:{lineno}"
            check_depth(line, where)
            try:
                value = json.loads(line)
            except json.JSONDecodeError as e:
                raise UsageError(f"{where}: not valid JSON ({e.msg}).") from None
            prompt = _messages_of(value)
            if prompt is None:
                raise UsageError(
                    f"{where}: expected a list of chat messages like "
                    '[{"role": "user", "content": "Hi"}] (roles: '
                    f"{', '.join(ROLES)}), an object with a \"messages\" list, or plain text."
                )
            prompts.append(prompt)
        else:
            prompts.append((("user", line),))
    return prompts


def load_prompts(prompt: str | None, prompts_file: Path | None) -> list[Prompt]:
    """The prompts to send, cycled through in order: --prompt, --prompts FILE or a default."""
    if prompt is not None and prompts_file is not None:
        raise UsageError("give --prompt or --prompts, not both.")
    if prompts_file is not None:
        if not prompts_file.exists():
            raise UsageError(f"--prompts {prompts_file}: no such file.")
        text = read_text(prompts_file, "--prompts")
        prompts = parse_prompts_text(text, str(prompts_file))
        if not prompts:
            raise UsageError(f"--prompts {prompts_file} holds no prompts (it is empty).")
        return prompts
    if prompt is not None:
        if not prompt.strip():
            raise UsageError("--prompt is empty; give the text to send.")
        return [(("user", prompt),)]
    return [(("user", DEFAULT_PROMPT),)]


def parse_budgets(specs: Sequence[str] | None) -> list[Budget]:
    """``--fail-over`` specs, as ``report`` parses them, limited to the LLM figures."""
    budgets = [parse_budget(spec) for spec in specs or []]
    for b in budgets:
        if b.figure.kind != "llm":
            names = ", ".join(f.name for f in FIGURES if f.kind == "llm")
            raise UsageError(
                f"--fail-over: bench llm measures only the LLM figures ({names}); "
                f"got {b.spec!r}."
            )
    return budgets


@dataclass(frozen=True)
class BenchConfig:
    """Everything a bench run needs, validated."""

    models: list[str]
    base_url: str | None
    requests: int
    concurrency: list[int]
    prompts: list[Prompt]
    max_tokens: int
    warmup: int
    budgets: list[Budget] = field(default_factory=list)
    workers: int | None = 1  # None: auto
    request_timeout: float | None = None  # None: default_request_timeout(max_tokens)

    def workers_for(self, concurrency: int) -> int:
        """The processes a run at ``concurrency`` uses (never more than its requests in
        flight)."""
        import os

        n = self.workers if self.workers is not None else auto_workers(concurrency,
                                                                        os.cpu_count())
        return max(1, min(n, concurrency, self.requests))

    @property
    def total_requests(self) -> int:
        """Counted requests over every run (warm-up excluded)."""
        return len(self.models) * len(self.concurrency) * self.requests


def make_config(*, models: Sequence[str] | None, base_url: str | None, requests: int,
                concurrency: Sequence[str] | None, prompt: str | None,
                prompts_file: Path | None, max_tokens: int, warmup: int,
                fail_over: Sequence[str] | None, default_model: str,
                workers: str | None = "1", request_timeout: float | None = None
                ) -> BenchConfig:
    """Validate the command line (no livekit import)."""
    from lkmetrics.config.prepare import parse_model
    from lkmetrics.config.urls import check_base_url

    if requests < 1:
        raise UsageError(f"-n/--requests must be at least 1 (got {requests}).")
    if max_tokens < 1:
        raise UsageError(f"--max-tokens must be at least 1 (got {max_tokens}).")
    if warmup < 0:
        raise UsageError(f"--warmup must be 0 or more (got {warmup}).")
    if request_timeout is not None and not 0 < request_timeout <= 86_400:
        raise UsageError("--request-timeout must be more than 0 and at most 86400 seconds "
                         f"(got {request_timeout:g}).")
    for option, n in (("-n/--requests", requests), ("--max-tokens", max_tokens),
                      ("--warmup", warmup)):
        if n > MAX_COUNT:
            raise UsageError(f"{option} must be at most {MAX_COUNT:,} (got {n}).")
    names: list[str] = []
    for m in models or [default_model]:
        name = parse_model("--llm", m, allow_none=False) or "local"
        if name not in names:
            names.append(name)
    url = check_base_url(base_url)
    if url is not None and names == ["local"]:
        raise UsageError("--llm local starts its own server; leave out --llm-base-url.")
    return BenchConfig(
        models=names, base_url=url, requests=requests,
        concurrency=parse_concurrency(concurrency),
        prompts=load_prompts(prompt, prompts_file), max_tokens=max_tokens, warmup=warmup,
        budgets=parse_budgets(fail_over), workers=parse_workers(workers),
        request_timeout=(request_timeout if request_timeout is not None
                         else default_request_timeout(max_tokens)),
    )


def default_request_timeout(max_tokens: int) -> float:
    """The deadline of a whole request without --request-timeout: 30 s to connect and reach
    the first token, plus 0.25 s per token of --max-tokens (4 tokens/s, far below any
    server that is working), so a stream that never ends cannot hang a bench."""
    return 30.0 + 0.25 * max_tokens


# -- results ----------------------------------------------------------------------------------


@dataclass
class RequestResult:
    """One request as the driver measured it; times in seconds from sending it."""

    ttft: float | None = None
    latency: float | None = None
    itl: list[float] = field(default_factory=list)
    output_tokens: int = 0
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def tpot(self) -> float | None:
        """(latency - TTFT) / (output tokens - 1); None with fewer than two tokens."""
        if not self.ok or self.ttft is None or self.latency is None or self.output_tokens < 2:
            return None
        return (self.latency - self.ttft) / (self.output_tokens - 1)


@dataclass
class RunResult:
    """One (model, concurrency) run."""

    model: str
    provider: str
    concurrency: int
    requests: list[RequestResult]
    wall_s: float
    metrics: list[Record] = field(default_factory=list)  # LiveKit's LLMMetrics, as records
    session_id: str | None = None

    @property
    def ok(self) -> list[RequestResult]:
        return [r for r in self.requests if r.ok]

    @property
    def errors(self) -> int:
        return len(self.requests) - len(self.ok)

    @property
    def first_error(self) -> str | None:
        return next((r.error for r in self.requests if r.error is not None), None)

    @property
    def label(self) -> str:
        return f"{self.model} @ concurrency {self.concurrency}"

    def over_cap(self, max_tokens: int) -> list[int]:
        """The output tokens of the successful requests that got more than ``max_tokens``
        (a server that ignored the cap)."""
        return [r.output_tokens for r in self.ok if r.output_tokens > max_tokens]

    def values(self, name: str) -> list[float]:
        """The values of figure ``name`` (ttft, tpot, itl, latency) over successful requests."""
        out: list[float] = []
        for r in self.ok:
            if name == "itl":
                out.extend(r.itl)
                continue
            v = {"ttft": r.ttft, "tpot": r.tpot, "latency": r.latency}[name]
            if v is not None:
                out.append(v)
        return out

    def stats(self, name: str) -> dict[str, float | None]:
        d = describe(self.values(name))
        return {k: None if d[k] is None else float(d[k] or 0.0) for k in STATS}

    @property
    def output_tokens(self) -> int:
        return sum(r.output_tokens for r in self.ok)

    def to_json(self) -> dict[str, Any]:
        """The run as it appears in ``--format json`` (times in seconds)."""
        wall = self.wall_s
        body: dict[str, Any] = {
            "model": self.model,
            "provider": self.provider,
            "concurrency": self.concurrency,
            "requests": len(self.requests),
            "errors": self.errors,
            "first_error": self.first_error,
        }
        for name in FIGURE_NAMES:
            body[name] = self.stats(name)
        body.update({
            "output_tokens": self.output_tokens,
            "output_tokens_per_s": self.output_tokens / wall if wall > 0 else None,
            "requests_per_s": len(self.ok) / wall if wall > 0 else None,
            "wall_s": wall,
            "session_id": self.session_id,
        })
        return body


def document(runs: Sequence[RunResult], bench_id: str | None = None) -> dict[str, Any]:
    """The one JSON document of ``--format json``."""
    return {"kind": KIND, "schema": SCHEMA, "bench_id": bench_id,
            "runs": [r.to_json() for r in runs]}


# -- verdict ----------------------------------------------------------------------------------


def budget_report(runs: Sequence[RunResult]) -> Report:
    """The LLM figures of LiveKit's own metrics, one group per run, as ``report`` has them."""
    rows: list[FigureRow] = []
    for run in runs:
        for figure in FIGURES:
            if figure.kind != "llm":
                continue
            values = [v for rec in run.metrics
                      if (v := figure_value(figure, rec)) is not None]
            rows.append(FigureRow(run.label, figure, describe(values)))
    return Report("bench llm", "run", rows)


def check(runs: Sequence[RunResult], budgets: Sequence[Budget]) -> list[BudgetResult]:
    """Each budget against each run (report's semantics: over the limit is broken)."""
    return check_budgets(budget_report(runs), budgets) if budgets else []


def verdict(runs: Sequence[RunResult], checked: Sequence[BudgetResult]) -> None:
    """Raise BenchFailed naming the failed requests of each run and every broken budget."""
    raise_failures([f"{r.errors} of {len(r.requests)} requests failed ({r.label}): "
                    f"{(r.first_error or '').rstrip('.')}" for r in runs if r.errors], checked)


