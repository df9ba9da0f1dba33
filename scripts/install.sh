#!/usr/bin/env bash
# Installs lkmetrics, its local models and its test tools on a fresh Debian/Ubuntu machine.
# Safe to run again: what is already installed is skipped.
set -euo pipefail
cd "$(dirname "$0")/.."

PY="${PYTHON:-python3}"
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

# pip must be allowed to install into $PY: not a system Python that its distribution manages
# (PEP 668), where pip refuses with a long error half-way through
if "$PY" - <<'PYEOF'
import os, sys, sysconfig
managed = os.path.exists(os.path.join(sysconfig.get_path("stdlib"), "EXTERNALLY-MANAGED"))
sys.exit(0 if managed and sys.prefix == sys.base_prefix else 1)
PYEOF
then
  echo "lkmetrics: $PY is managed by the system, and pip may not install into it. Create a" \
    "virtualenv and run this script from it: python3 -m venv .venv && . .venv/bin/activate" \
    "&& bash scripts/install.sh (on Debian/Ubuntu: apt-get install python3-venv first)." >&2
  exit 2
fi

# system packages, each only when missing: PortAudio (LiveKit's console needs it, even in text
# mode), pip, and a C/C++ compiler for the llama.cpp build
need=()
ldconfig -p 2>/dev/null | grep -q "libportaudio.so.2" || need+=(libportaudio2)
if ! "$PY" -m pip --version >/dev/null 2>&1; then
  # a Python's own pip first; the distribution's package only serves the system Python
  "$PY" -m ensurepip --upgrade >/dev/null 2>&1 || need+=(python3-pip)
fi
if ! "$PY" -c "import llama_cpp.server" >/dev/null 2>&1 && ! command -v c++ >/dev/null 2>&1; then
  need+=(g++)
fi
# a real Prometheus server (and promtool) for the fleet view's tests
command -v prometheus >/dev/null 2>&1 || need+=(prometheus)
command -v chromium >/dev/null 2>&1 || need+=(chromium)  # the HTML report's browser test
if [ ${#need[@]} -gt 0 ]; then
  echo "lkmetrics: installing ${need[*]}" >&2
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq "${need[@]}" >/dev/null
fi

# llama.cpp is compiled from source the first time (3-5 minutes on 2 cores). The native
# build crashes in its AMX kernel on some CPUs, so pin the instruction sets explicitly.
if ! "$PY" -c "import llama_cpp.server" >/dev/null 2>&1; then
  echo "lkmetrics: building llama-cpp-python (takes 3-5 minutes the first time)" >&2
  CMAKE_ARGS="-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=ON" \
    "$PY" -m pip install --no-cache-dir -q "llama-cpp-python[server]==0.3.36"
fi

"$PY" -m pip install -q -e ".[local,plots,dev]"
echo "lkmetrics: installed $("$PY" -m lkmetrics --version)" >&2
