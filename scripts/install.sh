#!/usr/bin/env bash
# Installs lkmetrics, its local models and its test tools on a fresh Debian/Ubuntu machine.
#
# Into which Python: $PYTHON if set, else the active virtualenv ($VIRTUAL_ENV), else a project
# virtualenv .venv/ in this checkout, made with the system python3 (apt-installing python3 and
# python3-venv when missing). Either way .venv/bin/lkmetrics and .venv/bin/python run the
# installed lkmetrics afterwards: for a Python you chose, .venv becomes a link to its prefix.
#
# Safe to run again: what is already installed is skipped, and llama.cpp is compiled once per
# machine (the wheel is kept in ${XDG_CACHE_HOME:-~/.cache}/lkmetrics/wheels, keyed by version,
# Python and build flags, whatever LKMETRICS_HOME is; scripts/wheel_cache.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$(pwd -P)"

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
say() { echo "lkmetrics: $*" >&2; }
apt_updated=""
apt_install() {
  say "installing $* with apt"
  if [ -z "$apt_updated" ]; then $SUDO apt-get update -qq; apt_updated=1; fi
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

# --- which Python ---------------------------------------------------------------------------
chosen=""
if [ -n "${PYTHON:-}" ]; then
  PY="$PYTHON"; chosen="PYTHON=$PYTHON"
elif [ -n "${VIRTUAL_ENV:-}" ] &&
  [ "$(cd "$VIRTUAL_ENV" 2>/dev/null && pwd -P)" != "$ROOT/.venv" ]; then
  PY="$VIRTUAL_ENV/bin/python"; chosen="the active virtualenv $VIRTUAL_ENV"
else
  PY="$ROOT/.venv/bin/python"
  if [ -x "$PY" ] && "$PY" -m pip --version >/dev/null 2>&1; then
    say "using the virtualenv .venv (exists)"
  else
    if [ -e .venv ] || [ -L .venv ]; then
      say "removing .venv: it has no working Python with pip (a half-made virtualenv)"
      rm -rf .venv
    fi
    command -v python3 >/dev/null 2>&1 || apt_install python3 python3-venv
    # Debian and Ubuntu ship venv's pip bootstrap separately (python3-venv); without it venv
    # fails half-way and leaves a .venv with no pip
    if ! python3 -m venv .venv >/dev/null 2>&1; then
      rm -rf .venv
      apt_install python3-venv
      python3 -m venv .venv
    fi
    say "made the virtualenv .venv with $(python3 --version 2>&1) ($(command -v python3))"
  fi
fi
if ! "$PY" -c 'import sys; assert sys.version_info >= (3, 10)' >/dev/null 2>&1; then
  say "$PY is not Python 3.10 or later (lkmetrics needs 3.10+)"
  exit 2
fi

# pip must be allowed to install into a Python you chose: not a system Python that its
# distribution manages (PEP 668), where pip refuses with a long error half-way through
if [ -n "$chosen" ] && "$PY" - <<'PYEOF'
import os, sys, sysconfig
managed = os.path.exists(os.path.join(sysconfig.get_path("stdlib"), "EXTERNALLY-MANAGED"))
sys.exit(0 if managed and sys.prefix == sys.base_prefix else 1)
PYEOF
then
  say "$PY ($chosen) is managed by the system, and pip may not install into it. Run" \
    "without PYTHON= and outside any virtualenv, and this script makes a project" \
    "virtualenv .venv for you."
  exit 2
fi

# a Python you chose: .venv links to its prefix, where pip puts the lkmetrics script too
if [ -n "$chosen" ]; then
  prefix="$("$PY" -c 'import sys; print(sys.prefix)')"
  if [ ! -e "$prefix/bin/python" ]; then
    say "note: $prefix/bin/python does not exist; run lkmetrics with $PY -m lkmetrics"
  elif [ -L .venv ] || [ ! -e .venv ]; then
    ln -sfn "$prefix" .venv
    say "installing into $chosen ($PY); .venv -> $prefix"
  elif [ "$(cd .venv && pwd -P)" != "$(cd "$prefix" && pwd -P)" ]; then
    say "warning: installing into $chosen ($PY), but .venv/ is a separate virtualenv, so" \
      ".venv/bin/lkmetrics is not this install. Remove .venv/ and run again to link it."
  fi
fi

# --- system packages, each only when missing ------------------------------------------------
# PortAudio (LiveKit's console needs it, even in text mode), pip, and a C/C++ compiler for the
# llama.cpp build when no built wheel is at hand
LLAMA_REQ="$(grep -o 'llama-cpp-python\[server\]==[0-9][0-9.]*' pyproject.toml)"
LLAMA_VERSION="${LLAMA_REQ##*==}"
# llama.cpp's native build crashes in its AMX kernel on some CPUs: pin the instruction sets
LLAMA_CMAKE_ARGS="-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=ON"
flags_hash="$(printf '%s' "$LLAMA_CMAKE_ARGS" | sha256sum | cut -c1-12)"
py_tag="$("$PY" -c 'import sys, sysconfig
print(f"{sys.implementation.cache_tag}-{sysconfig.get_platform()}")')"
# WHEEL_CACHE, WHEEL_DIR and cached_wheel: the user's cache, whatever LKMETRICS_HOME is
# shellcheck source=scripts/wheel_cache.sh
source "$ROOT/scripts/wheel_cache.sh"
have_llama() { "$PY" -c "import llama_cpp.server" >/dev/null 2>&1; }

need=()
ldconfig -p 2>/dev/null | grep -q "libportaudio.so.2" || need+=(libportaudio2)
if ! "$PY" -m pip --version >/dev/null 2>&1; then
  # a Python's own pip first; the distribution's package only serves the system Python
  "$PY" -m ensurepip --upgrade >/dev/null 2>&1 || need+=(python3-pip)
fi
if ! have_llama && [ -z "$(cached_wheel)" ] && ! command -v c++ >/dev/null 2>&1; then
  need+=(g++)
fi
# a real Prometheus server (and promtool) for the fleet view's tests
command -v prometheus >/dev/null 2>&1 || need+=(prometheus)
command -v chromium >/dev/null 2>&1 || need+=(chromium)  # the HTML report's browser test
if [ ${#need[@]} -gt 0 ]; then
  apt_install "${need[@]}"
else
  say "PortAudio, pip and a compiler (or a built llama-cpp-python) are present: skipping apt"
fi

# --- llama.cpp: compiled once per machine ---------------------------------------------------
if have_llama; then
  say "llama-cpp-python is already installed in $PY: skipping its build"
else
  if [ -z "$(cached_wheel)" ]; then
    say "building llama-cpp-python $LLAMA_VERSION (compiles llama.cpp: 5-7 minutes on 2" \
      "cores, once per machine; kept in $WHEEL_DIR)"
    mkdir -p "$WHEEL_CACHE"
    tmp="$(mktemp -d "$WHEEL_CACHE/.build.XXXXXX")"
    trap 'rm -rf "$tmp"' EXIT
    CMAKE_ARGS="$LLAMA_CMAKE_ARGS" \
      "$PY" -m pip wheel --no-deps --no-cache-dir -q -w "$tmp" "llama-cpp-python==$LLAMA_VERSION"
    chmod 755 "$tmp"
    rm -rf "$WHEEL_DIR"
    mv "$tmp" "$WHEEL_DIR"
    trap - EXIT
  else
    say "reusing built llama-cpp-python wheel ($(cached_wheel)): skipping the llama.cpp build"
  fi
  "$PY" -m pip install -q "$(cached_wheel)[server]"
fi

"$PY" -m pip install -q -e ".[local,plots,dev]"
say "installed $("$PY" -m lkmetrics --version) into $PY"
