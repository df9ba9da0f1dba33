"""Scale benchmark of the store: 1,000,000 records over 1,000 sessions.

    python benchmarks/report_scale.py [--records 1000000] [--sessions 1000] [--keep DIR]

Writes the records as JSON lines (as ``--output`` does), then runs each command as its own
process, the way a user would, and prints its wall time (process start to exit, so Python
start-up is included) and its peak memory (max RSS of that process):

    import FILE      (fills the store and the session digests; records/s)
    report           (every session), report last, report --by model|session|kind
    report --since   (a time window holding everything)
    compare --by model  (two of the three LLMs)
    report, no digests  (every digest dropped first: the first read after every session
                     changed, which builds and saves them all)
    sessions
    export           (JSON lines to /dev/null)

Targets: every report variant <= 1 s, sessions <= 0.3 s, import >= 100,000 records/s, peak
memory of each < 200 MB (the --since, compare and no-digests rows are shown for what they
cost and have no time target). A benchmark, not a test: run it by hand or in CI's benchmark step.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPORT_TARGET = 1.0  # every report variant
TARGETS = {"import": None, "report": REPORT_TARGET, "report last": REPORT_TARGET,
           "report --by model": REPORT_TARGET, "report --by session": REPORT_TARGET,
           "report --by kind": REPORT_TARGET, "sessions": 0.3, "export": None}
MEMORY_TARGET_MB = 200
IMPORT_RATE_TARGET = 100_000


def _cli_main(argv: list[str]) -> int:
    """Run one lkmetrics command in this process (used as the child of each measurement)."""
    from lkmetrics.cli import app
    from lkmetrics.errors import LkmetricsError

    try:
        app(argv, standalone_mode=False)
    except LkmetricsError as e:
        print(f"Error: {e}", file=sys.stderr)
        return e.exit_code
    return 0


def generate(path: Path, records: int, sessions: int, seed: int = 7) -> int:
    from lkmetrics.records import turn_stages

    """Write ``records`` JSON lines over ``sessions`` sessions; returns the number written."""
    rng = random.Random(seed)
    per_session = records // sessions
    models = ("openai/gpt-4.1-mini", "openai/gpt-4o", "local/smollm2")
    start = time.time() - sessions * 600
    dumps = json.dumps
    written = 0
    with open(path, "w", encoding="utf-8") as f:
        for s in range(sessions):
            sid = f"s_{s:06d}"
            llm = models[s % len(models)]
            provider, name = llm.split("/")
            t = start + s * 600
            lines: list[str] = []

            def add(t: float, kind: str, fields: dict[str, object], lines: list[str] = lines,
                    sid: str = sid) -> None:
                body = {"schema": 1, "kind": kind, "session_id": sid, "seq": len(lines) + 1,
                        "time": t}
                body.update(fields)
                lines.append(dumps(body, separators=(",", ":")))

            add(t, "session", {"command": "console", "stt": "deepgram/nova-3", "llm": llm,
                            "tts": "cartesia/sonic-3", "voice": "v", "host": "bench",
                            "lkmetrics_version": "0.1.0", "livekit_agents_version": "1.8.9"})
            turn = 0
            kinds = ("vad", "eou", "stt", "llm", "tts", "turn", "usage")
            while len(lines) < per_session - 1:
                kind = kinds[(len(lines) - 1) % len(kinds)]
                t += 0.4
                if kind == "vad":
                    add(t, "vad", {"type": "vad_metrics", "label": "silero", "idle_time": 0.2,
                                "inference_duration_total": 0.01, "inference_count": 30})
                elif kind == "eou":
                    add(t, "eou", {"type": "eou_metrics", "timestamp": t,
                                "end_of_utterance_delay": rng.uniform(0.2, 0.9),
                                "transcription_delay": rng.uniform(0.05, 0.4),
                                "on_user_turn_completed_delay": 0.0, "speech_id": f"sp{turn}"})
                elif kind == "stt":
                    add(t, "stt", {"type": "stt_metrics", "label": "stt", "request_id": f"q{turn}",
                                "timestamp": t, "duration": rng.uniform(0.1, 0.6),
                                "audio_duration": 2.0, "streamed": False,
                                "metadata": {"model_name": "nova-3",
                                             "model_provider": "deepgram"}})
                elif kind == "llm":
                    ttft = rng.uniform(0.15, 1.2)
                    dur = ttft + rng.uniform(0.2, 2.0)
                    comp = rng.randint(5, 80)
                    prompt = rng.randint(50, 800)
                    add(t, "llm", {"type": "llm_metrics", "label": "inference.LLM",
                                "request_id": f"r{turn}", "timestamp": t, "duration": dur,
                                "ttft": ttft, "cancelled": False, "completion_tokens": comp,
                                "prompt_tokens": prompt, "prompt_cached_tokens": 0,
                                "total_tokens": comp + prompt, "tokens_per_second": comp / dur,
                                "metadata": {"model_name": name, "model_provider": provider},
                                "decode_rate": comp / (dur - ttft)})
                elif kind == "tts":
                    add(t, "tts", {"type": "tts_metrics", "label": "tts", "request_id": f"t{turn}",
                                "timestamp": t, "ttfb": rng.uniform(0.08, 0.6), "duration": 1.2,
                                "audio_duration": 3.0, "cancelled": False,
                                "characters_count": 60, "streamed": True,
                                "metadata": {"model_name": "sonic-3",
                                             "model_provider": "cartesia"}})
                elif kind == "turn":
                    # as this version records a turn: its stages and its cost
                    report = {"e2e_latency": rng.uniform(1.2, 3.0), "llm_node_ttft": 0.4,
                              "llm_node_ttfs": 0.55, "tts_node_ttfb": 0.2,
                              "end_of_turn_delay": 0.5, "transcription_delay": 0.2}
                    llm_usd, tts_usd = rng.uniform(1e-5, 1e-4), 60 * 50e-6
                    add(t, "turn", {**report, "stages": turn_stages(report),
                                 "cost": {"total": llm_usd + tts_usd, "llm": llm_usd,
                                          "stt": 0.0, "tts": tts_usd},
                                 "user_text": "what is the time", "agent_text": "It is noon."})
                    turn += 1
                else:
                    add(t, "usage", {"usage": [
                        {"type": "llm_usage", "provider": provider, "model": name,
                         "input_tokens": 300 * turn, "output_tokens": 40 * turn},
                        {"type": "tts_usage", "provider": "cartesia", "model": "sonic-3",
                         "characters_count": 60 * turn, "audio_duration": 3.0 * turn}]})
            add(t, "summary", {"records": len(lines), "turns": turn, "figures": {}, "tokens": {},
                            "usage": []})
            f.write("\n".join(lines) + "\n")
            written += len(lines)
    return written


def drop_digests(db: Path) -> None:
    """Forget every session digest, as if each session had been written since its own."""
    import sqlite3

    conn = sqlite3.connect(db)
    with conn:
        conn.execute("DELETE FROM session_digests")
    conn.close()


def measure(args: list[str], env: dict[str, str]) -> tuple[float, float, int]:
    """Run one command as a child process: (wall seconds, peak RSS in MB, exit code)."""
    cmd = [sys.executable, __file__, "--cli", *args]
    t0 = time.perf_counter()
    with open(os.devnull, "w") as devnull:
        proc = subprocess.Popen(cmd, stdout=devnull, stderr=subprocess.PIPE, env=env)
        assert proc.stderr is not None
        err = proc.stderr.read()
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        sys.stderr.write(err.decode(errors="replace"))
    return wall, usage.ru_maxrss / 1024, proc.returncode


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] == "--cli":
        return _cli_main(sys.argv[2:])
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--sessions", type=int, default=1_000)
    parser.add_argument("--keep", type=Path, help="work in this folder and keep it")
    ns = parser.parse_args()

    work = ns.keep or Path(tempfile.mkdtemp(prefix="lkmetrics-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, LKMETRICS_HOME=str(work / "home"))
    db = work / "home" / "metrics.db"
    if db.exists():
        for suffix in ("", "-wal", "-shm"):
            Path(f"{db}{suffix}").unlink(missing_ok=True)
    data = work / "records.jsonl"
    try:
        t0 = time.perf_counter()
        n = generate(data, ns.records, ns.sessions)
        mb = data.stat().st_size / 1e6
        print(f"generated {n:,} records over {ns.sessions:,} sessions in "
              f"{time.perf_counter() - t0:.1f} s ({mb:.0f} MB of JSON lines)")
        runs = [
            ("import", ["import", str(data)]),
            ("report", ["report"]),
            ("report last", ["report", "last"]),
            ("report --by model", ["report", "--by", "model"]),
            ("report --by session", ["report", "--by", "session"]),
            ("report --by kind", ["report", "--by", "kind"]),
            ("report --since", ["report", "--since", "100000d"]),
            ("compare --by model", ["compare", "openai/gpt-4o", "openai/gpt-4.1-mini",
                                    "--by", "model"]),
            ("report, no digests", ["report"]),
            ("sessions", ["sessions"]),
            ("sessions -n 0", ["sessions", "--limit", "0"]),
            ("export", ["export"]),
        ]
        print(f"store: {db} ")
        print(f"{'command':<20} {'wall s':>8} {'peak MB':>8}  target")
        failed = False
        for name, args in runs:
            if name == "report, no digests":  # the first read after every session changed
                drop_digests(db)
            wall, mb, code = measure(args, env)
            if code != 0:
                print(f"{name:<20} exit code {code}")
                failed = True
                continue
            target = TARGETS.get(name)
            notes = []
            if name == "import":
                rate = n / wall
                ok = rate >= IMPORT_RATE_TARGET
                notes.append(f"{rate:,.0f} records/s (>= {IMPORT_RATE_TARGET:,}) "
                             f"{'ok' if ok else 'MISSED'}")
                failed |= not ok
            elif target is not None:
                ok = wall <= target
                notes.append(f"<= {target} s {'ok' if ok else 'MISSED'}")
                failed |= not ok
            mem_ok = mb < MEMORY_TARGET_MB
            failed |= not mem_ok
            notes.append(f"mem < {MEMORY_TARGET_MB} MB {'ok' if mem_ok else 'MISSED'}")
            print(f"{name:<20} {wall:>8.2f} {mb:>8.0f}  {'; '.join(notes)}")
        print(f"database size: {db.stat().st_size / 1e6:.0f} MB")
        return 1 if failed else 0
    finally:
        if ns.keep is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
