#!/usr/bin/env bash
# Builds the images of the sample functions locally, without any registry: each image is a root
# filesystem assembled from this machine's Debian binaries (and the shared libraries ldd lists for
# them), turned into an image with `docker import --change ...`.
#
#   sflow-busybox  busybox (static) with its applets: /bin/sh and the text tools;
#                  ENTRYPOINT ["/bin/busybox"], so `DUMMY wc -l ./in.txt` runs an applet.
#   sflow-ffmpeg   /usr/bin/ffmpeg and its libraries, plus busybox for /bin/sh;
#                  ENTRYPOINT ["/usr/bin/ffmpeg"], so `DUMMY -i $F^1 out.gif` runs ffmpeg.
#
# Usage: dockerfiles/build.sh [--save DIR] [IMAGE...]
#   --save DIR   also `docker save` each image to DIR/<image>.tar (an image repository directory)
#
# Needs: docker (client and a running engine), busybox-static, ffmpeg (for sflow-ffmpeg).
# An image whose inputs (this script and the binaries) have not changed is not rebuilt: the inputs'
# digest is kept in the image's label sflow.build, and beside a saved tar as <image>.tar.build.
set -euo pipefail

SAVE_DIR=""
IMAGES=()
while [ $# -gt 0 ]; do
  case "$1" in
    --save) SAVE_DIR=${2:?--save needs a directory}; shift 2 ;;
    --save=*) SAVE_DIR=${1#--save=}; shift ;;
    -h|--help) sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    -*) echo "build.sh: unknown option $1" >&2; exit 2 ;;
    *) IMAGES+=("$1"); shift ;;
  esac
done
[ ${#IMAGES[@]} -gt 0 ] || IMAGES=(sflow-busybox sflow-ffmpeg)

BUSYBOX=${BUSYBOX:-/bin/busybox}
FFMPEG=${FFMPEG:-/usr/bin/ffmpeg}
SELF=$(readlink -f "$0")

log() { echo "build.sh: $*" >&2; }

ROOTFS=""
trap 'if [ -n "$ROOTFS" ]; then rm -rf "$ROOTFS"; fi' EXIT

# Copies a program and every shared library (and the loader) it needs into the root filesystem.
add_binary() {
  local rootfs=$1 bin=$2
  mkdir -p "$rootfs$(dirname "$bin")"
  cp -L "$bin" "$rootfs$bin"
  ldd "$bin" 2>/dev/null | awk '{for (i = 1; i <= NF; i++) if ($i ~ /^\//) print $i}' | sort -u |
    while read -r lib; do
      mkdir -p "$rootfs$(dirname "$lib")"
      cp -L "$lib" "$rootfs$lib"
    done
}

# The shell and the tools of busybox, a minimal /etc, and /tmp.
add_base() {
  local rootfs=$1
  add_binary "$rootfs" "$BUSYBOX"
  mkdir -p "$rootfs/bin" "$rootfs/usr/bin" "$rootfs/etc" "$rootfs/tmp"
  chmod 1777 "$rootfs/tmp"
  [ "$BUSYBOX" = /bin/busybox ] || ln -sf "$BUSYBOX" "$rootfs/bin/busybox"
  local applet
  for applet in $("$BUSYBOX" --list); do
    [ -e "$rootfs/bin/$applet" ] || ln -s /bin/busybox "$rootfs/bin/$applet"
  done
  printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/sh\n' >"$rootfs/etc/passwd"
  printf 'root:x:0:\nnogroup:x:65534:\n' >"$rootfs/etc/group"
}

inputs_of() {
  case "$1" in
    sflow-busybox) echo "$BUSYBOX" ;;
    sflow-ffmpeg) echo "$BUSYBOX $FFMPEG" ;;
  esac
}

entrypoint_of() {
  case "$1" in
    sflow-busybox) echo '["/bin/busybox"]' ;;
    sflow-ffmpeg) echo "[\"$FFMPEG\"]" ;;
  esac
}

populate() {
  local image=$1 rootfs=$2
  add_base "$rootfs"
  case "$image" in
    sflow-ffmpeg) add_binary "$rootfs" "$FFMPEG" ;;
  esac
}

build_one() {
  local image=$1
  local inputs
  inputs=$(inputs_of "$image")
  if [ -z "$inputs" ]; then
    log "unknown image $image (known: sflow-busybox sflow-ffmpeg)"
    return 2
  fi
  local bin
  for bin in $inputs; do
    if [ ! -x "$bin" ]; then
      log "$image needs $bin, which is missing (apt-get install busybox-static ffmpeg)"
      return 1
    fi
  done
  local digest
  # shellcheck disable=SC2086
  digest=$(cat "$SELF" $inputs | sha256sum | cut -c1-16)
  local current
  current=$(docker image inspect -f '{{index .Config.Labels "sflow.build"}}' "$image" 2>/dev/null || true)
  if [ "$current" = "$digest" ]; then
    log "$image is up to date"
  else
    local started=$SECONDS
    ROOTFS=$(mktemp -d)
    populate "$image" "$ROOTFS"
    tar -C "$ROOTFS" -c . | docker import \
      --change "ENTRYPOINT $(entrypoint_of "$image")" \
      --change 'CMD []' \
      --change 'WORKDIR /' \
      --change 'ENV PATH=/usr/local/bin:/usr/bin:/bin' \
      --change "LABEL sflow.build=$digest" \
      - "$image:latest" >/dev/null
    rm -rf "$ROOTFS"
    ROOTFS=""
    log "built $image in $((SECONDS - started))s"
  fi
  if [ -n "$SAVE_DIR" ]; then
    mkdir -p "$SAVE_DIR"
    local tar="$SAVE_DIR/$image.tar"
    if [ -f "$tar" ] && [ "$(cat "$tar.build" 2>/dev/null)" = "$digest" ]; then
      log "$tar is up to date"
    else
      docker save -o "$tar.part" "$image:latest"
      mv "$tar.part" "$tar"
      echo "$digest" >"$tar.build"
      log "saved $tar"
    fi
  fi
}

if ! docker info >/dev/null 2>&1; then
  log "no Docker engine is reachable (is dockerd running?)"
  exit 1
fi
status=0
for image in "${IMAGES[@]}"; do
  build_one "$image" || status=$?
done
exit $status
