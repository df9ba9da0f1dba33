#!/usr/bin/env bash
# Checks the README's set-up on a pristine Debian machine. Run by hand, as root; takes about
# 15-25 minutes on 2 cores (it compiles llama.cpp and runs the whole test suite), so CI does
# not run it.
#
# It builds a minimal Debian root file system with debootstrap (default bookworm, Debian 12;
# SUITE=trixie for Debian 13) from the apt mirror this machine is configured with (MIRROR=...
# overrides), copies in only what a machine needs to reach its package registries (the CA
# bundle and local CAs, apt sources, DNS, pip's configuration and PIP_* variables), clones the
# committed HEAD of this repository into /root/lkmetrics in it, and runs the README's two set-up
# commands there in a chroot, as root, each with `bash -lc` in a clean environment. Nothing else
# is installed: not even Python (install.sh apt-installs what it needs). Prints each command's
# exit code and wall time; exits non-zero when one fails.
#
#   sudo bash scripts/fresh-machine-check.sh       # FRESH_ROOT=/var/tmp/lkmetrics-fresh-root
set -euo pipefail
REPO="$(cd "$(dirname "$0")/.." && pwd -P)"
SUITE="${SUITE:-bookworm}"
DIR="${FRESH_ROOT:-/var/tmp/lkmetrics-fresh-root}"
mkdir -p "$DIR"
DIR="$(cd "$DIR" && pwd -P)"
TARGET="$DIR/$SUITE"
LOGS="$DIR/logs"

say() { echo "fresh-machine-check: $*" >&2; }
die() { say "Error: $*"; exit 2; }

[ "$(id -u)" -eq 0 ] || die "run as root (debootstrap, mount and chroot need it)"
case "$DIR/" in "$REPO"/*) die "FRESH_ROOT must be outside the repository ($REPO)" ;; esac
command -v debootstrap >/dev/null 2>&1 || {
  say "installing debootstrap"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null
}

# the README's set-up commands: its first two ```bash blocks, run exactly as written
mapfile -t COMMANDS < <(awk '/^```bash$/{b=1; next} /^```$/{b=0} b' "$REPO/README.md" | head -n2)
[ ${#COMMANDS[@]} -eq 2 ] || die "the README's two set-up commands were not found"

# the Debian mirror this machine's apt uses for $SUITE (one-line and deb822 sources)
host_mirror() {
  local f
  for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
    [ -f "$f" ] || continue
    awk -v s="$SUITE" '$1 == "deb" {
      i = 2; if ($2 ~ /^\[/) { while ($i !~ /\]$/) i++; i++ }
      if ($(i + 1) == s) { print $i; exit } }' "$f"
  done
  for f in /etc/apt/sources.list.d/*.sources; do
    [ -f "$f" ] || continue
    awk -v s="$SUITE" 'BEGIN { RS = "" } {
      uri = ""; ok = 0; n = split($0, line, "\n")
      for (j = 1; j <= n; j++) {
        if (line[j] ~ /^URIs:/) { split(line[j], a, " "); uri = a[2] }
        if (line[j] ~ /^Suites:/) { m = split(line[j], b, " "); for (k = 2; k <= m; k++) if (b[k] == s) ok = 1 }
        if (line[j] ~ /^Enabled: *no/) ok = -1
      }
      if (ok == 1 && uri != "") { print uri; exit } }' "$f"
  done
}
HOST_SOURCES=""  # the host's apt sources serve $SUITE: the new system gets them as they are
if [ -n "$(host_mirror | head -n1)" ]; then HOST_SOURCES=1; fi
if [ -z "${MIRROR:-}" ]; then
  MIRROR="$(host_mirror | head -n1)"
  if [ -z "$MIRROR" ]; then
    MIRROR="http://deb.debian.org/debian"
    say "this machine's apt sources name no mirror for $SUITE; using $MIRROR"
  fi
fi

MOUNTS=()
cleanup() {
  local i
  for ((i = ${#MOUNTS[@]} - 1; i >= 0; i--)); do
    umount "${MOUNTS[$i]}" 2>/dev/null || umount -l "${MOUNTS[$i]}" ||
      say "could not unmount ${MOUNTS[$i]}"
  done
  MOUNTS=()
}
trap cleanup EXIT
mount_in() { mount "$@"; MOUNTS+=("${!#}"); }

# a root file system left by an earlier run: unmount what is still mounted in it, then remove
if [ -e "$TARGET" ]; then
  { grep -o " $TARGET/[^ ]*" /proc/mounts || true; } | sort -r | while read -r m; do umount -l "$m"; done
  rm -rf --one-file-system "$TARGET"
fi
mkdir -p "$LOGS"

say "debootstrap --variant=minbase $SUITE from $MIRROR into $TARGET"
start=$(date +%s)
if ! debootstrap --variant=minbase "$SUITE" "$TARGET" "$MIRROR" >"$LOGS/debootstrap.log" 2>&1; then
  tail -n 20 "$LOGS/debootstrap.log" >&2
  die "debootstrap from $MIRROR failed (log: $LOGS/debootstrap.log)"
fi
say "debootstrap took $(($(date +%s) - start)) s"

# what a machine needs to reach the package registries this one uses
copy_in() {
  if [ -e "$1" ]; then mkdir -p "$TARGET$(dirname "$1")" && cp -aL "$1" "$TARGET$1"; fi
}
copy_in /etc/resolv.conf
# the CA bundle, and the local CAs it was made from: installing Debian's ca-certificates package
# (python3 recommends it) regenerates the bundle from those
copy_in /etc/ssl/certs/ca-certificates.crt
copy_in /usr/local/share/ca-certificates
if [ -n "$HOST_SOURCES" ]; then
  rm -f "$TARGET/etc/apt/sources.list"  # debootstrap's own (one mirror, no security updates)
else
  say "keeping debootstrap's apt sources ($MIRROR $SUITE main)"
fi
for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources \
  /etc/apt/trusted.gpg.d/*; do
  if [ -n "$HOST_SOURCES" ] && [ -f "$f" ]; then
    copy_in "$f"
    # keyrings the sources name (Signed-By) that the new system lacks
    { grep -ohiE 'signed-by[=:] */[^] ]+' "$f" || true; } | sed -E 's/^[^/]*//' |
      while read -r key; do if [ ! -e "$TARGET$key" ]; then copy_in "$key"; fi; done
  fi
done
copy_in /etc/pip.conf
copy_in /etc/xdg/pip
for f in .config/pip .pip .pydistutils.cfg; do
  if [ -e "$HOME/$f" ]; then
    mkdir -p "$TARGET/root/$(dirname "$f")"
    cp -aL "$HOME/$f" "$TARGET/root/$f"
  fi
done
# a login from a terminal: the tests drive LiveKit's console and Rich progress bars in ptys, which
# render nothing useful with TERM=dumb
ENVS=(HOME=/root TERM=xterm-256color LANG=C.UTF-8
  PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin)
while IFS='=' read -r name _; do
  if [[ "$name" == PIP_* ]]; then ENVS+=("$name=${!name}"); fi
done < <(env)

# a clean clone of the committed HEAD
head="$(git -C "$REPO" rev-parse HEAD)"
if [ -n "$(git -C "$REPO" status --porcelain --untracked-files=no)" ]; then
  say "note: the working tree has uncommitted changes; checking the committed HEAD only"
fi
git clone -q --no-checkout "$REPO" "$TARGET/root/lkmetrics"
git -C "$TARGET/root/lkmetrics" checkout -q "$head"
say "checking $(git -C "$REPO" log -1 --format='%h %s' "$head" | cut -c1-80)"

mount_in -t proc proc "$TARGET/proc"
mount_in --bind /sys "$TARGET/sys"
mount_in --bind /dev "$TARGET/dev"
mount_in --bind /dev/pts "$TARGET/dev/pts"
if mountpoint -q /dev/shm; then mount_in --bind /dev/shm "$TARGET/dev/shm"; fi

failed=0
results=()
for i in "${!COMMANDS[@]}"; do
  cmd="${COMMANDS[$i]}"
  log="$LOGS/command-$((i + 1)).log"
  say "running in the chroot: $cmd (log: $log)"
  start=$(date +%s.%N)
  set +e
  env -i "${ENVS[@]}" chroot "$TARGET" bash -lc "cd /root/lkmetrics && $cmd" </dev/null >"$log" 2>&1
  rc=$?
  set -e
  wall=$(awk -v a="$start" -v b="$(date +%s.%N)" 'BEGIN { printf "%.0f", b - a }')
  results+=("$(printf 'exit %d  wall %4d s (%dm%02ds)  %s' "$rc" "$wall" $((wall / 60)) $((wall % 60)) "$cmd")")
  say "${results[-1]}"
  if [ "$rc" -ne 0 ]; then failed=1; tail -n 30 "$log" >&2; fi
done
cleanup

echo "Debian $SUITE ($(cat "$TARGET/etc/debian_version")), debootstrap --variant=minbase from $MIRROR," \
  "$(nproc) cores; commit ${head:0:7}"
printf '%s\n' "${results[@]}"
exit "$failed"
