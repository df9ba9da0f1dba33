"""Helpers for the store tests: synthetic sessions with known figures, and a CLI entry."""

from __future__ import annotations

import json
import math
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import typer
from typer.testing import CliRunner

from lkmetrics.records import turn_stages

Record = dict[str, Any]

LLM_MODELS = ("openai/gpt-4.1-mini", "openai/gpt-4o")


def session_records(
    session_id: str,
    *,
    turns: int = 5,
    seed: int = 0,
    start: float = 1_764_240_000.0,
    llm: str = "openai/gpt-4.1-mini",
    tts: str = "cartesia/sonic-3",
    stt: str = "deepgram/nova-3",
    scale: float = 1.0,
    summary: bool = True,
) -> Iterator[Record]:
    """A plausible session: a session record, then per turn eou, stt, llm, tts, turn, usage.

    ``scale`` multiplies every latency, so a session with scale 2 is twice as slow.
    """
    rng = random.Random(seed)
    provider, name = llm.split("/", 1)
    seq = 0
    t = start

    def rec(kind: str, **fields: Any) -> Record:
        nonlocal seq
        seq += 1
        return {"schema": 1, "kind": kind, "session_id": session_id, "seq": seq, "time": t,
                **fields}

    yield rec("session", command="console", stt=stt, llm=llm, tts=tts, voice="v1",
              host="testhost", lkmetrics_version="0.1.0", livekit_agents_version="1.8.9")
    prompt_total = completion_total = 0
    for i in range(turns):
        t += 2.0
        yield rec("vad", type="vad_metrics", idle_time=0.1, inference_count=10)
        yield rec("eou", type="eou_metrics",
                  end_of_utterance_delay=round(rng.uniform(0.2, 0.8) * scale, 6),
                  transcription_delay=round(rng.uniform(0.05, 0.3) * scale, 6),
                  on_user_turn_completed_delay=0.0)
        yield rec("stt", type="stt_metrics", label="stt", request_id=f"s{i}",
                  duration=round(rng.uniform(0.1, 0.5) * scale, 6), audio_duration=1.5,
                  streamed=False,
                  metadata={"model_name": stt.split("/")[1], "model_provider": stt.split("/")[0]})
        ttft = round(rng.uniform(0.2, 0.9) * scale, 6)
        duration = round(ttft + rng.uniform(0.3, 1.5) * scale, 6)
        completion = rng.randint(5, 60)
        prompt = rng.randint(20, 400)
        prompt_total += prompt
        completion_total += completion
        yield rec("llm", type="llm_metrics", label="livekit.agents.inference.llm.LLM",
                  request_id=f"r{i}", timestamp=t, duration=duration, ttft=ttft,
                  cancelled=False, completion_tokens=completion, prompt_tokens=prompt,
                  prompt_cached_tokens=0, total_tokens=prompt + completion,
                  tokens_per_second=completion / duration,
                  metadata={"model_name": name, "model_provider": provider},
                  decode_rate=completion / (duration - ttft))
        yield rec("tts", type="tts_metrics", label="tts", request_id=f"t{i}",
                  ttfb=round(rng.uniform(0.1, 0.4) * scale, 6), duration=1.0,
                  audio_duration=2.0, characters_count=40, streamed=True,
                  metadata={"model_name": tts.split("/")[1], "model_provider": tts.split("/")[0]})
        report = {"e2e_latency": round(0.3 + ttft + rng.uniform(0.3, 1.2) * scale, 6),
                  "llm_node_ttft": ttft, "llm_node_ttfs": round(ttft + 0.1 * scale, 6),
                  "tts_node_ttfb": 0.2, "end_of_turn_delay": 0.3, "transcription_delay": 0.1}
        heard = round(report["e2e_latency"] + rng.uniform(0.02, 0.06), 6)
        yield rec("turn", **report, heard_latency=heard, stages=turn_stages(report, heard),
                  user_text="hi", agent_text="hello")
        yield rec("usage", usage=[
            {"type": "llm_usage", "provider": provider, "model": name,
             "input_tokens": prompt_total, "output_tokens": completion_total},
            {"type": "tts_usage", "provider": tts.split("/")[0], "model": tts.split("/")[1],
             "characters_count": 40 * (i + 1), "audio_duration": 2.0 * (i + 1)},
        ])
    if summary:
        t += 0.5
        yield rec("summary", records=seq, turns=turns, figures={}, tokens={}, usage=[])


def write_jsonl(path: Path, records: Any) -> Path:
    with open(path, "w", encoding="utf-8") as f:
        for r in records:
            f.write(json.dumps(r, separators=(",", ":")) + "\n")
    return path


def cli_app() -> typer.Typer:
    """The real ``lkmetrics.cli.app``: an import failure fails the test, never a stand-in."""
    from lkmetrics.cli import app

    return app


def run(*args: str, input: str | None = None) -> Any:
    """Invoke the CLI; returns click's Result (exit_code, stdout, stderr)."""
    return CliRunner().invoke(cli_app(), list(args), input=input)


# -- reference queries over the records themselves: what the session digests are held to --


def token_totals(store: Any, scope: Any) -> list[tuple[str, int, int, int, int]]:
    """Per LLM model: requests, prompt, completion and total tokens, from the records."""
    where, params = scope.where()
    rows = store.conn.execute(
        # total(), not sum(): a float sum never overflows, whatever an older version stored
        "SELECT coalesce(model, 'unknown'), count(*), total(prompt_tokens), "
        "total(completion_tokens), total(total_tokens) "
        f"FROM records WHERE kind = 'llm'{where} GROUP BY 1 ORDER BY 1", params).fetchall()
    return [(str(m), int(n), _count(p), _count(c), _count(t)) for m, n, p, c, t in rows]


def _count(total: float) -> int:
    """A token total as an int (0 for what no int holds: a NaN or infinite total)."""
    return int(total) if math.isfinite(total) else 0


def kind_counts(store: Any, scope: Any) -> dict[str, int]:
    """Records per kind in scope, from the records."""
    where, params = scope.where()
    return {str(k): int(n) for k, n in store.conn.execute(
        f"SELECT kind, count(*) FROM records WHERE 1 = 1{where} GROUP BY kind ORDER BY kind",
        params)}


def last_usage_records(store: Any, scope: Any) -> dict[str, dict[str, Any]]:
    """Each session's last usage record in scope, by session, from the records."""
    where, params = scope.where()
    out: dict[str, dict[str, Any]] = {}
    for sid, seq in store.conn.execute(
            f"SELECT session_id, max(seq) FROM records WHERE kind = 'usage'{where} "
            "GROUP BY session_id", params).fetchall():
        (text,) = store.conn.execute(
            "SELECT json FROM records WHERE session_id = ? AND seq = ?", (sid, seq)).fetchone()
        record = json.loads(text)
        if isinstance(record, dict):
            out[str(sid)] = record
    return out
