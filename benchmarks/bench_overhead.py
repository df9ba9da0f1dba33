"""What `lkmetrics bench llm` adds to the TTFT it measures: LiveKit's LLM classes vs raw httpx.

Starts the scripted OpenAI-compatible server (tests/helpers/llm_server.py) in its own process
with an injected TTFT, then at each concurrency and number of client processes (``--workers``) runs
- a raw client: httpx streaming POSTs, TTFT = time to the first SSE chunk with content, spread
  over the same number of processes as bench llm (each its share of the in-flight requests,
  one shared request counter, a start barrier), so both get the same CPUs;
- `lkmetrics bench llm --workers W --format json` (its own process, through LiveKit's OpenAI
  plugin),
``--repeat`` times, alternating, and prints the medians of the p50 TTFTs side by side and the
median of the per-round differences. Goal: within 2 ms. Then the client CPU per request of
both at concurrency 1 (``time.process_time``).

Then the load curve of `lkmetrics bench voice --local --concurrency 1,2,4` on this machine
(Whisper, SmolLM2 on llama.cpp and Piper shared by N simulated callers): e2e p50/p95, heard
p50/p95 and failed turns per concurrency (``--voice-concurrency``; ``--no-voice`` skips it).

    python benchmarks/bench_overhead.py [--requests 64] [--concurrency 1 32] [--workers 1 2]
                                        [--repeat 3] [--ttft 0.1] [--voice-concurrency 1 2 4]
                                        [--no-voice] [--no-llm]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx2 as httpx  # the HTTP client LiveKit's OpenAI plugin itself uses

ROOT = Path(__file__).resolve().parent.parent


async def raw_ttfts(url: str, n: int, concurrency: int, max_tokens: int,
                    take: Any = None, barrier: Any = None) -> list[float]:
    """TTFT of n streamed requests, ``concurrency`` at once, with nothing but httpx.

    ``take`` (returns the next request index or None) and ``barrier`` share the run with
    other processes."""
    body = {"model": "test-model", "stream": True, "max_completion_tokens": max_tokens,
            "stream_options": {"include_usage": True},
            "messages": [{"role": "user", "content": "Explain why the sky is blue."}]}
    ttfts: list[float] = []
    next_i = 0

    def take_local() -> int | None:
        nonlocal next_i
        if next_i >= n:
            return None
        next_i += 1
        return next_i - 1

    limits = httpx.Limits(max_connections=64, max_keepalive_connections=64)
    async with httpx.AsyncClient(timeout=30, limits=limits) as client:

        async def one() -> None:
            sent = time.perf_counter()
            first: float | None = None
            async with client.stream("POST", f"{url}/chat/completions", json=body) as resp:
                resp.raise_for_status()
                async for line in resp.aiter_lines():  # every chunk parsed, as a client must
                    if line.startswith("data: {"):
                        choices = json.loads(line[6:]).get("choices") or []
                        if (first is None and choices
                                and (choices[0].get("delta") or {}).get("content")):
                            first = time.perf_counter() - sent
            assert first is not None
            ttfts.append(first)

        async def worker() -> None:
            while (take or take_local)() is not None:
                await one()

        await one()  # warm-up, as bench llm's --warmup 1
        ttfts.clear()
        if barrier is not None:
            barrier.wait()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return ttfts


def _raw_process(url: str, n: int, slots: int, max_tokens: int, counter: Any, barrier: Any,
                 out: Any) -> None:
    def take() -> int | None:
        with counter.get_lock():
            if counter.value >= n:
                return None
            counter.value += 1
            return int(counter.value)

    out.put(asyncio.run(raw_ttfts(url, n, slots, max_tokens, take, barrier)))


def raw_ttfts_in(workers: int, url: str, n: int, concurrency: int,
                 max_tokens: int) -> list[float]:
    """The raw client spread over ``workers`` spawned processes, as bench llm --workers."""
    if workers == 1:
        return asyncio.run(raw_ttfts(url, n, concurrency, max_tokens))
    ctx = mp.get_context("spawn")
    counter, barrier, out = ctx.Value("q", 0), ctx.Barrier(workers), ctx.Queue()
    base, extra = divmod(concurrency, workers)
    procs = [ctx.Process(target=_raw_process, args=(url, n, base + (k < extra), max_tokens,
                                                    counter, barrier, out))
             for k in range(workers)]
    for p in procs:
        p.start()
    ttfts = [t for _ in procs for t in out.get(timeout=120)]
    for p in procs:
        p.join()
    return ttfts


def bench_llm_ttft(url: str, n: int, concurrency: int, max_tokens: int, workers: int) -> float:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.run(
        [sys.executable, "-m", "lkmetrics", "bench", "llm", "--llm-base-url", url, "--llm",
         "x/test-model", "-n", str(n), "--concurrency", str(concurrency), "--max-tokens",
         str(max_tokens), "--workers", str(workers), "--format", "json", "--no-record"],
        capture_output=True, text=True, env=env, cwd=ROOT, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"bench llm failed: {proc.stderr}")
    run = json.loads(proc.stdout)["runs"][0]
    return float(run["ttft"]["p50"])


async def cpu_per_request(url: str, n: int, tokens: int) -> tuple[float, float]:
    """Client CPU seconds per request (``tokens`` chunks): LiveKit's path vs raw httpx."""
    sys.path.insert(0, str(ROOT))
    from lkmetrics.bench.llm import driver
    from lkmetrics.bench.llm.core import load_prompts

    target = driver.build_target("x/test-model", url, None)
    ctx = driver.chat_context(load_prompts(None, None)[0])
    extra = {"max_completion_tokens": tokens}
    for _ in range(3):
        await driver.timed_request(target.llm, ctx, extra)
    c0 = time.process_time()
    for _ in range(n):
        await driver.timed_request(target.llm, ctx, extra)
    livekit = (time.process_time() - c0) / n
    await target.llm.aclose()
    await raw_ttfts(url, 3, 1, tokens)
    c0 = time.process_time()
    await raw_ttfts(url, n, 1, tokens)
    return livekit, (time.process_time() - c0) / n


def voice_load_curve(levels: list[int], repeat: int) -> None:
    """`bench voice --local` at each concurrency, in its own process; prints the curve."""
    cmd = [sys.executable, "-m", "lkmetrics", "bench", "voice", "--local", "--concurrency",
           ",".join(map(str, levels)), "--repeat", str(repeat), "--format", "json",
           "--no-record", "--timeout", "180"]
    print(f"\nbench voice --local (3 built-in questions x {repeat} per caller), "
          f"{os.cpu_count()} CPUs")
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    if not proc.stdout.strip():
        print(proc.stderr[-2000:])
        return
    doc = json.loads(proc.stdout)
    print(f"{'callers':>7}  {'turns':>5}  {'e2e p50':>8}  {'e2e p95':>8}  {'heard p50':>9}  "
          f"{'heard p95':>9}  {'LLM TTFT':>8}  {'errors':>6}")

    def ms(v: float | None) -> str:
        return "-" if v is None else f"{v:.2f} s"

    for run in doc["runs"]:
        print(f"{run['concurrency']:>7}  {run['turns']:>5}  {ms(run['e2e']['p50']):>8}  "
              f"{ms(run['e2e']['p95']):>8}  {ms(run['heard']['p50']):>9}  "
              f"{ms(run['heard']['p95']):>9}  {ms(run['llm_ttft']['p50']):>8}  "
              f"{run['errors']:>6}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--requests", type=int, default=64)
    ap.add_argument("--concurrency", type=int, nargs="+", default=[1, 32])
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2],
                    help="client processes of both clients (each value below a concurrency)")
    ap.add_argument("--repeat", type=int, default=3, help="rounds; medians are printed")
    ap.add_argument("--ttft", type=float, default=0.1)
    ap.add_argument("--gap", type=float, default=0.01)
    ap.add_argument("--tokens", type=int, default=16)
    ap.add_argument("--voice-concurrency", type=int, nargs="+", default=[1, 2, 4])
    ap.add_argument("--voice-repeat", type=int, default=1)
    ap.add_argument("--no-voice", action="store_true")
    ap.add_argument("--no-llm", action="store_true")
    a = ap.parse_args()
    if not a.no_llm:
        llm_overhead(a)
    if not a.no_voice:
        voice_load_curve(a.voice_concurrency, a.voice_repeat)


def llm_overhead(a: argparse.Namespace) -> None:
    server = subprocess.Popen(
        [sys.executable, str(ROOT / "tests" / "helpers" / "llm_server.py"), "--ttft", str(a.ttft),
         "--gap", str(a.gap), "--tokens", str(a.tokens)],
        stdout=subprocess.PIPE, text=True)
    try:
        assert server.stdout is not None
        url = server.stdout.readline().strip()
        print(f"scripted server {url}: TTFT {a.ttft * 1000:.0f} ms, gap {a.gap * 1000:.0f} ms, "
              f"{a.tokens} tokens; {a.requests} requests per run")
        print(f"{'concurrency':>11}  {'workers':>7}  {'raw httpx p50':>13}  "
              f"{'bench llm p50':>13}  {'difference':>10}  (medians of {a.repeat} rounds; "
              f"each round's difference)")
        for c in a.concurrency:
            for w in a.workers:
                if w > c:
                    continue
                raws, lks = [], []
                for _ in range(a.repeat):
                    raws.append(statistics.median(raw_ttfts_in(w, url, a.requests, c,
                                                               a.tokens)))
                    lks.append(bench_llm_ttft(url, a.requests, c, a.tokens, w))
                diffs = [(lk - raw) * 1000 for raw, lk in zip(raws, lks, strict=True)]
                raw, lk = statistics.median(raws), statistics.median(lks)
                print(f"{c:>11}  {w:>7}  {raw * 1000:>10.1f} ms  {lk * 1000:>10.1f} ms  "
                      f"{statistics.median(diffs):>+7.1f} ms  "
                      f"({', '.join(f'{d:+.1f}' for d in diffs)}; load {os.getloadavg()[0]:.2f})",
                      flush=True)
        livekit, raw_cpu = asyncio.run(cpu_per_request(url, a.requests, a.tokens))
        print(f"client CPU per request ({a.tokens} chunks): LiveKit's LLM classes "
              f"{livekit * 1000:.1f} ms, raw httpx {raw_cpu * 1000:.1f} ms")
    finally:
        server.terminate()
        server.wait(5)


if __name__ == "__main__":
    main()
