"""`lkmetrics run` against a local WebSocket server standing in for LiveKit's agent endpoint."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import jwt
import pytest

from tests.helpers.common import API_KEY, API_SECRET, subprocess_env

pytestmark = pytest.mark.timeout(120)


class FakeLiveKit:
    """Accepts workers on /agent, checks their token, answers their registration."""

    def __init__(self) -> None:
        self.registrations: list[Any] = []
        self.claims: list[dict[str, Any]] = []
        self.paths: list[str] = []
        self.registered = threading.Event()
        self.running = threading.Event()  # a message after the registration: the worker runs
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._stop: asyncio.Future[None] | None = None
        self.port = 0
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        self._ready.wait(10)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.run_until_complete(self._main())

    async def _main(self) -> None:
        from websockets.asyncio.server import serve

        self._stop = self._loop.create_future()
        async with serve(self._handler, "127.0.0.1", 0) as server:
            self.port = next(iter(server.sockets)).getsockname()[1]
            self._ready.set()
            await self._stop

    async def _handler(self, ws: Any) -> None:
        from livekit.protocol import agent

        self.paths.append(ws.request.path)
        token = ws.request.headers["Authorization"].removeprefix("Bearer ")
        self.claims.append(jwt.decode(token, API_SECRET, algorithms=["HS256"]))
        msg = agent.WorkerMessage()
        msg.ParseFromString(await ws.recv())
        self.registrations.append(msg)
        reply = agent.ServerMessage()
        reply.register.worker_id = "W_test"
        await ws.send(reply.SerializeToString())
        self.registered.set()
        async for _ in ws:  # keep the worker's connection open
            self.running.set()  # its periodic status updates

    def close(self) -> None:
        if self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set_result, None)
        self._thread.join(5)


BUILT_IN = ["--llm-base-url", "http://127.0.0.1:9/v1", "--stt", "none", "--tts", "none"]
USER_AGENT = ["--agent", str(Path(__file__).parent / "fixtures" / "worker_agent.py")]


@pytest.mark.parametrize("agent", [BUILT_IN, USER_AGENT], ids=["built-in", "user-agent"])
def test_run_registers_with_signed_token_and_stops_on_sigterm(tmp_path: Path,
                                                              agent: list[str]) -> None:
    lk = FakeLiveKit()
    out = tmp_path / "records.jsonl"
    try:
        proc = subprocess.Popen(
            [sys.executable, "-m", "lkmetrics", "run", "--url", f"ws://127.0.0.1:{lk.port}",
             *agent, "--format", "json", "--output", str(out), "--no-record"],
            env=subprocess_env(LIVEKIT_API_KEY=API_KEY, LIVEKIT_API_SECRET=API_SECRET,
                               FIXTURE_PREWARMED=str(tmp_path / "prewarmed")),
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        assert lk.registered.wait(60), "the worker never registered"
        assert lk.running.wait(30), "the worker sent nothing after its registration"
        if agent is USER_AGENT:  # LiveKit's idle job processes ran the user's own prewarm
            deadline = time.monotonic() + 30
            while not (tmp_path / "prewarmed").exists() and time.monotonic() < deadline:
                time.sleep(0.1)
            assert (tmp_path / "prewarmed").exists(), "the user's prewarm never ran"
        proc.send_signal(signal.SIGTERM)
        stdout, stderr = proc.communicate(timeout=60)
    finally:
        lk.close()
    # stopped like Ctrl-C, after LiveKit's graceful shutdown: 128 + SIGTERM, as a shell reports
    assert proc.returncode == 143, stderr[-3000:]
    assert "shutting down worker" in stderr
    assert lk.paths[0].startswith("/agent")
    claims = lk.claims[0]
    assert claims["iss"] == API_KEY
    assert claims["video"]["agent"] is True
    assert lk.registrations[0].HasField("register")
    assert API_SECRET not in stdout + stderr
    assert "Traceback" not in stderr
    assert stdout == ""  # no session ran: no records, and nothing else on stdout


@pytest.mark.parametrize(("sig", "code"), [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_connect_stopped_by_a_signal_leaves_no_temp_dir(tmp_path: Path, sig: int,
                                                        code: int) -> None:
    """`connect` runs LiveKit's worker unregistered (here against a closed port, so its job
    never starts); a signal ends it with the signal's exit code and removes the relay's
    private temp dir (the socket and the settings file)."""
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    proc = subprocess.Popen(
        [sys.executable, "-m", "lkmetrics", "connect", "--room", "r1",
         "--url", "ws://127.0.0.1:9", "--llm-base-url", "http://127.0.0.1:9/v1",
         "--stt", "none", "--tts", "none", "--format", "json", "--no-record"],
        env=subprocess_env(LIVEKIT_API_KEY=API_KEY, LIVEKIT_API_SECRET=API_SECRET,
                           TMPDIR=str(tmp)),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    started = threading.Event()
    lines: list[str] = []

    def read() -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            lines.append(line)
            if "starting worker" in line:  # LiveKit's worker runs, its handlers installed
                started.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        assert started.wait(60), "".join(lines)[-3000:]
        assert list(tmp.glob("lkmetrics-*")), "no relay temp dir while connect runs"
        proc.send_signal(sig)
        proc.wait(timeout=60)
        reader.join(10)
    finally:
        if proc.poll() is None:
            proc.kill()
    stderr = "".join(lines)
    assert proc.returncode == code, stderr[-3000:]
    assert "Traceback" not in stderr
    assert list(tmp.glob("lkmetrics-*")) == []
