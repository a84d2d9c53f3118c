#!/usr/bin/env bash
# Builds (once) a Debian root with a real GIMP 3 for the plug-in tests, and caches it.
#   tests/gimp/build_root.sh [trixie|sid] [DEST]
# trixie gives GIMP 3.0.x, sid gives 3.2.x. DEST defaults to
# /var/cache/deep-image-analogy/gimp-SUITE; a finished root carries a stamp with the recipe, so a
# second call returns at once and a changed recipe rebuilds. Needs root (debootstrap, chroot).
set -euo pipefail

SUITE=${1:-trixie}
DEST=${2:-/var/cache/deep-image-analogy/gimp-$SUITE}
MIRROR=${DIA_DEBIAN_MIRROR:-http://deb.debian.org/debian}
PACKAGES="gimp python3-gi gir1.2-gimp-3.0 xvfb xauth x11-apps x11-utils xdotool netpbm fonts-dejavu-core"
RECIPE="v1 $SUITE $MIRROR $PACKAGES"
STAMP="$DEST/.dia-root-stamp"

if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$RECIPE" ]; then
    echo "build_root: $DEST is ready (cached)"
    exit 0
fi
if [ "$(id -u)" != 0 ]; then
    echo "build_root: must run as root (debootstrap and chroot)" >&2
    exit 1
fi

mkdir -p "$(dirname "$DEST")"
# Two test sessions may start at once: the second waits for the first's build.
exec 9>"$DEST.lock"
flock 9
if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$RECIPE" ]; then
    echo "build_root: $DEST is ready (built meanwhile)"
    exit 0
fi

if ! command -v debootstrap >/dev/null; then
    echo "build_root: installing debootstrap on the host"
    DEBIAN_FRONTEND=noninteractive apt-get install -y debootstrap >/dev/null \
        || { apt-get update >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y debootstrap >/dev/null; }
fi

WORK="$DEST.partial"
# Never delete through a mount point (an old bind of /dev would take the host's /dev with it).
if grep -q " $WORK/" /proc/self/mounts; then
    echo "build_root: something is mounted under $WORK; unmount it first" >&2
    exit 1
fi
rm -rf "$WORK"
start=$(date +%s)
echo "build_root: debootstrap $SUITE into $WORK (1-5 minutes)"
debootstrap --variant=minbase "$SUITE" "$WORK" "$MIRROR" >"$DEST.debootstrap.log" 2>&1 || {
    tail -n 30 "$DEST.debootstrap.log" >&2
    exit 1
}
cp /etc/resolv.conf "$WORK/etc/resolv.conf" 2>/dev/null || true
echo "build_root: installing $PACKAGES"
# /proc and /dev are mounted in a private mount namespace: they vanish with it, even if this
# script is killed, and the host never sees them. Stale Release files (sid) are fine here.
unshare --mount --propagation private sh -c '
    set -e
    mount -t proc proc "$1/proc"
    mount --rbind /dev "$1/dev"
    apt="env DEBIAN_FRONTEND=noninteractive apt-get -o Acquire::Check-Valid-Until=false"
    chroot "$1" $apt update
    chroot "$1" $apt install -y --no-install-recommends $2
    chroot "$1" apt-get clean
' sh "$WORK" "$PACKAGES" >>"$DEST.debootstrap.log" 2>&1 || {
    tail -n 30 "$DEST.debootstrap.log" >&2
    exit 1
}
rm -rf "$DEST"
mv "$WORK" "$DEST"
echo "$RECIPE" >"$STAMP"
echo "build_root: $DEST ready in $(( $(date +%s) - start )) s ($(chroot "$DEST" dpkg-query -W -f '${Version}' gimp))"
