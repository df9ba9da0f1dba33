# Where scripts/install.sh keeps the llama-cpp-python wheel it builds (sourced by it; bash).
#
# The user's cache, ${XDG_CACHE_HOME:-~/.cache}/lkmetrics/wheels, keyed by version, Python and
# build flags: independent of LKMETRICS_HOME, so pointing the app directory elsewhere never
# forces the 5-7 minute llama.cpp build again. A wheel an earlier install.sh kept under the
# app directory (LKMETRICS_HOME, or the default one) is still reused.
# Needs LLAMA_VERSION, py_tag and flags_hash; defines WHEEL_CACHE, WHEEL_DIR and cached_wheel.
WHEEL_NAME="llama-cpp-python-$LLAMA_VERSION-$py_tag-$flags_hash"
WHEEL_CACHE="${XDG_CACHE_HOME:-$HOME/.cache}/lkmetrics/wheels"
WHEEL_DIR="$WHEEL_CACHE/$WHEEL_NAME"
OLD_WHEEL_DIRS=(
  "${LKMETRICS_HOME:-${XDG_CONFIG_HOME:-$HOME/.config}/lkmetrics}/wheels/$WHEEL_NAME"
  "${XDG_CONFIG_HOME:-$HOME/.config}/lkmetrics/wheels/$WHEEL_NAME"
)
# the first built wheel found: the cache, then the old places; nothing when there is none
cached_wheel() {
  local dir found
  for dir in "$WHEEL_DIR" "${OLD_WHEEL_DIRS[@]}"; do
    found="$(compgen -G "$dir/llama_cpp_python-*.whl" | head -n1 || true)"
    if [ -n "$found" ]; then
      echo "$found"
      return 0
    fi
  done
  return 0
}
